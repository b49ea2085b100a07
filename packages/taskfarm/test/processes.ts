/** Application processes for failure tests: started directly (no launcher), so a test can kill them. */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { FIXTURES } from './run-cli.ts';
export { prng } from '../../../test/helpers/prng.ts';

export interface App {
  readonly child: ChildProcessByStdio<null, Readable, Readable>;
  stdout: string;
  stderr: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first match of `re` in stdout (or stderr), now or later; rejects if the process exits first. */
  waitFor(re: RegExp, stream?: 'stdout' | 'stderr'): Promise<RegExpExecArray>;
}

export interface StartOptions {
  /**
   * Run inside this network namespace (`ip netns exec NS node ...`; root only). `ip` execs node, so
   * the child's pid is node's own and signals reach it directly.
   */
  netns?: string;
}

/** Runs `fixtures/apps/NAME.ts` under tsx with a clean TASKFARM_* environment plus `env`. */
export function startApp(name: string, env: NodeJS.ProcessEnv, options: StartOptions = {}): App {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(TASKFARM_|_TAPJS_|NODE_OPTIONS$)/.test(k)));
  const node = [process.execPath, '--import', 'tsx', `${FIXTURES}apps/${name}.ts`];
  const [command, ...args] = options.netns ? ['ip', 'netns', 'exec', options.netns, ...node] : node;
  const child = spawn(command!, args, {
    env: { ...base, TASKFARM_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const app: App = {
    child,
    stdout: '',
    stderr: '',
    exited: new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal }))),
    waitFor(re, stream = 'stdout') {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = re.exec(app[stream]);
          if (!m) return false;
          child[stream].off('data', check);
          resolve(m);
          return true;
        };
        if (check()) return;
        child[stream].on('data', check);
        void app.exited.then(() => {
          if (!check()) reject(new Error(`${name} exited before printing ${re}:\n${app.stdout}\n${app.stderr}`));
        });
      });
    },
  };
  // Registered before any waitFor(), so that waitFor() sees each chunk already appended. With on(),
  // not prependListener(): only on() puts a stream in flowing mode, and a stream nobody reads fills
  // its pipe until the child blocks writing to it (a coordinator logging at info, say).
  child.stdout.setEncoding('utf8').on('data', (d: string) => (app.stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (app.stderr += d));
  return app;
}


export function parseSummary(stdout: string): Record<string, string> {
  const line = /^summary (.*)$/m.exec(stdout)?.[1] ?? '';
  return Object.fromEntries(line.split(' ').map((kv) => kv.split('=') as [string, string]));
}
