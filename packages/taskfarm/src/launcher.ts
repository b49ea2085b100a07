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

export const DEFAULT_BIND = 'tcp://127.0.0.1:*';
export const DEFAULT_INSPECT_PORT = 9229;
export const DEFAULT_CPU_PROF_DIR = './profiles';
// Rank 0 terminates every worker it knows before it exits; what still runs then never registered.
export const DEFAULT_GRACE_MS = 1_000;

export interface RunOptions {
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
}

export interface WorkerOptions {
  connect: string;
  rank: number | undefined;
  script: string;
  scriptArgs: string[];
  /** Start with --inspect-brk on this port. */
  inspectPort: number | undefined;
  cpuProfDir: string | undefined;
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
  process.stderr.write(`taskfarm: ${line}\n`);
}

/** Resolves with the endpoint rank 0 reports, or undefined once rank 0 has exited without reporting. */
function boundEndpoint(coordinator: Supervised): Promise<string | undefined> {
  return new Promise((resolve) => {
    coordinator.child.on('message', (message: unknown) => {
      if (isBoundMessage(message)) resolve(message.endpoint);
      else if ((message as { taskfarm?: unknown } | null)?.taskfarm !== undefined)
        warn(`ignoring malformed message from rank 0: ${JSON.stringify(message)}`);
    });
    coordinator.child.once('exit', () => resolve(undefined));
    void coordinator.closed.then(() => resolve(undefined));
  });
}

/** `taskfarm run`: rank 0 first, workers once it has bound; resolves with the launcher's exit code. */
export async function runFarm(o: RunOptions): Promise<number> {
  const width = String(o.size - 1).length;
  const timers = new Timers();
  const ranks: Supervised[] = [];
  const outcomes: Promise<RankOutcome>[] = [];
  let finished = 0;
  let interrupted: NodeJS.Signals | undefined;

  const start = (rank: number, vars: { TASKFARM_BIND: string } | { TASKFARM_CONNECT: string }): Supervised => {
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
        TASKFARM_LAUNCHER: '1',
        ...vars,
      }),
      prefix: `[${String(rank).padStart(width)}] `,
      // Like mpiexec, only rank 0 reads the terminal's stdin.
      stdin: rank === 0 ? 'inherit' : 'ignore',
      ipc: rank === 0,
    });
    ranks.push(proc);
    outcomes.push(proc.closed.then((status) => ({ rank, status, order: finished++, signalsSent: proc.signalsSent })));
    return proc;
  };

  const stopListening = onInterrupt((signal) => {
    // A second Ctrl-C means "now": do not wait for clean shutdowns.
    if (interrupted) return stopAll(ranks, 'SIGKILL', timers);
    interrupted = signal;
    warn(`${signal} received, stopping all ranks`);
    stopAll(ranks, signal, timers);
  });

  try {
    const coordinator = start(0, { TASKFARM_BIND: o.bind });
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
      const workers = ranks.slice(1);
      if (workers.length === 0) return;
      timers.after(o.graceMs, () => {
        const running = workers.filter((w) => !w.exited);
        if (interrupted !== undefined || running.length === 0) return;
        warn(`rank 0 exited ${o.graceMs / 1000} s ago; terminating ${running.length} worker(s) still running`);
        stopAll(running, 'SIGTERM', timers);
      });
    });

    const results = await Promise.all(outcomes);
    if (interrupted !== undefined) return signalExitCode(interrupted);
    const verdict = judgeExits(results);
    for (const failure of verdict.failures) warn(failure);
    return verdict.exitCode;
  } finally {
    stopListening();
    timers.clear();
  }
}

/** `taskfarm worker`: one worker joining a remote coordinator; resolves with the worker's exit code. */
export async function runWorker(o: WorkerOptions): Promise<number> {
  const timers = new Timers();
  const proc = new Supervised({
    args: nodeArgs(o.script, o.scriptArgs, flagsFor(o.rank, o.inspectPort, o.cpuProfDir)),
    env: childEnv(process.env, {
      TASKFARM_CONNECT: o.connect,
      TASKFARM_ROLE: 'worker',
      TASKFARM_LAUNCHER: '1',
      ...(o.rank === undefined ? {} : { TASKFARM_RANK: String(o.rank) }),
    }),
    prefix: `[w${o.rank ?? ''}] `,
    stdin: 'inherit',
    ipc: false,
  });
  let interrupted = false;
  const stopListening = onInterrupt((signal) => {
    stopAll([proc], interrupted ? 'SIGKILL' : signal, timers);
    interrupted = true;
  });
  try {
    const status: ExitStatus = await proc.closed;
    if (status.spawnError) warn(`worker could not be started: ${status.spawnError.message}`);
    else if (status.signal !== null) warn(`worker was killed by ${status.signal}`);
    return exitCodeOf(status);
  } finally {
    stopListening();
    timers.clear();
  }
}
