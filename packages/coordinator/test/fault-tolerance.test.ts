/** Failure handling in the pure core, on scripted sequences: no sockets, a scripted clock. */
import t from 'tap';
import { decodePayload, encodePayload, type Work } from '@taskfarm/protocol';
import { TaskError } from '../src/errors.ts';
import { Master } from '../src/master.ts';
import { WorkQueue } from '../src/work-queue.ts';
import { InMemoryHost } from './in-memory-host.ts';

const fail = (host: InMemoryHost, peer: string, code = 'EBOOM') => {
  const w = host.workOf(peer);
  host.deliver(peer, { t: 'error', id: w.id, attempt: w.attempt, error: { name: 'Error', message: 'boom', code } });
  return w;
};

t.test('results are acknowledged, accepted or stale; heartbeats are answered', async (t) => {
  const host = new InMemoryHost();
  const q = new WorkQueue(new Master([1], { coordinator: host }));
  host.join('p1', 1);
  q.addWork('x');
  q.doWork();
  const w = host.workOf('p1');
  host.complete('p1', 'ok');
  t.match(host.lastTo('p1'), { t: 'ack', id: w.id, attempt: w.attempt });
  host.deliver('p1', { t: 'result', id: w.id, attempt: w.attempt, payload: Buffer.from([0xc0]) });
  t.match(host.lastTo('p1'), { t: 'ack', id: w.id }, 'a duplicate is acknowledged too, so the worker forgets it');
  t.same(q.getCompletedWork(), ['ok'], 'and delivered once');
  host.deliver('p1', { t: 'heartbeat' });
  t.match(host.lastTo('p1'), { t: 'heartbeat' });
});

t.test('retries are opt-in, with exponential backoff, then the error is reported', async (t) => {
  const host = new InMemoryHost();
  const q = new WorkQueue(new Master([1], { coordinator: host }), { retries: 2, backoffMs: 100 });
  host.join('p1', 1);
  const id = q.addWork('flaky');
  q.doWork();
  fail(host, 'p1');
  t.same(q.getCompletedWork(), [], 'the first failure is retried, not reported');
  t.equal(q.queued, 1);
  q.doWork();
  t.equal(host.lastTo('p1')?.t, 'ack', 'not sent again before its backoff');
  host.now += 100;
  q.doWork();
  t.match(host.workOf('p1'), { id, attempt: 2 });
  fail(host, 'p1');
  t.same(q.getCompletedWork(), []);
  host.now += 150;
  q.doWork();
  t.equal(host.lastTo('p1')?.t, 'ack', 'the second backoff is twice the first');
  host.now += 60;
  q.doWork();
  t.match(host.workOf('p1'), { id, attempt: 3 });
  fail(host, 'p1', 'ELAST');
  const [err] = q.getCompletedWork() as TaskError[];
  t.ok(err instanceof TaskError);
  t.equal(err!.code, 'ELAST', 'after the last retry the last error is reported');
  t.equal(q.counts.retried, 2);
  t.ok(q.done());
});

t.test('without retries a failure is reported at once (the seed’s behaviour); per-task retries override', async (t) => {
  const host = new InMemoryHost();
  const q = new WorkQueue(new Master([1], { coordinator: host }));
  host.join('p1', 1);
  q.addWork('a');
  q.addWork('b', null, { retries: 1, backoffMs: 0 });
  q.doWork();
  fail(host, 'p1');
  t.equal((q.getCompletedWork()[0] as TaskError).code, 'EBOOM');
  q.doWork();
  fail(host, 'p1');
  t.same(q.getCompletedWork(), []);
  q.doWork();
  t.equal(host.workOf('p1').attempt, 2, 'the task with retries runs again');
});

t.test('a poison task that kills its workers is failed after maxLosses; a handed-back task is no loss', async (t) => {
  const host = new InMemoryHost();
  const q = new WorkQueue(new Master(undefined, { coordinator: host }), { maxLosses: 2 });
  const id = q.addWork('poison');
  host.join('a');
  q.doWork();
  host.deliver('a', { t: 'bye' });
  t.equal(q.queued, 1, 'handed back on a bye: queued again');
  host.join('b');
  q.doWork();
  t.match(host.workOf('b'), { id, attempt: 2 });
  host.disconnect('b');
  host.join('c');
  q.doWork();
  host.disconnect('c');
  const [err] = q.getCompletedWork() as TaskError[];
  t.equal(err!.code, 'EWORKERLOST');
  t.match(err!.message, /in flight on 2 workers that were lost/);
  t.ok(q.done());
});

