/**
 * The seed's Slave: extend Worker, implement doWork(), and `await new MyWorker().run()`. It connects
 * a DEALER socket to the coordinator, registers for a rank, runs one task at a time and returns from
 * run() once the coordinator says terminate (or the process is asked to stop).
 */
import {
  decodeFromCoordinator,
  decodePayload,
  encode,
  encodePayload,
  ProtocolError,
  PROTOCOL_VERSION,
  toWireError,
  type CoordinatorMessage,
  type Envelope,
  type Key,
  type Work,
} from '@taskfarm/protocol';
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';
import * as zmq from 'zeromq';
import { RegistrationError } from './errors.ts';
import { resolveWorkerOptions, type ResolvedWorkerOptions, type WorkerOptions } from './options.ts';

/** What doWork() learns about the task besides its data. */
export interface TaskContext {
  readonly taskId: number;
  /** 1 for the first run; higher when the task is run again after a worker was lost. */
  readonly attempt: number;
  /** The task type its Master was given (`MasterOptions.taskType`), or null. */
  readonly type: Key | null;
  /** The resource id the task was queued with, or null. */
  readonly resource: Key | null;
  /** This worker's rank. */
  readonly rank: number;
  /** Aborted when the worker is told to stop before the task finished. */
  readonly signal: AbortSignal;
}

type State = 'connecting' | 'registered' | 'stopping' | 'stopped';

export abstract class Worker<In = any, Out = unknown> {
  readonly options: ResolvedWorkerOptions;
  log: Logger;
  /** The rank the coordinator assigned; null until registered. */
  rank: number | null = null;
  #state: State = 'connecting';
  #sock: zmq.Dealer | null = null;
  #sending: Promise<unknown> = Promise.resolve();
  #current: { abort: AbortController } | null = null;
  #signals = 0;

  constructor(options?: WorkerOptions) {
    this.options = resolveWorkerOptions(options);
    this.log = this.options.logger ?? defaultLogger(this.options.logLevel);
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
    });
    this.#sock = sock;
    const onSignal = (signal: NodeJS.Signals) => this.#onSignal(signal);
    if (o.handleSignals) {
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
    }
    try {
      sock.connect(o.connect);
      this.log.debug({ connect: o.connect, rank: o.rank }, 'registering');
      this.#register();
      await this.#serve(sock);
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await this.#sending.catch(() => {});
      sock.close();
    }
  }

  async #serve(sock: zmq.Dealer): Promise<void> {
    try {
      for await (const frames of sock) {
        let msgs: CoordinatorMessage[];
        try {
          msgs = decodeFromCoordinator(frames);
        } catch (err) {
          if (!(err instanceof ProtocolError)) throw err;
          this.log.warn({ code: err.code }, `bad message from the coordinator dropped: ${err.message}`);
          continue;
        }
        for (const msg of msgs) this.#handle(msg);
        if (this.#state === 'stopped') return;
      }
    } catch (err) {
      // Closing the socket after our bye ends the pending receive with an error: that is the way out.
      if (this.#state !== 'stopped') throw err;
    }
  }

  /** Asks the worker to stop: the current task (if any) finishes, then it says bye and run() returns. */
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
    if (!this.#current) this.#bye();
  }

  #register(): void {
    this.#send({ t: 'register', rank: this.rank ?? this.options.rank, host: this.options.host, pid: process.pid });
  }

  #handle(msg: CoordinatorMessage): void {
    switch (msg.t) {
      case 'welcome':
        this.rank = msg.rank;
        // rank() in the application reads this, so code inside doWork() sees its real rank.
        process.env.TASKFARM_RANK = String(msg.rank);
        this.log = this.log.child({ rank: msg.rank });
        this.log.info({ connect: this.options.connect }, 'registered');
        if (this.#state === 'connecting') this.#state = 'registered';
        this.#send({ t: 'ready' });
        if (this.#state === 'stopping' && !this.#current) this.#bye();
        return;
      case 'reject':
        if (msg.code === 'ENOTREGISTERED' && this.#state !== 'stopped') {
          // The coordinator restarted or forgot us: register again, keeping our rank if we had one.
          this.log.warn('the coordinator does not know this worker; registering again');
          this.#register();
          return;
        }
        throw new RegistrationError(
          msg.code,
          msg.code === 'EVERSION'
            ? `${msg.message} (this worker speaks protocol version ${PROTOCOL_VERSION})`
            : `the coordinator at ${this.options.connect} refused this worker: ${msg.message}`,
        );
      case 'work':
        if (this.#current) {
          // One task at a time; answering keeps the task from being stranded on us.
          this.log.warn({ task: msg.id }, 'work received while busy; refused');
          this.#send({ t: 'error', id: msg.id, attempt: msg.attempt, error: { name: 'WorkerBusyError', message: `rank ${this.rank} is busy`, code: 'EWORKERBUSY' } });
          return;
        }
        this.#start(msg);
        return;
      case 'terminate':
        this.stop();
        return;
      case 'heartbeat':
        return;
    }
  }

  #start(msg: Work): void {
    const abort = new AbortController();
    const context: TaskContext = { taskId: msg.id, attempt: msg.attempt, type: msg.type, resource: msg.resource, rank: this.rank!, signal: abort.signal };
    // Busy before the handler runs: a synchronous doWork() that throws finishes before this returns.
    const current = { abort };
    this.#current = current;
    void this.#execute(msg, context).then((reply) => {
      this.#current = null;
      this.#send(reply);
      if (this.#state === 'stopping') this.#bye();
    });
  }

  async #execute(msg: Work, context: TaskContext): Promise<Envelope> {
    try {
      const data = decodePayload(msg.payload) as In;
      const value = await this.doWork(data, context);
      return { t: 'result', id: msg.id, attempt: msg.attempt, payload: encodePayload(value) };
    } catch (err) {
      this.log.debug({ task: msg.id, err }, 'task failed');
      return { t: 'error', id: msg.id, attempt: msg.attempt, error: toWireError(err) };
    }
  }

  #bye(): void {
    this.#state = 'stopped';
    this.#send({ t: 'bye' });
    // Wake the receive loop so that run() returns: closing after the bye is flushed ends iteration.
    void this.#sending.finally(() => this.#sock?.close());
  }

  #send(env: Envelope): void {
    const sock = this.#sock!;
    const frames = encode(env);
    this.#sending = this.#sending.then(() => sock.send(frames)).catch((err) => {
      if (!sock.closed) this.log.error({ err }, 'send failed');
    });
  }

  #onSignal(signal: NodeJS.Signals): void {
    if (++this.#signals > 1) process.exit(signal === 'SIGINT' ? 130 : 143);
    this.log.info({ signal }, 'stopping after the current task');
    this.stop();
  }
}

/** As the coordinator's: JSON on stderr, pretty on a terminal or under `taskfarm run` on one. */
function defaultLogger(level: string): Logger {
  const tty = process.stderr.isTTY || process.env.TASKFARM_LOG_PRETTY === '1';
  const dest = tty ? pretty({ destination: 2, sync: true }) : pino.destination({ dest: 2, sync: true });
  return pino({ name: 'taskfarm-worker', level }, dest);
}
