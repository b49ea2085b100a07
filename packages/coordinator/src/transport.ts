/**
 * The coordinator's only contact with ZeroMQ: a ROUTER socket, one receive loop and one writer.
 * zeromq.js allows one pending send and one pending receive per socket, so every send goes through
 * a queue drained by a single writer. With CURVE, also the ZAP handler that admits worker keys (a
 * Reply socket in a context of this coordinator's own, so that two coordinators in one process, or
 * an application's own ZAP handler, never answer for each other), and the socket's handshake events.
 */
import { Deque } from '@taskfarm/protocol';
import * as zmq from 'zeromq';
import type { YoungCollector } from './young-gc.ts';
import { parseZapRequest, ZAP_ENDPOINT, zapReply, type ZapRequest } from './zap.ts';

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
  /**
   * A connection failed its ZMTP handshake: `reason` is `mechanism-mismatch` (a plaintext peer at a
   * CURVE coordinator, or the reverse), `curve-cryptographic` (a CURVE peer with the wrong server
   * key, or garbage), `handshake-protocol` (any other ZMTP violation: a port scanner, an HTTP client).
   */
  handshakeFailed?(reason: string, address: string, detail: string): void;
}

/** With CURVE: the coordinator's secret key, and who may connect. */
export interface CurveTransportSettings {
  secretKey: string;
  /** Answers libzmq's ZAP request for a peer that proved it holds `request.clientKey`; true admits it. */
  authorize(request: ZapRequest): boolean;
}

export interface RouterSettings {
  heartbeatMs: number;
  livenessMs: number;
  maxMessageBytes: number;
  /** How long close() lets queued messages leave, in ms. */
  lingerMs: number;
  /** Null for plaintext. */
  curve?: CurveTransportSettings | null;
  /** Paces young-generation collections by the frames received (young-gc.ts). */
  young: YoungCollector;
}

/**
 * Messages queued for each peer. An honest worker has a handful in flight; sends to a peer that does
 * not read what it is sent fail at once (EAGAIN) once this many wait, instead of growing our memory
 * without bound. The receiving side stays unbounded (0), as before: with a finite receive high-water
 * mark, libzmq 4.3.5 now and then never resumes reading a connection that reached it (seen under the
 * fuzz test), which would strand an honest worker; a flood is paced by how fast we decode instead.
 */
export const PEER_QUEUE_MESSAGES = 1000;

const RESOLVED = Promise.resolve();

export class RouterTransport {
  readonly #sock: zmq.Router;
  readonly #zap: zmq.Reply | null = null;
  readonly #curve: CurveTransportSettings | null;
  readonly #handlers: RouterHandlers;
  readonly #young: YoungCollector;
  readonly #out = new Deque<Buffer[]>();
  #writing: Promise<void> | null = null;
  #closed = false;
  /**
   * Held for as long as this transport lives, though nothing reads it. zeromq.js keeps a private
   * Context alive only through its open sockets, not through a socket's observer: once the ROUTER
   * closed, V8 could collect the Context and shut it down before the observer had read its
   * monitor-stopped event, and the observer then never ended, its pending receive keeping the
   * process alive. A loop that starts a CURVE coordinator, refuses a plaintext worker and closes
   * both hung or left an observer open about once in 35 rounds without this field, never in 210
   * with it (scripts/open-sockets.mjs names what is left open).
   */
  readonly #context: zmq.Context;

