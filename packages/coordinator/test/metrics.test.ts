/**
 * FarmMetrics on scripted events and a scripted clock: busy time counts tasks in flight up to the
 * scrape and never goes back, queue depth follows queued/requeued/retried/dispatched, names follow
 * Prometheus conventions and labels stay bounded.
 */
import t from 'tap';
import type { Key } from '@taskfarm/protocol';
import type { Farm, Task, WorkerRecord, WorkerState } from '../src/farm.ts';
import { Coordinator } from '../src/coordinator.ts';
import { Master } from '../src/master.ts';
import { DURATION_BUCKETS, FarmMetrics } from '../src/metrics.ts';
import { WorkQueue } from '../src/work-queue.ts';
import type { CoordinatorObserver } from '../src/observer.ts';

/** Just what FarmMetrics reads of a Farm: its workers and its clock. */
class FakeFarm {
  clock = 0;
  readonly byRank = new Map<number, WorkerRecord>();
  now(): number {
    return this.clock;
  }
  workers(): IterableIterator<WorkerRecord> {
    return this.byRank.values();
  }
}

function setup() {
  const farm = new FakeFarm();
  let observer: CoordinatorObserver = {};
  const metrics = new FarmMetrics({ farm: farm as unknown as Farm, observers: { add: (o) => ((observer = o), () => {}) } });
  let nextId = 1;
  const o = () => observer as Required<CoordinatorObserver>;
  return {
    farm,
    metrics,
    o,
    worker(rank: number, state: WorkerState = 'idle'): WorkerRecord {
      const w = { rank, peer: `p${rank}`, host: `h${rank}`, pid: 100 + rank, instance: null, state, task: null, backlog: [], joinedAt: farm.clock, lastSeen: farm.clock } as unknown as WorkerRecord;
      farm.byRank.set(rank, w);
      o().joined(w);
      return w;
    },
    task(type: Key | null, resource: Key | null = null): Task {
      return { id: nextId++, attempt: 1, type, resource, payload: Buffer.alloc(0), queuedAt: farm.clock, startedAt: 0 } as unknown as Task;
    },
    dispatch(w: WorkerRecord, task: Task, kind: 'same' | 'none' | 'unheld' | 'shared' | 'direct' = 'none'): void {
      w.state = 'busy';
      w.task = task;
      task.startedAt = farm.clock;
      o().dispatched(w, task, kind);
    },
    finish(w: WorkerRecord, ok = true): void {
      const task = w.task!;
      w.state = 'idle';
      w.task = null;
      o().finished(w, task, ok, farm.clock);
    },
  };
}

/** name{labels} value lines of the application's registry, as a map. */
async function samples(m: FarmMetrics): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await m.registry.metrics()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

t.test('busy seconds count the task in flight up to the scrape, and never go back', async (t) => {
  const s = setup();
  const w1 = s.worker(1);
  s.worker(2);
  const task = s.task('render');
  s.o().queued(task);
  s.farm.clock = 1000;
  s.dispatch(w1, task);
  s.farm.clock = 3500;
  let m = await samples(s.metrics);
  t.equal(m.get('taskfarm_worker_busy_seconds_total{rank="1",task_type="render"}'), 2.5, 'in flight: 2.5 s so far');
  t.notOk(m.has('taskfarm_worker_busy_seconds_total{rank="2",task_type="render"}'), 'an idle rank has no series yet');
  t.equal(m.get('taskfarm_workers{state="busy"}'), 1);
  t.equal(m.get('taskfarm_workers{state="idle"}'), 1);
  t.equal(m.get('taskfarm_tasks_in_flight{task_type="render"}'), 1);
  s.farm.clock = 4000;
  s.finish(w1);
  s.farm.clock = 9000;
  m = await samples(s.metrics);
  t.equal(m.get('taskfarm_worker_busy_seconds_total{rank="1",task_type="render"}'), 3, 'finished: 3 s, no more');
  t.equal(m.get('taskfarm_tasks_in_flight{task_type="render"}'), 0);
  t.equal(m.get('taskfarm_task_duration_seconds_count{task_type="render"}'), 1);
  t.equal(m.get('taskfarm_task_duration_seconds_sum{task_type="render"}'), 3);
  t.equal(m.get('taskfarm_task_duration_seconds_bucket{le="2.5",task_type="render"}'), 0);
  t.equal(m.get('taskfarm_task_duration_seconds_bucket{le="5",task_type="render"}'), 1);
  t.equal(m.get('taskfarm_task_queue_wait_seconds_sum{task_type="render"}'), 1, 'queued at 0, dispatched at 1 s');

  // A worker lost mid-task: its time counts as busy, the task goes back to its queue.
  const task2 = s.task('render');
  s.o().queued(task2);
  s.dispatch(w1, task2);
  s.farm.clock = 10_000;
  w1.task = null;
  s.farm.byRank.delete(1);
  s.o().left(w1, 'disconnected', task2, []);
  s.o().requeued(task2);
  m = await samples(s.metrics);
  t.equal(m.get('taskfarm_worker_busy_seconds_total{rank="1",task_type="render"}'), 4, 'the lost attempt ran 1 s');
  t.equal(m.get('taskfarm_workers_lost_total{reason="disconnected"}'), 1);
  t.equal(m.get('taskfarm_tasks_requeued_total{task_type="render"}'), 1);
  t.equal(m.get('taskfarm_tasks_queued{task_type="render"}'), 1);
  t.equal(m.get('taskfarm_task_duration_seconds_count{task_type="render"}'), 1, 'a lost attempt has no duration');
  s.farm.clock = 12_000;
  s.dispatch(s.farm.byRank.get(2)!, task2, 'unheld');
  m = await samples(s.metrics);
  t.equal(m.get('taskfarm_task_queue_wait_seconds_sum{task_type="render"}'), 3, 'the wait after a requeue counts from the requeue: 1 + 2 s');
  t.equal(m.get('taskfarm_tasks_queued{task_type="render"}'), 0);
});

