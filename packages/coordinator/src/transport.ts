/**
 * The coordinator's only contact with ZeroMQ: a ROUTER socket, one receive loop and one writer.
 * zeromq.js allows one pending send and one pending receive per socket, so every send goes through
 * a queue drained by a single writer.
 */
import * as zmq from 'zeromq';
import { Deque } from './deque.ts';

// libzmq's ZMQ_ROUTER_NOTIFY (draft API, in zeromq.js's prebuilt libzmq 4.3.5): the ROUTER delivers
// an empty message from a peer when it connects and again when it disconnects, so a dead worker is
// noticed the moment its connection drops (or its heartbeats stop), not at the next send.
const ZMQ_ROUTER_NOTIFY = 97;
const NOTIFY_CONNECT_AND_DISCONNECT = 3;

export interface RouterHandlers {
  message(peer: Buffer, frames: Buffer[]): void;
  /** Connect or disconnect of a peer (ROUTER notify); the caller tells which from its own state. */
  notify(peer: Buffer): void;
  sendFailed(peer: Buffer, err: Error & { code?: string }): void;
  receiveFailed(err: Error): void;
}

export interface RouterSettings {
  heartbeatMs: number;
  livenessMs: number;
  maxMessageBytes: number;
  /** How long close() lets queued messages leave, in ms. */
  lingerMs: number;
}

export class RouterTransport {
  readonly #sock: zmq.Router;
  readonly #handlers: RouterHandlers;
  readonly #out = new Deque<Buffer[]>();
  #writing: Promise<void> | null = null;
  #closed = false;

  constructor(settings: RouterSettings, handlers: RouterHandlers) {
    this.#handlers = handlers;
    this.#sock = new zmq.Router({
      // A send to a peer that is gone fails (EHOSTUNREACH) instead of vanishing.
      mandatory: true,
      linger: settings.lingerMs,
      maxMessageSize: settings.maxMessageBytes,
      heartbeatInterval: settings.heartbeatMs,
      heartbeatTimeout: settings.livenessMs,
      heartbeatTimeToLive: settings.livenessMs,
      sendHighWaterMark: 0,
      receiveHighWaterMark: 0,
    });
    // zeromq.js exposes no typed option for it, only the raw setter (protected in its typings).
    (this.#sock as unknown as { setInt32Option(id: number, v: number): void }).setInt32Option(ZMQ_ROUTER_NOTIFY, NOTIFY_CONNECT_AND_DISCONNECT);
  }

  /** Binds and starts receiving; resolves with the endpoint actually bound (the port filled in). */
  async bind(endpoint: string): Promise<string> {
    await this.#sock.bind(endpoint);
    void this.#receive();
    return this.#sock.lastEndpoint ?? endpoint;
  }

  send(peer: Buffer, frames: Buffer[]): void {
    if (this.#closed) return;
    this.#out.push([peer, ...frames]);
    this.#writing ??= this.#write();
  }

  /** Lets queued messages leave (within the linger time), then closes the socket. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#writing;
    this.#closed = true;
    this.#sock.close();
  }

  async #receive(): Promise<void> {
    try {
      for await (const msg of this.#sock) {
        const peer = msg[0]!;
        if (msg.length === 2 && msg[1]!.length === 0) this.#handlers.notify(peer);
        else this.#handlers.message(peer, msg.slice(1));
      }
    } catch (err) {
      if (!this.#closed && !this.#sock.closed) this.#handlers.receiveFailed(err as Error);
    }
  }

  async #write(): Promise<void> {
    for (let msg = this.#out.shift(); msg; msg = this.#out.shift()) {
      try {
        await this.#sock.send(msg);
      } catch (err) {
        if (this.#sock.closed) break;
        this.#handlers.sendFailed(msg[0]!, err as Error & { code?: string });
      }
    }
    this.#writing = null;
  }
}
