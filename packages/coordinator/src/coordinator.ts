/**
 * The coordinator process's shell: binds the ROUTER transport to the Farm, executes what the Farm
 * queues, logs what happens, and wakes whoever waits for a change. Rank 0 of a job.
 */
import { decodeFromWorker, encodeMessages, PROTOCOL_VERSION, ProtocolError, RateLimiter, type Envelope } from '@taskfarm/protocol';
import type { Logger } from 'pino';
import { CoordinatorClosedError, NoWorkersError } from './errors.ts';
import { Farm, type PeerId, type WorkerRecord } from './farm.ts';
import { DEFAULT_WINDOW } from './window.ts';
import { FileJournal } from './journal.ts';
import { ObserverList, type CoordinatorObserver } from './observer.ts';
import { createLogger } from './logger.ts';
import { Operations } from './operations.ts';
import { setDefaultHost, type FarmHost, type Master, type Supply, type WaitOptions } from './master.ts';
import { resolveOptions, type CoordinatorOptions, type ResolvedOptions } from './options.ts';
import { AllowList } from './allow-list.ts';
import { curveServerSettings, isLocalEndpoint } from './security.ts';
import { PEER_QUEUE_MESSAGES, RouterTransport } from './transport.ts';
import { YoungCollector } from './young-gc.ts';
import type { ZapRequest } from './zap.ts';

/** An application waiting in waitForChange(): settled by the next change, a timer, an abort or close(). */
class ChangeWaiter {
  #timers: NodeJS.Timeout[] | null = null;
  #signal: AbortSignal | null = null;
  #onAbort: (() => void) | null = null;

  readonly #waiters: Set<ChangeWaiter>;

  constructor(
    readonly resolve: (changed: boolean) => void,
    readonly reject: (err: unknown) => void,
    waiters: Set<ChangeWaiter>,
  ) {
    this.#waiters = waiters;
  }

  /** Runs `then` after `ms` unless settled first. */
  after(ms: number, then: () => void): void {
    (this.#timers ??= []).push(
      setTimeout(() => {
        this.cleanup();
        then();
      }, ms),
    );
  }

  abortWith(signal: AbortSignal): void {
    this.#signal = signal;
    this.#onAbort = () => {
      this.cleanup();
      this.reject(signal.reason);
    };
    signal.addEventListener('abort', this.#onAbort, { once: true });
  }

