/**
 * Windows (window.ts): several tasks in flight on a worker that agreed to it, sized by its pace,
 * with the Farm's bookkeeping of the running task and the backlog behind it. Sockets-free: the real
 * Farm, Master and WorkQueue on an InMemoryHost, playing the workers' side.
 */
import { encodePayload, type WorkerMessage } from '@taskfarm/protocol';
import t from 'tap';
import { TaskError, WorkerNotReadyError } from '../src/errors.ts';
import { Master } from '../src/master.ts';
import { DEFAULT_WINDOW, windowFor, WorkerPace } from '../src/window.ts';
import { WorkQueue } from '../src/work-queue.ts';
import { InMemoryHost } from './in-memory-host.ts';

/** A queue on an adopting Master, with `items` queued. */
function setup(items: unknown[] = []) {
  const host = new InMemoryHost();
  const master = new Master(undefined, { coordinator: host });
  const queue = new WorkQueue(master);
  for (const item of items) queue.addWork(item);
  return { host, master, queue };
}

/** The worker returns its tasks `ids` in one `results` envelope, having spent `us` µs on each. */
function results(host: InMemoryHost, peer: string, tasks: Array<{ id: number; attempt: number }>, usEach = 10, seq = 1): void {
  const msg: WorkerMessage = { t: 'results', seq, us: usEach * tasks.length, results: tasks.map((w) => ({ t: 'result', id: w.id, attempt: w.attempt, payload: encodePayload(`r${w.id}`) })) };
  host.deliver(peer, msg);
}

t.test('windowFor: 1 while the pace is unknown or tasks are long, else about targetMs of work, within [2, max]', async (t) => {
  t.equal(windowFor(null, 256, DEFAULT_WINDOW), 1, 'unknown pace: one task, it might be long');
  t.equal(windowFor(0.001, 256, DEFAULT_WINDOW), 256, 'empty tasks: the whole window');
  t.equal(windowFor(1, 256, DEFAULT_WINDOW), 40, '1 ms tasks: 40 ms of work');
  t.equal(windowFor(15, 256, DEFAULT_WINDOW), 3, '15 ms tasks: 40 ms of work too');
  t.equal(windowFor(19, 256, { ...DEFAULT_WINDOW, targetMs: 5 }), 2, 'one running, one waiting at least');
  t.equal(windowFor(20, 256, DEFAULT_WINDOW), 1, 'long tasks run one at a time');
  t.equal(windowFor(0.001, 1, DEFAULT_WINDOW), 1, 'a window-1 worker stays at 1');
  const pace = new WorkerPace(64);
  pace.observe(64 * 50_000, 64);
  t.equal(pace.taskMs, 50);
  pace.observe(10, 1);
  t.ok(pace.taskMs! > 30, 'one quick task does not undo a batch of slow ones');
  pace.observe(64 * 10, 64);
  t.ok(pace.taskMs! < 1, 'a batch of quick ones does');
});

t.test('a window-1 worker (no register.window) gets one task at a time, as before', async (t) => {
  const { host, queue } = setup([1, 2, 3]);
  host.join('p1');
  t.notOk('window' in (host.sent.find(([, e]) => e.t === 'welcome')![1] as { settings: object }).settings, 'its welcome says nothing of windows');
  queue.doWork();
  t.equal(host.worksTo('p1').length, 1);
  host.deliver('p1', { t: 'result', id: 1, attempt: 1, payload: encodePayload(1), us: 1 });
  queue.doWork();
  t.equal(host.worksTo('p1').length, 2, 'the next one only once the first is back');
});

t.test('the window opens once the pace is known, and results arrive in batches', async (t) => {
  const { host, queue } = setup(Array.from({ length: 20 }, (_, i) => i));
  host.join('p1', null, 8);
  const welcome = host.sent.find(([, e]) => e.t === 'welcome')![1] as { settings: { window?: number } };
  t.equal(welcome.settings.window, 8, 'the agreed window is in the welcome');
  queue.doWork();
  t.equal(host.worksTo('p1').length, 1, 'one task until the first is back');
  results(host, 'p1', host.worksTo('p1'));
  t.same(host.lastTo('p1'), { t: 'receipt', seq: 1 }, 'the batch is receipted');
  queue.doWork();
  const sent = host.worksTo('p1');
  t.equal(sent.length, 9, 'then the whole window of 8');
  results(host, 'p1', sent.slice(1, 5), 10, 2);
  queue.doWork();
  t.equal(host.worksTo('p1').length, 13, 'four back, four more out');
  t.same(queue.getCompletedWork(), ['r1', 'r2', 'r3', 'r4', 'r5'], 'results reach the application in order');
});

