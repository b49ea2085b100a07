import { childEnv, localConnectEndpoint, nodeArgs, type NodeFlags } from './launcher-node.ts';
import {
  exitCodeOf,
  onInterrupt,
  signalExitCode,
  stopAll,
  Supervised,
  Timers,
  type ExitStatus,
} from './launcher-process.ts';
import { judgeExits, type RankOutcome } from './launcher-verdict.ts';
import { isProgressMessage } from '@taskfarm/coordinator';
import { opsEnv, type OpsOptions } from './launcher-ops.ts';
import { planRunSecurity, workerSecurityEnv, type RunSecurity, type WorkerSecurity } from './launcher-curve.ts';
import { followProgress, outputSinks, startProgress, stopProgress } from './progress.ts';

export const DEFAULT_BIND = 'tcp://127.0.0.1:*';
export const DEFAULT_INSPECT_PORT = 9229;
export const DEFAULT_CPU_PROF_DIR = './profiles';
// Rank 0 terminates every worker it knows before it exits; what still runs then never registered.
export const DEFAULT_GRACE_MS = 1_000;
/**
 * A worker killed by a signal while the job runs (the OOM killer, a kill, or its own watchdog
 * recycling it for ignoring a task timeout) is started again with the same rank, unless it died this
 * many times within RESTART_WINDOW_MS: then it is crash-looping and stays down, as systemd's
 * StartLimitBurst does. A worker that exits with a code decided to stop (an error it reported):
 * starting it again would only repeat that.
 */
export const DEFAULT_RESTARTS = 5;
export const RESTART_WINDOW_MS = 60_000;

export interface RunOptions extends OpsOptions, RunSecurity {
  size: number;
  bind: string;
  script: string;
  scriptArgs: string[];
  /** Start this rank with --inspect-brk. */
  inspect: { rank: number; port: number } | undefined;
  /** Profile every rank into this directory. */
  cpuProfDir: string | undefined;
  /** How long workers may outlive rank 0 before the launcher terminates them. */
  graceMs: number;
  /** Draw a live progress line when stderr is a terminal (`--no-progress` turns it off). */
  progress: boolean;
  /** Restarts of a dying worker allowed within RESTART_WINDOW_MS; 0 never restarts. */
  restarts: number;
}

export interface WorkerOptions extends Pick<OpsOptions, 'logLevel'>, WorkerSecurity {
  connect: string;
  rank: number | undefined;
  script: string;
  scriptArgs: string[];
  /** Start with --inspect-brk on this port. */
  inspectPort: number | undefined;
  cpuProfDir: string | undefined;
  /** As RunOptions.restarts. */
  restarts: number;
}

/** The message rank 0 sends over IPC once its coordinator is bound. */
export interface BoundMessage {
  taskfarm: 'bound';
  endpoint: string;
}

export function isBoundMessage(message: unknown): message is BoundMessage {
  const m = message as Partial<BoundMessage> | null;
  return typeof m === 'object' && m !== null && m.taskfarm === 'bound' && typeof m.endpoint === 'string';
}

/** Profiles are named by rank so a run's files are predictable; a rankless worker keeps Node's unique name. */
function flagsFor(
  rank: number | undefined,
  inspectPort: number | undefined,
  cpuProfDir: string | undefined,
): NodeFlags {
  return {
    inspectPort,
    cpuProfile:
      cpuProfDir === undefined
        ? undefined
        : { dir: cpuProfDir, name: rank === undefined ? undefined : `rank-${rank}.cpuprofile` },
  };
}

function warn(line: string): void {
  outputSinks().stderr.write(`taskfarm: ${line}\n`);
}

