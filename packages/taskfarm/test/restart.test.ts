/**
 * A coordinator killed outright (SIGKILL) mid-job and started again with its journal resumes the
 * job: results taken before the crash are not delivered again, tasks completed before it do not run
 * again (beyond those in flight at the crash: a window's worth per worker), and every task's result
 * reaches the application once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { FileJournal } from '@taskfarm/coordinator';
import { startApp } from './processes.ts';

/** A port free right now: the restarted coordinator must bind the address its workers dial. */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

const got = (stdout: string) => [...stdout.matchAll(/^got (\d+)$/gm)].map((m) => Number(m[1]));

t.test('SIGKILL the coordinator mid-job, restart it with its journal: everything completes once', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'taskfarm-journal-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const TASKS = 400;
  const endpoint = `tcp://127.0.0.1:${await freePort()}`;
  // At most WINDOW tasks in flight per worker: those a worker held at the crash run again.
  const WINDOW = 4;
  const env = { TASKFARM_BIND: endpoint, TASKFARM_JOURNAL: join(dir, 'job.journal'), TASKS: String(TASKS), PRINT_RESULTS: '1', TASKFARM_WINDOW: String(WINDOW) };

  const first = startApp('steady', { ...env, CRASH_AT: '150' });
  await first.waitFor(/^endpoint/m);
  const workerEnv = { TASKFARM_CONNECT: endpoint, TASKFARM_ROLE: 'worker', SPIN_MS: '2', ANNOUNCE: '1' };
  const workers = [startApp('steady', workerEnv), startApp('steady', workerEnv)];
  t.match(await first.exited, { signal: 'SIGKILL' }, 'the first coordinator died mid-job');

  const second = startApp('steady', { ...env, TASKFARM_LOG_LEVEL: 'info' });
  t.match(await second.exited, { code: 0 });
  await Promise.all(workers.map((w) => w.exited));

  const before = got(first.stdout);
  const after = got(second.stdout);
  t.equal(before.length, 150, 'the first run took 150 results');
  t.same([...new Set([...before, ...after])].sort((a, b) => a - b), Array.from({ length: TASKS }, (_, i) => i), 'every result reached the application');
  // The result the application was handling when its coordinator died comes again; no other does.
  const again = after.filter((n) => before.includes(n));
  t.ok(again.length <= 1 && again.every((n) => n === before.at(-1)), `delivered twice: only the one in hand at the crash (${again})`);
  t.equal(after.length, new Set(after).size, 'no duplicates within a run');
  t.match(second.stderr, /resuming from the journal/);

  const runs = new Map<number, number>();
  for (const w of workers) for (const m of w.stdout.matchAll(/^start (\d+)$/gm)) runs.set(Number(m[1]), (runs.get(Number(m[1])) ?? 0) + 1);
  const ranTwice = [...runs].filter(([, n]) => n > 1).map(([id]) => id);
  t.ok(ranTwice.length <= workers.length * WINDOW, `only tasks in flight at the crash ran again: ${ranTwice}`);
  t.equal(runs.size, TASKS, 'every task ran');
});

t.test('SIGTERM to the coordinator terminates its workers and flushes the journal', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'taskfarm-journal-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const journal = join(dir, 'job.journal');
  const coordinator = startApp('steady', { TASKFARM_BIND: 'tcp://127.0.0.1:*', TASKFARM_JOURNAL: journal, TASKS: '100000', TASKFARM_LOG_LEVEL: 'info' });
  const [, endpoint] = await coordinator.waitFor(/^endpoint (\S+)$/m);
  const workers = [0, 1].map(() => startApp('steady', { TASKFARM_CONNECT: endpoint!, TASKFARM_ROLE: 'worker' }));
  await coordinator.waitFor(/worker joined[\s\S]*worker joined/, 'stderr');
  await coordinator.waitFor(/^progress 200$/m);
  coordinator.child.kill('SIGTERM');
  t.match(await coordinator.exited, { code: 143 }, 'the coordinator exits as for SIGTERM');
  for (const w of workers) t.same(await w.exited, { code: 0, signal: null }, 'each worker was terminated and left cleanly');
  t.match(coordinator.stderr, /signal received: terminating workers and closing/);
  const reopened = new FileJournal(journal);
  t.ok(reopened.recovered.completed >= 200 && reopened.recovered.tornBytes === 0, `the journal holds ${reopened.recovered.completed} whole outcomes`);
  reopened.close();
});
