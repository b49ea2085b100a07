/**
 * The seed's Slave: extend Worker, implement doWork(), and `await new MyWorker().run()`. It connects
 * a DEALER socket to the coordinator, registers for a rank, runs one task at a time and returns from
 * run() once the coordinator says terminate (or the process is asked to stop). A coordinator that
 * agrees on a window above 1 sends tasks ahead, which wait here in order (held-tasks.ts), and takes
 * results in batches (outcomes.ts): a round trip per task would cap a farm of tiny tasks.
 *
 * It survives the coordinator going away: ZeroMQ reconnects the socket, the worker learns from the
 * coordinator's answer to its next heartbeat that it is unknown there and registers again (keeping
 * its rank if it is free), and a result it computed meanwhile is sent again until acknowledged.
 */
import { randomUUID } from 'node:crypto';
import {
  BATCH_INLINE_BYTES,
  decodeFromCoordinator,
  Deque,
  decodeValue,
  encode,
  encodeMessages,
  encodePayload,
  rawPayload,
  ProtocolError,
  PROTOCOL_VERSION,
  RateLimiter,
  ResultRecord,
  toWireError,
  type CoordinatorMessage,
  type Envelope,
  type Key,
  type TaskFailed,
  type Work,
  type WorkerSettings,
} from '@taskfarm/protocol';
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';
import * as zmq from 'zeromq';
import { RegistrationError, TaskAbortedError } from './errors.ts';
import { HeldTask } from './held-tasks.ts';
import { resolveWorkerOptions, type ResolvedWorkerOptions, type WorkerOptions } from './options.ts';
import { Outcomes } from './outcomes.ts';
import { Watchdog } from './watchdog.ts';

/**
 * libzmq's default context holds 1,023 sockets, and each worker uses three (its DEALER and the two
 * of its socket monitor): a process hosting more than 341 workers failed the rest with a misleading
 * EMFILE. Raised here, before the process's first socket (libzmq reads it then), so that the bound
 * is the process's file descriptors. It stays zeromq.js's shared context, which is never
 * terminated at exit: a context of our own would make exit wait for any socket left open.
 */
const MAX_SOCKETS = 65_535;
if (zmq.context.maxSockets < MAX_SOCKETS) zmq.context.maxSockets = MAX_SOCKETS;

/** Node's timers hold at most 2^31-1 ms (24.8 days); a longer delay would fire after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** After the coordinator refused our handshake, try again after this long, doubling up to the max. */
const HANDSHAKE_RETRY_MS = 1000;
const HANDSHAKE_RETRY_MAX_MS = 30_000;

/**
 * What a worker refused from the coordinator's side of the connection, counted by reason: messages
 * that could not be decoded (by ProtocolError code), messages that made no sense in the worker's
 * state (`dropped`), and handshakes that failed (`handshakeFailures`: auth, mechanism-mismatch, ...).
 */
export interface WorkerCounters {
  protocolErrors: Record<string, number>;
  dropped: Record<string, number>;
  handshakeFailures: Record<string, number>;
}

/** What doWork() learns about the task besides its data. */
export interface TaskContext {
  readonly taskId: number;
  /** 1 for the first run; higher when the task runs again (its worker was lost, or it is retried). */
  readonly attempt: number;
  /** The task type its Master was given (`MasterOptions.taskType`, or the MultiWorkQueue task id), or null. */
  readonly type: Key | null;
  /** The resource id the task was queued with, or null. */
  readonly resource: Key | null;
  /** This worker's rank. */
  readonly rank: number;
  /**
   * Aborted when the task's timeout passes, when the application cancels it, or when the worker must
   * hand it back on stopping; `signal.reason` says which (a TaskAbortedError). Long handlers should
   * watch it; one that ignores a timeout has its process recycled.
   */
  readonly signal: AbortSignal;
}

/** connecting: no welcome yet; registered: serving; stopping: finishing its task before bye; stopped. */
type State = 'connecting' | 'registered' | 'stopping' | 'stopped';

