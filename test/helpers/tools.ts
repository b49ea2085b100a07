/**
 * Test prerequisites that are programs (promtool, prometheus, docker-compose, ip): a test that needs
 * one is skipped only where it truly cannot exist (not installed on a developer's machine); in CI
 * (CI=true), where .ci/run installs them, a missing one is a failure.
 */
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';

export const IN_CI = process.env.CI === 'true';

export function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

/**
 * Whether every command in `names` is installed; if not, fails `t` in CI and skips it elsewhere, and
 * returns false so that the caller returns.
 */
export function requireCommands(t: { fail(message: string): unknown; plan(n: number, comment?: string): unknown }, names: string[], why = ''): boolean {
  const missing = names.filter((n) => !hasCommand(n));
  if (missing.length === 0) return true;
  const msg = `needs ${missing.join(', ')}${why ? ` (${why})` : ''}; .ci/run installs it`;
  if (IN_CI) t.fail(`${msg}, but it is missing in CI`);
  else t.plan(0, msg);
  return false;
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Polls `probe` until it returns a value other than undefined, or rejects after `deadlineMs`. */
export async function until<T>(probe: () => Promise<T | undefined>, deadlineMs: number, what: string, intervalMs = 250): Promise<T> {
  const end = Date.now() + deadlineMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** The environment for a child: without tap's and taskfarm's variables (they would change what it does). */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const base = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(TASKFARM_|_TAPJS_|TAP_|NODE_OPTIONS$|JOB_)/.test(name)));
  return { ...base, ...extra };
}
