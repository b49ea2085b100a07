import type { Logger } from 'pino';
import { InsecureBindError, isLocalEndpoint } from './security.ts';

/** Coordinator settings. Every field is optional; the default is given with each. */
export interface CoordinatorOptions {
  /**
   * ZeroMQ endpoint of the ROUTER socket. `tcp://127.0.0.1:*` picks a free port (read it back from
   * `coordinator.endpoint`). Default: `$TASKFARM_BIND`, else `tcp://127.0.0.1:5555`.
   */
  endpoint?: string;
  /**
   * The job's size as `taskfarm run -n N` gives it: ranks 1..N-1 are kept for the workers it starts
   * (they ask for them), and workers that ask for no rank get N and up. Default: `$TASKFARM_SIZE`, else 1.
   */
  size?: number;
  /** ZeroMQ heartbeat interval on every connection, in ms. Default 1000. */
  heartbeatMs?: number;
  /**
   * Silence after which a connection is dropped and its worker declared lost, in ms. Default 3000:
   * three missed heartbeats, long enough to ride out a GC pause, short enough to requeue quickly.
   */
  livenessMs?: number;
  /**
   * How long a queue waits for the first of its workers to connect before rejecting with
   * NoWorkersError, in ms; 0 waits forever. Default: `$TASKFARM_WORKER_WAIT_MS`, else 30000.
   */
  workerWaitMs?: number;
  /** Largest frame accepted from a peer, in bytes (ZeroMQ's maxMessageSize). Default 64 MiB. */
  maxMessageBytes?: number;
  /**
   * Run a young-generation collection after this many bytes of large frames (over 128 bytes, the ones
   * zeromq.js hands over without a copy) have been received; 0 never does. Received buffers are then
   * freed while young instead of by full collections of the whole heap (see young-gc.ts): with
   * 100 KiB results, about a fifth more throughput. Default 8 MiB.
   */
  gcEveryBytes?: number;
  /** A pino logger to log to. Default: a new one at `logLevel`. */
  logger?: Logger;
  /** Level of the default logger. Default: `$TASKFARM_LOG_LEVEL`, else `info`. */
  logLevel?: string;
  /**
   * On SIGINT/SIGTERM, terminate the workers, close, and exit. Default: true for the shared
   * coordinator that Masters create implicitly, false for one created with `Coordinator.start()`.
   */
  handleSignals?: boolean;
  /**
   * The most tasks a queue keeps in flight on one worker (the worker may ask for fewer). Within it,
   * each worker's window follows its pace: 1 until its first task is back and for tasks of 20 ms or
   * more, else enough to hold about `windowMs` of work, with tasks and results travelling in
   * batches. 1 gives the seed's one task per worker. Master.run() always sends one task per worker.
   * Default: `$TASKFARM_WINDOW`, else 1024.
   */
  window?: number;
  /**
   * How much work, in ms of handler time, a worker's window should hold for short tasks. Default 40:
   * results come back when half of it is done, so that is about 20 ms of tasks per message each way.
   */
  windowMs?: number;
  /** How long close() waits for workers to say bye, in ms. Default 2000. */
  closeGraceMs?: number;
  /**
   * How long past its timeout a task may stay unanswered before the coordinator fails it with
   * ETIMEDOUT and gives up on its worker, in ms. Longer than the worker's own kill grace (2 s), so a
   * worker normally reports or recycles itself first. Default 5000.
   */
  timeoutGraceMs?: number;
  /**
   * Serve `/metrics` (Prometheus), `/healthz` and `/status` (JSON) over HTTP on this port; 0 picks a
   * free one (read `coordinator.statusServer.url`); null serves nothing. Default: `$TASKFARM_METRICS_PORT`, else null.
   */
  metricsPort?: number | null;
  /** Address the metrics server listens on. Default: `$TASKFARM_METRICS_HOST`, else `127.0.0.1` (loopback only). */
  metricsHost?: string;
  /**
   * Path of a journal file (append-only; see journal.ts): a coordinator killed and started again
   * with the same journal resumes its job. Default: `$TASKFARM_JOURNAL`, else none (state lives in
   * memory only, and a coordinator that dies takes its job with it).
   */
  journal?: string | null;
  /** fdatasync the journal after every record (`always`) or once a second (`interval`, the default). */
  journalSync?: 'interval' | 'always';
  /**
   * This coordinator's CURVE secret key, which turns on encryption and authentication: the path of a
   * key file written by `taskfarm keygen` (NAME.key), or the 40-character Z85 secret key itself.
   * Needs `curveAllowList` (or `curveAllowKeys`). Default: `$TASKFARM_CURVE_SECRET_KEY`, else none: plaintext.
   */
  curveSecretKey?: string | null;
  /**
   * The allow-list of worker public keys, a file with one Z85 key per line (comments allowed), read
   * at start and again on SIGHUP. A worker whose key is not listed cannot connect. Default: `$TASKFARM_CURVE_ALLOW_LIST`.
   */
  curveAllowList?: string | null;
  /** Worker public keys (Z85) admitted besides the allow-list's. Default: `$TASKFARM_CURVE_ALLOW_KEYS` (separated by commas or spaces). */
  curveAllowKeys?: readonly string[];
  /**
   * Listen on a non-loopback endpoint without CURVE. Plaintext lets anyone who reaches the port join
   * the farm, read its tasks and forge results: without this, such an endpoint is an InsecureBindError
   * (code EINSECURE). Default: `$TASKFARM_INSECURE` is 1, else false.
   */
  insecure?: boolean;
}