t.test('a short queue is spread over the workers rather than filling one window', async (t) => {
  const { host, queue } = setup([0, 1]);
  host.join('p1', null, 8);
  host.join('p2', null, 8);
  queue.doWork();
  for (const p of ['p1', 'p2']) results(host, p, host.worksTo(p));
  for (let i = 0; i < 4; i++) queue.addWork(i);
  queue.doWork();
  t.equal(host.worksTo('p1').length, 3);
  t.equal(host.worksTo('p2').length, 3);
});

t.test('a window does not run past its resource into one another worker holds', async (t) => {
  // Example 3's shape: a worker whose resource runs out must not queue the next resource's tasks
  // behind its own while that resource's holder is about to run dry (both would acquire it).
  const host = new InMemoryHost();
  const queue = new WorkQueue(new Master(undefined, { coordinator: host }));
  for (let i = 0; i < 3; i++) queue.addWork(`a${i}`, 'A');
  for (let i = 0; i < 6; i++) queue.addWork(`b${i}`, 'B');
  host.join('p1', null, 8);
  host.join('p2', null, 8);
  queue.doWork();
  const first = { p1: host.worksTo('p1'), p2: host.worksTo('p2') };
  t.same([first.p1.map((w) => w.resource), first.p2.map((w) => w.resource)], [['A'], ['B']], 'one task each, a resource each');
  for (const p of ['p1', 'p2'] as const) results(host, p, first[p]);
  queue.doWork();
  t.same(host.worksTo('p1').map((w) => w.resource), ['A', 'A', 'A'], 'p1 gets the rest of A, and none of B');
  t.same(host.worksTo('p2').map((w) => w.resource), ['B', 'B', 'B', 'B', 'B', 'B'], 'B stays with its holder');
  t.equal(queue.queued, 0);
  for (let i = 6; i < 9; i++) queue.addWork(`b${i}`, 'B');
  results(host, 'p1', host.worksTo('p1').slice(1));
  queue.doWork();
  const shared = host.worksTo('p1').slice(4).map((w) => w.resource);
  t.ok(shared.length > 0 && shared.every((r) => r === 'B'), 'p1, run dry, shares B');
  t.equal(queue.queued, 0);
});

t.test('long tasks close the window to 1', async (t) => {
  const { host, queue } = setup(Array.from({ length: 5 }, (_, i) => i));
  host.join('p1', null, 8);
  queue.doWork();
  results(host, 'p1', host.worksTo('p1'), 30_000);
  queue.doWork();
  t.equal(host.worksTo('p1').length, 2, 'one at a time');
});

t.test('a lost worker: its running task counts as lost, its backlog goes back unharmed and first', async (t) => {
  const { host, queue } = setup();
  const ids = Array.from({ length: 10 }, (_, i) => queue.addWork(i, null, { maxLosses: 1 }));
  host.join('p1', null, 4);
  queue.doWork();
  results(host, 'p1', host.worksTo('p1'));
  queue.doWork();
  const inFlight = host.worksTo('p1').slice(1);
  t.same(inFlight.map((w) => w.id), ids.slice(1, 5));
  host.disconnect('p1');
  const lost = queue.takeResults().find((r) => r.id === ids[1]);
  t.match(lost, { ok: false }, 'the running task, lost once with maxLosses 1, fails');
  t.equal((lost as { error: TaskError }).error.code, 'EWORKERLOST');
  t.equal(queue.counts.requeued, 3, 'the three waiting behind it are requeued: they never ran');
  host.join('p2', null, 4);
  queue.doWork();
  t.same(host.worksTo('p2').map((w) => [w.id, w.attempt]), [[ids[2], 2]], 'the requeued tasks run first');
  results(host, 'p2', host.worksTo('p2'));
  queue.doWork();
  t.same(host.worksTo('p2').map((w) => w.id), ids.slice(2, 7), 'in the order they were queued');
});