t.test('cancel: a queued task never runs; a running one is aborted and reported ECANCELLED once', async (t) => {
  const host = new InMemoryHost();
  const q = new WorkQueue(new Master([1], { coordinator: host }));
  host.join('p1', 1);
  const running = q.addWork('long');
  const queued = q.addWork('never', 'R');
  q.doWork();
  t.ok(q.cancel(queued));
  t.equal((q.getCompletedWork()[0] as TaskError).code, 'ECANCELLED');
  t.ok(q.cancel(running));
  t.match(host.lastTo('p1'), { t: 'cancel', id: running, attempt: 1 });
  t.same(q.getCompletedWork(), [], 'reported when the worker answers, and the worker stays busy till then');
  host.deliver('p1', { t: 'result', id: running, attempt: 1, payload: Buffer.from([0xc0]) });
  const [err] = q.getCompletedWork() as TaskError[];
  t.equal(err!.code, 'ECANCELLED', 'whatever it returned');
  t.notOk(q.cancel(12345), 'unknown task');
  t.ok(q.done());
});

t.test('submit() with an AbortSignal cancels', async (t) => {
  const host = new InMemoryHost();
  const q = new WorkQueue(new Master([1], { coordinator: host }));
  const ac = new AbortController();
  const p = q.submit('x', null, { signal: ac.signal });
  ac.abort();
  await t.rejects(p, { code: 'ECANCELLED' });
});

t.test('timeouts: sent to the worker; a task unanswered past timeout + grace fails ETIMEDOUT', async (t) => {
  const host = new InMemoryHost();
  const q = new WorkQueue(new Master([1, 2], { coordinator: host }), { timeoutMs: 1000, retries: 1, backoffMs: 0 });
  host.join('p1', 1);
  q.addWork('stuck');
  q.doWork();
  t.match(host.lastTo('p1'), { t: 'work', timeoutMs: 1000 });
  host.now += 1500;
  host.farm.tick(host.now, 1000);
  t.equal(host.farm.worker(1)!.state, 'busy', 'within the grace');
  host.now += 600;
  host.farm.tick(host.now, 1000);
  host.flush();
  t.equal(host.farm.worker(1)!.state, 'terminating', 'the stuck worker is told to go');
  t.match(host.lastTo('p1'), { t: 'terminate' });
  t.same(q.getCompletedWork(), [], 'the timeout is a failure: retried per policy');
  host.join('p2', 2);
  q.doWork();
  t.match(host.workOf('p2'), { attempt: 2 });
  host.now += 1;
  // Its process recycled, the stuck worker's connection drops: nothing more happens to the task.
  host.disconnect('p1');
  host.complete('p2', 'done');
  t.same(q.getCompletedWork(), ['done']);
});

t.test('a worker recycled for ignoring its timeout: the task fails as timed out, not as a loss', async (t) => {
  const host = new InMemoryHost();
  const q = new WorkQueue(new Master([1], { coordinator: host }), { timeoutMs: 1000 });
  host.join('p1', 1);
  q.addWork('stuck');
  q.doWork();
  host.now += 3000;
  host.disconnect('p1');
  t.equal((q.getCompletedWork()[0] as TaskError).code, 'ETIMEDOUT');
});

t.test('a worker told to terminate that hangs up without its bye left as told; one holding a task is lost', async (t) => {
  const left: string[] = [];
  const host = new InMemoryHost(1, {}, { left: (w, reason) => void left.push(`${w.rank}:${reason}`) });
  const m = new Master([1, 2], { coordinator: host });
  const q = new WorkQueue(m);
  host.join('p1', 1);
  host.join('p2', 2);
  q.addWork('long');
  q.doWork();
  const busy = host.farm.worker(1)?.state === 'busy' ? 'p1' : 'p2';
  const idle = busy === 'p1' ? 'p2' : 'p1';
  void m.terminateWorkers();
  host.flush();
  t.match(host.lastTo(idle), { t: 'terminate' }, 'both are told to terminate');
  t.match(host.lastTo(busy), { t: 'terminate' });
  host.disconnect(idle);
  host.disconnect(busy);
  t.same(left, [`${idle === 'p1' ? 1 : 2}:bye`, `${busy === 'p1' ? 1 : 2}:disconnected`], 'the idle one left (its bye lost with its process), the busy one was lost');
  t.equal(q.queued, 1, 'and the task it held is queued again');
});

