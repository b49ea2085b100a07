/**
 * The Grafana dashboard is checked as JSON plus PromQL (Grafana itself cannot be had here): every
 * expression passes `promtool check rules` (wrapped in a rules file, Grafana's variables replaced)
 * and names only metrics the coordinator exports; the panels the operations issue asks for exist;
 * the provisioning files point where the compose file mounts things.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { FarmMetrics } from 'taskfarm';
import { requireCommands } from './helpers/tools.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const dashboard = JSON.parse(readFileSync(join(ROOT, 'deploy/grafana/dashboards/taskfarm.json'), 'utf8'));

interface Panel {
  title: string;
  type: string;
  datasource?: { uid: string };
  targets?: Array<{ expr: string; datasource?: { uid: string } }>;
  panels?: Panel[];
}
const panels: Panel[] = (dashboard.panels as Panel[]).flatMap((p) => [p, ...(p.panels ?? [])]);
const exprs = panels.flatMap((p) => (p.targets ?? []).map((x) => ({ panel: p.title, expr: x.expr })));

/** Grafana's variables, replaced by what they stand for, so that the PromQL parses. */
function concrete(expr: string): string {
  return expr
    .replace(/\$__rate_interval|\$__interval|\$__range|\$\{__rate_interval\}|\$\{__range\}/g, '5m')
    .replace(/\$\{?task_type\}?/g, '.*');
}

/** Every metric name the coordinator exports: its own, the process's, and histogram series. */
async function exportedNames(): Promise<Set<string>> {
  const farm = { now: () => 0, workers: () => [][Symbol.iterator]() } as unknown as ConstructorParameters<typeof FarmMetrics>[0]['farm'];
  const m = new FarmMetrics({ farm, observers: { add: () => () => {} } });
  m.enableProcessMetrics();
  const names = new Set<string>();
  for (const [, name, type] of (await m.exposition()).matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(name!);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name! + s);
    if (type === 'summary') for (const s of ['_sum', '_count']) names.add(name! + s);
  }
  return names;
}

const PROMQL_WORDS = new Set(
  (
    'sum min max avg group stddev stdvar count count_values bottomk topk quantile by without on ignoring group_left group_right bool and or unless offset ' +
    'rate irate increase delta idelta deriv histogram_quantile clamp clamp_min clamp_max abs ceil floor round sqrt exp ln log2 log10 time timestamp vector scalar ' +
    'label_replace label_join sort sort_desc absent absent_over_time changes resets predict_linear avg_over_time min_over_time max_over_time sum_over_time count_over_time last_over_time ' +
    'quantile_over_time stddev_over_time present_over_time day_of_week hour minute month year days_in_month le inf nan'
  ).split(' '),
);

t.test('the dashboard has the panels operators need', async (t) => {
  t.equal(dashboard.uid, 'taskfarm');
  const titles = panels.map((p) => p.title.toLowerCase());
  for (const want of ['utilisation per rank', 'workers busy', 'workers idle', 'queue depth per task type', 'throughput', 'task duration percentiles',
    'queue wait percentiles', 'failures, retries, requeues and abandoned tasks', 'affinity hit ratio', 'workers lent and borrowed'])
    t.ok(titles.includes(want), `panel "${want}"`);
  t.ok(exprs.length >= 20, `${exprs.length} expressions`);
  const provisioned = readFileSync(join(ROOT, 'deploy/grafana/provisioning/datasources/prometheus.yml'), 'utf8');
  const uid = /^\s+uid: (\S+)$/m.exec(provisioned)?.[1];
  t.equal(uid, 'prometheus', 'the provisioned datasource uid');
  for (const p of panels) if (p.targets) t.equal(p.datasource?.uid, uid, `${p.title}: uses the provisioned datasource`);
  const provider = readFileSync(join(ROOT, 'deploy/grafana/provisioning/dashboards/taskfarm.yml'), 'utf8');
  t.match(provider, /path: \/var\/lib\/grafana\/dashboards/);
});

t.test('every expression names only metrics the coordinator exports', async (t) => {
  const names = await exportedNames();
  const variableQuery = dashboard.templating.list.map((v: { definition: string }) => v.definition).join(' ');
  for (const { panel, expr } of [...exprs, { panel: 'task_type variable', expr: variableQuery.replace(/label_values\(([^,]+),.*\)/, '$1') }]) {
    const bare = concrete(expr)
      .replace(/"(?:[^"\\]|\\.)*"/g, '""')
      .replace(/\{[^}]*\}/g, '')
      .replace(/\[[^\]]*\]/g, '')
      .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '$1');
    const words = [...bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)].map((m) => m[0]);
    const unknown = words.filter((w) => !PROMQL_WORDS.has(w) && !names.has(w));
    t.same(unknown, [], `${panel}: ${expr}`);
  }
});

t.test('every expression passes promtool check rules', async (t) => {
  if (!requireCommands(t, ['promtool'], "Debian's prometheus package")) return;
  const dir = mkdtempSync(join(tmpdir(), 'taskfarm-rules-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const rules = exprs.map(({ expr }, i) => `      - record: dashboard:expr_${i}\n        expr: ${JSON.stringify(concrete(expr))}\n`).join('');
  writeFileSync(join(dir, 'rules.yml'), `groups:\n  - name: taskfarm-dashboard\n    rules:\n${rules}`);
  const r = spawnSync('promtool', ['check', 'rules', join(dir, 'rules.yml')], { encoding: 'utf8' });
  t.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  t.match(r.stdout, new RegExp(`SUCCESS: ${exprs.length} rules found`));
});

t.test('prometheus.yml scrapes the coordinator under the job name the dashboard uses', async (t) => {
  const config = readFileSync(join(ROOT, 'deploy/prometheus/prometheus.yml'), 'utf8');
  t.match(config, /job_name: taskfarm\b/);
  t.match(config, /targets: \['coordinator:9464'\]/);
  t.ok(exprs.filter((e) => e.expr.includes('job=')).every((e) => e.expr.includes('job="taskfarm"')));
  if (!requireCommands(t, ['promtool'], "Debian's prometheus package")) return;
  const r = spawnSync('promtool', ['check', 'config', join(ROOT, 'deploy/prometheus/prometheus.yml')], { encoding: 'utf8' });
  t.equal(r.status, 0, `${r.stdout}${r.stderr}`);
});