t.test('cancel reaches a task waiting in a backlog; the worker answers for it alone', async (t) => {
  const { host, queue } = setup([0]);
  host.join('p1', null, 4);
  queue.doWork();
  results(host, 'p1', host.worksTo('p1'));
  const ids = [queue.addWork('a'), queue.addWork('b'), queue.addWork('c')];
  queue.doWork();
  t.ok(queue.cancel(ids[1]!), 'a task in flight is cancelled');
  const cancel = host.lastTo('p1');
  t.match(cancel, { t: 'cancel', id: ids[1], attempt: 1 });
  host.deliver('p1', { t: 'error', id: ids[1]!, attempt: 1, error: { name: 'TaskAbortedError', message: 'cancelled', code: 'ECANCELLED' } });
  const b = queue.takeResults().find((r) => r.id === ids[1]);
  t.match(b, { ok: false });
  t.equal((b as { error: TaskError }).error.code, 'ECANCELLED');
  results(host, 'p1', host.worksTo('p1').filter((w) => w.id !== ids[1]), 10, 2);
  t.same(queue.getCompletedWork(), [`r${ids[0]}`, `r${ids[2]}`], 'the others complete');
  t.ok(queue.done());
});

t.test('a stale result in a batch is dropped and counted; the batch is still receipted', async (t) => {
  const dropped: string[] = [];
  const { host, queue } = setup([0]);
  host.farm.observer.dropped = (_p, reason) => dropped.push(reason);
  host.join('p1', null, 4);
  queue.doWork();
  const [w] = host.worksTo('p1');
  results(host, 'p1', [w!, { id: 999, attempt: 1 }]);
  t.same(dropped, ['stale-result']);
  t.same(host.lastTo('p1'), { t: 'receipt', seq: 1 });
  t.same(queue.getCompletedWork(), [`r${w!.id}`]);
});

t.test('Master.run keeps the seed\'s one task per worker, whatever its window', async (t) => {
  const host = new InMemoryHost();
  const master = new Master([1], { coordinator: host });
  host.join('p1', 1, 8);
  master.run(1, 'x');
  t.throws(() => master.run(1, 'y'), WorkerNotReadyError);
});

t.test('the tasks in flight on all workers together are bounded, and shared out', async (t) => {
  const host = new InMemoryHost(1, { maxTotal: 6 });
  const queue = new WorkQueue(new Master(undefined, { coordinator: host }));
  for (let i = 0; i < 40; i++) queue.addWork(i);
  for (const p of ['p1', 'p2']) host.join(p, null, 8);
  queue.doWork();
  for (const p of ['p1', 'p2']) results(host, p, host.worksTo(p));
  queue.doWork();
  t.equal(host.worksTo('p1').length - 1 + host.worksTo('p2').length - 1, 6, 'six in flight, though each window would take eight');
  t.equal(host.worksTo('p1').length, host.worksTo('p2').length, 'shared out evenly');
});

t.test('a busy worker is refilled once a quarter of its window is free, not a task at a time', async (t) => {
  // maxTotal 32 over two workers: windows of 16. Refilling each task as it comes back would cost a
  // message per task (with 1,000 workers at maxTotal, messages of one or two tasks).
  const host = new InMemoryHost(1, { maxTotal: 32 });
  const queue = new WorkQueue(new Master(undefined, { coordinator: host }));
  for (let i = 0; i < 200; i++) queue.addWork(i);
  for (const p of ['p1', 'p2']) host.join(p, null, 64);
  queue.doWork();
  for (const p of ['p1', 'p2']) results(host, p, host.worksTo(p));
  queue.doWork();
  t.same([host.worksTo('p1').length, host.worksTo('p2').length], [17, 17], 'the first task, then a window of 16 each');
  const inFlight = host.worksTo('p1').slice(1);
  results(host, 'p1', inFlight.slice(0, 3), 10, 2);
  queue.doWork();
  t.equal(host.worksTo('p1').length, 17, 'three back: no refill yet');
  results(host, 'p1', inFlight.slice(3, 4), 10, 3);
  queue.doWork();
  t.equal(host.worksTo('p1').length, 21, 'four back (a quarter of 16): four sent');
  t.equal(host.worksTo('p2').length, 17, 'the other worker is not handed the room p1 made');
  const idle = host.worksTo('p2').slice(1);
  results(host, 'p2', idle, 10, 2);
  queue.doWork();
  t.equal(host.worksTo('p2').length, 33, 'a worker that ran dry gets a whole window');
});

