import { hostname } from 'node:os';
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
}

export const WORKER_DEFAULTS = Object.freeze({
  connect: 'tcp://127.0.0.1:5555',
  heartbeatMs: 1000,
  livenessMs: 3000,
  logLevel: 'warn',
  handleSignals: true,
  stopGraceMs: 30_000,
  killGraceMs: 2000,
});

export function resolveWorkerOptions(o: WorkerOptions = {}, env: NodeJS.ProcessEnv = process.env): ResolvedWorkerOptions {
  let rank = o.rank;
  if (rank === undefined) rank = env.TASKFARM_RANK ? Number(env.TASKFARM_RANK) : null;
  if (rank !== null && !(Number.isSafeInteger(rank) && rank >= 1)) throw new RangeError(`rank must be an integer >= 1, not ${rank}`);
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
  };
  if (!/^(tcp|ipc|inproc):\/\/.+/.test(r.connect)) throw new RangeError(`connect must look like tcp://HOST:PORT, not ${JSON.stringify(r.connect)}`);
  return r;
}
