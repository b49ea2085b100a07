/**
 * The deploy files, checked without running them (compose.test.ts and multihost.test.ts run them):
 * `docker-compose config -q` validates the whole compose file, Grafana included; the Dockerfile is
 * multi-stage on node:20-slim with the pinned pnpm and a non-root user; the systemd units pass
 * `systemd-analyze verify` and run the documented commands; every setting the compose file reads
 * from the environment is documented in README "Deploy".
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { cleanEnv, requireCommands } from './helpers/tools.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');
const compose = read('docker-compose.yml');
const readme = read('README.md');
const deploySection = readme.slice(readme.indexOf('\n## Deploy'), readme.indexOf('\n## ', readme.indexOf('\n## Deploy') + 4));

t.test('docker-compose config -q validates the whole file, grafana included', async (t) => {
  if (!requireCommands(t, ['docker-compose'], "Debian's docker-compose")) return;
  const env = cleanEnv();
  delete env.DOCKER_HOST;
  const q = spawnSync('docker-compose', ['-f', join(ROOT, 'docker-compose.yml'), 'config', '-q'], { env, encoding: 'utf8' });
  t.equal(q.status, 0, q.stderr);
  const services = spawnSync('docker-compose', ['-f', join(ROOT, 'docker-compose.yml'), 'config', '--services'], { env, encoding: 'utf8' });
  t.same(services.stdout.trim().split('\n').sort(), ['coordinator', 'grafana', 'prometheus', 'worker']);
  const full = spawnSync('docker-compose', ['-f', join(ROOT, 'docker-compose.yml'), 'config'], { env, encoding: 'utf8' }).stdout;
  t.match(full, /tcp:\/\/coordinator:5555/, 'workers find the coordinator by service name');
  t.notMatch(full, /pull_policy/, 'no forced pulls');
});

t.test('the compose file keeps workers scalable and everything on loopback', async (t) => {
  const worker = (/\n  worker:\n([\s\S]*?)\n  \w+:\n/.exec(compose)?.[1] ?? '').replace(/^\s*#.*$/gm, '');
  t.ok(worker.length > 0, 'a worker service');
  t.notMatch(worker, /container_name|ports:|--rank/, 'a worker has no fixed name, port or rank, so --scale works');
  for (const [, binding] of compose.matchAll(/^\s+- "([^"]*:\d+)"$/gm)) t.match(binding, /^127\.0\.0\.1:/, `published on loopback only: ${binding}`);
  t.match(compose, /--metrics-port", "9464"/);
});

t.test('every environment variable the compose file reads is documented in README "Deploy"', async (t) => {
  const vars = [...new Set([...compose.matchAll(/\$\{(\w+)(?::-[^}]*)?\}/g)].map((m) => m[1]!))];
  t.ok(vars.length >= 10, `${vars.length} variables`);
  for (const v of vars) t.ok(deploySection.includes(`\`${v}\``), `${v} is documented`);
});

t.test('the Dockerfile: multi-stage on node:20-slim, pinned pnpm from npm, non-root, SIGTERM', async (t) => {
  const df = read('deploy/Dockerfile');
  const froms = [...df.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
  t.same(froms, ['node:20-slim', 'node:20-slim'], 'two stages on node:20-slim');
  const pnpm = (JSON.parse(read('package.json')) as { packageManager: string }).packageManager;
  t.match(df, new RegExp(`npm install -g ${pnpm.replace('.', '\\.')}`), `installs ${pnpm}, the packageManager version`);
  t.notMatch(df.replace(/^#.*$/gm, ''), /corepack/, 'no corepack (its signature check fails here)');
  t.match(df, /^USER node$/m, 'runs as the unprivileged node user');
  t.match(df, /--prod --frozen-lockfile/);
  t.match(df, /^ENTRYPOINT \["node", "\/app\/packages\/taskfarm\/bin\/taskfarm\.js"\]$/m, 'the launcher, which passes SIGTERM on');
  t.match(compose, /init: true/, 'a real init reaps and forwards signals');
});

t.test('systemd units: valid, a worker template, the documented commands, a place for CURVE keys', async (t) => {
  const coordinator = read('deploy/systemd/taskfarm-coordinator.service');
  const worker = read('deploy/systemd/taskfarm-worker@.service');
  t.match(coordinator, /^ExecStart=\/usr\/bin\/env node \/opt\/taskfarm\/packages\/taskfarm\/bin\/taskfarm\.js run -n 1 --bind \$\{TASKFARM_BIND\} \$\{TASKFARM_APP\}$/m);
  t.match(worker, /^ExecStart=\/usr\/bin\/env node \/opt\/taskfarm\/packages\/taskfarm\/bin\/taskfarm\.js worker --restarts 0 --connect \$\{TASKFARM_CONNECT\} \$\{TASKFARM_APP\}$/m);
  for (const unit of [coordinator, worker]) {
    t.match(unit, /^KillMode=mixed$/m, 'SIGTERM to the launcher only: it passes it on once, so workers drain');
    t.match(unit, /^#.*CURVE/m, 'a commented place for CURVE keys');
    t.match(unit, /^EnvironmentFile=-\/etc\/taskfarm\/\w+\.env$/m);
  }
  t.match(worker, /Description=taskfarm worker %i/);
  t.match(deploySection, /systemctl enable --now taskfarm-worker@\{1\.\.8\}/);
  if (!requireCommands(t, ['systemd-analyze'], 'systemd')) return;
  const dir = mkdtempSync(join(tmpdir(), 'taskfarm-units-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  copyFileSync(join(ROOT, 'deploy/systemd/taskfarm-coordinator.service'), join(dir, 'taskfarm-coordinator.service'));
  copyFileSync(join(ROOT, 'deploy/systemd/taskfarm-worker@.service'), join(dir, 'taskfarm-worker@3.service'));
  const v = spawnSync('systemd-analyze', ['verify', '--man=no', join(dir, 'taskfarm-coordinator.service'), join(dir, 'taskfarm-worker@3.service')], { encoding: 'utf8' });
  const problems = `${v.stdout}${v.stderr}`
    .split('\n')
    .filter((l) => l.includes('taskfarm-') && !/Failed to resolve|user.*taskfarm|not found/i.test(l));
  t.same(problems, [], 'systemd-analyze verify finds nothing wrong in the units');
});
