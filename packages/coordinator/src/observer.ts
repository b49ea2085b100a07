/**
 * What happens in a coordinator, as callbacks: the shell logs from them, the metrics count from them.
 * Every callback is optional and called synchronously where the event happens, so an observer must
 * be quick; none may throw.
 */
import type { Key } from '@taskfarm/protocol';
import type { AffinityKind } from './affinity.ts';
import type { DropReason, LeaveReason, PeerId, Task, WorkerRecord } from './farm.ts';

/** How a task found its worker: one of the affinity rules, or `direct` for Master.run(). */
export type DispatchKind = AffinityKind | 'direct';

export interface CoordinatorObserver {
  joined?(w: WorkerRecord): void;
  /** `lost`: the task it ran, lost with it (handed back on a bye); `waiting`: those it had not started. */
  left?(w: WorkerRecord, reason: LeaveReason, lost: Task | null, waiting: readonly Task[]): void;
  rejected?(peer: PeerId, code: string, message: string): void;
  /** A message that was understood but not acceptable, dropped. */
  dropped?(peer: PeerId, reason: DropReason, detail: string): void;
  /** A message that could not be decoded. */
  protocolError?(peer: PeerId, rank: number | null, code: string, message: string): void;
  /** A task entered a queue (`task.queuedAt` is set). */
  queued?(task: Task): void;
  /** A task left for a worker (`task.startedAt` is set). */
  dispatched?(w: WorkerRecord, task: Task, kind: DispatchKind): void;
  /** The current attempt of a task came back, at `now` (farm clock). */
  finished?(w: WorkerRecord, task: Task, ok: boolean, now: number): void;
  /** A task lost with its worker went back to its queue. */
  requeued?(task: Task): void;
  /** A task that failed (error `code`) will run again after its backoff (`task.notBefore`). */
  retried?(task: Task, code: string): void;
  /**
   * A task ended without a result from a worker: cancelled (`ECANCELLED`; `queued` when it was still
   * waiting in its queue, or waiting out a retry's backoff) or given up after too many lost workers
   * (`EWORKERLOST`). The metrics take it out of the queue depth and count it as done.
   */
  abandoned?(task: Task, code: 'ECANCELLED' | 'EWORKERLOST', queued: boolean): void;
  /** A MultiWorkQueue moved a ready worker between the Masters of two task types. */
  moved?(rank: number, from: Key | null, to: Key | null, how: 'lent' | 'borrowed'): void;
  /**
   * A connection was refused before it could send a message: `unknown-key` (a CURVE key missing from
   * the allow-list), `mechanism-mismatch` (a plaintext peer at a CURVE coordinator), `curve-cryptographic`
   * (a wrong server key, or garbage), `handshake-protocol` (anything else that is not ZMTP). `address`
   * is the peer's; `detail` says more (the key, the ZMTP error).
   */
  authFailed?(reason: string, address: string, detail: string): void;
  /** The CURVE allow-list was (re)read: `keys` are admitted now; with `error`, the reload failed and the old keys stay. */
  allowListLoaded?(keys: number, error: Error | null): void;
}

type Callback = keyof CoordinatorObserver;
const CALLBACKS: Callback[] = ['joined', 'left', 'rejected', 'dropped', 'protocolError', 'queued', 'dispatched', 'finished', 'requeued', 'retried', 'moved', 'abandoned', 'authFailed', 'allowListLoaded'];

/** Every callback takes at most four arguments (`left`, `finished`). */
type Fn = (a?: unknown, b?: unknown, c?: unknown, d?: unknown) => void;

/**
 * Fans every callback out to the observers added to it. `dispatched` and `finished` run for every
 * task, and most observers implement neither: each callback calls only the observers that have it,
 * as they had it when added, with its arguments as they are (no rest array, no spread). The
 * callbacks are methods shared by every list, so that code which calls them keeps one call target
 * from one coordinator to the next.
 */
export class ObserverList implements CoordinatorObserver {
  readonly #fns = byCallback();

  static {
    for (const name of CALLBACKS) {
      (ObserverList.prototype as unknown as Record<Callback, Fn>)[name] = function (this: ObserverList, a?: unknown, b?: unknown, c?: unknown, d?: unknown) {
        const fns = this.#fns[name];
        for (let i = 0; i < fns.length; i++) fns[i]!(a, b, c, d);
      };
    }
  }

  /** Adds `o`; the function returned takes it out again. */
  add(o: CoordinatorObserver): () => void {
    const mine: Array<[Fn[], Fn]> = [];
    for (const name of CALLBACKS) {
      const method = o[name] as Fn | undefined;
      if (typeof method !== 'function') continue;
      const fn = method.bind(o) as Fn;
      const fns = this.#fns[name];
      fns.push(fn);
      mine.push([fns, fn]);
    }
    return () => {
      for (const [fns, fn] of mine.splice(0)) fns.splice(fns.indexOf(fn), 1);
    };
  }
}

/** An empty list of functions per callback, in one object shape for every ObserverList. */
function byCallback(): Record<Callback, Fn[]> {
  return { joined: [], left: [], rejected: [], dropped: [], protocolError: [], queued: [], dispatched: [], finished: [], requeued: [], retried: [], moved: [], abandoned: [], authFailed: [], allowListLoaded: [] };
}
export interface ObserverList extends Required<CoordinatorObserver> {}
