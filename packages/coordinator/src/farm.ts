/**
 * The coordinator's state, without I/O: which peers are connected, which worker holds which rank,
 * what each worker is doing, and which Master owns it. Events go in (`connected`, `receive`,
 * `disconnected`, ...); envelopes to send come out through `outbox`, and owners hear about their
 * workers through the `FarmListener` they registered. Time enters as an argument, never as a clock
 * read, so every sequence can be replayed in a unit test.
 */
import type { Envelope, Key, Register, WireError, WorkerMessage, WorkerSettings } from '@taskfarm/protocol';
import type { CoordinatorObserver, DispatchKind } from './observer.ts';
import { RankTable } from './ranks.ts';

/** ROUTER routing ids, as latin1 strings so that they can key a Map. */
export type PeerId = string;

/** One dispatch of a task: the (id, attempt) pair fences results. */
export interface Task {
  readonly id: number;
  attempt: number;
  readonly type: Key | null;
  readonly resource: Key | null;
  /** The msgpack-encoded data, kept so the task can be sent again after a loss. */
  readonly payload: Buffer;
  /** The data as given, kept only when a Master subclass overrides run() and must see it again. */
  readonly data?: unknown;
  /** When it entered its queue and when its current attempt left, by the farm's clock (ms). */
  queuedAt: number;
  startedAt: number;
}

export type Outcome = { ok: true; payload: Buffer } | { ok: false; error: WireError };

/**
 * joining: registered, has not said `ready` yet; idle: may take a task; busy: a task is in flight;
 * terminating: told to exit, waiting for its `bye`.
 */
export type WorkerState = 'joining' | 'idle' | 'busy' | 'terminating';

export interface WorkerRecord {
  readonly rank: number;
  readonly peer: PeerId;
  readonly host: string;
  readonly pid: number;
  state: WorkerState;
  task: Task | null;
  readonly joinedAt: number;
  lastSeen: number;
}

/** How a worker left: `bye` (it said so), `disconnected` (its connection dropped), `unreachable` (a send failed). */
export type LeaveReason = 'bye' | 'disconnected' | 'unreachable';

/** What a Master implements to follow its workers. */
export interface FarmListener {
  workerReady(rank: number): void;
  taskFinished(rank: number, task: Task, outcome: Outcome): void;
  /** The worker left; `task` is what it had in flight, to be run again elsewhere. */
  workerGone(rank: number, task: Task | null): void;
}

export type DropReason =
  | 'unregistered' // a message other than register from a peer that has not registered
  | 'reregister' // register from a peer that holds a rank already
  | 'stale-result' // a result for a task or attempt the sender does not hold
  | 'unexpected-ready'; // ready from a worker that is not joining

export class Farm {
  readonly settings: WorkerSettings;
  readonly outbox: Array<[PeerId, Envelope]> = [];
  readonly #ranks: RankTable;
  readonly #byRank = new Map<number, WorkerRecord>();
  readonly #byPeer = new Map<PeerId, WorkerRecord>();
  readonly #connected = new Set<PeerId>();
  readonly #owners = new Map<number, FarmListener>();
  #adopter: FarmListener | null = null;
  /** Busy workers told to terminate: they finish their task, then exit. */
  readonly #terminateRequested = new Set<number>();
  #nextTaskId = 1;
  #closing = false;

  readonly observer: CoordinatorObserver;
  /** The farm's clock, in ms: the shell passes a monotonic one, tests a scripted one. */
  readonly now: () => number;

  constructor(
    settings: WorkerSettings,
    options: { firstFreeRank?: number; observer?: CoordinatorObserver; clock?: () => number } = {},
  ) {
    this.settings = settings;
    this.#ranks = new RankTable(options.firstFreeRank ?? 1);
    this.observer = options.observer ?? {};
    this.now = options.clock ?? (() => 0);
  }

  // --- queries -------------------------------------------------------------------------------

  worker(rank: number): WorkerRecord | undefined {
    return this.#byRank.get(rank);
  }

