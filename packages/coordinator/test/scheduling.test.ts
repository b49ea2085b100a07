/** Master, WorkQueue and MultiWorkQueue on the real Farm, without sockets, on scripted sequences. */
import t from 'tap';
import { decodePayload } from '@taskfarm/protocol';
import { TaskError, WorkerNotReadyError, RankOwnedError } from '../src/errors.ts';
import { Master } from '../src/master.ts';
import { MultiWorkQueue } from '../src/multi-work-queue.ts';
import { WorkQueue } from '../src/work-queue.ts';
import { InMemoryHost } from './in-memory-host.ts';

t.test('Master: a worker is ready again only after its result is collected', async (t) => {
  const host = new InMemoryHost();
  const m = new Master([1, 2], { coordinator: host });
  t.same(m.getReadyWorkers(), [], 'ranks that have not connected are not ready');
  t.throws(() => m.run(1, 'x'), WorkerNotReadyError);
  host.join('p1', 1);
  t.same(m.getReadyWorkers(), [1]);
  m.run(1, ['task', 7]);
  t.same(decodePayload((host.lastTo('p1') as { payload: Uint8Array }).payload), ['task', 7], 'the worker got the data');
  t.throws(() => m.run(1, 'again'), { code: 'EWORKERNOTREADY', message: /running a task/ });
  host.complete('p1', 'done-7');
  t.same(m.getCompletedWorkers(), [1]);
  t.same(m.getReadyWorkers(), [], 'completed but not collected');
  t.throws(() => m.run(1, 'x'), { message: /not been collected/ });
  t.equal(m.getData(1), 'done-7');
  t.equal(m.getData(1), undefined, 'nothing left to collect');
  t.same(m.getReadyWorkers(), [1]);
  t.ok(m.done());
});

t.test('Master: a throwing task comes back as a TaskError value', async (t) => {
  const host = new InMemoryHost();
  const m = new Master([1], { coordinator: host });
  host.join('p1', 1);
  const id = m.run(1, 1);
  host.deliver('p1', { t: 'error', id, attempt: 1, error: { name: 'RangeError', message: 'bad', stack: 'RangeError: bad\n    at x' } });
  const v = m.getData(1) as TaskError;
  t.ok(v instanceof TaskError);
  t.equal(v.remote.name, 'RangeError');
  t.equal(v.rank, 1);
  t.match(v.message, /RangeError: bad/);
  t.match(v.stack, /on the worker/);
});

t.test('Master: ownership, add/remove/move only of ready workers', async (t) => {
  const host = new InMemoryHost();
  const a = new Master([1, 2], { coordinator: host });
  const b = new Master([], { coordinator: host });
  t.throws(() => b.addWorker(1), RankOwnedError);
  host.join('p1', 1);
  host.join('p2', 2);
  a.run(1, 'busy');
  t.notOk(a.removeWorker(1), 'a running worker stays');
  t.equal(a.moveWorker(b), 2, 'the first ready worker moves');
  t.same(b.getReadyWorkers(), [2]);
  t.equal(a.numWorkers(), 1);
  t.equal(a.moveWorker(b), null, 'nothing ready to move');
});

t.test('Master without ranks adopts every worker that joins', async (t) => {
  const host = new InMemoryHost();
  host.join('early');
  const m = new Master(undefined, { coordinator: host });
  t.same(m.getReadyWorkers(), [1], 'a worker already there is adopted');
  host.join('late');
  t.same(m.getReadyWorkers(), [1, 2], 'and one that joins later');
});

