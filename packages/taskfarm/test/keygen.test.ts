/**
 * `taskfarm keygen` and the CURVE/--insecure options of `run` and `worker`, down to real processes:
 * a job whose workers are started by `run` (with a keypair made for the run), and a remote-style
 * worker with its own key that is refused, then admitted once its key is listed and `taskfarm run`
 * gets SIGHUP.
 */
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseAllowList, parseSecretKeyFile } from '@taskfarm/protocol';
import { main, parseKeygenArgs, parseRunArgs, parseWorkerArgs } from '../src/cli.ts';
import { planRunSecurity, workerSecurityEnv } from '../src/launcher-curve.ts';
import { FIXTURES, launch } from './run-cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'taskfarm-keygen-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `taskfarm ...args` in this process; resolves with its exit status and what it printed. */
async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const write = (sink: 'out' | 'err') => (chunk: string | Uint8Array) => {
    if (sink === 'out') out += String(chunk);
    else err += String(chunk);
    return true;
  };
  const [o, e] = [process.stdout.write, process.stderr.write];
  process.stdout.write = write('out') as typeof process.stdout.write;
  process.stderr.write = write('err') as typeof process.stderr.write;
  try {
    return { code: await main(args), out, err };
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
  }
}

t.test('keygen writes NAME.key (0600) and NAME.pub (0644), never over existing files without --force', async (t) => {
  const keys = join(dir, 'keys');
  const first = await cli(['keygen', '--out', keys, '--name', 'coordinator']);
  t.equal(first.code, 0);
  const secret = join(keys, 'coordinator.key');
  const pub = join(keys, 'coordinator.pub');
  t.equal(statSync(secret).mode & 0o777, 0o600, 'the secret key file is readable by its owner only');
  t.equal(statSync(pub).mode & 0o777, 0o644, 'the public key file is readable by all');
  t.equal(statSync(keys).mode & 0o777, 0o700, 'a directory it creates is private');
  const pair = parseSecretKeyFile(readFileSync(secret, 'utf8'));
  t.same(parseAllowList(readFileSync(pub, 'utf8')), [{ key: pair.publicKey, label: 'coordinator' }], 'the .pub line is an allow-list line');
  t.match(first.out, new RegExp(`public key: ${pair.publicKey.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));

  const again = await cli(['keygen', '--out', keys, '--name', 'coordinator']);
  t.equal(again.code, 2, 'an existing key is not replaced');
  t.match(again.err, /exists already; keep it, or pass --force/);
  t.same(parseSecretKeyFile(readFileSync(secret, 'utf8')), pair, 'and is left as it was');
  t.equal((await cli(['keygen', '--out', keys, '--name', 'coordinator', '--force'])).code, 0, '--force replaces it');
  t.not(parseSecretKeyFile(readFileSync(secret, 'utf8')).secretKey, pair.secretKey);
  t.equal(statSync(secret).mode & 0o777, 0o600, 'still 0600');

  t.match(parseKeygenArgs([]), { out: '.', force: false }, 'defaults: the current directory, this host\'s name');
  t.match((await cli(['keygen', '--name', '../x'])).err, /--name must be a plain file name/);
  t.match((await cli(['keygen', 'extra'])).err, /unexpected argument 'extra'/);
  t.match((await cli(['keygen', '--help'])).out, /Usage: taskfarm keygen/);
  t.match((await cli(['--help'])).out, /keygen   write a CURVE keypair/);
});

t.test('run and worker take the CURVE options; plaintext beyond loopback needs --insecure', async (t) => {
  const script = join(FIXTURES, 'apps', 'steady.ts');
  t.match(parseRunArgs(['-n', '2', '--curve-secret-key', 'c.key', '--curve-allow-list', 'w.allow', script]), { curveSecretKey: 'c.key', curveAllowList: 'w.allow', insecure: false });
  t.match(parseRunArgs(['-n', '2', '--insecure', script]), { insecure: true });
  t.match(parseWorkerArgs(['--connect', 'tcp://h:1', '--curve-server-key', 'c.pub', '--curve-secret-key', 'w.key', script], {}), { curveServerKey: 'c.pub', curveSecretKey: 'w.key' });
  t.throws(() => parseRunArgs(['-n', '2', '--curve-secret-key', '', script]), { code: 'EUSAGE', message: /must not be empty/ });

  t.throws(() => planRunSecurity({ bind: 'tcp://0.0.0.0:5555' }, {}), { code: 'EINSECURE', message: /--insecure/ });
  t.same(planRunSecurity({ bind: 'tcp://0.0.0.0:5555', insecure: true }, {}).coordinator, { TASKFARM_INSECURE: '1' });
  t.same(planRunSecurity({ bind: 'tcp://0.0.0.0:5555' }, { TASKFARM_INSECURE: '1' }).coordinator, { TASKFARM_INSECURE: '1' }, 'or TASKFARM_INSECURE=1');
  t.same(planRunSecurity({ bind: 'tcp://127.0.0.1:*' }, {}), { coordinator: {}, workers: {}, forwardHangup: false }, 'loopback needs nothing');
  t.throws(() => planRunSecurity({ bind: 'tcp://127.0.0.1:*', curveAllowList: 'w.allow' }, {}), { code: 'EUSAGE', message: /needs --curve-secret-key/ });
  t.throws(() => planRunSecurity({ bind: 'tcp://127.0.0.1:*', curveSecretKey: join(dir, 'missing.key') }, {}), { code: 'ECURVEKEY', message: /cannot read the key file/ });

  await cli(['keygen', '--out', dir, '--name', 'plan']);
  const server = parseSecretKeyFile(readFileSync(join(dir, 'plan.key'), 'utf8'));
  const plan = planRunSecurity({ bind: 'tcp://0.0.0.0:5555', curveSecretKey: join(dir, 'plan.key'), curveAllowList: 'w.allow' }, {});
  t.equal(plan.coordinator.TASKFARM_CURVE_SECRET_KEY, join(dir, 'plan.key'), 'rank 0 gets its key');
  t.equal(plan.coordinator.TASKFARM_CURVE_ALLOW_LIST, 'w.allow', 'and the allow-list');
  t.equal(plan.workers.TASKFARM_CURVE_SERVER_KEY, server.publicKey, 'local workers get rank 0\'s public key');
  const local = parseSecretKeyFile(plan.workers.TASKFARM_CURVE_SECRET_KEY!);
  t.equal(plan.coordinator.TASKFARM_CURVE_ALLOW_KEYS, local.publicKey, 'and a keypair of their own, which rank 0 admits');
  t.ok(plan.forwardHangup, 'SIGHUP is passed on to rank 0, which re-reads its allow-list');

  t.throws(() => workerSecurityEnv({ curveServerKey: 'c.pub' }, {}), { code: 'EUSAGE', message: /needs --curve-secret-key/ });
  t.throws(() => workerSecurityEnv({ curveSecretKey: 'w.key' }, {}), { code: 'EUSAGE', message: /needs --curve-server-key/ });
  t.same(workerSecurityEnv({ curveSecretKey: 'w.key' }, { TASKFARM_CURVE_SERVER_KEY: 'c.pub' }), { TASKFARM_CURVE_SERVER_KEY: 'c.pub', TASKFARM_CURVE_SECRET_KEY: 'w.key' });
  t.same(workerSecurityEnv({}, {}), {}, 'plaintext without either');
});

t.test('taskfarm run with a CURVE key: its own workers need no key files', async (t) => {
  await cli(['keygen', '--out', dir, '--name', 'c1']);
  const { code, stdout, stderr } = await launch(['run', '-n', '3', '--curve-secret-key', join(dir, 'c1.key'), 'apps/steady.ts'], { TASKS: '30', TASKFARM_LOG_LEVEL: 'info' }).done;
  t.equal(code, 0, stderr);
  t.match(stdout, /summary total=30 unique=30 duplicates=0 errors=0/);
  t.match(stderr, /"curve":true/, 'rank 0 listens with CURVE');
  t.ok(/"msg":"worker joined"/.test(stderr), 'its workers joined');
  t.notMatch(stderr, /connection refused/, 'none was refused');
});

t.test('a worker on another host: refused until its key is listed and taskfarm run gets SIGHUP', async (t) => {
  await cli(['keygen', '--out', dir, '--name', 'c2']);
  await cli(['keygen', '--out', dir, '--name', 'hostb']);
  const allow = join(dir, 'c2-workers.allow');
  writeFileSync(allow, '# the workers of this farm\n');
  const coordinator = launch(['run', '-n', '1', '--curve-secret-key', join(dir, 'c2.key'), '--curve-allow-list', allow, 'apps/steady.ts'], { TASKS: '10', TASKFARM_LOG_LEVEL: 'info' });
  t.teardown(() => coordinator.child.kill('SIGKILL'));
  const endpoint = /^\[0\] endpoint (\S+)$/m.exec(await coordinator.stdoutWhen((s) => /^\[0\] endpoint /m.test(s)))![1]!;
  const worker = launch(['worker', '--connect', endpoint, '--curve-server-key', join(dir, 'c2.pub'), '--curve-secret-key', join(dir, 'hostb.key'), '--log-level', 'error', 'apps/steady.ts']);
  t.teardown(() => worker.child.kill('SIGKILL'));

  let coordinatorErr = '';
  coordinator.child.stderr.on('data', (d: Buffer) => (coordinatorErr += String(d)));
  const said = (re: RegExp) =>
    new Promise<void>((resolve) => {
      const check = () => re.test(coordinatorErr) && (coordinator.child.stderr.off('data', check), resolve());
      coordinator.child.stderr.on('data', check);
      check();
    });
  await said(/is not in the allow-list/);
  t.pass('the coordinator refuses the unknown key, and says so');

  appendFileSync(allow, readFileSync(join(dir, 'hostb.pub')));
  const reloaded = said(/"keys":2,"msg":"allow-list loaded"/);
  coordinator.child.kill('SIGHUP');
  await reloaded;
  t.pass('taskfarm run passed SIGHUP on: rank 0 re-read its allow-list');
  const { code, stdout } = await coordinator.done;
  t.equal(code, 0, 'the job completed');
  t.match(stdout, /summary total=10 unique=10 duplicates=0 errors=0/, 'run by the worker admitted after the reload');
  const w = await worker.done;
  t.equal(w.code, 0, 'the worker exits 0 once terminated');
  t.match(w.stderr, /the coordinator refused this worker/, 'the worker said why it was refused');
});
