/**
 * Hostile and test peers with real sockets: a rogue DEALER that sends whatever frames it is given to
 * a coordinator, and a fake coordinator (ROUTER) that sends whatever it likes to a real Worker.
 */
import * as zmq from 'zeromq';
import { decodeFromCoordinator, decodeFromWorker, encode, type CoordinatorMessage, type Envelope, type WorkerMessage } from '../../packages/protocol/src/index.ts';
import type { Coordinator } from 'taskfarm';

export class Rogue {
  readonly sock: zmq.Dealer;
  /** Resolves once a connection completed its ZMTP handshake (watched from before connecting). */
  readonly handshake: Promise<void>;

  /** Socket event types seen so far. */
  readonly events: string[] = [];
  readonly #waiting: Array<{ type: string; resolve(): void }> = [];

  constructor(endpoint: string, options: Partial<zmq.SocketOptions<zmq.Dealer>> = {}) {
    this.sock = new zmq.Dealer({ linger: 0, reconnectInterval: 50, ...options });
    let shook!: () => void;
    this.handshake = new Promise((resolve) => (shook = resolve));
    const events = this.sock.events;
    void (async () => {
      try {
        for await (const event of events) {
          this.events.push(event.type);
          if (event.type === 'handshake') shook();
          for (const w of this.#waiting.filter((w) => w.type === event.type)) w.resolve();
        }
      } catch {
        // ends with the socket
      }
    })();
    this.sock.connect(endpoint);
  }

  /** Resolves at the next socket event of `type` (e.g. `disconnect`). */
  next(type: string): Promise<void> {
    return new Promise((resolve) => this.#waiting.push({ type, resolve }));
  }

  send(frames: Array<Buffer | string>): Promise<void> {
    return this.sock.send(frames);
  }

  envelope(env: Envelope): Promise<void> {
    return this.sock.send(encode(env));
  }

  /** The next message from the coordinator, decoded. */
  async receive(): Promise<CoordinatorMessage[]> {
    return decodeFromCoordinator(await this.sock.receive());
  }

  close(): void {
    this.sock.close();
  }
}

/** Counts the coordinator's observer events as `kind:reason`, e.g. `protocol:EMSGPACK`, `dropped:stale-result`. */
export function eventCounter(coordinator: Coordinator): Map<string, number> {
  const counts = new Map<string, number>();
  const bump = (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);
  coordinator.observers.add({
    protocolError: (_peer, _rank, code) => bump(`protocol:${code}`),
    dropped: (_peer, reason) => bump(`dropped:${reason}`),
    rejected: (_peer, code) => bump(`rejected:${code}`),
    authFailed: (reason) => bump(`auth:${reason}`),
  });
  return counts;
}

/** Resolves the next time the coordinator reports `kind:reason` (see eventCounter). */
export function nextEvent(coordinator: Coordinator, key: string): Promise<void> {
  return new Promise((resolve) => {
    const off = coordinator.observers.add({
      protocolError: (_p, _r, code) => hit(`protocol:${code}`),
      dropped: (_p, reason) => hit(`dropped:${reason}`),
      rejected: (_p, code) => hit(`rejected:${code}`),
      authFailed: (reason) => hit(`auth:${reason}`),
      joined: () => hit('joined'),
      allowListLoaded: (_n, error) => hit(error ? 'allowList:error' : 'allowList:ok'),
    });
    function hit(k: string) {
      if (k !== key) return;
      off();
      resolve();
    }
  });
}

/** A ROUTER standing in for a coordinator, to feed a real Worker what no coordinator would send. */
export class FakeCoordinator {
  readonly sock = new zmq.Router({ linger: 0, mandatory: true });
  endpoint = '';
  /** The worker's routing id, once it has said something. */
  peer: Buffer | null = null;

  async bind(): Promise<this> {
    await this.sock.bind('tcp://127.0.0.1:*');
    this.endpoint = this.sock.lastEndpoint!;
    return this;
  }

  /** The next message from the worker, decoded. */
  async receive(): Promise<WorkerMessage[]> {
    const [peer, ...frames] = await this.sock.receive();
    this.peer = peer!;
    return decodeFromWorker(frames);
  }

  send(frames: Array<Buffer | string>): Promise<void> {
    return this.sock.send([this.peer!, ...frames]);
  }

  envelope(env: Envelope): Promise<void> {
    return this.send(encode(env));
  }

  close(): void {
    this.sock.close();
  }
}