t.test('queue depth, totals and dispatch kinds per task type', async (t) => {
  const s = setup();
  const [w1, w2] = [s.worker(1), s.worker(2)];
  const a = Array.from({ length: 5 }, () => s.task('a', 'r1'));
  const b = Array.from({ length: 3 }, () => s.task(null));
  for (const task of [...a, ...b]) s.o().queued(task);
  s.dispatch(w1, a[0]!, 'unheld');
  s.dispatch(w2, b[0]!, 'none');
  let m = await samples(s.metrics);
  t.equal(m.get('taskfarm_tasks_queued{task_type="a"}'), 4);
  t.equal(m.get('taskfarm_tasks_queued{task_type="default"}'), 2, 'tasks without a type are labelled default');
  s.finish(w1, true);
  s.finish(w2, false);
  s.o().retried(b[0]!, 'EBOOM');
  s.dispatch(w1, a[1]!, 'same');
  s.finish(w1);
  const direct = s.task('a');
  s.dispatch(w2, direct, 'direct');
  s.finish(w2);
  s.o().moved(2, 'a', null, 'lent');
  s.o().moved(1, null, 'a', 'borrowed');
  s.o().protocolError('peer', null, 'EMSGPACK', 'bad');
  s.o().rejected('peer', 'ERANKTAKEN', 'taken');
  s.o().dropped('peer', 'stale-result', 'late');
  s.metrics.authFailure('unknown-key');
  (s.o() as unknown as { authFailed(reason: string, address: string, detail: string): void }).authFailed('mechanism-mismatch', '10.0.0.1', 'plaintext');
  m = await samples(s.metrics);
  t.equal(m.get('taskfarm_tasks_queued{task_type="a"}'), 3, 'a direct dispatch takes nothing from the queue');
  t.equal(m.get('taskfarm_tasks_queued{task_type="default"}'), 3, 'a retry waits in its queue again');
  t.equal(m.get('taskfarm_tasks_submitted_total{task_type="a"}'), 6, '5 queued + 1 direct');
  t.equal(m.get('taskfarm_tasks_completed_total{task_type="a"}'), 3);
  t.equal(m.get('taskfarm_tasks_failed_total{task_type="default"}'), 1);
  t.equal(m.get('taskfarm_tasks_retried_total{task_type="default"}'), 1);
  t.equal(m.get('taskfarm_tasks_failed_total{task_type="a"}'), 0, 'zero series exist for every type seen');
  for (const [kind, n] of Object.entries({ same: 1, none: 1, unheld: 1, shared: 0, direct: 1 }))
    t.equal(m.get(`taskfarm_dispatches_total{affinity="${kind}"}`), n, `dispatches ${kind}`);
  t.equal(m.get('taskfarm_worker_moves_total{how="lent",from_task_type="a",to_task_type="none"}'), 1);
  t.equal(m.get('taskfarm_worker_moves_total{how="borrowed",from_task_type="none",to_task_type="a"}'), 1);
  t.equal(m.get('taskfarm_protocol_errors_total{reason="EMSGPACK"}'), 1);
  t.equal(m.get('taskfarm_registrations_rejected_total{code="ERANKTAKEN"}'), 1);
  t.equal(m.get('taskfarm_messages_dropped_total{reason="stale-result"}'), 1);
  t.equal(m.get('taskfarm_auth_failures_total{reason="unknown-key"}'), 1);
  t.equal(m.get('taskfarm_auth_failures_total{reason="mechanism-mismatch"}'), 1, 'the observer\'s authFailed event counts');
  t.equal(m.get('taskfarm_auth_failures_total{reason="handshake-protocol"}'), 0, 'known reasons exist from the start');
  t.equal(m.get('taskfarm_workers_joined_total'), 2);

  const status = s.metrics.snapshot('tcp://x:1');
  t.match(status.totals, { workers: 2, idle: 2, busy: 0, submitted: 9, completed: 3, failed: 1, retried: 1, done: 3, queued: 6, lost: 0 });
  t.same(status.taskTypes.map((q) => q.taskType), ['a', 'default']);
  t.match(status.workers[0], { rank: 1, host: 'h1', pid: 101, state: 'idle', task: null });
  t.equal(status.coordinator.endpoint, 'tcp://x:1');
});

