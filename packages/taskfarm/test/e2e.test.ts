/**
 * The core through the launcher: real processes, real ZeroMQ sockets on loopback. Each job's
 * output is checked for exactly the expected set of results.
 */
import t from 'tap';
import { launch, run } from './run-cli.ts';

const APP = (name: string) => `apps/${name}.ts`;
const resultLines = (stdout: string) => stdout.split('\n').filter((l) => l.startsWith('[0] result '));
const parse = (line: string) => JSON.parse(line.slice('[0] result '.length)) as unknown;

t.test('a throwing doWork reaches rank 0 as a TaskError and the run goes on', async (t) => {
  const { code, stdout } = await run(['run', '-n', '3', APP('throwing')]);
  t.equal(code, 0);
  t.same(resultLines(stdout).map(parse).sort(), [0, 1, 16, 25, 4].sort());
  t.match(stdout, /^\[0\] failed RangeError EPICKY task 3 is not welcome stack=true$/m, 'name, code, message and the worker’s stack');
});

t.test('a worker that dies mid-task: its task runs again elsewhere, every result arrives once', async (t) => {
  const { code, stdout, stderr } = await run(['run', '-n', '4', APP('dying-worker')]);
  const results = resultLines(stdout).map(parse) as Array<[number, number, number]>;
  t.same(results.map((r) => r[0]), Array.from({ length: 20 }, (_, i) => i), 'all 20 tasks, once each, in order');
  t.equal(results.filter((r) => r[2] === 2).length, 1, 'the lost task ran a second time, as attempt 2');
  t.match(stderr, /rank 1 was killed by SIGKILL; starting it again \(1\)/, 'the launcher restarts the dead rank');
  t.equal(code, 0, 'and the job ends well');
});

t.test('--restarts 0: a dead worker stays down and fails the launcher', async (t) => {
  const { code, stdout, stderr } = await run(['run', '-n', '4', '--restarts', '0', APP('dying-worker')]);
  t.equal(resultLines(stdout).length, 20, 'the job still completes on the other workers');
  t.match(stderr, /rank 1 was killed by SIGKILL$/m);
  t.not(code, 0);
});

t.test('a worker that joins late gets work; a duplicate rank is rejected with a clear error', async (t) => {
  const job = launch(['run', '-n', '2', APP('late-join')]);
  const halfway = await job.stdoutWhen((out) => /HALFWAY tcp:\S+\n/.test(out));
  const [, endpoint] = /HALFWAY (tcp:\S+)/.exec(halfway)!;

  const duplicate = await run(['worker', '--connect', endpoint!, '--rank', '1', APP('late-join')]);
  t.not(duplicate.code, 0, 'the duplicate exits with an error');
  t.match(duplicate.stderr, /RegistrationError.*rank 1 is held by another worker/s);

  const late = launch(['worker', '--connect', endpoint!, '--rank', '2', APP('late-join')]);
  const [job_, late_] = await Promise.all([job.done, late.done]);
  t.equal(job_.code, 0);
  t.equal(late_.code, 0, 'the late worker is terminated cleanly');
  const results = resultLines(job_.stdout).map(parse) as Array<[number, number]>;
  t.same(results.map((r) => r[0]).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  t.ok(results.slice(5).some((r) => r[1] === 2), 'rank 2 ran some of the tasks queued after it joined');
});

t.test('no workers at all ends in a clear error, not a hang', async (t) => {
  const { code, stderr } = await run(['run', '-n', '1', APP('throwing')]);
  t.not(code, 0);
  t.match(stderr, /NoWorkersError.*no worker ranks/);
});

t.test('workers that never connect end in NoWorkersError after workerWaitMs', async (t) => {
  const { code, stderr } = await run(['run', '-n', '1', APP('absent-workers')], { TASKFARM_WORKER_WAIT_MS: '300' });
  t.not(code, 0);
  t.match(stderr, /NoWorkersError.*no worker connected within 300 ms/);
});
