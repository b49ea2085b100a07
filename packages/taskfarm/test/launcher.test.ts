import net from 'node:net';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { parseRunArgs, parseWorkerArgs } from '../src/cli.ts';
import { childEnv, localConnectEndpoint } from '../src/launcher-node.ts';
import { LineSplitter } from '../src/launcher-output.ts';
import { judgeExits, type RankOutcome } from '../src/launcher-verdict.ts';
import { FIXTURES, launch, run } from './run-cli.ts';

function linesOf(output: string): string[] {
  return output.split('\n').filter((line) => line !== '');
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

t.test('run -n 3 on a .ts script: each rank runs with its env, every line prefixed with its rank', async (t) => {
  const { code, stdout, stderr } = await run(['run', '-n', '3', 'farm.ts', '--partial']);
  t.equal(code, 0);
  t.equal(stderr, '');
  const endpoint = /^\[0\] bound (tcp:\/\/127\.0\.0\.1:\d+)$/m.exec(stdout)?.[1];
  t.ok(endpoint, 'rank 0 reported its endpoint');
  const lines = linesOf(stdout);
  t.ok(lines.every((line) => /^\[[0-2]\] /.test(line)), 'no unprefixed line');
  const args = 'args=["--partial"]';
  t.ok(lines.includes(`[0] rank=0 size=3 role=coordinator launcher=1 bind=tcp://127.0.0.1:* connect=undefined ${args}`));
  for (const rank of [1, 2]) {
    t.ok(lines.includes(`[${rank}] rank=${rank} size=3 role=worker launcher=1 bind=undefined connect=${endpoint} ${args}`));
    t.ok(lines.includes(`[0] checked in: rank ${rank}`), `rank ${rank} reached rank 0`);
  }
  t.ok(stdout.endsWith('[0] tail without newline\n'), 'an unterminated last line is flushed');
});

t.test('a failing worker fails the launcher, which names it', async (t) => {
  const { code, stdout, stderr } = await run(['run', '-n', '3', 'farm.ts', '--fail', '2:3']);
  t.equal(code, 3);
  t.match(stderr, /^taskfarm: rank 2 failed with exit code 3$/m);
  t.notMatch(stderr, /rank [01] /);
  t.match(stdout, /^\[0\] checked in: rank 1$/m);
  t.match(stdout, /^\[0\] checked in: rank 2$/m);
});

t.test('rank 0 exiting before it binds starts no worker', async (t) => {
  const { code, stdout, stderr } = await run(['run', '-n', '3', 'early-exit.mjs']);
  t.equal(code, 7);
  t.equal(stdout, '');
  t.match(stderr, /^\[0\] rank 0 giving up$/m);
  t.match(stderr, /^taskfarm: rank 0 exited before .*no workers were started$/m);
  t.match(stderr, /^taskfarm: rank 0 failed with exit code 7$/m);
});

t.test('-n 1 runs rank 0 alone', async (t) => {
  const { code, stdout } = await run(['run', '-n', '1', 'farm.ts']);
  t.equal(code, 0);
  t.ok(linesOf(stdout).every((line) => line.startsWith('[0] ')));
  t.match(stdout, /^\[0\] rank=0 size=1 role=coordinator /m);
});

t.test('workers outliving rank 0 are terminated after the grace period without failing the run', async (t) => {
  const { code, stderr } = await run(['run', '-n', '2', '--grace', '0', 'farm.ts', '--linger']);
  t.equal(code, 0);
  t.match(stderr, /^taskfarm: rank 0 exited 0 s ago; terminating 1 worker\(s\) still running$/m);
  t.notMatch(stderr, /failed|killed/);
});

t.test('SIGINT stops every rank and exits 130', async (t) => {
  const farm = launch(['run', '-n', '3', 'until-signal.mjs']);
  await farm.stdoutWhen((out) => [0, 1, 2].every((rank) => out.includes(`[${rank}] started`)));
  farm.child.kill('SIGINT');
  const { code, stdout, stderr } = await farm.done;
  t.equal(code, 130);
  t.match(stderr, /^taskfarm: SIGINT received, stopping all ranks$/m);
  for (const rank of [0, 1, 2]) t.match(stdout, new RegExp(`^\\[${rank}\\] stopping on SIGINT$`, 'm'));
  const pids = [...stdout.matchAll(/started pid=(\d+)/g)].map((m) => Number(m[1]));
  t.equal(pids.length, 3);
  t.same(pids.filter(isAlive), [], 'no rank outlives the launcher');
});

t.test('worker joins the coordinator named by --connect or TASKFARM_CONNECT', async (t) => {
  const checkIns: string[] = [];
  const server = net.createServer((socket) => {
    let text = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
    socket.on('end', () => checkIns.push(text));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const endpoint = `tcp://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const [ranked, fromEnv] = await Promise.all([
    run(['worker', '--connect', endpoint, '--rank', '3', 'farm.ts']),
    // Stale contract variables in the caller's environment must not leak into the worker.
    run(['worker', 'farm.ts', '--fail', 'unset:4'], { TASKFARM_CONNECT: endpoint, TASKFARM_RANK: '9', TASKFARM_BIND: 'x' }),
  ]);
  t.equal(ranked.code, 0);
  t.match(ranked.stdout, `[w3] rank=3 size=undefined role=worker launcher=1 bind=undefined connect=${endpoint} args=[]\n`);
  t.equal(fromEnv.code, 4, 'the exit code is the worker script\'s');
  t.match(fromEnv.stdout, `[w] rank=unset size=undefined role=worker launcher=1 bind=undefined connect=${endpoint} `);
  t.same(checkIns.sort(), ['rank 3', 'rank unset']);
});

t.test('--help describes every command', async (t) => {
  const [top, runHelp, workerHelp, helpAfterTypo] = await Promise.all([
    run(['--help']),
    run(['run', '--help']),
    run(['worker', '-h']),
    run(['run', '--bogus', '-h']),
  ]);
  t.equal(top.code, 0);
  t.match(top.stdout, /^Usage: taskfarm <command>/);
  t.match(top.stdout, /run .*\n\s+worker /);
  t.equal(runHelp.code, 0);
  for (const text of ['-n, --np N', '--bind ENDPOINT', 'default: tcp://127.0.0.1:*', '--inspect RANK', 'default: 9229',
    '--cpu-prof-dir DIR', 'default: ./profiles', '--grace SECONDS', 'default: 1)', 'TASKFARM_RANK', 'TASKFARM_SIZE',
    'TASKFARM_ROLE', 'TASKFARM_LAUNCHER', 'TASKFARM_BIND', 'TASKFARM_CONNECT', "taskfarm: 'bound'", 'Examples:'])
    t.ok(runHelp.stdout.includes(text), `run --help mentions ${text}`);
  t.equal(workerHelp.code, 0);
  for (const text of ['--connect ENDPOINT', '$TASKFARM_CONNECT', '--rank N', '--inspect ', 'TASKFARM_ROLE', 'Examples:'])
    t.ok(workerHelp.stdout.includes(text), `worker --help mentions ${text}`);
  t.equal(helpAfterTypo.stdout, runHelp.stdout, '--help wins over a bad option');
  // Examples wrapped over two lines must stay pasteable into a shell: an example continued on the
  // next line (indented further, its options going on) ends in a backslash.
  for (const [name, text] of [['taskfarm --help', top.stdout], ['worker --help', workerHelp.stdout]] as const) {
    const lines = text.slice(text.indexOf('\nExamples:\n')).split('\n');
    const wrapped = lines.filter((_, i) => /^ {6}--/.test(lines[i + 1] ?? ''));
    t.ok(wrapped.length > 0, `${name} has a wrapped example`);
    for (const line of wrapped) t.match(line, / \\$/, `${name}: "${line.trim().slice(0, 40)}..." ends in a shell line continuation`);
  }
});

t.test('bad command lines exit 2 with one clear line and a pointer to --help', async (t) => {
  const cases: [string[], string, string][] = [
    [[], 'taskfarm', 'missing command: run, worker, keygen or status'],
    [['launch'], 'taskfarm', "unknown command 'launch'"],
    [['--verbose'], 'taskfarm', "unknown option '--verbose'"],
    [['run', '--bogus', '-n', '2', 'farm.ts'], 'taskfarm run', "unknown option '--bogus'"],
    [['run', '-n', '2'], 'taskfarm run', 'missing SCRIPT to run'],
    [['run', 'farm.ts'], 'taskfarm run', 'missing -n N, the number of processes'],
    [['run', '-n', '1.5', 'farm.ts'], 'taskfarm run', "-n must be an integer >= 1, got '1.5'"],
    [['run', '-n', '0', 'farm.ts'], 'taskfarm run', "-n must be an integer >= 1, got '0'"],
    [['run', '-n', '2', '--inspect', '2', 'farm.ts'], 'taskfarm run', "--inspect RANK must be an integer from 0 to 1, got '2'"],
    [['run', '-n', '2', '--bind', '127.0.0.1:5555', 'farm.ts'], 'taskfarm run',
      "--bind must be an endpoint such as tcp://127.0.0.1:5555, got '127.0.0.1:5555'"],
    [['run', '-n', '2', 'missing.ts'], 'taskfarm run', 'script not found: missing.ts'],
    [['worker', 'farm.ts'], 'taskfarm worker', 'missing --connect ENDPOINT (or TASKFARM_CONNECT in the environment)'],
    [['worker', '--connect', 'tcp://127.0.0.1:1', '--rank', '0', 'farm.ts'], 'taskfarm worker',
      "--rank must be an integer >= 1, got '0'"],
  ];
  const results = await Promise.all(cases.map(([args]) => run(args)));
  cases.forEach(([args, name, message], i) => {
    const r = results[i]!;
    t.same(r, { code: 2, stdout: '', stderr: `${name}: ${message}\nsee ${name} --help\n` }, args.join(' '));
  });
});

t.test('options stop at SCRIPT: everything after it belongs to the script', async (t) => {
  const script = `${FIXTURES}farm.ts`;
  const parsed = parseRunArgs(['-n4', '--cpu-prof-dir', 'out', script, '-n', '5', '--bogus', '--help']);
  t.match(parsed, { size: 4, cpuProfDir: 'out', graceMs: 1000, bind: 'tcp://127.0.0.1:*', script });
  t.same('scriptArgs' in parsed && parsed.scriptArgs, ['-n', '5', '--bogus', '--help']);
  t.match(parseRunArgs(['-n', '2', '--cpu-prof', '--grace', '0.5', '--inspect', '1', '--', script, 'x']), {
    cpuProfDir: './profiles',
    graceMs: 500,
    inspect: { rank: 1, port: 9229 },
    scriptArgs: ['x'],
  });
  t.match(parseWorkerArgs(['--inspect', '--inspect-port', '9300', script], { TASKFARM_CONNECT: 'tcp://h:1' }), {
    connect: 'tcp://h:1',
    rank: undefined,
    inspectPort: 9300,
    cpuProfDir: undefined,
  });
});

t.test('line splitting keeps partial lines and split characters whole', async (t) => {
  const splitter = new LineSplitter();
  const euro = Buffer.from('€');
  t.same(splitter.push(Buffer.concat([Buffer.from('a\nb'), euro.subarray(0, 1)])), ['a']);
  t.same(splitter.push(Buffer.concat([euro.subarray(1), Buffer.from('\n\nc')])), ['b€', '']);
  t.equal(splitter.end(), 'c');
  t.equal(splitter.end(), undefined);
});

t.test('endpoints and environment for local workers', async (t) => {
  t.equal(localConnectEndpoint('tcp://0.0.0.0:5555'), 'tcp://127.0.0.1:5555');
  t.equal(localConnectEndpoint('tcp://*:5555'), 'tcp://127.0.0.1:5555');
  t.equal(localConnectEndpoint('tcp://[::]:5555'), 'tcp://[::1]:5555');
  t.equal(localConnectEndpoint('tcp://10.0.0.5:5555'), 'tcp://10.0.0.5:5555');
  t.same(childEnv({ PATH: '/bin', TASKFARM_CONNECT: 'stale', TASKFARM_RANK: '9' }, { TASKFARM_RANK: '1' }), {
    PATH: '/bin',
    TASKFARM_RANK: '1',
  });
});

t.test('verdict: first failure in time decides; our own terminations after a clean rank 0 are fine', async (t) => {
  const none = new Set<NodeJS.Signals>();
  const outcome = (rank: number, order: number, status: RankOutcome['status'], sent = none): RankOutcome => ({
    rank,
    order,
    status,
    signalsSent: sent,
  });
  const ok = { code: 0, signal: null };
  t.same(judgeExits([outcome(0, 0, ok), outcome(1, 1, ok)]), { exitCode: 0, failures: [] });
  t.same(
    judgeExits([
      outcome(0, 2, ok),
      outcome(1, 1, { code: null, signal: 'SIGKILL' }),
      outcome(2, 0, { code: 3, signal: null }),
    ]),
    { exitCode: 3, failures: ['rank 2 failed with exit code 3', 'rank 1 was killed by SIGKILL'] },
  );
  const terminated = new Set<NodeJS.Signals>(['SIGTERM']);
  t.same(
    judgeExits([
      outcome(0, 0, ok),
      outcome(1, 1, { code: null, signal: 'SIGTERM' }, terminated),
      outcome(2, 2, { code: 143, signal: null }, terminated),
    ]).exitCode,
    0,
  );
  t.same(
    judgeExits([outcome(0, 0, { code: 1, signal: null }), outcome(1, 1, { code: null, signal: 'SIGTERM' }, terminated)]),
    { exitCode: 1, failures: ['rank 0 failed with exit code 1', 'rank 1 was killed by SIGTERM (after taskfarm sent it SIGTERM)'] },
  );
  t.same(judgeExits([outcome(0, 0, { code: null, signal: null, spawnError: new Error('spawn EAGAIN') })]), {
    exitCode: 1,
    failures: ['rank 0 could not be started: spawn EAGAIN'],
  });
});