t.test('payload bytes in flight bound a window', async (t) => {
  const big = Buffer.alloc(3 * 1024 * 1024);
  const { host, queue } = setup([0]);
  host.join('p1', null, 8);
  queue.doWork();
  results(host, 'p1', host.worksTo('p1'));
  for (let i = 0; i < 4; i++) queue.addWork(big);
  queue.doWork();
  t.equal(host.worksTo('p1').length, 3, 'two of 3 MiB in flight (4 MiB reached), not eight');
});

t.test('a task waiting behind another is timed from when that one came back, not from when it was sent', async (t) => {
  const { host, queue } = setup([0]);
  host.join('p1', null, 4);
  queue.doWork();
  results(host, 'p1', host.worksTo('p1'), 1000);
  queue.addWork('slow', null, { timeoutMs: 100 });
  queue.addWork('next', null, { timeoutMs: 100 });
  queue.doWork();
  const [, slow, next] = host.worksTo('p1');
  host.now += 50;
  results(host, 'p1', [slow!], 1000, 2);
  host.now += 100;
  host.farm.tick(host.now, 0);
  t.equal(host.farm.worker(1)?.state, 'busy', 'the one behind is within its time: 100 ms since it started');
  t.equal(host.farm.worker(1)?.task?.id, next!.id);
  host.now += 10;
  host.farm.tick(host.now, 0);
  t.equal(host.farm.worker(1)?.state, 'terminating', 'past it now');
});

t.test('a long task does not strand the tasks behind it: they are asked back and run elsewhere', async (t) => {
  const { host, queue } = setup([0]);
  host.join('p1', null, 4);
  queue.doWork();
  results(host, 'p1', host.worksTo('p1'));
  const ids = [0, 1, 2, 3].map((i) => queue.addWork(`t${i}`));
  queue.doWork();
  const [, long, ...waiting] = host.worksTo('p1');
  t.equal(waiting.length, 3);
  host.now += 150;
  host.farm.tick(host.now, 0);
  host.flush();
  t.notOk(host.sent.some(([, e]) => e.t === 'cancel'), 'nothing is taken back while no worker could run it');
  host.join('p2', null, 4);
  host.farm.tick(host.now, 0);
  host.flush();
  const cancels = host.sent.filter(([p, e]) => p === 'p1' && e.t === 'cancel').map(([, e]) => (e as { id: number }).id);
  t.same(cancels, waiting.map((w) => w.id), 'the waiting tasks are asked back');
  t.equal(host.farm.capacity(1), 0, 'and the worker gets nothing more while its task runs');
  host.farm.tick(host.now + 100, 0);
  host.flush();
  t.equal(host.sent.filter(([, e]) => e.t === 'cancel').length, 3, 'asked once');

  const aborted = { name: 'TaskAbortedError', message: 'cancelled', code: 'ECANCELLED' };
  host.deliver('p1', { t: 'error', id: waiting[0]!.id, attempt: 1, error: aborted });
  host.deliver('p1', { t: 'error', id: waiting[1]!.id, attempt: 1, error: aborted });
  // The third had started before the request arrived: its result stands.
  results(host, 'p1', [waiting[2]!], 10, 2);
  t.equal(queue.counts.requeued, 2, 'the two given back are requeued, not failed');
  queue.doWork();
  const [first] = host.worksTo('p2');
  t.ok([waiting[0]!.id, waiting[1]!.id].includes(first!.id) && first!.attempt === 2, 'and run first on another worker');
  results(host, 'p2', host.worksTo('p2'), 10, 3);
  queue.doWork();
  results(host, 'p2', host.worksTo('p2').slice(1), 10, 4);
  results(host, 'p1', [long!], 30_000, 5);
  t.ok(host.farm.capacity(1) > 0, 'the worker takes tasks again once its long task is back');
  const got = queue.takeResults();
  t.same(got.filter((r) => ids.includes(r.id)).map((r) => [r.id, r.ok]).sort(), ids.map((id) => [id, true]).sort(), 'every task completes once, none failed');
  t.ok(queue.done());
});

