/**
 * A network partition between hosts, with hosts as network namespaces (root only): the coordinator
 * and worker W2 on host A, worker W1 on host B behind a veth link. W1 is busy with a task when the
 * link goes down for longer than the liveness; the coordinator declares W1 lost and the task runs
 * on W2. When the link comes back W1 registers again, and the result it then sends for the old
 * attempt is dropped as stale: the application gets every result exactly once.
 *
 * Every step waits for what the processes print or log; W1's task ends when the test sends it
 * SIGUSR2. Outside CI the test is skipped where namespaces cannot be made; in CI that fails.
 */
import t from 'tap';
import { hostsUnavailable, makeHosts } from '../../../test/helpers/hosts.ts';
import { parseSummary, startApp, type App } from './processes.ts';

const TASKS = 10;
const unavailable = hostsUnavailable();
const inCI = process.env.CI === 'true';

t.test(
  'partition: a busy worker cut off past its liveness is replaced; back, it registers again and its late result is dropped',
  { skip: unavailable && !inCI ? `network namespaces are not available: ${unavailable}` : false },
  async (t) => {
    if (unavailable) return void t.fail(`CI needs network namespaces for this test: ${unavailable}`);
    // Host A runs the coordinator (and W2), host B runs W1, behind the link that is cut.
    const hosts = makeHosts(1);
    const [a, b] = [hosts.coordinator, hosts.workers[0]!];
    const apps: Array<[string, App]> = [];
    t.teardown(async () => {
      for (const [, app] of apps) app.child.kill('SIGKILL');
      await Promise.all(apps.map(([, app]) => app.exited));
      hosts.destroy();
      if (!t.passing()) for (const [name, app] of apps) t.comment(`${name} stdout:\n${app.stdout}\n${name} stderr:\n${app.stderr}`);
    });
    const start = (name: string, env: NodeJS.ProcessEnv, netns: string) => {
      const app = startApp('steady', { HEARTBEAT_MS: '250', LIVENESS_MS: '1500', TASKFARM_LOG_LEVEL: 'info', ...env }, { netns });
      apps.push([name, app]);
      return app;
    };

    // Plaintext on a link between our own namespaces (a non-loopback bind needs TASKFARM_INSECURE).
    const bind = { TASKFARM_BIND: `tcp://${hosts.coordAddresses[0]}:*`, TASKFARM_INSECURE: '1' };
    const coordinator = start('coordinator', { ...bind, TASKS: String(TASKS), HOLD: '1' }, a);
    const [, endpoint] = await coordinator.waitFor(/^endpoint (\S+)$/m);
    const workerEnv = { TASKFARM_CONNECT: endpoint!, TASKFARM_ROLE: 'worker', ANNOUNCE: '1' };

    // W1 alone first, so that it takes the first task; it holds it until SIGUSR2.
    const w1 = start('W1', { ...workerEnv, BLOCK: '1' }, b);
    const [, blocked] = await w1.waitFor(/^blocked (\d+)$/m);
    const [, w1Rank] = await w1.waitFor(/"rank":(\d+).*"msg":"registered"/, 'stderr');
    // W2 is registered before the cut, so rank W1 held stays free for it while it is away.
    const w2 = start('W2', workerEnv, a);
    await w2.waitFor(/"msg":"registered"/, 'stderr');

    hosts.cut(0);
    const [lost] = await coordinator.waitFor(new RegExp(`\\{[^\\n]*"rank":${w1Rank},[^\\n]*"msg":"worker lost"[^\\n]*`), 'stderr');
    t.match(lost, /"reason":"disconnected"/, 'W1 is declared lost when its connection dies');
    const [, taskId] = /"requeued":\{"id":(\d+),"attempt":1\}/.exec(lost) ?? [];
    t.ok(taskId, `its task in flight (id ${taskId}, attempt 1) is requeued`);
    await w2.waitFor(new RegExp(`^start ${blocked}$`, 'm'));
    t.pass(`the task (data ${blocked}) runs on W2`);
    await coordinator.waitFor(/^held$/m);
    t.pass('every result has reached the application');

    hosts.mend(0);
    await w1.waitFor(/"msg":"registered again"/, 'stderr');
    const joins = coordinator.stderr.match(new RegExp(`"rank":${w1Rank},"host":"[^"]*","pid":${w1.child.pid},"msg":"worker joined"`, 'g'));
    t.equal(joins?.length, 2, 'W1 registers again, with its old rank');
    w1.child.kill('SIGUSR2');
    const [stale] = await coordinator.waitFor(/\{[^\n]*"reason":"stale-result"[^\n]*/, 'stderr');
    t.match(stale, new RegExp(`rank ${w1Rank} reported task ${taskId} attempt 1"`), 'its late result for the old attempt is dropped');

    coordinator.child.kill('SIGUSR2');
    t.same(await coordinator.exited, { code: 0, signal: null }, 'the job ends well');
    t.same(parseSummary(coordinator.stdout), { total: String(TASKS), unique: String(TASKS), duplicates: '0', errors: '0', codes: '' }, 'each result reached the application once');
    t.same(await w1.exited, { code: 0, signal: null }, 'W1 is terminated cleanly');
    t.same(await w2.exited, { code: 0, signal: null }, 'W2 is terminated cleanly');
    t.equal(w1.stdout.match(/^start /gm)?.length, 1, 'W1 took no other task while it held the old one');
  },
);