/** Counts deaths in a sliding window and says whether one more restart is allowed. */
class RestartBudget {
  readonly #deaths: number[] = [];
  constructor(readonly limit: number) {}
  allow(now = Date.now()): boolean {
    this.#deaths.push(now);
    while (this.#deaths[0]! < now - RESTART_WINDOW_MS) this.#deaths.shift();
    return this.#deaths.length <= this.limit;
  }
}

function killed(status: ExitStatus): boolean {
  return status.spawnError === undefined && status.signal !== null;
}


/** Resolves with the endpoint rank 0 reports, or undefined once rank 0 has exited without reporting. */
function boundEndpoint(coordinator: Supervised): Promise<string | undefined> {
  return new Promise((resolve) => {
    coordinator.child.on('message', (message: unknown) => {
      if (isBoundMessage(message)) resolve(message.endpoint);
      else if ((message as { taskfarm?: unknown } | null)?.taskfarm !== undefined && !isProgressMessage(message))
        warn(`ignoring malformed message from rank 0: ${JSON.stringify(message)}`);
    });
    coordinator.child.once('exit', () => resolve(undefined));
    void coordinator.closed.then(() => resolve(undefined));
  });
}

/** `taskfarm run`: rank 0 first, workers once it has bound; resolves with the launcher's exit code. */
export async function runFarm(o: RunOptions): Promise<number> {
  // Keys are checked (and the local workers' keypair made) before anything starts.
  const security = planRunSecurity(o, process.env);
  const width = String(o.size - 1).length;
  const timers = new Timers();
  const ranks: Supervised[] = [];
  const outcomes: Promise<RankOutcome>[] = [];
  let finished = 0;
  let interrupted: NodeJS.Signals | undefined;

  let coordinatorExited = false;
  const spawnRank = (rank: number, vars: { TASKFARM_BIND: string } | { TASKFARM_CONNECT: string }, restarts: number): Supervised => {
    const proc = new Supervised({
      args: nodeArgs(
        o.script,
        o.scriptArgs,
        flagsFor(rank, o.inspect?.rank === rank ? o.inspect.port : undefined, o.cpuProfDir),
      ),
      env: childEnv(process.env, {
        TASKFARM_RANK: String(rank),
        TASKFARM_SIZE: String(o.size),
        TASKFARM_ROLE: rank === 0 ? 'coordinator' : 'worker',
        ...opsEnv(o, rank),
        ...(rank === 0 ? security.coordinator : security.workers),
        TASKFARM_LAUNCHER: '1',
        TASKFARM_RESTARTS: String(restarts),
        ...vars,
      }),
      prefix: `[${String(rank).padStart(width)}] `,
      // Like mpiexec, only rank 0 reads the terminal's stdin.
      stdin: rank === 0 ? 'inherit' : 'ignore',
      ipc: rank === 0,
      ...outputSinks(),
    });
    ranks[rank] = proc;
    return proc;
  };
  /** Runs a rank to its end, restarting a worker that dies while rank 0 still runs. */
  const start = (rank: number, vars: { TASKFARM_BIND: string } | { TASKFARM_CONNECT: string }): Supervised => {
    const first = spawnRank(rank, vars, 0);
    const budget = new RestartBudget(o.restarts);
    outcomes.push(
      (async () => {
        let proc = first;
        for (let restarts = 1; ; restarts++) {
          const status = await proc.closed;
          const restartable = rank > 0 && killed(status) && !coordinatorExited && interrupted === undefined && proc.signalsSent.size === 0;
          if (restartable && budget.allow()) {
            warn(`rank ${rank} was killed by ${status.signal}; starting it again (${restarts})`);
            proc = spawnRank(rank, vars, restarts);
            continue;
          }
          if (restartable && o.restarts > 0) warn(`rank ${rank} died ${o.restarts + 1} times within ${RESTART_WINDOW_MS / 1000} s; not restarting it`);
          return { rank, status, order: finished++, signalsSent: proc.signalsSent };
        }
      })(),
    );
    return first;
  };

  const stopListening = onInterrupt((signal) => {
    // A second Ctrl-C means "now": do not wait for clean shutdowns.
    if (interrupted) return stopAll(ranks, 'SIGKILL', timers);
    interrupted = signal;
    warn(`${signal} received, stopping all ranks`);
    stopAll(ranks, signal, timers);
  });

  // SIGHUP makes rank 0 read its allow-list again; the launcher must not die of it.
  const onHangup = () => ranks[0]?.child.kill('SIGHUP');
  if (security.forwardHangup) process.on('SIGHUP', onHangup);

  try {
    startProgress(o.progress);
    const coordinator = start(0, { TASKFARM_BIND: o.bind });
    followProgress(coordinator.child);
    const endpoint = await boundEndpoint(coordinator);
    if (interrupted === undefined && o.size > 1) {
      if (endpoint !== undefined) {
        const connect = localConnectEndpoint(endpoint);
        for (let rank = 1; rank < o.size; rank++) start(rank, { TASKFARM_CONNECT: connect });
      } else {
        warn('rank 0 exited before its coordinator reported a bound endpoint; no workers were started');
      }
    }
    void coordinator.closed.then(() => {
      coordinatorExited = true;
      const workers = ranks.slice(1);
      if (workers.length === 0) return;
      timers.after(o.graceMs, () => {
        const running = ranks.slice(1).filter((w) => !w.exited);
        if (interrupted !== undefined || running.length === 0) return;
        warn(`rank 0 exited ${o.graceMs / 1000} s ago; terminating ${running.length} worker(s) still running`);
        stopAll(running, 'SIGTERM', timers);
      });
    });

    const results = await Promise.all(outcomes);
    stopProgress();
    if (interrupted !== undefined) return signalExitCode(interrupted);
    const verdict = judgeExits(results);
    for (const failure of verdict.failures) warn(failure);
    return verdict.exitCode;
  } finally {
    process.off('SIGHUP', onHangup);
    stopListening();
    timers.clear();
    stopProgress();
  }
}

/** `taskfarm worker`: one worker joining a remote coordinator; resolves with the worker's exit code. */
export async function runWorker(o: WorkerOptions): Promise<number> {
  const curve = workerSecurityEnv(o, process.env);
  const timers = new Timers();
  const budget = new RestartBudget(o.restarts);
  const spawn = (restarts: number) =>
    new Supervised({
      args: nodeArgs(o.script, o.scriptArgs, flagsFor(o.rank, o.inspectPort, o.cpuProfDir)),
      env: childEnv(process.env, {
        TASKFARM_CONNECT: o.connect,
        TASKFARM_ROLE: 'worker',
        ...opsEnv(o, -1),
        ...curve,
        TASKFARM_LAUNCHER: '1',
        TASKFARM_RESTARTS: String(restarts),
        ...(o.rank === undefined ? {} : { TASKFARM_RANK: String(o.rank) }),
      }),
      prefix: `[w${o.rank ?? ''}] `,
      stdin: 'inherit',
      ipc: false,
    });
  let proc = spawn(0);
  let interrupted = false;
  const stopListening = onInterrupt((signal) => {
    stopAll([proc], interrupted ? 'SIGKILL' : signal, timers);
    interrupted = true;
  });
  try {
    for (let restarts = 1; ; restarts++) {
      const status: ExitStatus = await proc.closed;
      if (status.spawnError) {
        warn(`worker could not be started: ${status.spawnError.message}`);
        return exitCodeOf(status);
      }
      // A worker killed by a signal (its watchdog, the OOM killer) comes back, within the budget.
      if (killed(status) && !interrupted && budget.allow()) {
        warn(`worker was killed by ${status.signal}; starting it again (${restarts})`);
        proc = spawn(restarts);
        continue;
      }
      if (status.signal !== null) warn(`worker was killed by ${status.signal}`);
      return exitCodeOf(status);
    }
  } finally {
    stopListening();
    timers.clear();
  }
}
