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
}

export const WORKER_DEFAULTS = Object.freeze({
  connect: 'tcp://127.0.0.1:5555',
  heartbeatMs: 1000,
  livenessMs: 3000,
  logLevel: 'warn',
  handleSignals: true,
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
  };
  if (!/^(tcp|ipc|inproc):\/\/.+/.test(r.connect)) throw new RangeError(`connect must look like tcp://HOST:PORT, not ${JSON.stringify(r.connect)}`);
  return r;
}