  workers(): IterableIterator<WorkerRecord> {
    return this.#byRank.values();
  }

  get workerCount(): number {
    return this.#byRank.size;
  }

  /** The rank a peer registered as, or null. */
  rankOf(peer: PeerId): number | null {
    return this.#byPeer.get(peer)?.rank ?? null;
  }

  owner(rank: number): FarmListener | undefined {
    return this.#owners.get(rank);
  }

  newTaskId(): number {
    return this.#nextTaskId++;
  }

  // --- ownership (Masters) ---------------------------------------------------------------------

  /** Gives `rank` to `listener`; a registered idle worker is announced to its new owner at once. */
  setOwner(rank: number, listener: FarmListener | null): void {
    if (listener === null) this.#owners.delete(rank);
    else this.#owners.set(rank, listener);
  }

  /** The listener that takes every worker nobody owns, now and when it becomes ready. */
  setAdopter(listener: FarmListener | null): void {
    this.#adopter = listener;
    if (listener === null) return;
    for (const w of this.#byRank.values()) {
      if (!this.#owners.has(w.rank) && w.state === 'idle') {
        this.#owners.set(w.rank, listener);
        listener.workerReady(w.rank);
      }
    }
  }

  get adopter(): FarmListener | null {
    return this.#adopter;
  }

  // --- commands from Masters -----------------------------------------------------------------

  /** Sends `task` to an idle worker. The caller (a Master) has checked readiness. */
  dispatch(rank: number, task: Task, kind: DispatchKind): void {
    const w = this.#byRank.get(rank);
    if (!w || w.state !== 'idle') throw new Error(`internal: dispatch to rank ${rank} in state ${w?.state ?? 'absent'}`);
    w.state = 'busy';
    w.task = task;
    task.startedAt = this.now();
    this.observer.dispatched?.(w, task, kind);
    this.outbox.push([w.peer, { t: 'work', id: task.id, attempt: task.attempt, type: task.type, resource: task.resource, payload: task.payload }]);
  }

