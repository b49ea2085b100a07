/**
 * A coordinator's operations endpoints, on a small farm in a known state (see helpers/farm.ts):
 * /metrics, /healthz, /status and `taskfarm status`; `promtool check metrics` on the application's
 * own metrics; and a real Prometheus (Debian's package) scraping the coordinator on loopback, whose
 * PromQL answers must match the job: per-rank utilisation and queue depth per task type.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { Coordinator } from 'taskfarm';
import { startTestFarm } from './helpers/farm.ts';
import { cleanEnv, freePort, requireCommands, until } from './helpers/tools.ts';

const BIN = fileURLToPath(new URL('../packages/taskfarm/bin/taskfarm.js', import.meta.url));

const farm = await startTestFarm();
t.teardown(() => farm.close());

t.test('/healthz, /metrics, /status and the rest', async (t) => {
  const health = await fetch(`${farm.url}/healthz`);
  t.equal(health.status, 200);
  t.equal(await health.text(), 'ok\n');

  const metrics = await fetch(`${farm.url}/metrics`);
  t.equal(metrics.status, 200);
  t.match(metrics.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const text = await metrics.text();
  t.match(text, /^taskfarm_workers\{state="busy"\} 1$/m);
  t.match(text, /^taskfarm_tasks_queued\{task_type="backlog"\} 5$/m);
  t.match(text, /^taskfarm_tasks_completed_total\{task_type="work"\} 12$/m);
  t.match(text, /^process_cpu_seconds_total \d/m, 'process metrics are served too');
  t.match(text, /^nodejs_eventloop_lag_seconds /m);

  const status = await fetch(`${farm.url}/status`);
  t.equal(status.status, 200);
  t.match(status.headers.get('content-type'), /^application\/json/);
  const s = (await status.json()) as any;
  t.same(s.workers.map((w: { rank: number; state: string }) => [w.rank, w.state]), [[1, 'busy'], [2, 'idle'], [3, 'idle']]);
  t.match(s.workers[0], { host: String, pid: process.pid, task: { type: 'work', attempt: 1 } });
  t.ok(s.workers.every((w: { busySeconds: number }) => w.busySeconds >= 0));
  t.match(s.taskTypes, [
    { taskType: 'backlog', queued: 5, inFlight: 0, completed: 0 },
    { taskType: 'work', queued: 0, inFlight: 1, completed: 12, submitted: 13 },
  ]);
  t.match(s.totals, { workers: 3, busy: 1, idle: 2, queued: 5, inFlight: 1, completed: 12, done: 12, submitted: 18, lost: 0 });
  t.equal(s.coordinator.endpoint, farm.coordinator.endpoint);

  t.equal((await fetch(`${farm.url}/nope`)).status, 404);
  const post = await fetch(`${farm.url}/metrics`, { method: 'POST' });
  t.equal(post.status, 405);
  t.equal(post.headers.get('allow'), 'GET, HEAD');
  t.equal((await fetch(`${farm.url}/`)).status, 200);
});

t.test('taskfarm status prints the worker table from /status', async (t) => {
  const run = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [BIN, 'status', ...args], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
      child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  const [table, json, bare] = await Promise.all([run([farm.url]), run(['--json', `${farm.url}/status`]), run([farm.url.replace('http://', '')])]);
  t.equal(table.code, 0, table.stderr);
  t.match(table.stdout, /^workers: 3 \(1 busy, 2 idle, 0 joining, 0 terminating\); lost so far: 0$/m);
  t.match(table.stdout, /^RANK +HOST +PID +STATE +TASK +TYPE +RUNNING +BUSY +UTIL$/m);
  t.match(table.stdout, new RegExp(`^ +1 +\\S+ +${process.pid} +busy +\\d+ +work +`, 'm'));
  t.match(table.stdout, new RegExp(`^ +2 +\\S+ +${process.pid} +idle +- +- +- +`, "m"));
  t.match(table.stdout, /^backlog +5 +0 +0 +0 +0 +0$/m, 'queue depth per task type');
  t.match(table.stdout, /^work +0 +1 +12 +0 +0 +0$/m);
  t.equal(json.code, 0);
  t.equal(JSON.parse(json.stdout).totals.queued, 5);
  t.equal(bare.code, 0, 'HOST:PORT without a scheme works too');

  const port = await freePort();
  const refused = await run([`http://127.0.0.1:${port}`]);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /^taskfarm status: cannot reach http:\/\/127\.0\.0\.1:\d+\/status: ECONNREFUSED$/m);
});

t.test('promtool check metrics passes on the application’s own metrics', async (t) => {
  if (!requireCommands(t, ['promtool'], "Debian's prometheus package")) return;
  const text = await farm.coordinator.operations.metrics.registry.metrics();
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  t.equal(r.status, 0, `promtool: ${r.stdout}${r.stderr}`);
  t.equal(`${r.stdout}${r.stderr}`.trim(), '', 'no lint findings');
});

t.test('a real Prometheus scrapes the coordinator: per-rank utilisation and queue depth match the job', async (t) => {
  if (!requireCommands(t, ['prometheus'], "Debian's prometheus package")) return;
  const dir = mkdtempSync(join(tmpdir(), 'taskfarm-prom-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const target = new URL(farm.url).host;
  writeFileSync(
    join(dir, 'prometheus.yml'),
    `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: taskfarm\n    static_configs:\n      - targets: ['${target}']\n`,
  );
  const port = await freePort();
  const prom = spawn(
    'prometheus',
    [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  prom.stderr.setEncoding('utf8').on('data', (c: string) => (log += c));
  const exited = new Promise<void>((resolve) => prom.on('exit', () => resolve()));
  t.teardown(async () => {
    prom.kill('SIGTERM');
    await exited;
  });

  const query = async (q: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> => {
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(q)}`);
    const body = (await res.json()) as { status: string; data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
    if (body.status !== 'success') throw new Error(`query ${q}: ${JSON.stringify(body)}`);
    return body.data.result;
  };
  const byLabel = (rows: Awaited<ReturnType<typeof query>>, label: string) => Object.fromEntries(rows.map((r) => [r.metric[label]!, Number(r.value[1])]));

  // Utilisation is a rate(): poll, with a deadline, until its 5 s window holds enough scrapes of every
  // rank for rate() to cover it (with two samples only, rate() extrapolates to a fraction).
  const utilisation = await until(
    async () => {
      const scrapes = byLabel(await query('count_over_time(taskfarm_worker_busy_seconds_total[5s])'), 'rank');
      if (!['1', '2', '3'].every((r) => (scrapes[r] ?? 0) >= 4)) return undefined;
      return byLabel(await query('sum by (rank) (rate(taskfarm_worker_busy_seconds_total[5s]))'), 'rank');
    },
    45_000,
    `Prometheus to have two scrapes of the coordinator at ${target}\n${log}`,
  );
  t.ok(utilisation['1']! > 0.5 && utilisation['1']! < 1.5, `rank 1 runs its held task all the time: ${utilisation['1']}`);
  t.equal(utilisation['2'], 0, 'rank 2 is idle');
  t.equal(utilisation['3'], 0, 'rank 3 is idle');

  t.same(byLabel(await query('taskfarm_tasks_queued'), 'task_type'), { backlog: 5, work: 0 }, 'queue depth per task type');
  t.same(byLabel(await query('taskfarm_workers'), 'state'), { joining: 0, idle: 2, busy: 1, terminating: 0 });
  t.same(byLabel(await query('sum by (task_type) (taskfarm_tasks_completed_total)'), 'task_type'), { backlog: 0, work: 12 });
  const targets = (await (await fetch(`http://127.0.0.1:${port}/api/v1/targets`)).json()) as { data: { activeTargets: Array<{ health: string }> } };
  t.same(targets.data.activeTargets.map((a) => a.health), ['up']);
});

t.test('the metrics server closes with the coordinator; a busy port fails start()', async (t) => {
  const url = farm.url;
  await farm.close();
  await t.rejects(fetch(`${url}/healthz`), 'nothing listens any more');

  const port = Number(new URL(url).port);
  const blocker = await Coordinator.start({ endpoint: 'tcp://127.0.0.1:*', metricsPort: port, logLevel: 'silent' });
  t.teardown(() => blocker.close());
  await t.rejects(Coordinator.start({ endpoint: 'tcp://127.0.0.1:*', metricsPort: port, logLevel: 'silent' }), {
    message: new RegExp(`metrics server cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE`),
  });
});
