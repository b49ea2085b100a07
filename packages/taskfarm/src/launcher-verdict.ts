import { exitCodeOf, signalExitCode, type ExitStatus } from './launcher-process.ts';

export interface RankOutcome {
  rank: number;
  status: ExitStatus;
  /** Position in the order the ranks finished: "first failure" means first in time. */
  order: number;
  /** Signals the launcher sent this rank after rank 0 had exited (empty if none). */
  signalsSent: ReadonlySet<NodeJS.Signals>;
}

export interface Verdict {
  exitCode: number;
  /** One line per failed rank, in the order they finished. */
  failures: string[];
}

/**
 * Exit 0 only if every rank did; otherwise the first failed rank's status. A worker we
 * terminated ourselves after rank 0 succeeded is fine if it exited 0 or died of (or exited
 * with the shell code of) a signal we sent: lingering past the grace period is not a failure.
 */
export function judgeExits(outcomes: readonly RankOutcome[]): Verdict {
  const coordinatorOk = outcomes.some((o) => o.rank === 0 && o.status.code === 0);
  const failed = outcomes
    .filter((o) => !(o.status.code === 0 || (o.rank > 0 && coordinatorOk && diedOfOurSignal(o))))
    .sort((a, b) => a.order - b.order);
  const first = failed[0];
  return { exitCode: first ? exitCodeOf(first.status) : 0, failures: failed.map(describeFailure) };
}

function diedOfOurSignal({ status, signalsSent }: RankOutcome): boolean {
  return [...signalsSent].some((s) => status.signal === s || status.code === signalExitCode(s));
}

function describeFailure({ rank, status, signalsSent }: RankOutcome): string {
  if (status.spawnError) return `rank ${rank} could not be started: ${status.spawnError.message}`;
  const how = status.signal !== null ? `was killed by ${status.signal}` : `failed with exit code ${status.code}`;
  const ours = signalsSent.size > 0 ? ` (after taskfarm sent it ${[...signalsSent].join(', ')})` : '';
  return `rank ${rank} ${how}${ours}`;
}