  /** Tells a worker to exit once its current task (if any) is done. */
  terminate(rank: number): void {
    const w = this.#byRank.get(rank);
    if (!w || w.state === 'terminating' || this.#terminateRequested.has(rank)) return;
    if (w.state === 'busy') this.#terminateRequested.add(rank);
    else w.state = 'terminating';
    this.outbox.push([w.peer, { t: 'terminate' }]);
  }

  /** From now on, registrations are refused: the coordinator is shutting down. */
  close(): void {
    this.#closing = true;
  }

  // --- events from the transport -------------------------------------------------------------

  connected(peer: PeerId): void {
    this.#connected.add(peer);
  }

  /** The peer's connection dropped (ROUTER notify, transport heartbeat expiry or process death). */
  disconnected(peer: PeerId): void {
    this.#connected.delete(peer);
    const w = this.#byPeer.get(peer);
    if (w) this.#remove(w, 'disconnected');
  }

  /** A send to this peer failed because it is gone. */
  unreachable(peer: PeerId): void {
    const w = this.#byPeer.get(peer);
    if (w) this.#remove(w, 'unreachable');
  }

  isConnected(peer: PeerId): boolean {
    return this.#connected.has(peer);
  }

  /** Answers a peer whose header was unreadable because it speaks another protocol version. */
  rejectVersion(peer: PeerId, peerVersion: unknown, ours: number): void {
    const message = `protocol version ${String(peerVersion)} is not supported; this coordinator speaks version ${ours}`;
    this.outbox.push([peer, { t: 'reject', code: 'EVERSION', message, version: ours }]);
    this.observer.rejected?.(peer, 'EVERSION', message);
  }

  /** Answers an unregistered peer whose message could not be decoded, so that it learns why. */
  rejectMalformed(peer: PeerId, message: string): void {
    this.outbox.push([peer, { t: 'reject', code: 'EPROTOCOL', message }]);
    this.observer.rejected?.(peer, 'EPROTOCOL', message);
  }

  receive(peer: PeerId, msg: WorkerMessage, now: number): void {
    const w = this.#byPeer.get(peer);
    if (msg.t === 'register') {
      if (w) this.observer.dropped?.(peer, 'reregister', `rank ${w.rank} sent register again`);
      else this.#register(peer, msg, now);
      return;
    }
    if (!w) {
      this.observer.dropped?.(peer, 'unregistered', `'${msg.t}' before register`);
      if (msg.t !== 'bye') this.outbox.push([peer, { t: 'reject', code: 'ENOTREGISTERED', message: 'register first' }]);
      return;
    }
    w.lastSeen = now;
    switch (msg.t) {
      case 'ready':
        // A worker told to terminate before it was ready says ready on its way out: nothing to do.
        if (w.state === 'terminating') return;
        if (w.state !== 'joining') {
          this.observer.dropped?.(peer, 'unexpected-ready', `rank ${w.rank} is ${w.state}`);
          return;
        }
        w.state = 'idle';
        this.#announceReady(w);
        return;
      case 'result':
      case 'error': {
        const task = w.task;
        if (!task || task.id !== msg.id || task.attempt !== msg.attempt) {
          this.observer.dropped?.(peer, 'stale-result', `rank ${w.rank} reported task ${msg.id} attempt ${msg.attempt}`);
          return;
        }
        w.task = null;
        // A worker told to terminate while busy finishes its task first, then exits.
        const terminating = this.#terminateRequested.delete(w.rank);
        w.state = terminating ? 'terminating' : 'idle';
        const outcome: Outcome = msg.t === 'result' ? { ok: true, payload: msg.payload as Buffer } : { ok: false, error: msg.error };
        this.observer.finished?.(w, task, outcome.ok, now);
        this.#owners.get(w.rank)?.taskFinished(w.rank, task, outcome);
        return;
      }
      case 'bye':
        this.#remove(w, 'bye');
        return;
      case 'heartbeat':
        return;
    }
  }

  #register(peer: PeerId, msg: Register, now: number): void {
    const reject = (code: 'ERANKTAKEN' | 'ESHUTDOWN', message: string) => {
      this.outbox.push([peer, { t: 'reject', code, message }]);
      this.observer.rejected?.(peer, code, message);
    };
    if (this.#closing) return reject('ESHUTDOWN', 'the coordinator is shutting down');
    let rank: number;
    if (msg.rank !== null) {
      if (!this.#ranks.claim(msg.rank)) {
        const holder = this.#byRank.get(msg.rank);
        return reject('ERANKTAKEN', `rank ${msg.rank} is held by another worker${holder ? ` (host ${holder.host}, pid ${holder.pid})` : ''}`);
      }
      rank = msg.rank;
    } else {
      rank = this.#ranks.allocate();
    }
    const w: WorkerRecord = { rank, peer, host: msg.host, pid: msg.pid, state: 'joining', task: null, joinedAt: now, lastSeen: now };
    this.#byRank.set(rank, w);
    this.#byPeer.set(peer, w);
    this.outbox.push([peer, { t: 'welcome', rank, settings: this.settings }]);
    this.observer.joined?.(w);
  }

  #announceReady(w: WorkerRecord): void {
    let owner = this.#owners.get(w.rank);
    if (!owner && this.#adopter) {
      owner = this.#adopter;
      this.#owners.set(w.rank, owner);
    }
    owner?.workerReady(w.rank);
  }

  #remove(w: WorkerRecord, reason: LeaveReason): void {
    this.#byRank.delete(w.rank);
    this.#byPeer.delete(w.peer);
    this.#ranks.release(w.rank);
    this.#terminateRequested.delete(w.rank);
    const task = w.task;
    w.task = null;
    this.observer.left?.(w, reason, task);
    this.#owners.get(w.rank)?.workerGone(w.rank, task);
  }
}
