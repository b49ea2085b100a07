/**
 * The launcher's operations options (--metrics-port, --metrics-host, --log-level, --no-progress),
 * `taskfarm status` formatting, and the live progress line: drawn on a terminal (a pty from
 * script(1)), never on pipes.
 */
import { spawn } from 'node:child_process';
import t from 'tap';
import type { FarmStatus, ProgressMessage } from '@taskfarm/coordinator';
import { parseRunArgs, parseStatusArgs, parseWorkerArgs } from '../src/cli.ts';
import { formatProgress, ProgressLine } from '../src/progress.ts';
import { duration, formatStatus, statusUrl } from '../src/status.ts';
import { BIN, FIXTURES, run } from './run-cli.ts';

const JOB = new URL('../../../deploy/app/job.ts', import.meta.url).pathname;

t.test('run and worker take the operations options; bad values are usage errors', async (t) => {
  const script = `${FIXTURES}farm.ts`;
  t.match(parseRunArgs(['-n', '2', '--metrics-port', '9464', '--metrics-host', '0.0.0.0', '--log-level', 'debug', '--no-progress', script]), {
    metricsPort: 9464,
    metricsHost: '0.0.0.0',
    logLevel: 'debug',
    progress: false,
  });
  t.match(parseRunArgs(['-n', '2', script]), { metricsPort: undefined, logLevel: undefined, progress: true });
  t.match(parseWorkerArgs(['--connect', 'tcp://h:1', '--log-level', 'trace', script], {}), { logLevel: 'trace' });
  t.same(parseStatusArgs(['--json', '127.0.0.1:9464']), { url: 'http://127.0.0.1:9464/status', json: true });
  const bad: [string[], string][] = [
    [['run', '-n', '2', '--log-level', 'loud', 'farm.ts'], "taskfarm run: --log-level must be one of fatal, error, warn, info, debug, trace, silent, got 'loud'"],
    [['run', '-n', '2', '--metrics-port', '70000', 'farm.ts'], "taskfarm run: --metrics-port must be an integer from 0 to 65535, got '70000'"],
    [['worker', '--connect', 'tcp://h:1', '--log-level', 'x', 'farm.ts'], "taskfarm worker: --log-level must be one of fatal, error, warn, info, debug, trace, silent, got 'x'"],
    [['status'], "taskfarm status: missing URL of the coordinator's metrics server, e.g. http://127.0.0.1:9464"],
    [['status', 'ftp://x:1'], "taskfarm status: URL must look like http://HOST:PORT, got 'ftp://x:1'"],
  ];
  const results = await Promise.all(bad.map(([args]) => run(args)));
  bad.forEach(([args, message], i) => {
    const name = message.slice(0, message.indexOf(':'));
    t.same(results[i], { code: 2, stdout: '', stderr: `${message}\nsee ${name} --help\n` }, args.join(' '));
  });
  const help = await run(['status', '--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /^Usage: taskfarm status \[--json\] URL/);
  const runHelp = await run(['run', '--help']);
  for (const text of ['--metrics-port PORT', '--metrics-host HOST', '--log-level LEVEL', '--no-progress', 'TASKFARM_METRICS_PORT', 'TASKFARM_PROGRESS'])
    t.ok(runHelp.stdout.includes(text), `run --help mentions ${text}`);
});

t.test('the launcher passes the options on as environment: metrics to rank 0, the log level to all', async (t) => {
  // --grace: rank 0 exits at once; however slowly the worker starts, it must get to print.
  const { code, stdout } = await run(['run', '-n', '2', '--grace', '60', '--metrics-port', '0', '--metrics-host', '::1', '--log-level', 'debug', 'ops-env.mjs'], {});
  t.equal(code, 0);
  t.match(stdout, /^\[0\] rank=0 log=debug metricsPort=0 metricsHost=::1 progress=undefined$/m, 'no progress line on pipes');
  t.match(stdout, /^\[1\] rank=1 log=debug metricsPort=undefined metricsHost=undefined progress=undefined$/m);
  const stale = await run(['run', '-n', '1', 'ops-env.mjs'], { TASKFARM_PROGRESS: '1', TASKFARM_LOG_LEVEL: 'warn' });
  t.match(stale.stdout, /^\[0\] rank=0 log=warn metricsPort=undefined metricsHost=undefined progress=undefined$/m, 'a stale TASKFARM_PROGRESS is dropped; the level passes through');
});

t.test('status URLs and the status table', async (t) => {
  t.equal(statusUrl('http://h:9464'), 'http://h:9464/status');
  t.equal(statusUrl('h:9464/metrics'), 'http://h:9464/status');
  t.equal(statusUrl('https://h/prefix/'), 'https://h/prefix/status');
  t.equal(statusUrl('tcp://h:1'), null);
  t.same([duration(0.42), duration(75), duration(3 * 3600 + 4 * 60)], ['0.4s', '1m 15s', '3h 04m']);
  const status: FarmStatus = {
    coordinator: { endpoint: 'tcp://0.0.0.0:5555', host: 'coord', pid: 7, startedAt: '2026-01-01T00:00:00.000Z', uptimeSeconds: 125 },
    workers: [
      { rank: 1, host: 'w1', pid: 11, state: 'busy', task: { id: 42, type: 'render', attempt: 2, resource: 'r1', runningSeconds: 3.5 }, busySeconds: 90, connectedSeconds: 120 },
      { rank: 12, host: 'w2.example', pid: 1234, state: 'idle', task: null, busySeconds: 0, connectedSeconds: 0 },
    ],
    taskTypes: [{ taskType: 'render', queued: 3, inFlight: 1, submitted: 10, completed: 5, failed: 2, retried: 1, requeued: 1, abandoned: 0 }],
    totals: { workers: 2, joining: 0, idle: 1, busy: 1, terminating: 0, lost: 1, queued: 3, inFlight: 1, submitted: 10, completed: 5, failed: 2, retried: 1, requeued: 1, abandoned: 0, done: 6 },
  };
  t.equal(
    formatStatus(status),
    [
      'coordinator tcp://0.0.0.0:5555 on coord (pid 7), up 2m 05s',
      'workers: 2 (1 busy, 1 idle, 0 joining, 0 terminating); lost so far: 1',
      'tasks: 10 submitted, 6 done (5 completed, 1 failed), 1 in flight, 3 queued; 1 retried, 1 requeued',
      '',
      'RANK  HOST         PID  STATE  TASK            TYPE    RUNNING    BUSY  UTIL',
      '   1  w1            11  busy   42 (attempt 2)  render     3.5s  1m 30s   75%',
      '  12  w2.example  1234  idle   -               -             -    0.0s     -',
      '',
      'TASK TYPE  QUEUED  IN FLIGHT  COMPLETED  FAILED  RETRIED  REQUEUED',
      'render          3          1          5       2        1         1',
      '',
    ].join('\n'),
  );
});

t.test('the progress line: rate, ETA, output written above it, a plain last line', async (t) => {
  let now = 0;
  const out: string[] = [];
  const term = { columns: 200, write: (s: string) => out.push(s) };
  const line = new ProgressLine(term, () => now);
  const p = (done: number, extra: Partial<ProgressMessage> = {}): ProgressMessage => ({ taskfarm: 'progress', done, failed: 0, total: 100, queued: 100 - done - 2, busy: 2, idle: 1, joining: 0, ...extra });
  t.equal(line.text(), null, 'nothing before the first report');
  line.update(p(0));
  t.equal(out.pop(), '\r\x1b[2Ktaskfarm 0/100 done | elapsed 0.0s | workers 2 busy, 1 idle | 98 queued');
  now = 2000;
  line.update(p(10));
  t.equal(line.rate(), 5);
  t.equal(out.pop(), '\r\x1b[2Ktaskfarm 10/100 done | 5.0/s | ETA 18.0s | elapsed 2.0s | workers 2 busy, 1 idle | 88 queued');
  const stdout = { write: (s: string) => out.push(`STDOUT:${s}`) };
  line.above(stdout).write('[1] hello\n');
  t.same(out.splice(0), ['\r\x1b[2K', 'STDOUT:[1] hello\n', '\r\x1b[2Ktaskfarm 10/100 done | 5.0/s | ETA 18.0s | elapsed 2.0s | workers 2 busy, 1 idle | 88 queued'], 'cleared, written, drawn again');
  now = 20_000;
  line.update(p(100, { failed: 3, busy: 0, idle: 3, queued: 0 }));
  t.equal(line.rate(), 5, 'over the last 10 s window');
  line.stop();
  t.same(out.slice(-2), ['\r\x1b[2K', 'taskfarm 100/100 done (3 failed) | 5.0/s | elapsed 20.0s | workers 0 busy, 3 idle\n']);
  out.length = 0;
  line.above(stdout).write('after\n');
  t.same(out, ['STDOUT:after\n'], 'nothing drawn once stopped');
  t.equal(formatProgress(p(5, { joining: 2 }), null, 0), 'taskfarm 5/100 done | elapsed 0.0s | workers 2 busy, 1 idle, 2 joining | 93 queued');
  const narrow = new ProgressLine({ columns: 20, write: () => {} }, () => 0);
  narrow.update(p(1));
  t.equal(narrow.text()?.length, 19, 'cut to the terminal width');
});

t.test('taskfarm run draws the progress line on a terminal', async (t) => {
  const script = (cmd: string) =>
    new Promise<{ code: number | null; out: string }>((resolve) => {
      const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(TASKFARM_|_TAPJS_|NODE_OPTIONS$)/.test(k)));
      const child = spawn('script', ['-qec', cmd, '/dev/null'], {
        cwd: FIXTURES,
        env: { ...env, JOB_WORKERS: '2', JOB_TASKS: '20', JOB_TASK_MS: '10', TERM: 'dumb' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
      child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
      child.on('close', (code) => resolve({ code, out }));
    });
  const { hasCommand } = await import('../../../test/helpers/tools.ts');
  if (!hasCommand('script')) {
    if (process.env.CI === 'true') t.fail('script(1) (util-linux) is missing');
    else t.plan(0, 'needs script(1) from util-linux for a pty');
    return;
  }
  const tty = await script(`${process.execPath} ${BIN} run -n 3 ${JOB}`);
  t.equal(tty.code, 0, 'the job exits 0');
  if (tty.code !== 0) t.comment(tty.out);
  t.match(tty.out, /\r\x1b\[2Ktaskfarm \d+\/20 done/, 'the line is drawn and redrawn');
  t.match(tty.out, /\x1b\[2Ktaskfarm 20\/20 done \|[^\r\n\x1b]*workers 0 busy, 0 idle\r?\n/, 'the last state stays, as a line of its own');
  t.match(tty.out, /\[0\] JOB DONE tasks=20/);
  const [on, off] = await Promise.all([script(`${process.execPath} ${BIN} run -n 1 ops-env.mjs`), script(`${process.execPath} ${BIN} run -n 1 --no-progress ops-env.mjs`)]);
  t.match(on.out, /^\[0\] rank=0 .* progress=1\r?$/m, 'on a terminal rank 0 is asked for progress reports');
  t.match(off.out, /^\[0\] rank=0 .* progress=undefined\r?$/m, '--no-progress: no line, no reports');
});
