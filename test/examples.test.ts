/**
 * The five seed examples, each run with `taskfarm run -n N examples/exampleK.ts` as the README says:
 * each completes with exactly the expected set of results and behaves as the seed describes.
 */
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { run } from '../packages/taskfarm/test/run-cli.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const example = (k: number, n: number) => run(['run', '-n', String(n), `examples/example${k}.ts`], {}, ROOT);

/** The numbers captured by `re` (global) on the coordinator's lines, as a sorted list. */
function captured(stdout: string, re: RegExp): number[] {
  return [...stdout.matchAll(re)].map((m) => Number(m[1])).sort((a, b) => a - b);
}
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
function summary(stdout: string): Record<string, number> {
  const line = /^\[0\] Summary: (.*)$/m.exec(stdout)?.[1] ?? '';
  return Object.fromEntries(line.split(' ').map((kv) => kv.split('=')).map(([k, v]) => [k, Number(v)]));
}

t.test('example 1: a WorkQueue runs 10 tasks on 3 workers', async (t) => {
  const { code, stdout } = await example(1, 4);
  t.equal(code, 0);
  t.same(captured(stdout, /^\[0\] Master: worker finished its task and says "I completed my task \((\d+)\)"$/gm), range(10));
  for (const r of [0, 1, 2, 3]) t.match(stdout, new RegExp(`^\\[${r}\\] I am \\S+ rank ${r} \\(total 4\\)$`, 'm'));
  t.match(stdout, /^\[0\] Task completed \(rank 0\)$/m);
  // The job starts once every rank is up, as under mpiexec: each worker runs at least its first task.
  const ran = new Set([...stdout.matchAll(/^\[(\d+)\] +Worker \S+ rank \d+ executing/gm)].map((m) => m[1]));
  t.same([...ran].sort(), ['1', '2', '3'], 'every worker rank ran tasks');
});

t.test('example 2: the raw Master loop runs 10 tasks', async (t) => {
  const { code, stdout } = await example(2, 4);
  t.equal(code, 0);
  t.same(captured(stdout, /^\[0\] Master: worker \d+ finished its task and says "I completed my task \((\d+)\)"$/gm), range(10));
  t.same(captured(stdout, /^\[0\] Master: worker \d+ is going to do task (\d+)$/gm), range(10), 'each task dispatched once');
});

t.test('example 3: a worker keeps its resource while that resource has work', async (t) => {
  const { code, stdout } = await example(3, 4);
  t.equal(code, 0);
  t.same(captured(stdout, /^\[0\] Master: worker finished its task and says "I completed my task \((\d+)\)"$/gm), range(100));
  const acquisitions = [...stdout.matchAll(/acquires resource/g)].length;
  // 3 workers, 3 resources: one acquisition each, plus a switch when a resource runs dry. The seed
  // itself needs 4 with 2 workers and 9 with 4; FIFO without affinity pays about 200.
  t.ok(acquisitions >= 3 && acquisitions <= 9, `${acquisitions} acquisitions`);
  const s = summary(stdout);
  t.equal(s.results, 100);
  t.ok(s.same! >= 100 - 9, `${s.same} of 100 dispatches kept the worker's resource`);
});

t.test('example 4: one worker class serves three task types', async (t) => {
  const { code, stdout } = await example(4, 4);
  t.equal(code, 0);
  const results = [...stdout.matchAll(/^\[0\] Master: worker finished its TASK(\d) returning: (\[.*\])$/gm)];
  t.equal(results.length, 100);
  t.same(results.map((m) => (JSON.parse(m[2]!) as [boolean, number])[1]).sort((a, b) => a - b), range(100));
  t.same(new Set(results.map((m) => m[1])), new Set(['1', '2', '3']), 'every task type ran');
});

t.test('example 5: limits of 2 / unlimited / 1 workers are never exceeded, idle workers are lent', async (t) => {
  const { code, stdout } = await example(5, 9);
  t.equal(code, 0);
  const results = [...stdout.matchAll(/^\[0\] Master: worker finished its TASK\d returning: (\[.*\])$/gm)];
  t.same(results.map((m) => (JSON.parse(m[1]!) as [boolean, number])[1]).sort((a, b) => a - b), range(100));
  // Rank 0 reports each Master's worker count after every doWork().
  for (const [task, limit] of [[1, 2], [3, 1]] as const) {
    const counts = captured(stdout, new RegExp(`^\\[0\\] Master TASK${task} has (\\d+) workers$`, 'gm'));
    t.ok(counts.length > 0 && counts.every((n) => n <= limit), `TASK${task} had at most ${limit} workers: ${counts}`);
  }
  const s = summary(stdout);
  t.equal(s.results, 100);
  t.same([s.max1, s.max3], [2, 1], 'the limited Masters used their full allowance');
  // TASK2 takes 60 ms a task against 5-10 ms for the others, so TASK1 and TASK3 run dry first and
  // lend their idle workers to it.
  t.ok(s.lent! > 0 && s.max2! > 5, `lent=${s.lent}, TASK2 grew to ${s.max2} workers`);
});