t.test('a worker that always answers slowly (an overloaded host) is given longer before its waiting tasks are asked back', async (t) => {
  const { host, queue } = setup(Array.from({ length: 12 }, (_, i) => i));
  host.join('p1', null, 4);
  queue.doWork();
  results(host, 'p1', host.worksTo('p1'));
  queue.doWork();
  // Its tasks take microseconds, but every answer comes 300 ms after the last: its process is busy
  // with others. Each answer returns the running task only, so tasks always wait behind the next.
  for (let seq = 2; seq <= 6; seq++) {
    host.now += 300;
    results(host, 'p1', [host.farm.worker(1)!.task!], 10, seq);
    queue.doWork();
  }
  t.equal(host.farm.worker(1)!.backlog.length, 3, 'tasks still wait behind its running one');
  host.join('p2', null, 4);
  const cancels = () => host.sent.filter(([p, e]) => p === 'p1' && e.t === 'cancel').length;
  host.now += 150;
  host.farm.tick(host.now, 0);
  host.flush();
  t.equal(cancels(), 0, 'not at recallMs, which it passes at every answer');
  host.now += 2_000;
  host.farm.tick(host.now, 0);
  host.flush();
  t.equal(cancels(), 3, 'but a task far past its usual time still has its waiting tasks taken back');
});

t.test('the patience of recalls: recallMs until a worker has answered, then well past its usual answer time', async (t) => {
  const pace = new WorkerPace(8);
  t.equal(pace.recallAfter(DEFAULT_WINDOW), DEFAULT_WINDOW.recallMs, 'unknown: recallMs');
  for (let i = 0; i < 20; i++) pace.observeAnswer(5);
  t.equal(pace.recallAfter(DEFAULT_WINDOW), DEFAULT_WINDOW.recallMs, 'quick answers: never below recallMs');
  for (let i = 0; i < 40; i++) pace.observeAnswer(i % 2 === 0 ? 200 : 400);
  const after = pace.recallAfter(DEFAULT_WINDOW);
  t.ok(after > 400 && after < 1_000, `answers of 200-400 ms: past the slowest of them, ${after.toFixed(0)} ms`);
  for (let i = 0; i < 40; i++) pace.observeAnswer(5);
  t.equal(pace.recallAfter(DEFAULT_WINDOW), DEFAULT_WINDOW.recallMs, 'and back to recallMs once it answers quickly again');
});

t.test('tasks asked back unstarted go back to the queue in the order they were queued', async (t) => {
  const { host, queue } = setup([0]);
  host.join('p1', null, 8);
  queue.doWork();
  results(host, 'p1', host.worksTo('p1'));
  for (let i = 1; i <= 4; i++) queue.addWork(`t${i}`);
  queue.doWork();
  const [, , ...waiting] = host.worksTo('p1');
  t.equal(waiting.length, 3, 'one task runs on p1, three wait behind it');
  host.join('p2');
  host.now += 150;
  host.farm.tick(host.now, 0);
  host.flush();
  // Each answer is a message of its own, in the order the cancels were sent.
  for (const w of waiting) host.deliver('p1', { t: 'error', id: w.id, attempt: 1, error: { name: 'TaskAbortedError', message: 'cancelled', code: 'ECANCELLED' } });
  const order: number[] = [];
  for (let i = 0; i < waiting.length; i++) {
    queue.doWork();
    const w = host.workOf('p2');
    order.push(w.id);
    host.deliver('p2', { t: 'result', id: w.id, attempt: w.attempt, payload: encodePayload(null), us: 1_000_000 });
  }
  t.same(order, waiting.map((w) => w.id), 'p2 runs them in their first order');
});