t.test('an idle worker silent past livenessMs is lost; a busy one is not', async (t) => {
  const host = new InMemoryHost();
  const q = new WorkQueue(new Master([1, 2], { coordinator: host }));
  host.join('idle', 1);
  host.join('busy', 2);
  q.addWork('long');
  q.doWork();
  t.equal(host.farm.worker(1)?.state, 'busy', 'rank 1 got the task');
  host.now += 10_000;
  host.farm.tick(host.now, 0);
  t.ok(host.farm.worker(1), 'the busy worker stays');
  t.notOk(host.farm.worker(2), 'the silent idle one is gone');
});

t.test('a worker that reconnects before its old connection was noticed dead keeps its rank and task', async (t) => {
  const host = new InMemoryHost();
  const q = new WorkQueue(new Master([3], { coordinator: host }));
  host.farm.connected('old');
  host.deliver('old', { t: 'register', rank: 3, host: 'h', pid: 7, instance: 'abc' });
  host.deliver('old', { t: 'ready' });
  const id = q.addWork('x');
  q.doWork();
  host.farm.connected('new');
  host.deliver('new', { t: 'register', rank: 3, host: 'h', pid: 7, instance: 'abc' });
  t.match(host.lastTo('new'), { t: 'welcome', rank: 3 });
  t.same(host.sent.filter(([p]) => p === 'new').map(([, e]) => e.t), ['welcome'], 'a window-1 worker is not sent its task again: it cannot take a second');
  host.deliver('new', { t: 'ready' });
  host.deliver('new', { t: 'result', id, attempt: 1, payload: Buffer.from([0xa2, 0x6f, 0x6b]) });
  t.same(q.getCompletedWork(), ['ok'], 'its result, resent on the new connection, is accepted');
  host.disconnect('old');
  t.equal(host.farm.worker(3)?.peer, 'new', 'the old connection dropping later changes nothing');
  t.same(decodePayload(Buffer.from([0xa2, 0x6f, 0x6b])), 'ok');
});

t.test('a windowed worker that reconnects is sent its tasks in flight again, marked resent: the old connection may have lost them', async (t) => {
  const host = new InMemoryHost();
  const q = new WorkQueue(new Master([3], { coordinator: host }));
  host.farm.connected('old');
  host.deliver('old', { t: 'register', rank: 3, host: 'h', pid: 7, instance: 'abc', window: 8 });
  host.deliver('old', { t: 'ready' });
  for (let i = 0; i < 10; i++) q.addWork(i);
  q.doWork();
  const [first] = host.worksTo('old');
  host.deliver('old', { t: 'results', seq: 1, us: 10, results: [{ t: 'result', id: first!.id, attempt: 1, payload: encodePayload(0) }] });
  q.doWork();
  const inFlight = host.worksTo('old').slice(1).map((w) => w.id);
  t.ok(inFlight.length > 1, `several in flight (${inFlight.length})`);
  host.farm.connected('new');
  host.deliver('new', { t: 'register', rank: 3, host: 'h', pid: 7, instance: 'abc', window: 8 });
  const resent = host.sent.filter(([p, e]) => p === 'new' && e.t === 'work').map(([, e]) => e as Work);
  t.same(resent.map((w) => w.id), inFlight, 'every task in flight, in the order sent');
  t.ok(resent.every((w) => w.resent === true && w.attempt === 1), 'marked resent, same attempt');
  t.equal(host.farm.worker(3)?.peer, 'new');
});

t.test('map() with an item msgpack cannot carry throws at once and runs none of the items', async (t) => {
  const host = new InMemoryHost();
  const q = new WorkQueue(new Master([1], { coordinator: host }));
  t.throws(() => q.map([1, 2, () => 3]), { code: 'EPAYLOAD' });
  t.equal(q.queued, 0, 'the items before it were taken back');
  host.join('p1', 1);
  q.doWork();
  t.notOk(host.sent.some(([, e]) => e.t === 'work'), 'nothing was dispatched');
});
