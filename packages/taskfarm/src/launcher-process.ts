import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { pipePrefixed, type Sink } from './launcher-output.ts';

/** How long a process may take to honour SIGTERM/SIGINT before it gets SIGKILL. */
export const KILL_AFTER_MS = 10_000;

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the process never started (then code and signal are null). */
  spawnError?: Error;
}

export interface ChildSpec {
  args: string[];
  env: NodeJS.ProcessEnv;
  /** Put before every line the child writes to stdout or stderr. */
  prefix: string;
  stdin: 'inherit' | 'ignore';
  /** Open a Node IPC channel (rank 0 reports its bound endpoint over it). */
  ipc: boolean;
  /** Where the child's output goes. Default: process.stdout and process.stderr. */
  stdout?: Sink;
  stderr?: Sink;
}

/** One child Node process whose output is relayed with a prefix. */
export class Supervised {
  readonly child: ChildProcess;
  /** Settles once the process has exited and its output has been fully relayed. */
  readonly closed: Promise<ExitStatus>;
  /** Signals the launcher sent; lets the verdict tell our own terminations from crashes. */
  readonly signalsSent = new Set<NodeJS.Signals>();
  #exited = false;

  constructor(spec: ChildSpec) {
    this.child = spawn(process.execPath, spec.args, {
      env: spec.env,
      stdio: [spec.stdin, 'pipe', 'pipe', ...(spec.ipc ? (['ipc'] as const) : [])],
    });
    const { stdout, stderr } = this.child;
    if (stdout) pipePrefixed(stdout, spec.stdout ?? process.stdout, spec.prefix);
    if (stderr) pipePrefixed(stderr, spec.stderr ?? process.stderr, spec.prefix);
    this.child.once('exit', () => {
      this.#exited = true;
    });
    this.closed = new Promise((resolve) => {
      this.child.once('close', (code, signal) => resolve({ code, signal }));
      // 'error' also reports failed kill() calls; only a missing pid means the spawn itself failed.
      this.child.on('error', (error) => {
        if (this.child.pid !== undefined) return;
        this.#exited = true;
        resolve({ code: null, signal: null, spawnError: error });
      });
    });
  }

  get exited(): boolean {
    return this.#exited;
  }

  /** Sends `signal` unless the process has already exited. */
  kill(signal: NodeJS.Signals): void {
    if (this.#exited) return;
    this.signalsSent.add(signal);
    this.child.kill(signal);
  }
}

/** 128 + the signal's number: what a shell reports for a process killed by `signal`. */
export function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 0);
}

/** The exit status a launcher passes on for `status`: non-zero for anything but a clean exit 0. */
export function exitCodeOf(status: ExitStatus): number {
  if (status.code !== null) return status.code;
  if (status.signal !== null) return signalExitCode(status.signal);
  return 1;
}

/** Timers that die with the launch, so none outlives it and keeps the launcher alive. */
export class Timers {
  readonly #handles = new Set<NodeJS.Timeout>();

  after(ms: number, fn: () => void): void {
    const handle = setTimeout(() => {
      this.#handles.delete(handle);
      fn();
    }, ms);
    this.#handles.add(handle);
  }

  clear(): void {
    for (const handle of this.#handles) clearTimeout(handle);
    this.#handles.clear();
  }
}

/** Sends `signal` to every running process in `procs`, then SIGKILL to any still running KILL_AFTER_MS later. */
export function stopAll(procs: readonly Supervised[], signal: NodeJS.Signals, timers: Timers): void {
  for (const proc of procs) proc.kill(signal);
  timers.after(KILL_AFTER_MS, () => {
    for (const proc of procs) proc.kill('SIGKILL');
  });
}

/** Routes SIGINT and SIGTERM to `handler` instead of letting them kill the launcher; returns the undo. */
export function onInterrupt(handler: (signal: NodeJS.Signals) => void): () => void {
  const signals = ['SIGINT', 'SIGTERM'] as const;
  for (const signal of signals) process.on(signal, handler);
  return () => {
    for (const signal of signals) process.off(signal, handler);
  };
}
