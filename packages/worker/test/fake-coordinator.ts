/**
 * A ROUTER standing in for a coordinator, so that the worker is tested on its own, over a real
 * socket: it speaks the wire protocol through @taskfarm/protocol and keeps what the worker says.
 */
import { decodeFromWorker, encodeMessages, encodePayload, type Envelope, type Work, type WorkerMessage, type WorkerSettings } from '@taskfarm/protocol';
import * as zmq from 'zeromq';

export class FakeCoordinator {
  readonly sock = new zmq.Router({ linger: 0, mandatory: true });
  endpoint = '';
  /** Lone heartbeats are counted here rather than kept: the worker sends them on its own clock. */
  heartbeats = 0;
  /** When set, what every heartbeat is answered with (a coordinator that lost the worker's record rejects them). */
  answerHeartbeats: Envelope | null = null;
  #peer: Buffer | null = null;
  readonly #inbox: WorkerMessage[][] = [];
  #wake: (() => void) | null = null;

  static async start(): Promise<FakeCoordinator> {
    const fake = new FakeCoordinator();
    await fake.sock.bind('tcp://127.0.0.1:*');
    fake.endpoint = fake.sock.lastEndpoint!;
    void fake.#read();
    return fake;
  }

  async #read(): Promise<void> {
    try {
      for await (const [peer, ...frames] of this.sock) {
        this.#peer = peer!;
        const msg = decodeFromWorker(frames);
        if (msg.length === 1 && msg[0]!.t === 'heartbeat') {
          this.heartbeats++;
          if (this.answerHeartbeats) await this.send(this.answerHeartbeats);
        } else {
          this.#inbox.push(msg);
        }
        this.#wake?.();
      }
    } catch {
      // The loop ends with the socket.
    }
  }

  /** The worker's next message other than a heartbeat: its envelopes. */
  async message(): Promise<WorkerMessage[]> {
    while (this.#inbox.length === 0) await this.#changed();
    return this.#inbox.shift()!;
  }

  /** Resolves once `n` more heartbeats came: time passed on the worker's own clock. */
  async heartbeatsAfter(n: number): Promise<void> {
    const until = this.heartbeats + n;
    while (this.heartbeats < until) await this.#changed();
  }

  #changed(): Promise<void> {
    return new Promise((resolve) => (this.#wake = resolve));
  }

  /** Sends envelopes as few messages; runs of small `work` leave as `tasks`, as from a coordinator with a window. */
  async send(...envs: Envelope[]): Promise<void> {
    for (const frames of encodeMessages(envs, true)) await this.sock.send([this.#peer!, ...frames]);
  }

  /** Welcomes the worker as rank 1; `window` absent is a coordinator of the old kind. */
  welcome(settings: Partial<WorkerSettings> = {}): Promise<void> {
    return this.send({ t: 'welcome', rank: 1, settings: { heartbeatMs: 1000, livenessMs: 3000, maxMessageBytes: 64 << 20, ...settings } });
  }

  /**
   * Makes the worker register again, as a coordinator does that lost its record: ENOTREGISTERED to
   * what it says until it registers (it sends one register per livenessMs). Returns its register.
   */
  async reregister(): Promise<WorkerMessage> {
    const reject: Envelope = { t: 'reject', code: 'ENOTREGISTERED', message: 'register first' };
    this.answerHeartbeats = reject;
    await this.send(reject);
    try {
      for (;;) {
        const register = (await this.message()).find((e) => e.t === 'register');
        if (register) return register;
      }
    } finally {
      this.answerHeartbeats = null;
    }
  }

  close(): void {
    this.sock.close();
  }
}

/** A task as a coordinator sends it. */
export function work(id: number, data: unknown, extra: Partial<Work> = {}): Work {
  return { t: 'work', id, attempt: 1, type: null, resource: null, timeoutMs: null, payload: encodePayload(data), ...extra };
}

/** A promise and its resolve, for a handler to wait on an event the test controls. */
export function gate<T = void>(): { promise: Promise<T>; open(value: T): void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (open = resolve));
  return { promise, open };
}
