/** Runs the real `taskfarm` bin as a child process and collects its output, for the CLI tests. */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../bin/taskfarm.js', import.meta.url));
export const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));

export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface Launch {
  child: ChildProcessByStdio<null, Readable, Readable>;
  done: Promise<Result>;
  /** Resolves with stdout so far once it satisfies `ready`; rejects if the launcher exits first. */
  stdoutWhen(ready: (stdout: string) => boolean): Promise<string>;
}

/**
 * Runs the real bin from the fixtures directory. Inherited TASKFARM_* variables are dropped so the
 * test sees only what the launcher sets; tap's NODE_OPTIONS (its process tracker) would slow every
 * rank down and is dropped too.
 */
export function launch(args: string[], env: NodeJS.ProcessEnv = {}, cwd = FIXTURES): Launch {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^(TASKFARM_|_TAPJS_|NODE_OPTIONS$)/.test(name)),
  );
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd,
    env: { ...base, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const done = new Promise<Result>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
  const stdoutWhen = (ready: (stdout: string) => boolean): Promise<string> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (ready(stdout)) resolve(stdout);
      };
      child.stdout.on('data', check);
      void done.then((r) => reject(new Error(`launcher exited ${r.code} early:\n${r.stdout}\n${r.stderr}`)));
      check();
    });
  return { child, done, stdoutWhen };
}

export const run = (args: string[], env?: NodeJS.ProcessEnv, cwd?: string): Promise<Result> => launch(args, env, cwd).done;

