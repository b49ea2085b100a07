/**
 * What the launcher passes on for operations: the metrics server's port and host and the log level
 * as the environment the coordinator and workers read (TASKFARM_METRICS_PORT, TASKFARM_METRICS_HOST,
 * TASKFARM_LOG_LEVEL), and TASKFARM_PROGRESS=1 when rank 0 should report progress for the line.
 */
import { progressShown } from './progress.ts';

export interface OpsOptions {
  /** Rank 0's metrics server (`--metrics-port`, `--metrics-host`). */
  metricsPort?: number | undefined;
  metricsHost?: string | undefined;
  /** Every rank's log level (`--log-level`). */
  logLevel?: string | undefined;
}

/** Extra environment of `rank` (0: the coordinator). */
export function opsEnv(o: OpsOptions, rank: number): Record<string, string> {
  const env: Record<string, string> = {};
  if (o.logLevel !== undefined) env.TASKFARM_LOG_LEVEL = o.logLevel;
  if (rank !== 0) return env;
  if (o.metricsPort !== undefined) env.TASKFARM_METRICS_PORT = String(o.metricsPort);
  if (o.metricsHost !== undefined) env.TASKFARM_METRICS_HOST = o.metricsHost;
  if (progressShown()) env.TASKFARM_PROGRESS = '1';
  return env;
}