export abstract class Worker<In = any, Out = unknown> {
  readonly options: ResolvedWorkerOptions;
  /** Carries this worker's current rank; follows it when the worker comes back under another. */
  log: Logger;
  readonly #baseLog: Logger;
  /** The rank the coordinator assigned; null until registered. */
  rank: number | null = null;
  /** Identifies this process to the coordinator across reconnects. */
  readonly #instance = randomUUID();
  #state: State = 'connecting';
  #sock: zmq.Dealer | null = null;
  /** Messages waiting for the socket: zeromq.js allows one send in progress at a time. */
  readonly #out = new Deque<Buffer[]>();
  /** The writer draining #out, while it runs. */
  #writing: Promise<void> | null = null;
  /** The most tasks held here at once, as agreed in the last welcome: 1 is one task at a time, no batches. */
  #window = 1;
  /** The coordinator reads raw results (welcome.settings.raw): binary results go without a msgpack copy. */
  #rawResults = false;
  /** Held tasks waiting to run, in the order they came. */
  readonly #queue = new Deque<HeldTask>();
  #running: HeldTask | null = null;
  /** #drain() is under way: running a task, or letting the event loop turn between batches. */
  #draining = false;
  readonly #outcomes = new Outcomes(
    (env) => this.#send(env),
    (envs) => this.#sendTogether(envs),
  );
  /** Answers to the cancels of the message being handled, sent together once it is (or before anything else). */
  #cancelAnswers: TaskFailed[] = [];
  /** `ready` owed to the coordinator once nothing is held here (after a re-registration). */
  #readyOwed = false;
  #settings: WorkerSettings | null = null;
  #heartbeat: NodeJS.Timeout | null = null;
  /** Something left since the last heartbeat interval (see #startHeartbeats). */
  #sentSinceBeat = false;
  #lastHeard = Date.now();
  #coordinatorSilent = false;
  readonly #watchdog = new Watchdog();
  #signals = 0;
  /** When the last register left, to send one, not one per refused heartbeat. */
  #registerSentAt = 0;
  readonly #limiter = new RateLimiter(10_000, 5);
  readonly #counters: WorkerCounters = { protocolErrors: {}, dropped: {}, handshakeFailures: {} };
  #handshakeRetry: NodeJS.Timeout | null = null;
  #handshakeRetryMs = HANDSHAKE_RETRY_MS;

  constructor(options?: WorkerOptions) {
    this.options = resolveWorkerOptions(options);
    this.#baseLog = this.options.logger ?? defaultLogger(this.options.logLevel);
    this.log = this.#baseLog;
  }

  /** The work itself: receives the data given to addWork()/run() and returns the result (or a promise of it). */
  abstract doWork(data: In, context: TaskContext): Out | Promise<Out>;

  /** Serves tasks until the coordinator says terminate; rejects with RegistrationError if it refuses us. */
  async run(): Promise<void> {
    if (this.#sock) throw new Error('run() was called already');
    const o = this.options;
    const sock = new zmq.Dealer({
      linger: 2000,
      heartbeatInterval: o.heartbeatMs,
      heartbeatTimeout: o.livenessMs,
      heartbeatTimeToLive: o.livenessMs,
      reconnectInterval: 100,
      reconnectMaxInterval: 2000,
      // Unbounded, as the coordinator's: libzmq 4.3.5 can abort (assertion _input_stopped) when it
      // resumes reading a connection that reached its receive high-water mark, which a worker busy
      // in its handlers reaches once windows send it many messages. The coordinator's window bounds
      // what is sent here (tasks, and 4 MiB of payload), so no bound is lost.
      receiveHighWaterMark: 0,
      ...(o.curve ? { curveServerKey: o.curve.serverKey, curvePublicKey: o.curve.publicKey, curveSecretKey: o.curve.secretKey } : {}),
    });
    this.#sock = sock;
    void this.#watchHandshakes(sock);
    const onSignal = (signal: NodeJS.Signals) => this.#onSignal(signal);
    if (o.handleSignals) {
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
    }
    try {
      sock.connect(o.connect);
      this.log.debug({ connect: o.connect, rank: o.rank }, 'registering');
      this.#register(this.options.rank);
      this.#startHeartbeats(o.heartbeatMs);
      await this.#serve(sock);
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      if (this.#heartbeat) clearInterval(this.#heartbeat);
      if (this.#handshakeRetry) clearTimeout(this.#handshakeRetry);
      this.#outcomes.dispose();
      await this.#watchdog.stop();
      await this.#flushed();
      sock.close();
      // However run() ended (a refused registration leaves it 'connecting'): stop() is a no-op now.
      this.#state = 'stopped';
    }
  }

  /**
   * Asks the worker to stop: the current task (if any) may finish within `stopGraceMs`, is handed
   * back to the coordinator otherwise; then the worker says bye and run() returns. Tasks waiting here
   * that have not started are handed back with the bye.
   */
  stop(): void {
    if (this.#state === 'stopped' || this.#state === 'stopping') return;
    if (this.#state === 'connecting') {
      // Never registered: nobody to say bye to, and our register need not wait to be delivered.
      this.#state = 'stopped';
      if (this.#sock) {
        this.#sock.linger = 0;
        this.#sock.close();
      }
      return;
    }
    this.#state = 'stopping';
    const task = this.#running;
    if (!task) return this.#bye();
    task.grace = setTimeout(() => {
      if (this.#running !== task) return;
      this.log.warn({ task: task.taskId }, 'handing the current task back: it did not finish within stopGraceMs');
      task.abort(new TaskAbortedError('stop', `rank ${this.rank} is stopping`));
      // The coordinator takes a bye with a task in flight as the task handed back.
      this.#disarm(task);
      this.#running = null;
      this.#bye();
    }, this.options.stopGraceMs).unref();
  }

  async #serve(sock: zmq.Dealer): Promise<void> {
    try {
      // receive() itself, not the socket's async iterator, whose wrapper adds a promise per message.
      while (!sock.closed) {
        const frames = await sock.receive();
        this.#heard();
        let msgs: CoordinatorMessage[];
        try {
          msgs = decodeFromCoordinator(frames);
        } catch (err) {
          if (!(err instanceof ProtocolError)) throw err;
          this.#count('protocolErrors', err.code);
          this.#warn(`protocol:${err.code}`, { code: err.code }, `bad message from the coordinator dropped: ${err.message}`);
          continue;
        }
        for (const msg of msgs) this.#handle(msg);
        this.#sendCancelAnswers();
        if (this.#state === 'stopped') return;
        // After the whole message: the tasks of several envelopes then run as one stretch.
        if (!this.#draining && this.#queue.length > 0) void this.#drain();
      }
    } catch (err) {
      // Closing the socket after our bye ends the pending receive with an error: that is the way out.
      if (this.#state !== 'stopped') throw err;
    }
  }

  #register(rank: number | null): void {
    this.#registerSentAt = Date.now();
    this.#send({ t: 'register', rank, host: this.options.host, pid: process.pid, instance: this.#instance, window: this.options.window, raw: true });
  }

  /** What this worker refused from the coordinator so far, by reason (a copy). */
  get counters(): WorkerCounters {
    return structuredClone(this.#counters);
  }

  #count(kind: keyof WorkerCounters, reason: string): void {
    const c = this.#counters[kind];
    c[reason] = (c[reason] ?? 0) + 1;
  }

  #warn(key: string, fields: object, msg: string, level: 'warn' | 'error' = 'warn'): void {
    const suppressed = this.#limiter.take(key, Date.now());
    if (suppressed === false) return;
    this.log[level](suppressed > 0 ? { ...fields, suppressed } : fields, msg);
  }

  /** A message that is well-formed but makes no sense now: counted, logged (rate-limited), ignored. */
  #drop(reason: string, msg: string): void {
    this.#count('dropped', reason);
    this.#warn(`drop:${reason}`, { reason }, `message from the coordinator dropped: ${msg}`);
  }

  #handle(msg: CoordinatorMessage): void {
    // After our bye, nothing more is ours: a task sent before the coordinator read the bye is
    // requeued there as handed back, and must not start here while the socket closes.
    if (this.#state === 'stopped') return;
    if (this.rank === null && msg.t !== 'welcome' && msg.t !== 'reject' && msg.t !== 'heartbeat') {
      // Nothing but an answer to our register makes sense before we have a rank.
      return this.#drop('before-welcome', `'${msg.t}' before welcome`);
    }
    switch (msg.t) {
      case 'welcome':
        return this.#welcome(msg.rank, msg.settings);
      case 'reject':
        return this.#rejected(msg.code, msg.message);
      case 'work':
        return this.#hold(msg);
      case 'tasks':
        for (const work of msg.tasks) this.#hold(work);
        return;
      case 'ack':
        // An ack for an earlier result (one we sent again after a reconnect, say) is normal.
        return this.#outcomes.acked(msg.id, msg.attempt);
      case 'receipt':
        return this.#outcomes.receipted(msg.seq);
      case 'cancel':
        return this.#cancel(msg.id, msg.attempt);
      case 'terminate':
        return this.stop();
      case 'heartbeat':
        return;
    }
  }

  #welcome(rank: number, settings: WorkerSettings): void {
    const again = this.rank !== null;
    this.rank = rank;
    this.#settings = settings;
    // rank() in the application reads this, so code inside doWork() sees its real rank.
    process.env.TASKFARM_RANK = String(rank);
    this.log = this.#baseLog.child({ rank });
    this.log.info({ connect: this.options.connect }, again ? 'registered again' : 'registered');
    if (this.#state === 'connecting') this.#state = 'registered';
    this.#handshakeRetryMs = HANDSHAKE_RETRY_MS;
    // A heartbeat every millisecond would only burn CPU: the coordinator's settings are bounded here.
    const heartbeatMs = Math.min(Math.max(settings.heartbeatMs, 10), MAX_TIMER_MS);
    if (heartbeatMs !== this.options.heartbeatMs) this.#startHeartbeats(heartbeatMs);
    this.#window = Math.min(settings.window ?? 1, this.options.window);
    this.#rawResults = settings.raw === true;
    // What was computed while the coordinator could not hear us goes again; it drops what is stale.
    this.#outcomes.resend(this.#window, this.#rawResults);
    // Ready only when idle: a coordinator that lost our record thinks we hold nothing, and would
    // send a window's worth on top of the tasks still here.
    if (this.#running || this.#queue.length > 0) this.#readyOwed = true;
    else this.#send({ t: 'ready' });
    if (this.#state === 'stopping' && !this.#running) this.#bye();
  }

  #rejected(code: string, message: string): void {
    if (code === 'ENOTREGISTERED' && this.#state !== 'stopped' && this.#state !== 'connecting') {
      // The coordinator restarted, or our connection was replaced: register again, keeping our rank.
      // Every heartbeat queued while we were cut off earns one of these; one registration in flight
      // is enough unless it went unanswered for livenessMs.
      if (Date.now() - this.#registerSentAt < (this.#settings?.livenessMs ?? this.options.livenessMs)) return;
      this.log.warn('the coordinator does not know this worker; registering again');
      this.#register(this.rank);
      return;
    }
    if (code === 'ERANKTAKEN' && this.rank !== null) {
      // Our rank went to another worker while we were away: any rank will do now.
      this.log.warn('our rank was taken while disconnected; registering for a new one');
      this.#register(null);
      return;
    }
    const hint = code === 'EVERSION' ? ` (this worker speaks protocol version ${PROTOCOL_VERSION})` : '';
    throw new RegistrationError(code, `the coordinator at ${this.options.connect} refused this worker: ${message}${hint}`);
  }

  /** Takes a task to run after those held already, or refuses it if that would hold more than the window. */
  #hold(work: Work): void {
    if (work.resent && this.#holds(work.id, work.attempt)) {
      // Sent again after our reconnect; this copy did arrive the first time.
      this.#count('dropped', 'resent-held');
      return;
    }
    if (this.#queue.length + (this.#running ? 1 : 0) >= this.#window) {
      // Answering keeps the task from being stranded here.
      this.#warn('busy', { task: work.id }, 'work received while busy; refused');
      const error = { name: 'WorkerBusyError', message: `rank ${this.rank} is busy`, code: 'EWORKERBUSY' };
      this.#send({ t: 'error', id: work.id, attempt: work.attempt, error });
      return;
    }
    this.#queue.push(new HeldTask(work));
  }

  /** Whether (id, attempt) is running, queued, or answered here and not yet acknowledged. */
  #holds(id: number, attempt: number): boolean {
    const running = this.#running;
    if (running?.taskId === id && running.attempt === attempt) return true;
    for (const t of this.#queue) if (t.taskId === id && t.attempt === attempt) return true;
    return this.#outcomes.holds(id, attempt);
  }

  #cancel(id: number, attempt: number): void {
    const running = this.#running;
    if (running?.taskId === id && running.attempt === attempt) {
      running.abort(new TaskAbortedError('cancel', `task ${id} was cancelled`));
      return;
    }
    if (this.#queue.removeFirst((t) => t.taskId === id && t.attempt === attempt)) {
      // It never started: the coordinator still needs its outcome, with those of the message's other cancels.
      this.#cancelAnswers.push({ t: 'error', id, attempt, error: toWireError(new TaskAbortedError('cancel', `task ${id} was cancelled before it started`)) });
      return;
    }
    // The task may have finished as the cancel crossed our result; anything else is not ours.
    this.#count('dropped', 'stale-cancel');
  }

  /**
   * Runs the held tasks one at a time, in order, until none is left or the worker stops. This is the
   * hot path: a synchronous handler costs no promise, closure or timer. The loop awaits only a
   * handler's thenable, and the event loop once after each send, when receipts, cancels and new
   * tasks are read and the sends leave.
   */
  async #drain(): Promise<void> {
    this.#draining = true;
    try {
      let task: HeldTask | undefined;
      while (this.#state === 'registered' && (task = this.#queue.shift())) {
        this.#running = task;
        task.rank = this.rank!;
        this.#arm(task);
        let value: unknown;
        let failed = false;
        const start = performance.now();
        try {
          value = this.doWork(decodeValue(task.takePayload(), task.raw) as In, task);
          if (isThenable(value)) {
            this.#outcomes.flushSoon();
            value = await value;
          }
        } catch (err) {
          value = err;
          failed = true;
        }
        const end = performance.now();
        this.#disarm(task);
        if (this.#running !== task) return; // handed back on stop: the coordinator has it already
        this.#running = null;
        const us = Math.round((end - start) * 1000);
        const batched = this.#finish(task, failed, value, us, end);
        if (this.#queue.length === 0 || this.#state !== 'registered') break;
        // Results wait for each other as Outcomes.due() says. The result of a task with a timeout
        // leaves at once, so that the coordinator never judges it overdue while a later task runs.
        if (!batched || task.timeoutMs !== null || this.#outcomes.due(end, this.#queue.length)) {
          this.#outcomes.flush();
          await nextTurn();
        }
      }
      this.#outcomes.flush();
      if (this.#readyOwed && this.#queue.length === 0 && this.#state !== 'stopped') {
        this.#readyOwed = false;
        this.#send({ t: 'ready' });
      }
      if (this.#state === 'stopping') this.#bye();
    } finally {
      this.#draining = false;
    }
  }

  /** Starts a task's timeout: from when it starts, not from when it was queued. */
  #arm(task: HeldTask): void {
    const ms = task.timeoutMs;
    // A timeout beyond what a Node timer holds (24.8 days) is no limit in practice; set, it would fire at once.
    if (ms === null || ms > MAX_TIMER_MS) return;
    // Unref'd: a task's timers must not keep the process alive once the worker has left (the
    // socket does while it serves); a handler handed back may never settle.
    task.timeout = setTimeout(() => task.abort(new TaskAbortedError('timeout', `task ${task.taskId} exceeded its timeout of ${ms} ms`)), ms).unref();
    this.#watchdog.arm(Date.now() + ms + this.options.killGraceMs);
  }

  #disarm(task: HeldTask): void {
    if (task.timeout) {
      clearTimeout(task.timeout);
      task.timeout = null;
      this.#watchdog.disarm();
    }
    if (task.grace) {
      clearTimeout(task.grace);
      task.grace = null;
    }
  }

  /**
   * Sends a task's outcome, or adds a small result to the batch (window above 1): true if batched.
   * It ran `us` µs and ended at `now`.
   */
  #finish(task: HeldTask, failed: boolean, value: unknown, us: number, now: number): boolean {
    const { taskId: id, attempt } = task;
    if (!failed) {
      try {
        const bytes = this.#rawResults ? rawPayload(value) : null;
        const payload = bytes ?? encodePayload(value);
        const max = this.#settings?.maxMessageBytes ?? Infinity;
        if (payload.length > max) {
          const message = `the result of task ${id} has ${payload.length} bytes, more than the coordinator's maxMessageBytes (${max})`;
          this.#outcomes.sendAlone({ t: 'error', id, attempt, error: { name: 'PayloadError', message, code: 'EPAYLOADTOOBIG' }, us });
          return false;
        }
        const result = new ResultRecord(id, attempt, payload);
        if (bytes !== null) result.raw = true;
        if (this.#window > 1 && payload.length <= BATCH_INLINE_BYTES) {
          this.#outcomes.add(result, us, now, max);
          return true;
        }
        // A larger payload keeps a frame of its own rather than be copied into a batch.
        result.us = us;
        this.#outcomes.sendAlone(result);
        return false;
      } catch (err) {
        value = err;
      }
    }
    // A handler that stopped because its signal fired is reported for why it fired.
    const reason = task.abortReason ?? value;
    this.log.debug({ task: id, err: value }, 'task failed');
    this.#outcomes.sendAlone({ t: 'error', id, attempt, error: toWireError(reason), us });
    return false;
  }

  #bye(): void {
    // Results first: the coordinator takes a bye as handing back every task it has in flight here.
    this.#outcomes.flush();
    if (this.#queue.length > 0) {
      this.log.info({ tasks: this.#queue.length }, 'handing back the tasks that have not started');
      this.#queue.clear();
    }
    this.#state = 'stopped';
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#send({ t: 'bye' });
    // Wake the receive loop so that run() returns: closing after the bye is flushed ends iteration.
    void this.#flushed().then(() => this.#sock?.close());
  }

  /**
   * Heartbeats go out at every interval while registered; the coordinator answers each, so silence
   * on its side for livenessMs means it is gone or cut off (ZeroMQ keeps trying to reconnect).
   */
  #startHeartbeats(ms: number): void {
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heartbeat = setInterval(() => {
      if (this.#state !== 'registered' && this.#state !== 'stopping') return;
      const liveness = this.#settings?.livenessMs ?? this.options.livenessMs;
      if (!this.#coordinatorSilent && Date.now() - this.#lastHeard > liveness) {
        this.#coordinatorSilent = true;
        this.log.warn({ connect: this.options.connect }, 'the coordinator has gone silent; waiting for it to come back');
      }
      if (heartbeatDue(this.#sentSinceBeat, ms, liveness)) this.#send({ t: 'heartbeat' });
      this.#sentSinceBeat = false;
    }, ms);
    this.#heartbeat.unref();
  }

  #heard(): void {
    this.#lastHeard = Date.now();
    if (!this.#coordinatorSilent) return;
    this.#coordinatorSilent = false;
    this.log.info('the coordinator is reachable again');
  }

  #sendCancelAnswers(): void {
    if (this.#cancelAnswers.length === 0) return;
    const envs = this.#cancelAnswers;
    this.#cancelAnswers = [];
    this.#outcomes.sendAllAlone(envs);
  }

  #send(env: Envelope): void {
    // Whatever this message's handling sends goes after the cancels it answered (a bye, say).
    if (this.#cancelAnswers.length > 0) this.#sendCancelAnswers();
    this.#enqueue([encode(env)]);
  }

  /** Several envelopes in as few messages as the receiver takes (MAX_MESSAGE_FRAMES, BATCH_MAX_BYTES). */
  #sendTogether(envs: readonly Envelope[]): void {
    this.#enqueue(encodeMessages(envs, false));
  }

  #enqueue(messages: Buffer[][]): void {
    const sock = this.#sock!;
    this.#sentSinceBeat = true;
    for (const frames of messages) this.#out.push(frames);
    // The first send goes out now, in this call: no promise hop when nothing else is being sent.
    this.#writing ??= this.#write(sock);
  }

  async #write(sock: zmq.Dealer): Promise<void> {
    for (let frames = this.#out.shift(); frames; frames = this.#out.shift()) {
      try {
        await sock.send(frames);
      } catch (err) {
        if (!sock.closed) this.log.error({ err }, 'send failed');
      }
    }
    this.#writing = null;
  }

  /** Resolves once every message sent so far has left (or failed). */
  async #flushed(): Promise<void> {
    while (this.#writing) await this.#writing;
  }

  /**
   * Handshake failures seen by our socket. libzmq does not try again after the coordinator refused
   * our key (ZAP), so we do, with backoff: the key may be added to its allow-list (and SIGHUP) later.
   */
  async #watchHandshakes(sock: zmq.Dealer): Promise<void> {
    const o = this.options;
    try {
      for await (const event of sock.events) {
        if (event.type === 'handshake:error:auth') {
          this.#count('handshakeFailures', 'auth');
          const hint = o.curve ? `its allow-list does not have this worker's key ${o.curve.publicKey}` : 'it expects credentials';
          this.#warn('handshake:auth', { connect: o.connect, retryMs: this.#handshakeRetryMs }, `the coordinator refused this worker: ${hint}; trying again`, 'error');
          this.#retryHandshake(sock);
        } else if (event.type === 'handshake:error:protocol') {
          const mismatch = event.error.code === 'ERR_ZMTP_MECHANISM_MISMATCH';
          this.#count('handshakeFailures', mismatch ? 'mechanism-mismatch' : 'protocol');
          const hint = !mismatch
            ? `${event.error.code}${o.curve ? ' (is curveServerKey the coordinator\'s public key?)' : ''}`
            : o.curve
              ? 'the coordinator does not use CURVE'
              : 'the coordinator uses CURVE: give this worker its public key (--curve-server-key) and a keypair of its own (--curve-secret-key)';
          this.#warn(`handshake:${event.error.code}`, { connect: o.connect }, `handshake with the coordinator failed: ${hint}`, 'error');
          if (mismatch) this.#retryHandshake(sock);
        }
      }
    } catch {
      // The observer ends with the socket.
    }
  }

  #retryHandshake(sock: zmq.Dealer): void {
    if (this.#handshakeRetry || this.#state === 'stopped') return;
    const ms = this.#handshakeRetryMs;
    this.#handshakeRetryMs = Math.min(ms * 2, HANDSHAKE_RETRY_MAX_MS);
    this.#handshakeRetry = setTimeout(() => {
      this.#handshakeRetry = null;
      if (sock.closed || this.#state === 'stopped') return;
      // A new connection. What was queued on the refused one went with it: a register is sent again;
      // a registered worker's next heartbeat earns ENOTREGISTERED, and it registers again then.
      sock.disconnect(this.options.connect);
      sock.connect(this.options.connect);
      if (this.#state === 'connecting') this.#register(this.options.rank);
    }, ms);
    this.#handshakeRetry.unref();
  }

  #onSignal(signal: NodeJS.Signals): void {
    if (++this.#signals > 1) process.exit(signal === 'SIGINT' ? 130 : 143);
    this.log.info({ signal }, 'stopping after the current task');
    this.stop();
  }
}

/**
 * Whether a worker's heartbeat is worth sending at this beat. Any message shows the coordinator
 * that the worker is alive, and the coordinator's answers to it show the worker that the
 * coordinator is there: a worker that sent something since the last beat skips this one (1,000 busy
 * workers would otherwise send 1,000 a second, and get as many answers). The coordinator then
 * hears from it at least every two intervals, so skipping is only safe when that is well within
 * livenessMs: timer jitter must not make a worker look silent.
 */
export function heartbeatDue(sentSinceLastBeat: boolean, intervalMs: number, livenessMs: number): boolean {
  return !sentSinceLastBeat || livenessMs < 3 * intervalMs;
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function';
}

/** Lets the event loop turn once: timers, I/O (receipts, cancels, tasks) and the sends queued. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** As the coordinator's: JSON on stderr, pretty on a terminal or under `taskfarm run` on one. */
function defaultLogger(level: string): Logger {
  const tty = process.stderr.isTTY || process.env.TASKFARM_LOG_PRETTY === '1';
  const dest = tty ? pretty({ destination: 2, sync: true }) : pino.destination({ dest: 2, sync: true });
  return pino({ name: 'taskfarm-worker', level }, dest);
}