export type ResolvedOptions = Required<Omit<CoordinatorOptions, 'logger'>> & { logger: Logger | null; endpointFromEnv: boolean };

export const DEFAULTS = Object.freeze({
  endpoint: 'tcp://127.0.0.1:5555',
  size: 1,
  heartbeatMs: 1000,
  livenessMs: 3000,
  workerWaitMs: 30_000,
  maxMessageBytes: 64 * 1024 * 1024,
  gcEveryBytes: 8 * 1024 * 1024,
  logLevel: 'info',
  handleSignals: false,
  closeGraceMs: 2000,
  window: 1024,
  windowMs: 40,
  timeoutGraceMs: 5000,
  journal: null,
  journalSync: 'interval',
  metricsPort: null,
  metricsHost: '127.0.0.1',
  curveSecretKey: null,
  curveAllowList: null,
  curveAllowKeys: Object.freeze([] as string[]),
  insecure: false,
});

export function resolveOptions(o: CoordinatorOptions = {}, env: NodeJS.ProcessEnv = process.env): ResolvedOptions {
  const endpointFromEnv = o.endpoint === undefined && !!env.TASKFARM_BIND;
  const r: ResolvedOptions = {
    endpoint: o.endpoint ?? (env.TASKFARM_BIND || DEFAULTS.endpoint),
    size: o.size ?? envInt(env, 'TASKFARM_SIZE', 1) ?? DEFAULTS.size,
    heartbeatMs: o.heartbeatMs ?? DEFAULTS.heartbeatMs,
    livenessMs: o.livenessMs ?? DEFAULTS.livenessMs,
    workerWaitMs: o.workerWaitMs ?? envInt(env, 'TASKFARM_WORKER_WAIT_MS', 0) ?? DEFAULTS.workerWaitMs,
    maxMessageBytes: o.maxMessageBytes ?? DEFAULTS.maxMessageBytes,
    gcEveryBytes: o.gcEveryBytes ?? DEFAULTS.gcEveryBytes,
    logLevel: o.logLevel ?? (env.TASKFARM_LOG_LEVEL || DEFAULTS.logLevel),
    handleSignals: o.handleSignals ?? DEFAULTS.handleSignals,
    closeGraceMs: o.closeGraceMs ?? DEFAULTS.closeGraceMs,
    window: o.window ?? envInt(env, 'TASKFARM_WINDOW', 1) ?? DEFAULTS.window,
    windowMs: o.windowMs ?? DEFAULTS.windowMs,
    timeoutGraceMs: o.timeoutGraceMs ?? DEFAULTS.timeoutGraceMs,
    journal: o.journal !== undefined ? o.journal : env.TASKFARM_JOURNAL || null,
    journalSync: o.journalSync ?? DEFAULTS.journalSync,
    metricsPort: o.metricsPort !== undefined ? o.metricsPort : (envInt(env, 'TASKFARM_METRICS_PORT', 0) ?? DEFAULTS.metricsPort),
    metricsHost: o.metricsHost ?? (env.TASKFARM_METRICS_HOST || DEFAULTS.metricsHost),
    curveSecretKey: o.curveSecretKey !== undefined ? o.curveSecretKey : env.TASKFARM_CURVE_SECRET_KEY || DEFAULTS.curveSecretKey,
    curveAllowList: o.curveAllowList !== undefined ? o.curveAllowList : env.TASKFARM_CURVE_ALLOW_LIST || DEFAULTS.curveAllowList,
    curveAllowKeys: o.curveAllowKeys ?? (env.TASKFARM_CURVE_ALLOW_KEYS ? env.TASKFARM_CURVE_ALLOW_KEYS.split(/[\s,]+/).filter(Boolean) : DEFAULTS.curveAllowKeys),
    insecure: o.insecure ?? (env.TASKFARM_INSECURE ? envFlag(env, 'TASKFARM_INSECURE') : DEFAULTS.insecure),
    logger: o.logger ?? null,
    endpointFromEnv,
  };
  if (!/^(tcp|ipc|inproc):\/\/.+/.test(r.endpoint)) throw new RangeError(`endpoint must look like tcp://HOST:PORT, not ${JSON.stringify(r.endpoint)}`);
  positive('size', r.size, 1);
  positive('heartbeatMs', r.heartbeatMs, 1);
  positive('livenessMs', r.livenessMs, r.heartbeatMs);
  positive('workerWaitMs', r.workerWaitMs, 0);
  positive('maxMessageBytes', r.maxMessageBytes, 1024);
  positive('gcEveryBytes', r.gcEveryBytes, 0);
  positive('closeGraceMs', r.closeGraceMs, 0);
  positive('window', r.window, 1);
  if (r.window > 65_535) throw new RangeError(`window must be at most 65535, not ${r.window}`);
  if (!(Number.isFinite(r.windowMs) && r.windowMs > 0)) throw new RangeError(`windowMs must be a number > 0, not ${r.windowMs}`);
  if (r.metricsPort !== null) {
    positive('metricsPort', r.metricsPort, 0);
    if (r.metricsPort > 65535) throw new RangeError(`metricsPort must be a TCP port (0-65535), not ${r.metricsPort}`);
  }
  positive('timeoutGraceMs', r.timeoutGraceMs, 0);
  if (r.curveSecretKey === null && !r.insecure && !isLocalEndpoint(r.endpoint)) throw new InsecureBindError(r.endpoint);
  return r;
}

function envFlag(env: NodeJS.ProcessEnv, name: string): boolean {
  const raw = env[name]!;
  if (/^(1|true|yes)$/i.test(raw)) return true;
  if (/^(0|false|no)$/i.test(raw)) return false;
  throw new RangeError(`$${name} must be 1 or 0, not ${JSON.stringify(raw)}`);
}

function positive(name: string, v: number, min: number): void {
  if (!Number.isSafeInteger(v) || v < min) throw new RangeError(`${name} must be an integer >= ${min}, not ${v}`);
}

function envInt(env: NodeJS.ProcessEnv, name: string, min: number): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const v = Number(raw);
  if (!Number.isSafeInteger(v) || v < min) throw new RangeError(`$${name} must be an integer >= ${min}, not ${JSON.stringify(raw)}`);
  return v;
}