  cleanup(): void {
    if (this.#timers) for (const t of this.#timers) clearTimeout(t);
    if (this.#onAbort) this.#signal!.removeEventListener('abort', this.#onAbort);
    this.#waiters.delete(this);
  }
}

/**
 * How long acks and receipts wait for a message to their worker to ride along with, in ms. They
 * only let a worker forget the outcomes it keeps to send again, so nothing waits on them; sent on
 * their own they were a fifth of all messages with 1,000 workers (every worker not refilled at once).
 */
const ACK_DELAY_MS = 10;

const RESOLVED = Promise.resolve();

/** The farm's clock: one function for every coordinator, so that code inlining it stays valid from one to the next. */
const monotonic = (): number => performance.now();

export class Coordinator implements FarmHost {
  readonly options: ResolvedOptions;
  readonly farm: Farm;
  readonly log: Logger;
  /** Resolves with the bound endpoint; rejects (and the coordinator closes) when binding fails. */
  readonly ready: Promise<string>;
  /** Everything that happens here, for logging and metrics: `coordinator.observers.add({...})`. */
  readonly observers = new ObserverList();
  /** Outcomes recorded for a restart (the `journal` option), or null. */
  readonly journal: FileJournal | null;
  /** Metrics (`operations.metrics`), the HTTP server of `metricsPort` (`operations.statusServer`), progress for `taskfarm run`. */
  readonly operations: Operations;
  /** With CURVE: this coordinator's public key (Z85), for workers' `curveServerKey`; null in plaintext. */
  readonly curvePublicKey: string | null;
  /** With CURVE: the worker keys admitted (the allow-list); null in plaintext. */
  readonly allowList: AllowList | null;
  readonly #transport: RouterTransport;
  readonly #waiters = new Set<ChangeWaiter>();
  readonly #listeners = new Set<() => void>();
  readonly #masters = new Set<Master>();
  readonly #workerLogs = new Map<number, Logger>();
  readonly #limiter = new RateLimiter(10_000, 5);
  #endpoint: string | null = null;
  /** The liveness and deadline sweep, every heartbeat while bound. */
  #ticker: NodeJS.Timeout | null = null;
  #flushScheduled = false;
  /** Acknowledgements waiting to ride along with the next message to their worker (ACK_DELAY_MS). */
  readonly #pendingAcks = new Map<PeerId, Envelope[]>();
  #acksScheduled = false;
  /** The routing id of the last message received, as a string and as its frame (#send). */
  #lastPeer: PeerId | null = null;
  #lastPeerFrame: Buffer | null = null;
  #closed: CoordinatorClosedError | null = null;
  #closing: Promise<void> | null = null;
  #everAttached = false;
  #autoClose = false;
  readonly #onSignal = (signal: NodeJS.Signals) => void this.#shutdownOnSignal(signal);
  readonly #onHangup = () => {
    try {
      this.reloadAllowList();
    } catch {
      // Reported through allowListLoaded (logged); the keys loaded before stay in force.
    }
  };

  /** Creates a coordinator and waits until it listens. */
  static async start(options?: CoordinatorOptions): Promise<Coordinator> {
    const c = new Coordinator(options);
    await c.ready;
    return c;
  }

  constructor(options?: CoordinatorOptions) {
    this.options = resolveOptions(options);
    const o = this.options;
    this.log = o.logger ?? createLogger(o.logLevel);
    this.observers.add(this.#logObserver());
    this.farm = new Farm(
      { heartbeatMs: o.heartbeatMs, livenessMs: o.livenessMs, maxMessageBytes: o.maxMessageBytes },
      {
        firstFreeRank: o.size,
        observer: this.observers,
        clock: monotonic,
        window: { ...DEFAULT_WINDOW, max: o.window, targetMs: o.windowMs },
      },
    );
    // Keys and the allow-list are read now, so that a bad one fails here rather than at the first worker.
    const curve = curveServerSettings(o);
    this.allowList = curve ? new AllowList(curve.allowListPath, curve.allowKeys) : null;
    this.curvePublicKey = curve?.publicKey ?? null;
    this.journal = o.journal ? this.#openJournal(o.journal) : null;
    this.operations = new Operations(this);
    this.observers.add({ authFailed: (reason) => this.operations.metrics.authFailure(reason) });
    this.#transport = new RouterTransport(
      {
        heartbeatMs: o.heartbeatMs,
        livenessMs: o.livenessMs,
        maxMessageBytes: o.maxMessageBytes,
        young: new YoungCollector(o.gcEveryBytes),
        lingerMs: o.closeGraceMs,
        curve: curve ? { secretKey: curve.secretKey, authorize: (request) => this.#authorize(request) } : null,
      },
      {
        message: (peer, frames) => this.#onMessage(peer, frames),
        notify: (peer) => this.#onNotify(peer),
        sendFailed: (peer, err) => this.#onSendFailed(peer, err),
        receiveFailed: (err) => {
          this.log.error({ err }, 'receive loop failed');
          void this.close();
        },
        handshakeFailed: (reason, address, detail) => this.observers.authFailed(reason, address, detail),
      },
    );
    if (o.handleSignals) {
      process.on('SIGINT', this.#onSignal);
      process.on('SIGTERM', this.#onSignal);
    }
    if (this.allowList?.path) process.on('SIGHUP', this.#onHangup);
    this.ready = this.#bind();
    // Failures reach the application through ready and through every wait; do not crash on an unobserved ready.
    this.ready.catch(() => {});
  }

  /** The bound endpoint, with the port filled in. Throws before `ready` resolves. */
  get endpoint(): string {
    if (this.#endpoint === null) throw new Error('the coordinator is not bound yet; await coordinator.ready');
    return this.#endpoint;
  }

  get closed(): boolean {
    return this.#closed !== null;
  }

  async #bind(): Promise<string> {
    try {
      const endpoint = await this.#transport.bind(this.options.endpoint);
      await this.operations.listen();
      this.#endpoint = endpoint;
      // Often enough that a worker stalled on a long task gives back what waits behind it within a
      // tenth of a second (Farm.tick); the sweep is a pass over the workers, nothing more.
      this.#ticker = setInterval(() => this.#tick(), Math.min(this.options.heartbeatMs, 100));
      this.#ticker.unref();
      this.log.info(
        { endpoint, protocol: PROTOCOL_VERSION, curve: this.curvePublicKey !== null, ...(this.allowList ? { allowedKeys: this.allowList.size } : {}) },
        'coordinator listening',
      );
      if (this.curvePublicKey === null && !isLocalEndpoint(endpoint)) {
        this.log.warn({ endpoint }, 'listening beyond this machine WITHOUT CURVE (insecure): anyone who can reach this port can join the farm, read its tasks and forge results');
      }
      // Tell `taskfarm run` where to point the workers it is about to start.
      if (this.options.endpointFromEnv && process.env.TASKFARM_LAUNCHER && process.send) {
        process.send({ taskfarm: 'bound', endpoint });
      }
      return endpoint;
    } catch (err) {
      const e = new CoordinatorClosedError(`cannot bind ${this.options.endpoint}: ${(err as Error).message}`, { cause: err });
      this.log.error({ endpoint: this.options.endpoint, err: (err as Error).message }, 'bind failed');
      this.#fail(e);
      await this.#transport.close().catch(() => {});
      throw e;
    }
  }

  // --- FarmHost ------------------------------------------------------------------------------

  /**
   * Sends what the farm queued, at the end of the current synchronous run. Acknowledgements and
   * receipts alone wait for the end of the event-loop turn instead: by then the application has
   * usually handed the worker its next tasks, and they leave together as one ZeroMQ message.
   */
  flush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    // A promise job rather than queueMicrotask(), which wraps each callback in an AsyncResource:
    // this runs at least once per message sent.
    RESOLVED.then(this.#flushNow);
  }

  readonly #flushNow = (): void => {
    this.#flushScheduled = false;
    const byPeer = new Map<PeerId, Envelope[]>();
    for (const [peer, env] of this.farm.outbox.splice(0)) {
      const envs = byPeer.get(peer);
      if (envs) envs.push(env);
      else byPeer.set(peer, [env]);
    }
    for (const [peer, envs] of byPeer) {
      const acks = this.#pendingAcks.get(peer);
      if (envs.every((e) => e.t === 'ack' || e.t === 'receipt')) {
        if (acks) acks.push(...envs);
        else this.#pendingAcks.set(peer, envs);
        if (!this.#acksScheduled) {
          this.#acksScheduled = true;
          setTimeout(() => this.#sendAcks(), ACK_DELAY_MS).unref();
        }
        continue;
      }
      this.#pendingAcks.delete(peer);
      this.#send(peer, acks ? [...acks, ...envs] : envs);
    }
  };

  #sendAcks(): void {
    this.#acksScheduled = false;
    for (const [peer, acks] of this.#pendingAcks) this.#send(peer, acks);
    this.#pendingAcks.clear();
  }

  #send(peer: PeerId, envs: Envelope[]): void {
    // Most sends answer the message just received: its routing id frame serves again.
    const to = peer === this.#lastPeer ? this.#lastPeerFrame! : Buffer.from(peer, 'latin1');
    for (const frames of encodeMessages(envs, this.farm.batches(peer))) this.#transport.send(to, frames);
  }

  waitForChange(options: WaitOptions, supply: () => Supply): Promise<boolean> {
    if (this.#closed) return Promise.reject(this.#closed);
    const s = supply();
    if (s === 'none') return Promise.reject(new NoWorkersError('no worker ranks: this job has no workers to run its tasks (did you start it with -n 1?)'));
    options.signal?.throwIfAborted();
    // A wait per application loop turn (and per submit() round trip): timers and the abort
    // listener are made only when asked for.
    return new Promise<boolean>((resolve, reject) => {
      const waiter = new ChangeWaiter(resolve, reject, this.#waiters);
      if (s === 'absent' && this.options.workerWaitMs > 0) {
        const ms = this.options.workerWaitMs;
        waiter.after(ms, () => reject(new NoWorkersError(`no worker connected within ${ms} ms (workerWaitMs); is anything pointed at ${this.#endpoint ?? this.options.endpoint}?`)));
      }
      if (options.timeoutMs !== undefined) waiter.after(options.timeoutMs, () => resolve(false));
      if (options.signal) waiter.abortWith(options.signal);
      this.#waiters.add(waiter);
    });
  }

  attach(master: Master): void {
    this.#masters.add(master);
    this.#everAttached = true;
  }

  detach(master: Master): void {
    this.#masters.delete(master);
    if (this.#autoClose && this.#everAttached && this.#masters.size === 0) void this.close();
  }

  /** Calls `fn` after every change (synchronously, after the farm has taken the event in). */
  onChange(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /**
   * Terminates every worker still connected, waits up to `closeGraceMs` for their byes, closes the
   * socket and rejects pending waits with CoordinatorClosedError.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.farm.close();
      for (const w of [...this.farm.workers()]) this.farm.terminate(w.rank);
      this.flush();
      if (this.farm.workerCount > 0) await this.#untilNoWorkers(this.options.closeGraceMs);
      if (this.#ticker) clearInterval(this.#ticker);
      this.journal?.close();
      await this.#transport.close();
      await this.operations.close();
      this.#fail(new CoordinatorClosedError());
      process.off('SIGINT', this.#onSignal);
      process.off('SIGTERM', this.#onSignal);
      process.off('SIGHUP', this.#onHangup);
      this.log.info('coordinator closed');
    })();
    return this.#closing;
  }

  // --- events ----------------------------------------------------------------------------------

  #onMessage(peerBuf: Buffer, frames: Buffer[]): void {
    // A worker's messages often follow each other: its id string is then the one made last time
    // (toString() is a native call, a µs of a round trip on an idle farm).
    const last = this.#lastPeerFrame;
    const peer = last !== null && sameBytes(last, peerBuf) ? this.#lastPeer! : peerBuf.toString('latin1');
    this.#lastPeer = peer;
    this.#lastPeerFrame = peerBuf;
    const now = this.farm.now();
    try {
      for (const msg of decodeFromWorker(frames, { maxFrameBytes: this.options.maxMessageBytes })) this.farm.receive(peer, msg, now);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      const rank = this.farm.rankOf(peer);
      this.observers.protocolError(peer, rank, err.code, err.message);
      if (rank === null) {
        if (err.code === 'EVERSION') this.farm.rejectVersion(peer, err.peerVersion, PROTOCOL_VERSION);
        else this.farm.rejectMalformed(peer, err.message);
      }
    }
    this.flush();
    this.#changed();
  }

  #openJournal(path: string): FileJournal {
    const journal = new FileJournal(path, { sync: this.options.journalSync });
    const { completed, delivered, tornBytes } = journal.recovered;
    if (completed + delivered > 0) this.log.info({ journal: path, completed, delivered, tornBytes }, 'resuming from the journal');
    return journal;
  }

  #tick(): void {
    this.farm.tick(this.farm.now(), this.options.timeoutGraceMs);
    if (this.farm.outbox.length === 0) return;
    this.flush();
    this.#changed();
  }

  /**
   * Re-reads the CURVE allow-list (SIGHUP does this): connections from then on are admitted by the
   * new list; workers already connected stay. Returns how many keys are allowed; throws, keeping the
   * old list, when the file cannot be read or has a bad line.
   */
  reloadAllowList(): number {
    if (!this.allowList) throw new Error('this coordinator has no CURVE allow-list (curveSecretKey and curveAllowList)');
    try {
      const keys = this.allowList.reload();
      this.observers.allowListLoaded(keys, null);
      return keys;
    } catch (err) {
      this.observers.allowListLoaded(this.allowList.size, err as Error);
      throw err;
    }
  }

  /** ZAP: may the peer that proved it holds `request.clientKey` connect? */
  #authorize(request: ZapRequest): boolean {
    const key = request.clientKey!;
    if (this.allowList!.has(key)) {
      this.log.debug({ address: request.address, key, label: this.allowList!.label(key) }, 'worker key admitted');
      return true;
    }
    this.observers.authFailed('unknown-key', request.address, key);
    return false;
  }

  /**
   * A peer's connection dropped (ROUTER_NOTIFY). The ROUTER also notifies connects, with the same
   * empty message, and a peer can send one itself; only a registered peer's matters, and a registered
   * peer cannot connect again under the same routing id, so no per-peer record is kept for the rest
   * (one would grow with every stranger that connects, or flips it with empty messages).
   */
  #onNotify(peerBuf: Buffer): void {
    const peer = peerBuf.toString('latin1');
    if (this.farm.rankOf(peer) === null) return;
    this.farm.disconnected(peer);
    this.#changed();
  }

  #onSendFailed(peer: Buffer, err: Error & { code?: string }): void {
    if (err.code !== 'EAGAIN') {
      // EHOSTUNREACH: the peer is gone, and its disconnect notification is on its way: that is where
      // its task is requeued. Acting here too would race a bye still queued behind the failure.
      this.log.debug({ peer: peer.toString('hex'), err: err.message }, 'send to a departed peer failed');
      return;
    }
    // Its queue is full: it does not read what it is sent (hung, or hostile). A worker is given up.
    const id = peer.toString('latin1');
    this.observers.dropped(id, 'unread', `its queue of ${PEER_QUEUE_MESSAGES} messages is full`);
    if (this.farm.rankOf(id) === null) return;
    this.farm.disconnected(id);
    this.flush();
    this.#changed();
  }

  /** What the coordinator logs: joins and departures at info, anything refused rate-limited at warn. */
  #logObserver(): CoordinatorObserver {
    return {
      joined: (w) => this.#workerLog(w).info({ pid: w.pid }, 'worker joined'),
      left: (w, reason, task) => {
        const log = this.#workerLog(w);
        if (reason === 'bye') log.info('worker left');
        else log.warn({ reason, requeued: task ? { id: task.id, attempt: task.attempt } : null }, 'worker lost');
        this.#workerLogs.delete(w.rank);
      },
      rejected: (peer, code, message) => this.#rateLimited(`reject:${code}`, { peer: hex(peer), code }, `registration rejected: ${message}`),
      dropped: (peer, reason, detail) => this.#rateLimited(`drop:${reason}`, { peer: hex(peer), reason }, `message dropped: ${detail}`),
      protocolError: (peer, rank, code, message) => this.#rateLimited(`protocol:${code}`, { peer: hex(peer), rank, code }, `bad message: ${message}`),
      authFailed: (reason, address, detail) =>
        this.#rateLimited(`auth:${reason}`, { address, reason, detail }, reason === 'unknown-key' ? `connection refused: worker key ${detail} is not in the allow-list` : `connection refused: ${reason} (${detail})`),
      allowListLoaded: (keys, error) => {
        if (error) this.log.error({ allowList: this.allowList?.path, keys, err: error.message }, 'allow-list NOT reloaded; the keys loaded before stay in force');
        else this.log.info({ allowList: this.allowList?.path, keys }, 'allow-list loaded');
      },
    };
  }

  #workerLog(w: WorkerRecord): Logger {
    let log = this.#workerLogs.get(w.rank);
    if (!log) {
      log = this.log.child({ rank: w.rank, host: w.host });
      this.#workerLogs.set(w.rank, log);
    }
    return log;
  }

  #rateLimited(key: string, fields: object, msg: string): void {
    const suppressed = this.#limiter.take(key, Date.now());
    if (suppressed === false) return;
    this.log.warn(suppressed > 0 ? { ...fields, suppressed } : fields, msg);
  }

  #changed(): void {
    for (const w of [...this.#waiters]) {
      w.cleanup();
      w.resolve(true);
    }
    for (const fn of this.#listeners) fn();
  }

  #fail(err: CoordinatorClosedError): void {
    this.#closed ??= err;
    for (const w of [...this.#waiters]) {
      w.cleanup();
      w.reject(this.#closed);
    }
  }

  #untilNoWorkers(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const off = this.onChange(() => {
        if (this.farm.workerCount === 0) done();
      });
      function done() {
        clearTimeout(timer);
        off();
        resolve();
      }
    });
  }

  async #shutdownOnSignal(signal: NodeJS.Signals): Promise<void> {
    this.log.warn({ signal }, 'signal received: terminating workers and closing');
    await this.close();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  }

  /** Marks this as the implicit coordinator, which closes once every Master on it has terminated its workers. */
  static shared(): Coordinator {
    if (!shared || shared.closed) {
      shared = new Coordinator({ handleSignals: true });
      shared.#autoClose = true;
    }
    return shared;
  }
}

let shared: Coordinator | null = null;
setDefaultHost(() => Coordinator.shared());

function hex(peer: PeerId): string {
  return Buffer.from(peer, 'latin1').toString('hex');
}

/** Whether two routing ids are the same bytes: a few (libzmq makes them 5 long), compared here rather than by Buffer.equals(), another native call. */
function sameBytes(a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
