/**
 * docker-compose.yml for real: build the image, `up --scale worker=4` of coordinator, worker and
 * prometheus, check that the demo job completes on 4 workers with 4 distinct ranks and that
 * Prometheus sees them, stop the coordinator (SIGTERM: it terminates the workers, which exit 0),
 * tear everything down. Grafana's image cannot be had here; `docker-compose config -q` (in
 * deploy.test.ts) validates its service.
 *
 * Slow (about 1 min; 2 on a fresh machine): it runs in CI (CI=true, where it starts the engine with
 * ../shared/tools/docker-env) and wherever that engine is already running; TASKFARM_TEST_DOCKER=0
 * skips it, TASKFARM_TEST_DOCKER=1 starts the engine like CI does.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { cleanEnv, freePort, IN_CI, until } from './helpers/tools.ts';

t.setTimeout(15 * 60_000);

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DOCKER_ENV = join(ROOT, '..', 'shared', 'tools', 'docker-env');
const WORKERS = 4;
const TASKS = 40;

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 10 * 60_000) {
  const r = spawnSync(cmd, args, { cwd: ROOT, env, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 << 20 });
  return { code: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

/** DOCKER_HOST of docker-env's engine when it is (or, in CI, could be made) available; else why not. */
function engine(): { dockerHost: string } | { skip: string } {
  const mode = process.env.TASKFARM_TEST_DOCKER;
  if (mode === '0' && !IN_CI) return { skip: 'TASKFARM_TEST_DOCKER=0' };
  if (!existsSync(DOCKER_ENV)) return { skip: `no ${DOCKER_ENV}` };
  const start = IN_CI || mode === '1';
  const r = sh(DOCKER_ENV, [start ? 'start' : 'env'], process.env);
  const dockerHost = /export DOCKER_HOST=(\S+)/.exec(r.out)?.[1];
  if (r.code !== 0 || !dockerHost) return { skip: `docker-env ${start ? 'start' : 'env'} failed: ${r.out}` };
  if (!start && sh('docker', ['version'], { ...process.env, DOCKER_HOST: dockerHost }, 20_000).code !== 0)
    return { skip: 'the docker-env engine is not running (../shared/tools/docker-env start, or TASKFARM_TEST_DOCKER=1)' };
  return { dockerHost };
}

t.test('docker-compose up --scale worker=4: the job runs on 4 ranks and Prometheus sees them', async (t) => {
  const e = engine();
  if ('skip' in e) {
    if (IN_CI) t.fail(`the compose test must run in CI: ${e.skip}`);
    else t.plan(0, e.skip);
    return;
  }
  const project = `tftest${process.pid}`;
  const [metricsPort, promPort] = [await freePort(), await freePort()];
  const env = cleanEnv({
    DOCKER_HOST: e.dockerHost,
    COMPOSE_PROJECT_NAME: project,
    JOB_WORKERS: String(WORKERS),
    JOB_TASKS: String(TASKS),
    JOB_TASK_MS: '50',
    JOB_LINGER_S: 'forever',
    TASKFARM_METRICS_HOST_PORT: String(metricsPort),
    PROMETHEUS_HOST_PORT: String(promPort),
  });
  const compose = (...args: string[]) => sh('docker-compose', args, env);
  t.teardown(() => {
    const down = compose('down', '--volumes', '--remove-orphans', '-t', '5');
    if (down.code !== 0) console.error(`docker-compose down failed:\n${down.out}`);
  });

  const build = compose('build', 'coordinator', 'worker');
  t.equal(build.code, 0, 'the image builds');
  if (build.code !== 0) return void console.error(build.out);
  const up = compose('up', '-d', '--scale', `worker=${WORKERS}`, 'coordinator', 'worker', 'prometheus');
  t.equal(up.code, 0, 'up -d');
  if (up.code !== 0) return void console.error(up.out);

  const logs = () => compose('logs', '--no-color', 'coordinator').out;
  const done = await until(async () => /JOB DONE (.*)/.exec(logs())?.[1], 180_000, 'JOB DONE in the coordinator\'s log', 1000).catch((err: Error) => {
    t.fail(`${err.message}\n${logs()}\n${compose('logs', '--no-color', '--tail', '20', 'worker').out}`);
    return null;
  });
  if (done === null) return;
  t.match(done, new RegExp(`^tasks=${TASKS} failed=0 `));
  const ranks = /ranks=(\S+)/.exec(done)![1]!.split(',').map(Number);
  t.same(ranks, [1, 2, 3, 4], '4 distinct ranks, assigned by the coordinator');
  t.match(done, /hosts=4$/, 'one container each');

  const query = async (q: string) => {
    const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`);
    const body = (await res.json()) as { data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
    return body.data.result;
  };
  const seen = await until(
    async () => {
      const rows = await query('sum by (rank) (taskfarm_worker_busy_seconds_total)');
      const completed = await query('sum(taskfarm_tasks_completed_total)');
      return rows.length === WORKERS && Number(completed[0]?.value[1]) === TASKS ? rows : undefined;
    },
    90_000,
    'Prometheus to scrape the finished job',
    1000,
  );
  t.same(seen.map((r) => r.metric.rank).sort(), ['1', '2', '3', '4'], 'Prometheus sees busy time of all four ranks');
  t.ok(seen.every((r) => Number(r.value[1]) > 0), 'every rank was busy');
  t.same((await query('taskfarm_workers{state="idle"}')).map((r) => r.value[1]), [String(WORKERS)], 'four idle workers while the coordinator lingers');
  const status = (await (await fetch(`http://127.0.0.1:${metricsPort}/status`)).json()) as { workers: Array<{ rank: number }> };
  t.same(status.workers.map((w) => w.rank), [1, 2, 3, 4], '/status through the published port');

  // SIGTERM to the coordinator: rank 0 terminates the workers, which finish and exit 0; the
  // launcher exits 143 as it does for every SIGTERM (taskfarm run --help, "Exit status").
  const stop = compose('stop', '-t', '30', 'coordinator');
  t.equal(stop.code, 0);
  const ids = compose('ps', '-q').out.split('\n').filter((l) => /^[0-9a-f]{12,}$/.test(l));
  const states = sh('docker', ['inspect', '-f', '{{.Name}} {{.State.Status}} {{.State.ExitCode}}', ...ids], env).out.trim().split('\n');
  const ours = states.filter((s) => /_(coordinator|worker)_\d+ /.test(s));
  t.equal(ours.length, WORKERS + 1);
  for (const s of ours) t.match(s, /_worker_\d+ exited 0$|_coordinator_1 exited 143$/, s);
});