  constructor(settings: RouterSettings, handlers: RouterHandlers) {
    this.#handlers = handlers;
    this.#curve = settings.curve ?? null;
    this.#young = settings.young;
    const context = (this.#context = this.#curve ? new zmq.Context() : zmq.context);
    this.#sock = new zmq.Router({
      context,
      // A send to a peer that is gone fails (EHOSTUNREACH) instead of vanishing, and one to a peer
      // whose queue is full fails at once (EAGAIN) instead of blocking the writer for every peer.
      mandatory: true,
      sendTimeout: 0,
      linger: settings.lingerMs,
      maxMessageSize: settings.maxMessageBytes,
      heartbeatInterval: settings.heartbeatMs,
      heartbeatTimeout: settings.livenessMs,
      heartbeatTimeToLive: settings.livenessMs,
      sendHighWaterMark: PEER_QUEUE_MESSAGES,
      receiveHighWaterMark: 0,
      // ROUTER_HANDOVER stays off (libzmq's default): a peer that claims the routing id of a
      // connected one is refused, never handed the other's connection.
      ...(this.#curve
        ? {
            curveServer: true,
            curveSecretKey: this.#curve.secretKey,
            zapDomain: 'taskfarm',
            // Fail closed: without an answering ZAP handler, libzmq refuses every peer.
            zapEnforceDomain: true,
          }
        : {}),
    });
    if (this.#curve) this.#zap = new zmq.Reply({ context, linger: 0 });
    // zeromq.js exposes no typed option for it, only the raw setter (protected in its typings).
    (this.#sock as unknown as { setInt32Option(id: number, v: number): void }).setInt32Option(ZMQ_ROUTER_NOTIFY, NOTIFY_CONNECT_AND_DISCONNECT);
  }

  /** Binds and starts receiving; resolves with the endpoint actually bound (the port filled in). */
  async bind(endpoint: string): Promise<string> {
    if (this.#zap) {
      // Before the ROUTER listens: no peer may complete a handshake that nobody authorises.
      await this.#zap.bind(ZAP_ENDPOINT);
      void this.#serveZap(this.#zap);
    }
    void this.#watchHandshakes();
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
    this.#zap?.close();
  }

  async #receive(): Promise<void> {
    try {
      while (!this.#sock.closed) {
        const msg = await this.#sock.receive();
        const peer = msg[0]!;
        for (let i = 1; i < msg.length; i++) this.#young.received(msg[i]!.length);
        if (msg.length === 2 && msg[1]!.length === 0) this.#handlers.notify(peer);
        else this.#handlers.message(peer, msg.slice(1));
        // What the message set going (the application's continuation, the tasks it frees, their
        // send) runs before the next receive(): when nothing is waiting, zeromq.js arms its poller
        // there, some µs that would otherwise sit between a result and the task that follows it.
        await RESOLVED;
      }
    } catch (err) {
      if (!this.#closed && !this.#sock.closed) this.#handlers.receiveFailed(err as Error);
    }
  }

  async #serveZap(zap: zmq.Reply): Promise<void> {
    try {
      for await (const frames of zap) {
        const request = parseZapRequest(frames);
        let reply: Buffer[];
        if (request === null) reply = zapReply(frames[1] ?? null, '500', 'malformed ZAP request');
        else if (request.clientKey === null) reply = zapReply(request.requestId, '400', `mechanism ${request.mechanism} is not CURVE`);
        else if (this.#curve!.authorize(request)) reply = zapReply(request.requestId, '200', 'OK', request.clientKey);
        else reply = zapReply(request.requestId, '400', 'unknown key');
        await zap.send(reply);
      }
    } catch (err) {
      if (!this.#closed && !zap.closed) this.#handlers.receiveFailed(err as Error);
    }
  }

  async #watchHandshakes(): Promise<void> {
    const report = this.#handlers.handshakeFailed;
    if (!report) return;
    try {
      for await (const event of this.#sock.events) {
        if (event.type === 'handshake:error:protocol') {
          const code = event.error.code;
          const reason = code === 'ERR_ZMTP_MECHANISM_MISMATCH' ? 'mechanism-mismatch' : code === 'ERR_ZMTP_CRYPTOGRAPHIC' ? 'curve-cryptographic' : 'handshake-protocol';
          report(reason, event.address, code);
        }
        // handshake:error:auth follows a ZAP refusal, already reported by authorize(); other
        // failures (handshake:error:other) are a peer hanging up mid-handshake: not an attack.
      }
    } catch {
      // The observer ends with the socket.
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
