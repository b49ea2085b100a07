import t from 'tap';
import { AffinityQueue } from '../src/affinity.ts';
import { DEFAULT_POLICY, type Task } from '../src/farm.ts';
import type { Key } from '@taskfarm/protocol';

let nextId = 1;
const task = (resource: Key | null): Task => ({
  id: nextId, key: nextId++, attempt: 1, type: null, resource, payload: Buffer.alloc(0), raw: false, data: undefined, queuedAt: 0, startedAt: 0,
  policy: DEFAULT_POLICY, failures: 0, losses: 0, notBefore: 0, cancelled: false,
});

t.test('the seed order: same resource, then none, then unheld, then shared', async (t) => {
  const q = new AffinityQueue();
  const a1 = task('A'), a2 = task('A'), b1 = task('B'), n1 = task(null), c1 = task('C');
  for (const x of [a1, a2, b1, n1, c1]) q.push(x);
  // Worker 1 holds nothing: no-resource work comes first.
  t.same(q.pick(1), { task: n1, kind: 'none' });
  // No anonymous work left: the first resource nobody holds (arrival order).
  t.same(q.pick(1), { task: a1, kind: 'unheld' });
  t.equal(q.heldBy(1), 'A');
  // Worker 2 gets B: A is held by worker 1.
  t.same(q.pick(2), { task: b1, kind: 'unheld' });
  // Worker 1 stays on A while A has work.
  t.same(q.pick(1), { task: a2, kind: 'same' });
  // Worker 3: only C is left and nobody holds it.
  t.same(q.pick(3), { task: c1, kind: 'unheld' });
  t.equal(q.pick(3), null);
  t.equal(q.length, 0);
});

t.test('a resource held by others is shared when nothing else is left', async (t) => {
  const q = new AffinityQueue();
  const a = [task('A'), task('A'), task('A')];
  a.forEach((x) => q.push(x));
  t.equal(q.pick(1)!.kind, 'unheld');
  t.same(q.pick(2), { task: a[1], kind: 'shared' });
  t.equal(q.heldBy(2), 'A');
  t.same(q.pick(1), { task: a[2], kind: 'same' });
});

t.test('a busy worker gets no work for a resource another worker holds', async (t) => {
  const q = new AffinityQueue();
  const a = [task('A'), task('A')], b = [task('B'), task('B')], n = task(null);
  [...a, ...b].forEach((x) => q.push(x));
  t.equal(q.pick(1)!.kind, 'unheld', 'worker 1 takes A');
  t.equal(q.pick(2)!.kind, 'unheld', 'worker 2 takes B');
  t.same(q.pick(1, true), { task: a[1], kind: 'same' }, 'more of its own resource, busy or not');
  t.equal(q.pick(1, true), null, 'A is done; B is held by worker 2: not behind worker 1\'s tasks');
  t.equal(q.heldBy(1), 'A', 'so worker 1 still holds A');
  q.push(n);
  t.same(q.pick(1, true), { task: n, kind: 'none' }, 'work that needs no resource, busy or not');
  const c = task('C');
  q.push(c);
  t.same(q.pick(1, true), { task: c, kind: 'unheld' }, 'nor one nobody holds');
  t.same(q.pick(1), { task: b[1], kind: 'shared' }, 'once it runs dry, it shares B');
  t.equal(q.length, 0);
});

t.test('a task without resource releases what the worker held', async (t) => {
  const q = new AffinityQueue();
  q.push(task('A'));
  t.equal(q.pick(1)!.kind, 'unheld');
  const n = task(null);
  q.push(n);
  q.push(task('A'));
  // Worker 1 holds A and A has work: same beats none.
  t.equal(q.pick(1)!.kind, 'same');
  t.same(q.pick(1), { task: n, kind: 'none' });
  t.equal(q.heldBy(1), null);
  q.push(task('A'));
  // Nobody holds A any more, so worker 2 takes it as unheld.
  t.equal(q.pick(2)!.kind, 'unheld');
});

t.test('requeue puts work back before what was queued after it; release frees the resource', async (t) => {
  const q = new AffinityQueue();
  const first = task('A'), second = task('A');
  q.push(first);
  q.push(second);
  const picked = q.pick(1)!.task;
  t.equal(picked, first);
  q.requeue(picked);
  t.equal(q.pick(1)!.task, first, 'requeued task runs before the rest');
  q.release(1);
  t.equal(q.pick(2)!.kind, 'unheld', 'a departed worker no longer holds its resource');
});

t.test('tasks requeued one by one keep the order they were queued in, whatever order they come back in', async (t) => {
  const q = new AffinityQueue();
  const tasks = Array.from({ length: 6 }, () => task(null));
  tasks.forEach((x) => q.push(x));
  const out = [q.pick(1)!.task, q.pick(1)!.task, q.pick(1)!.task, q.pick(1)!.task];
  for (const i of [1, 3, 0, 2]) q.requeue(out[i]!);
  t.same(Array.from({ length: 6 }, () => q.pick(1)!.task.id), tasks.map((x) => x.id), 'the queue is as it was');
});

t.test('FIFO within a queue over many tasks, and many resources', async (t) => {
  const q = new AffinityQueue();
  const tasks = Array.from({ length: 1000 }, (_, i) => task(i % 100));
  tasks.forEach((x) => q.push(x));
  const seen = new Map<Key, number[]>();
  for (let i = 0; i < 1000; i++) {
    const p = q.pick(i % 7)!;
    const list = seen.get(p.task.resource!) ?? [];
    list.push(p.task.id);
    seen.set(p.task.resource!, list);
  }
  t.equal(q.length, 0);
  for (const ids of seen.values()) t.same(ids, [...ids].sort((a, b) => a - b));
  t.equal(seen.size, 100);
});