t.test('ranks: requested, taken, lowest free, reserved below the job size', async (t) => {
  const host = new InMemoryHost(4);
  t.equal(host.join('a', 2), 2);
  host.farm.connected('b');
  host.deliver('b', { t: 'register', rank: 2, host: 'h', pid: 9, instance: null });
  const reject = host.lastTo('b');
  t.match(reject, { t: 'reject', code: 'ERANKTAKEN', message: /rank 2 is held by another worker \(host test/ });
  t.equal(host.join('c'), 4, 'an anonymous worker gets a rank at or above the job size');
  host.deliver('x', { t: 'ready' });
  t.match(host.lastTo('x'), { t: 'reject', code: 'ENOTREGISTERED' }, 'an unknown peer is told to register');
});

t.test('WorkQueue: a lost worker’s task goes back to the head with its attempt raised', async (t) => {
  const host = new InMemoryHost();
  const m = new Master([1, 2], { coordinator: host });
  const q = new WorkQueue(m);
  q.addWork('first', 'R');
  q.addWork('second', 'R');
  host.join('p1', 1);
  q.doWork();
  const lost = host.workOf('p1');
  t.equal(lost.attempt, 1);
  host.disconnect('p1');
  t.equal(q.queued, 2, 'the task is queued again');
  host.join('p2', 2);
  q.doWork();
  const again = host.workOf('p2');
  t.equal(again.id, lost.id, 'the lost task runs first');
  t.equal(again.attempt, 2);
  t.equal(again.resource, 'R', 'it keeps its resource hint');
  // A late result of attempt 1 from a worker that re-registered is not accepted.
  host.join('p1', 1);
  host.deliver('p1', { t: 'result', id: lost.id, attempt: 1, payload: Buffer.from([0xc0]) });
  t.same(q.getCompletedWork(), [], 'a stale attempt is dropped');
  host.complete('p2', 'ok');
  t.same(q.getCompletedWork(), ['ok'], 'the current attempt is delivered once');
});

t.test('WorkQueue: affinity keeps workers on their resource (seed example 3)', async (t) => {
  const host = new InMemoryHost();
  const m = new Master([1, 2], { coordinator: host });
  const q = new WorkQueue(m);
  // A fixed mix of 60 tasks over 3 resources.
  const resources = Array.from({ length: 60 }, (_, i) => ((i * 7) % 3) + 1);
  resources.forEach((r, i) => q.addWork(i, r));
  host.join('p1', 1);
  host.join('p2', 2);
  const held = new Map<string, number | null>([['p1', null], ['p2', null]]);
  let acquisitions = 0;
  let results = 0;
  while (!q.done()) {
    q.doWork();
    for (const peer of ['p1', 'p2']) {
      if (host.lastTo(peer)?.t !== 'work') continue;
      const w = host.workOf(peer);
      if (held.get(peer) !== w.resource) {
        acquisitions++;
        held.set(peer, w.resource as number);
      }
      host.complete(peer, w.id);
    }
    results += q.getCompletedWork().length;
  }
  t.equal(results, 60);
  t.ok(acquisitions <= 4, `2 workers and 3 resources need at most 4 acquisitions, took ${acquisitions}`);
  t.ok(q.affinity.same > 50, 'most dispatches keep the same resource');
});

t.test('WorkQueue.submit/map resolve per task, in order, and reject with TaskError', async (t) => {
  const host = new InMemoryHost();
  const m = new Master([1], { coordinator: host });
  const q = new WorkQueue(m);
  host.join('p1', 1);
  const mapped = q.map([1, 2, 3]);
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setImmediate(r));
    const w = host.workOf('p1');
    const input = decodePayload((host.lastTo('p1') as { payload: Uint8Array }).payload) as number;
    host.complete('p1', input * 10);
    t.ok(w.id > 0);
  }
  t.same(await mapped, [10, 20, 30]);
  const failing = q.submit('boom');
  await new Promise((r) => setImmediate(r));
  const w = host.workOf('p1');
  host.deliver('p1', { t: 'error', id: w.id, attempt: 1, error: { name: 'Error', message: 'boom' } });
  await t.rejects(failing, TaskError);
});

