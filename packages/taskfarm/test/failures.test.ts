/**
 * Failures survived with nothing lost, with real processes and sockets: workers SIGKILLed again and
 * again while replacements join, handlers that overrun their timeout, workers asked to stop while
 * busy. (Network partitions between hosts are in partition.test.ts.)
 */
import t from 'tap';
import { parseSummary, prng, startApp, type App } from './processes.ts';
import { run } from './run-cli.ts';

t.test('SIGKILL random workers again and again while replacements join: every result arrives once', async (t) => {
  const TASKS = 3000;
  const coordinator = startApp('steady', { TASKFARM_BIND: 'tcp://127.0.0.1:*', TASKS: String(TASKS), MAX_LOSSES: '1000' });
  const [, endpoint] = await coordinator.waitFor(/^endpoint (\S+)$/m);
  const workerEnv = { TASKFARM_CONNECT: endpoint!, TASKFARM_ROLE: 'worker', SPIN_MS: '1' };
  const workers: App[] = [];
  const spawnWorker = () => workers.push(startApp('steady', workerEnv));
  for (let i = 0; i < 4; i++) spawnWorker();

  const random = prng(20261124);
  let kills = 0;
  // Every 200 results, kill a random live worker and start a replacement.
  for (let at = 200; at < TASKS - 200; at += 200) {
    try {
      await coordinator.waitFor(new RegExp(`^progress ${at}$`, 'm'));
    } catch {
      break; // the job finished early; the summary below tells
    }
    const live = workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null);
    const victim = live[Math.floor(random() * live.length)];
    if (victim?.child.kill('SIGKILL')) kills++;
    spawnWorker();
  }
  await coordinator.exited;
  // A replacement started as the job ended may never have met the coordinator: stop it.
  for (const w of workers) w.child.kill('SIGTERM');
  await Promise.all(workers.map((w) => w.exited));
  const s = parseSummary(coordinator.stdout);
  t.same(s, { total: String(TASKS), unique: String(TASKS), duplicates: '0', errors: '0', codes: '' }, 'every task, once, no errors');
  t.ok(kills >= 10, `${kills} workers were killed during the job`);
  t.match(coordinator.stderr, /worker lost/, 'the coordinator saw them go');
});

t.test('a handler that overruns its timeout: stopped, retried, then reported; ignoring the signal recycles the process', async (t) => {
  const { code, stdout, stderr } = await run(['run', '-n', '3', 'apps/timeouts.ts']);
  t.equal(code, 0, 'the job ends well: recycled workers come back');
  t.equal(stdout.match(/^\[0\] ok /gm)?.length, 3, 'the well-behaved tasks complete');
  const failed = stdout.match(/^\[0\] failed .*$/gm) ?? [];
  t.equal(failed.length, 2);
  for (const line of failed) t.match(line, /failed TimeoutError ETIMEDOUT attempt=2$/, 'each timed-out task ran twice (one retry), then was reported');
  t.match(stderr, /a task overran its timeout and its handler ignored the abort signal; recycling this process/);
  t.match(stderr, /rank \d was killed by SIGKILL; starting it again/, 'the launcher restarted the recycled worker');
});

t.test('SIGTERM to a busy worker: it finishes its task and says bye; nothing is lost', async (t) => {
  const coordinator = startApp('steady', { TASKFARM_BIND: 'tcp://127.0.0.1:*', TASKS: '40', TASKFARM_LOG_LEVEL: 'info' });
  const [, endpoint] = await coordinator.waitFor(/^endpoint (\S+)$/m);
  const env = { TASKFARM_CONNECT: endpoint!, TASKFARM_ROLE: 'worker' };
  // Its first task blocks until SIGUSR2, so it is surely busy when SIGTERM comes.
  const stopping = startApp('steady', { ...env, BLOCK: '1', ANNOUNCE: '1', TASKFARM_LOG_LEVEL: 'info' });
  await stopping.waitFor(/^blocked \d+$/m);
  stopping.child.kill('SIGTERM');
  await stopping.waitFor(/stopping after the current task/, 'stderr');
  stopping.child.kill('SIGUSR2');
  const rest = startApp('steady', env);
  t.same(await stopping.exited, { code: 0, signal: null }, 'the stopped worker exits cleanly');
  await coordinator.exited;
  await rest.exited;
  t.match(parseSummary(coordinator.stdout), { unique: '40', duplicates: '0', errors: '0' });
  t.match(coordinator.stderr, /"msg":"worker left"/, 'it said bye');
  t.notMatch(coordinator.stderr, /worker lost/, 'after finishing its task: nothing was requeued');
  t.equal(stopping.stdout.match(/^start/gm)?.length, 1, 'it took no new task once asked to stop');
});

t.test('a worker stopping mid-task hands it back after stopGraceMs; it runs elsewhere', async (t) => {
  const coordinator = startApp('steady', { TASKFARM_BIND: 'tcp://127.0.0.1:*', TASKS: '6' });
  const [, endpoint] = await coordinator.waitFor(/^endpoint (\S+)$/m);
  const slow = startApp('steady', { TASKFARM_CONNECT: endpoint!, TASKFARM_ROLE: 'worker', SLEEP_MS: '60000', STOP_GRACE_MS: '100', ANNOUNCE: '1' });
  await slow.waitFor(/^start \d+$/m);
  slow.child.kill('SIGTERM');
  t.same(await slow.exited, { code: 0, signal: null });
  t.match(slow.stderr, /handing the current task back/);
  const fast = startApp('steady', { TASKFARM_CONNECT: endpoint!, TASKFARM_ROLE: 'worker' });
  await coordinator.exited;
  await fast.exited;
  t.match(parseSummary(coordinator.stdout), { unique: '6', duplicates: '0', errors: '0' });
});
