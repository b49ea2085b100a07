/**
 * A FarmHost without sockets: the real Farm, Masters and queues, driven by a test that plays the
 * workers' side by feeding envelopes in and reading the outbox. Waiting resolves on the next
 * `deliver()`, as the coordinator's shell does after each message.
 */
import { encodePayload, type Envelope, type Key, type WorkerMessage } from '@taskfarm/protocol';
import { Farm } from '../src/farm.ts';
import type { Journal } from '../src/journal.ts';
import type { CoordinatorObserver } from '../src/observer.ts';
import type { FarmHost, Master, Supply, WaitOptions } from '../src/master.ts';
import { DEFAULT_WINDOW, type WindowSettings } from '../src/window.ts';

export class InMemoryHost implements FarmHost {
  readonly farm: Farm;
  readonly sent: Array<[string, Envelope]> = [];
  journal: Journal | null = null;
  #waiters: Array<(v: boolean) => void> = [];
  now = 0;

  constructor(firstFreeRank = 1, window?: Partial<WindowSettings>, observer?: CoordinatorObserver) {
    this.farm = new Farm(
      { heartbeatMs: 1000, livenessMs: 3000, maxMessageBytes: 1 << 20 },
      { firstFreeRank, clock: () => this.now, window: { ...DEFAULT_WINDOW, ...window }, ...(observer ? { observer } : {}) },
    );
  }

  flush(): void {
    this.sent.push(...this.farm.outbox.splice(0));
  }

  waitForChange(_options: WaitOptions, supply: () => Supply): Promise<boolean> {
    if (supply() === 'none') return Promise.reject(new Error('no workers'));
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  attach(_m: Master): void {}
  detach(_m: Master): void {}

  /** A worker message arrives, as from the socket. */
  deliver(peer: string, msg: WorkerMessage): void {
    this.farm.receive(peer, msg, ++this.now);
    this.flush();
    for (const w of this.#waiters.splice(0)) w(true);
  }

  /** Registers a worker (optionally asking for a rank and a window, or saying it reads raw payloads) and makes it ready; returns its rank. */
  join(peer: string, rank: number | null = null, window?: number, raw = false): number {
    this.farm.connected(peer);
    this.deliver(peer, { t: 'register', rank, host: 'test', pid: 1, instance: null, ...(window === undefined ? {} : { window }), ...(raw ? { raw } : {}) });
    const welcome = this.lastTo(peer);
    if (welcome?.t !== 'welcome') throw new Error(`expected welcome, got ${JSON.stringify(welcome)}`);
    this.deliver(peer, { t: 'ready' });
    return welcome.rank;
  }

  lastTo(peer: string): Envelope | undefined {
    for (let i = this.sent.length - 1; i >= 0; i--) if (this.sent[i]![0] === peer) return this.sent[i]![1];
    return undefined;
  }

  /** Every task sent to `peer` so far, in order. */
  worksTo(peer: string): Array<{ id: number; attempt: number; resource: Key | null; timeoutMs: number | null }> {
    return this.sent.flatMap(([p, env]) => (p === peer && env.t === 'work' ? [env] : []));
  }

  /** The task a worker was last sent. */
  workOf(peer: string): { id: number; attempt: number; resource: Key | null; type: Key | null } {
    const env = this.lastTo(peer);
    if (env?.t !== 'work') throw new Error(`peer ${peer} has no work (last: ${JSON.stringify(env)})`);
    return env;
  }

  /** The worker finishes its current task, returning `value`. */
  complete(peer: string, value: unknown = null): number {
    const w = this.workOf(peer);
    this.deliver(peer, { t: 'result', id: w.id, attempt: w.attempt, payload: encodePayload(value) });
    return w.id;
  }

  disconnect(peer: string): void {
    this.farm.disconnected(peer);
    for (const w of this.#waiters.splice(0)) w(true);
  }
}