t.test('MultiWorkQueue: round-robin deal respects limits; lending and borrowing never exceed them', async (t) => {
  const host = new InMemoryHost();
  const m1 = new Master([], { coordinator: host, taskType: 1 });
  const m2 = new Master([], { coordinator: host, taskType: 2 });
  const m3 = new Master([], { coordinator: host, taskType: 3 });
  const limits = new Map([[m1, 2], [m2, Infinity], [m3, 1]]);
  const ranks = [1, 2, 3, 4, 5, 6, 7, 8];
  const mwq = new MultiWorkQueue(ranks, [[1, m1, 2], [2, m2, null], [3, m3, 1]]);
  t.same([m1.ranks(), m2.ranks(), m3.ranks()], [[1, 4], [2, 5, 6, 7, 8], [3]], 'dealt round-robin up to each limit');
  for (const r of ranks) host.join(`p${r}`, r);

  // A scripted mix: a pseudo-random sequence of task types and completions.
  let seed = 42;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  // Task 1 and 3 run dry early and lend their workers to task 2; more task-1 work arrives later, so
  // Master 1 borrows workers back from the unlimited Master 2.
  for (let i = 0; i < 190; i++) mwq.addWork(i < 20 ? 1 : i < 40 ? 3 : 2, i);
  let lateWork = false;
  const peak = new Map([[m1, 0], [m2, 0], [m3, 0]]);
  let results = 0;
  const check = () => {
    for (const [m, limit] of limits) {
      t.ok(m.numWorkers() <= limit, 'limit holds');
      peak.set(m, Math.max(peak.get(m)!, m.runningCount));
    }
  };
  while (!mwq.done()) {
    mwq.doWork();
    check();
    const busy = ranks.filter((r) => host.farm.worker(r)?.state === 'busy');
    for (const r of busy) if (rnd() < 0.5) host.complete(`p${r}`, r);
    for (const id of [1, 2, 3]) results += mwq.getCompletedWork(id).length;
    check();
    if (!lateWork && mwq.queue(1).done() && m1.numWorkers() === 0) {
      lateWork = true;
      for (let i = 0; i < 10; i++) mwq.addWork(1, 1000 + i);
    }
  }
  t.ok(lateWork, 'Master 1 lent all its workers away once it ran dry');
  t.equal(results, 200);
  t.equal(peak.get(m1), 2, 'task 1 ran on 2 workers at most, and used them');
  t.equal(peak.get(m3), 1, 'task 3 on 1 at most');
  t.ok(mwq.moves.lent > 0, 'idle workers were lent');
  t.ok(mwq.moves.borrowed > 0, 'a Master under its limit borrowed');
});

t.test('MultiWorkQueue: a Master with no work lends its idle workers to one with work', async (t) => {
  const host = new InMemoryHost();
  const a = new Master([], { coordinator: host });
  const b = new Master([], { coordinator: host });
  const mwq = new MultiWorkQueue([1, 2, 3, 4], [['a', a, null], ['b', b, null]]);
  for (const r of [1, 2, 3, 4]) host.join(`p${r}`, r);
  for (let i = 0; i < 8; i++) mwq.addWork('b', i);
  mwq.doWork();
  t.equal(b.numWorkers(), 4, 'all of a’s idle workers were lent in one doWork()');
  t.equal(b.runningCount, 4);
  t.equal(mwq.moves.lent, 2);
});

t.test('MultiWorkQueue.waitForWorkers resolves once every Master\'s ranks have joined', async (t) => {
  const host = new InMemoryHost();
  const a = new Master([], { coordinator: host });
  const b = new Master([], { coordinator: host });
  const mwq = new MultiWorkQueue([1, 2, 3], [['a', a, 1], ['b', b, null]]);
  let up = false;
  const waiting = mwq.waitForWorkers().then(() => (up = true));
  host.join('p1', 1);
  host.join('p3', 3);
  await new Promise(setImmediate);
  t.notOk(up, 'rank 2 (b\'s) has not joined');
  host.join('p2', 2);
  await waiting;
  t.ok(up);
});

t.test('queues hand out and collect work through run()/getData() overrides (seed example 5)', async (t) => {
  const host = new InMemoryHost();
  class Tagged extends Master {
    override run(rank: number, data: unknown): number {
      return super.run(rank, ['T1', data]);
    }
    override getData(rank: number): unknown {
      const [, data] = super.getData(rank) as [string, unknown];
      return data;
    }
  }
  const m = new Tagged([1], { coordinator: host });
  const q = new WorkQueue(m);
  const id = q.addWork('x', 'R');
  host.join('p1', 1);
  q.doWork();
  const sent = host.lastTo('p1') as { id: number; resource: string; payload: Uint8Array };
  t.same(decodePayload(sent.payload), ['T1', 'x'], 'run() wrapped the data');
  t.equal(sent.id, id, 'the queue’s task id is kept');
  t.equal(sent.resource, 'R', 'and its resource');
  // Lost and requeued, it goes through run() again with the original data.
  host.disconnect('p1');
  host.join('p2', 1);
  q.doWork();
  t.same(decodePayload((host.lastTo('p2') as { payload: Uint8Array }).payload), ['T1', 'x'], 'wrapped once, not twice');
  host.complete('p2', ['T1', 'y']);
  t.same(q.getCompletedWork(), ['y'], 'getData() unwrapped the result');
});