t.test('names follow Prometheus conventions; labels are bounded; buckets run from ms to hours', async (t) => {
  const s = setup();
  const w = s.worker(1);
  for (let i = 0; i < 50; i++) {
    const task = s.task('t');
    s.o().queued(task);
    s.dispatch(w, task);
    s.finish(w);
  }
  const metrics = await s.metrics.registry.getMetricsAsJSON();
  for (const m of metrics) {
    t.match(m.name, /^taskfarm_[a-z_]+$/, `${m.name}: prefix and snake case`);
    if (String(m.type) === 'counter') t.match(m.name, /_total$/, `${m.name}: a counter ends in _total`);
    else t.notMatch(m.name, /_total$/, `${m.name}: only counters end in _total`);
    t.notMatch(m.name, /_(ms|milliseconds|minutes|hours)$/, 'base units');
  }
  const text = await s.metrics.registry.metrics();
  t.notMatch(text, /task_id|id="/, 'no task ids anywhere in the labels');
  t.ok(DURATION_BUCKETS[0]! <= 0.001 && DURATION_BUCKETS[DURATION_BUCKETS.length - 1]! >= 3600 * 4, 'buckets span 1 ms .. hours');
  t.equal((await samples(s.metrics)).get('taskfarm_worker_busy_seconds_total{rank="1",task_type="t"}'), 0, '50 instant tasks on a scripted clock');
});

t.test('a second FarmMetrics has a registry of its own', async (t) => {
  const a = setup();
  const b = setup();
  a.worker(1);
  t.equal((await samples(a.metrics)).get('taskfarm_workers_joined_total'), 1);
  t.equal((await samples(b.metrics)).get('taskfarm_workers_joined_total'), 0);
});

t.test('a cancelled task leaves the queue depth and counts as done', async (t) => {
  const s = setup();
  const tasks = [s.task('c'), s.task('c'), s.task('c')];
  for (const task of tasks) s.o().queued(task);
  s.o().abandoned(tasks[0]!, 'ECANCELLED', true);
  const w = s.worker(1);
  s.dispatch(w, tasks[1]!);
  w.task = null;
  s.farm.byRank.delete(1);
  s.o().left(w, 'disconnected', tasks[1]!, []);
  s.o().abandoned(tasks[1]!, 'EWORKERLOST', false);
  const m = await samples(s.metrics);
  t.equal(m.get('taskfarm_tasks_queued{task_type="c"}'), 1);
  t.equal(m.get('taskfarm_tasks_abandoned_total{task_type="c",code="ECANCELLED"}'), 1);
  t.equal(m.get('taskfarm_tasks_abandoned_total{task_type="c",code="EWORKERLOST"}'), 1);
  t.match(s.metrics.snapshot().totals, { queued: 1, abandoned: 2, done: 2, submitted: 3 });

  // The real queue says so when a queued task is cancelled.
  const coordinator = await Coordinator.start({ endpoint: 'tcp://127.0.0.1:*', logLevel: 'silent' });
  t.teardown(() => coordinator.close());
  const queue = new WorkQueue(new Master([5], { coordinator, taskType: 'q' }));
  const ids = [1, 2, 3].map((n) => queue.addWork(n));
  t.ok(queue.cancel(ids[1]!));
  const q = coordinator.operations.metrics.snapshot().taskTypes.find((x) => x.taskType === 'q');
  t.match(q, { queued: 2, abandoned: 1, submitted: 3 });
});
