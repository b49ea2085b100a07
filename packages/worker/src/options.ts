import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { CurveKeyError, isCurveKey, parsePublicKeyFile, parseSecretKeyFile, type CurveKeyPair } from '@taskfarm/protocol';
import type { Logger } from 'pino';

/** Worker settings. Every field is optional; the default is given with each. */
export interface WorkerOptions {
  /** Coordinator endpoint. Default: `$TASKFARM_CONNECT`, else `tcp://127.0.0.1:5555`. */
  connect?: string;
  /** The rank to ask for; null asks for the lowest free one. Default: `$TASKFARM_RANK` when set, else null. */
  rank?: number | null;
  /** Host name reported to the coordinator (shown in its logs). Default: os.hostname(). */
  host?: string;
  /** ZeroMQ heartbeat interval while connecting, in ms (the coordinator's welcome then rules). Default 1000. */
  heartbeatMs?: number;
  /** Silence after which the connection is presumed dead and re-established, in ms. Default 3000. */
  livenessMs?: number;
  /** A pino logger. Default: a new one at `logLevel`. */
  logger?: Logger;
  /** Level of the default logger. Default: `$TASKFARM_LOG_LEVEL`, else `warn`. */
  logLevel?: string;
  /**
   * On the first SIGINT/SIGTERM finish the current task, say bye and return from run(); on the
   * second, exit at once. Default true.
   */
  handleSignals?: boolean;
  /**
   * When asked to stop while busy, how long the current task may still run, in ms; then its signal
   * is aborted and it is handed back to the coordinator, which runs it elsewhere. Default 30000.
   */
  stopGraceMs?: number;
  /**
   * How long past its timeout a task's handler may ignore its aborted signal before the process is
   * recycled (killed, to be restarted by the launcher or service manager), in ms. Default 2000.
   */
  killGraceMs?: number;
  /**
   * The coordinator's CURVE public key, which turns on encryption and authentication: the key
   * (40 characters of Z85) or the path of a file holding it (the coordinator's NAME.pub from
   * `taskfarm keygen`). Needs `curveSecretKey`. Default: `$TASKFARM_CURVE_SERVER_KEY`, else none: plaintext.
   */
  curveServerKey?: string | null;
  /**
   * This worker's own CURVE keypair: the path of its key file (NAME.key from `taskfarm keygen`), or
   * its Z85 secret key (the public key is derived). The coordinator admits it only if its public key
   * is in the coordinator's allow-list. Default: `$TASKFARM_CURVE_SECRET_KEY`.
   */
  curveSecretKey?: string | null;
  /**
   * The most tasks this worker holds at once, running or waiting in its own queue (1 to 65535). A
   * coordinator that agrees to more than 1 sends tasks ahead and takes results in batches, which
   * saves a round trip per task; it may agree to fewer. Default: `$TASKFARM_WINDOW` when set, else 1024.
   */
  window?: number;
}

/** CURVE as a worker uses it: the coordinator's public key and its own keypair. */
export interface WorkerCurve extends CurveKeyPair {
  serverKey: string;
}

export interface ResolvedWorkerOptions {
  connect: string;
  rank: number | null;
  host: string;
  heartbeatMs: number;
  livenessMs: number;
  logger: Logger | null;
  logLevel: string;
  handleSignals: boolean;
  stopGraceMs: number;
  killGraceMs: number;
  /** Null for plaintext. */
  curve: WorkerCurve | null;
  window: number;
}

export const WORKER_DEFAULTS = Object.freeze({
  connect: 'tcp://127.0.0.1:5555',
  heartbeatMs: 1000,
  livenessMs: 3000,
  logLevel: 'warn',
  handleSignals: true,
  stopGraceMs: 30_000,
  killGraceMs: 2000,
  window: 1024,
});

export function resolveWorkerOptions(o: WorkerOptions = {}, env: NodeJS.ProcessEnv = process.env): ResolvedWorkerOptions {
  let rank = o.rank;
  if (rank === undefined) rank = env.TASKFARM_RANK ? Number(env.TASKFARM_RANK) : null;
  if (rank !== null && !(Number.isSafeInteger(rank) && rank >= 1)) throw new RangeError(`rank must be an integer >= 1, not ${rank}`);
  const window = o.window ?? (env.TASKFARM_WINDOW ? Number(env.TASKFARM_WINDOW) : WORKER_DEFAULTS.window);
  // The protocol's bound: a register with a larger window would be refused as malformed.
  if (!(Number.isInteger(window) && window >= 1 && window <= 65_535)) {
    throw new RangeError(`window must be an integer from 1 to 65535, not ${o.window !== undefined ? o.window : `TASKFARM_WINDOW=${JSON.stringify(env.TASKFARM_WINDOW)}`}`);
  }
  const r: ResolvedWorkerOptions = {
    connect: o.connect ?? (env.TASKFARM_CONNECT || WORKER_DEFAULTS.connect),
    rank,
    host: o.host ?? hostname(),
    heartbeatMs: o.heartbeatMs ?? WORKER_DEFAULTS.heartbeatMs,
    livenessMs: o.livenessMs ?? WORKER_DEFAULTS.livenessMs,
    logger: o.logger ?? null,
    logLevel: o.logLevel ?? (env.TASKFARM_LOG_LEVEL || WORKER_DEFAULTS.logLevel),
    handleSignals: o.handleSignals ?? WORKER_DEFAULTS.handleSignals,
    stopGraceMs: o.stopGraceMs ?? WORKER_DEFAULTS.stopGraceMs,
    killGraceMs: o.killGraceMs ?? WORKER_DEFAULTS.killGraceMs,
    curve: null,
    window,
  };
  if (!/^(tcp|ipc|inproc):\/\/.+/.test(r.connect)) throw new RangeError(`connect must look like tcp://HOST:PORT, not ${JSON.stringify(r.connect)}`);
  const serverKey = o.curveServerKey !== undefined ? o.curveServerKey : env.TASKFARM_CURVE_SERVER_KEY || null;
  const secretKey = o.curveSecretKey !== undefined ? o.curveSecretKey : env.TASKFARM_CURVE_SECRET_KEY || null;
  if (serverKey !== null) {
    if (secretKey === null) {
      throw new CurveKeyError('a CURVE worker needs its own keypair besides the coordinator\'s public key: curveSecretKey (--curve-secret-key, TASKFARM_CURVE_SECRET_KEY), a key file from taskfarm keygen');
    }
    r.curve = { serverKey: readKey(serverKey, 'curveServerKey', parsePublicKeyFile), ...readKey(secretKey, 'curveSecretKey', parseSecretKeyFile) };
  } else if (o.curveSecretKey != null) {
    throw new CurveKeyError('curveSecretKey was given without the coordinator\'s public key (curveServerKey, --curve-server-key)');
  }
  return r;
}

/** `value` is a key itself or the path of a file holding one. */
function readKey<T>(value: string, what: string, parse: (text: string, source: string) => T): T {
  let text: string;
  try {
    text = readFileSync(value, 'utf8');
  } catch (err) {
    if (isCurveKey(value)) return parse(value, what);
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new CurveKeyError(`${what}: ${JSON.stringify(value)} is neither a CURVE key (40 characters of Z85) nor a readable key file (${code})`);
  }
  return parse(text, `${what} ${value}`);
}
