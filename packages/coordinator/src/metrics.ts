/**
 * The coordinator's metrics, in a Prometheus registry of its own (never prom-client's global one, so
 * that two coordinators in one process do not mix): counted from the coordinator's observer events,
 * and read from the farm at scrape time where a value is a state rather than a count. The same
 * numbers feed the JSON `/status` and the progress line of `taskfarm run` (see `snapshot()`).
 *
 * Names follow Prometheus conventions: prefix `taskfarm_`, base units (seconds), `_total` on counters
 * only, and labels with bounded values (rank, task type, state, reason, affinity kind; never a task).
 * Utilisation is `rate(taskfarm_worker_busy_seconds_total[5m])`: busy time counts a task in flight
 * up to the scrape, so a long task raises the counter steadily rather than in one jump at its end.
 */
import { hostname } from 'node:os';
import type { Key } from '@taskfarm/protocol';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { Farm, LeaveReason, PeerId, Task, WorkerRecord, WorkerState } from './farm.ts';
import { HotHistogram, type HotSeries } from './hot-histogram.ts';
import type { CoordinatorObserver, DispatchKind } from './observer.ts';

/** Task durations and queue waits: batch work runs from milliseconds to hours. */
export const DURATION_BUCKETS = Object.freeze([
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800,
]);

/** The `task_type` label of tasks whose Master has no task type. */
export const DEFAULT_TASK_TYPE = 'default';

const WORKER_STATES: readonly WorkerState[] = ['joining', 'idle', 'busy', 'terminating'];
const DISPATCH_KINDS: readonly DispatchKind[] = ['same', 'none', 'unheld', 'shared', 'direct'];
/** Why the ZAP handler refuses a connection (observer `authFailed`); other reasons get series as they occur. */
const AUTH_FAILURE_REASONS = ['unknown-key', 'mechanism-mismatch', 'curve-cryptographic', 'handshake-protocol'];

export function taskTypeLabel(type: Key | null): string {
  return type === null ? DEFAULT_TASK_TYPE : String(type);
}

/** What FarmMetrics needs from a coordinator. */
export interface MetricsSource {
  readonly farm: Farm;
  readonly observers: { add(observer: CoordinatorObserver): () => void };
}

/** A task type's counts since the coordinator started: what the per-type counters expose, and /status. */
export interface TypeCounts {
  /** Waiting in a queue (including requeued tasks and retries waiting out their backoff). */
  queued: number;
  /** Tasks that entered a queue, plus tasks sent directly with Master.run(). */
  submitted: number;
  /** Attempts that succeeded. */
  completed: number;
  /** Attempts that failed (handler error or timeout), retried or not. */
  failed: number;
  retried: number;
  requeued: number;
  /** Ended without a result from a worker: cancelled, or given up after too many lost workers. */
  abandoned: number;
}

/** Per task type, since the coordinator started. */
export interface TaskTypeStatus extends TypeCounts {
  /** The label value (`default` for tasks without a type). */
  taskType: string;
  inFlight: number;
}

export interface WorkerStatus {
  rank: number;
  host: string;
  pid: number;
  state: WorkerState;
  task: { id: number; type: string; attempt: number; resource: Key | null; runningSeconds: number } | null;
  /** Time this worker (this connection, not the rank) spent running tasks, the current one included. */
  busySeconds: number;
  /** Time since it registered. */
  connectedSeconds: number;
}

/** The JSON document `/status` serves. */
export interface FarmStatus {
  coordinator: { endpoint: string | null; host: string; pid: number; startedAt: string; uptimeSeconds: number };
  workers: WorkerStatus[];
  taskTypes: TaskTypeStatus[];
  /** Every task type's counts summed, and the workers by state. */
  totals: Omit<TaskTypeStatus, 'taskType'> & {
    workers: number;
    joining: number;
    idle: number;
    busy: number;
    terminating: number;
    /** Workers lost since the start (connection dropped, or idle and silent): a count, not a state. */
    lost: number;
    /** Tasks with a final outcome: completed + failed - retried + abandoned. */
    done: number;
  };
}

/** One task type's counts and histogram series, found once per task. */
interface TypeSeries {
  readonly label: string;
  /** Also what the per-type counters expose when scraped. */
  readonly counts: TypeCounts;
  readonly duration: HotSeries;
  readonly wait: HotSeries;
  /** Its busy-seconds entry per rank (the one #busy holds). */
  readonly busy: Map<number, { rank: string; taskType: string; seconds: number }>;
}

export class FarmMetrics {
  /** The application's own metrics (`taskfarm_*`): what `promtool check metrics` lints. */
  readonly registry = new Registry();
  /** Node.js process metrics (prom-client's defaults), once enableProcessMetrics() was called. */
  processRegistry: Registry | null = null;
  readonly #farm: Farm;
  readonly #startedAt = Date.now();
  readonly #types = new Map<string, TypeCounts>();
  /**
   * Each task type's counts and prom-client series, by the type as tasks carry it: looked up for
   * every task twice (dispatch, end), so it must not build a label object or a string each time.
   */
  readonly #series = new Map<Key | null, TypeSeries>();
  /** Dispatches by affinity rule, exposed at scrape time like the per-type counts. */
  readonly #dispatches: Record<DispatchKind, number> = { same: 0, none: 0, unheld: 0, shared: 0, direct: 0 };
  /** Busy seconds of finished (or lost) attempts, by rank and task type. */
  readonly #busy = new Map<string, { rank: string; taskType: string; seconds: number }>();
  /** Busy seconds of finished attempts, by worker connection, for /status. */
  readonly #workerBusy = new WeakMap<WorkerRecord, number>();
  /** When a requeued or retried task went back to its queue (farm clock), until it is dispatched. */
  readonly #requeuedAt = new Map<number, number>();
  #lost = 0;
  readonly #c: ReturnType<typeof createCounters>;

  constructor(source: MetricsSource) {
    this.#farm = source.farm;
    const registers = [this.registry];
    const self = this;
    this.#c = createCounters(registers, this.#types, this.#dispatches);
    new Gauge({
      name: 'taskfarm_workers',
      help: 'Connected workers by state (joining, idle, busy, terminating).',
      labelNames: ['state'],
      registers,
      collect() {
        const counts = self.#stateCounts();
        for (const state of WORKER_STATES) this.set({ state }, counts[state]);
      },
    });
    new Counter({
      name: 'taskfarm_worker_busy_seconds_total',
      help: 'Time workers spent running tasks, by rank and task type, the tasks in flight counted up to now: utilisation is its rate().',
      labelNames: ['rank', 'task_type'],
      registers,
      collect() {
        this.reset();
        for (const [key, value] of self.#busySeconds()) {
          const [rank, taskType] = key.split('\0') as [string, string];
          this.inc({ rank, task_type: taskType }, value);
        }
      },
    });
    new Gauge({
      name: 'taskfarm_tasks_queued',
      help: 'Tasks waiting in a queue, by task type.',
      labelNames: ['task_type'],
      registers,
      collect() {
        this.reset();
        for (const [taskType, t] of self.#types) this.set({ task_type: taskType }, t.queued);
      },
    });
    new Gauge({
      name: 'taskfarm_tasks_in_flight',
      help: 'Tasks running on a worker, by task type.',
      labelNames: ['task_type'],
      registers,
      collect() {
        this.reset();
        const inFlight = self.#inFlight();
        for (const taskType of new Set([...self.#types.keys(), ...inFlight.keys()])) this.set({ task_type: taskType }, inFlight.get(taskType) ?? 0);
      },
    });
    new Gauge({
      name: 'taskfarm_coordinator_start_time_seconds',
      help: 'When the coordinator started, in seconds since the Unix epoch.',
      registers,
    }).set(this.#startedAt / 1000);

    // Series that exist from the start, so that rate() and absent() work before the first event.
    for (const reason of ['disconnected', 'silent'] satisfies LeaveReason[]) this.#c.lost.inc({ reason }, 0);
    for (const reason of AUTH_FAILURE_REASONS) this.#c.authFailures.inc({ reason }, 0);
    this.#c.joined.inc(0);
    this.#c.left.inc(0);

    source.observers.add(new MetricsObserver(this, this.#farm));
  }

  /** Counts a connection refused by authentication (the CURVE/ZAP handler calls this). */
  authFailure(reason: string): void {
    this.#c.authFailures.inc({ reason });
  }

  /** Adds Node.js process metrics (CPU, memory, event loop, GC) in a registry of their own. */
  enableProcessMetrics(): void {
    if (this.processRegistry) return;
    this.processRegistry = new Registry();
    collectDefaultMetrics({ register: this.processRegistry });
  }

  /** The Prometheus text exposition: the application's metrics, then the process's. */
  async exposition(): Promise<string> {
    const own = await this.registry.metrics();
    return this.processRegistry ? `${own}\n${await this.processRegistry.metrics()}` : own;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Everything /status reports, as of now. */
  snapshot(endpoint: string | null = null): FarmStatus {
    const now = this.#farm.now();
    const workers: WorkerStatus[] = [];
    for (const w of this.#farm.workers()) {
      const t = w.task;
      const running = t && w.state === 'busy' ? Math.max(0, (now - t.startedAt) / 1000) : 0;
      workers.push({
        rank: w.rank,
        host: w.host,
        pid: w.pid,
        state: w.state,
        task: t ? { id: t.id, type: taskTypeLabel(t.type), attempt: t.attempt, resource: t.resource, runningSeconds: round(running) } : null,
        busySeconds: round((this.#workerBusy.get(w) ?? 0) + running),
        connectedSeconds: round(Math.max(0, (now - w.joinedAt) / 1000)),
      });
    }
    workers.sort((a, b) => a.rank - b.rank);
    const inFlight = this.#inFlight();
    const taskTypes: TaskTypeStatus[] = [];
    for (const taskType of [...new Set([...this.#types.keys(), ...inFlight.keys()])].sort()) {
      const c = this.#types.get(taskType) ?? newCounts();
      taskTypes.push({ taskType, ...c, inFlight: inFlight.get(taskType) ?? 0 });
    }
    const states = this.#stateCounts();
    const sum = (k: keyof TaskTypeStatus & keyof FarmStatus['totals']) => taskTypes.reduce((s, t) => s + (t[k] as number), 0);
    const totals = {
      workers: workers.length,
      ...states,
      lost: this.#lost,
      queued: sum('queued'),
      inFlight: sum('inFlight'),
      submitted: sum('submitted'),
      completed: sum('completed'),
      failed: sum('failed'),
      retried: sum('retried'),
      requeued: sum('requeued'),
      abandoned: sum('abandoned'),
      done: 0,
    };
    totals.done = Math.max(0, totals.completed + totals.failed - totals.retried + totals.abandoned);
    return {
      coordinator: {
        endpoint,
        host: hostname(),
        pid: process.pid,
        startedAt: new Date(this.#startedAt).toISOString(),
        uptimeSeconds: round((Date.now() - this.#startedAt) / 1000),
      },
      workers,
      taskTypes,
      totals,
    };
  }

  // --- what the observer records -----------------------------------------------------------------

  /** @internal */
  type(task: Task): TypeSeries {
    const s = this.#series.get(task.type);
    return s ?? this.#newType(task.type);
  }

  #newType(type: Key | null): TypeSeries {
    const label = taskTypeLabel(type);
    let counts = this.#types.get(label);
    if (!counts) {
      counts = newCounts();
      this.#types.set(label, counts);
      // Zero series for a new type, so that its rate()s start at 0 rather than at absent.
      for (const code of ['ECANCELLED', 'EWORKERLOST']) this.#c.abandoned.inc({ task_type: label, code }, 0);
    }
    const s: TypeSeries = { label, counts, duration: this.#c.duration.series(label), wait: this.#c.wait.series(label), busy: new Map() };
    this.#series.set(type, s);
    return s;
  }

  /** @internal */
  record(event: Event): void {
    const c = this.#c;
    switch (event.kind) {
      case 'joined':
        c.joined.inc();
        return;
      case 'left':
        if (event.reason === 'bye') c.left.inc();
        else {
          c.lost.inc({ reason: event.reason });
          this.#lost++;
        }
        return;
      case 'rejected':
        c.rejected.inc({ code: event.code });
        return;
      case 'dropped':
        c.dropped.inc({ reason: event.reason });
        return;
      case 'protocolError':
        c.protocolErrors.inc({ reason: event.code });
        return;
      case 'moved':
        c.moves.inc({ how: event.how, from_task_type: event.from === null ? 'none' : String(event.from), to_task_type: event.to === null ? 'none' : String(event.to) });
        return;
    }
  }

  /** @internal A task entered (or re-entered) its queue. */
  enqueued(task: Task, how: 'queued' | 'requeued' | 'retried', now: number): void {
    const s = this.type(task);
    const t = s.counts;
    t.queued++;
    if (how === 'queued') {
      t.submitted++;
      return;
    }
    this.#requeuedAt.set(task.id, now);
    if (how === 'requeued') t.requeued++;
    else t.retried++;
  }

  /** @internal A task ended without a result from a worker; `queued` when it left its queue. */
  abandoned(task: Task, code: string, queued: boolean): void {
    const { label, counts: t } = this.type(task);
    if (queued && t.queued > 0) t.queued--;
    this.#requeuedAt.delete(task.id);
    t.abandoned++;
    this.#c.abandoned.inc({ task_type: label, code });
  }

  /** @internal */
  dispatched(task: Task, kind: DispatchKind): void {
    const s = this.type(task);
    const t = s.counts;
    this.#dispatches[kind]++;
    if (kind === 'direct') {
      t.submitted++;
      return;
    }
    if (t.queued > 0) t.queued--;
    let since = task.queuedAt;
    if (this.#requeuedAt.size > 0) {
      since = Math.max(since, this.#requeuedAt.get(task.id) ?? -Infinity);
      this.#requeuedAt.delete(task.id);
    }
    s.wait.observe(Math.max(0, (task.startedAt - since) / 1000));
  }

  /** @internal An attempt ended at `now` on worker `w`: finished (ok or not), or lost with the worker (ok null). */
  ended(w: WorkerRecord, task: Task, ok: boolean | null, now: number): void {
    const s = this.type(task);
    const seconds = Math.max(0, (now - task.startedAt) / 1000);
    let b = s.busy.get(w.rank);
    if (!b) {
      const key = `${w.rank}\0${s.label}`;
      b = this.#busy.get(key) ?? { rank: String(w.rank), taskType: s.label, seconds: 0 };
      this.#busy.set(key, b);
      s.busy.set(w.rank, b);
    }
    b.seconds += seconds;
    this.#workerBusy.set(w, (this.#workerBusy.get(w) ?? 0) + seconds);
    if (ok === null) return;
    s.duration.observe(seconds);
    if (ok) s.counts.completed++;
    else s.counts.failed++;
  }

  // --- read at scrape time -------------------------------------------------------------------------

  #stateCounts(): Record<WorkerState, number> {
    const counts: Record<WorkerState, number> = { joining: 0, idle: 0, busy: 0, terminating: 0 };
    for (const w of this.#farm.workers()) counts[w.state] = (counts[w.state] ?? 0) + 1;
    return counts;
  }

  #inFlight(): Map<string, number> {
    const m = new Map<string, number>();
    const count = (t: Task) => {
      const label = taskTypeLabel(t.type);
      m.set(label, (m.get(label) ?? 0) + 1);
    };
    for (const w of this.#farm.workers()) {
      if (w.task) count(w.task);
      for (const t of w.backlog) count(t);
    }
    return m;
  }

  /** Busy seconds by `rank\0task_type`: finished attempts plus the running ones up to now. */
  #busySeconds(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [key, b] of this.#busy) out.set(key, b.seconds);
    const now = this.#farm.now();
    for (const w of this.#farm.workers()) {
      if (w.state !== 'busy' || !w.task) continue;
      const key = `${w.rank}\0${taskTypeLabel(w.task.type)}`;
      out.set(key, (out.get(key) ?? 0) + Math.max(0, (now - w.task.startedAt) / 1000));
    }
    return out;
  }
}

/**
 * The metrics. Those that move with every task (counts by task type, dispatches, durations) are
 * plain numbers on the hot path, read into prom-client when scraped: its own inc()/observe() hash
 * their labels on every call.
 */
function createCounters(registers: Registry[], types: ReadonlyMap<string, TypeCounts>, dispatches: Readonly<Record<DispatchKind, number>>) {
  const perType = (name: string, help: string, field: keyof TypeCounts) =>
    new Counter({
      name,
      help,
      labelNames: ['task_type'],
      registers,
      collect() {
        this.reset();
        for (const [taskType, t] of types) this.inc({ task_type: taskType }, t[field]);
      },
    });
  return {
    joined: new Counter({ name: 'taskfarm_workers_joined_total', help: 'Workers that registered with the coordinator.', registers }),
    left: new Counter({ name: 'taskfarm_workers_left_total', help: 'Workers that left cleanly (said bye).', registers }),
    lost: new Counter({
      name: 'taskfarm_workers_lost_total',
      help: 'Workers lost without a bye, by reason (disconnected, silent); their task in flight is requeued.',
      labelNames: ['reason'],
      registers,
    }),
    rejected: new Counter({
      name: 'taskfarm_registrations_rejected_total',
      help: 'Registrations refused, by error code (ERANKTAKEN, ESHUTDOWN, EVERSION, EPROTOCOL).',
      labelNames: ['code'],
      registers,
    }),
    dropped: new Counter({
      name: 'taskfarm_messages_dropped_total',
      help: 'Well-formed messages dropped as unacceptable, by reason (e.g. stale-result).',
      labelNames: ['reason'],
      registers,
    }),
    protocolErrors: new Counter({
      name: 'taskfarm_protocol_errors_total',
      help: 'Messages that could not be decoded, by ProtocolError code.',
      labelNames: ['reason'],
      registers,
    }),
    authFailures: new Counter({
      name: 'taskfarm_auth_failures_total',
      help: 'Connections refused by authentication, by reason.',
      labelNames: ['reason'],
      registers,
    }),
    submitted: perType('taskfarm_tasks_submitted_total', 'Tasks queued, plus tasks sent directly with Master.run(), by task type.', 'submitted'),
    completed: perType('taskfarm_tasks_completed_total', 'Task attempts that succeeded, by task type.', 'completed'),
    failed: perType('taskfarm_tasks_failed_total', 'Task attempts that failed (handler error or timeout), retried or not, by task type.', 'failed'),
    retried: perType('taskfarm_tasks_retried_total', 'Failed tasks scheduled to run again, by task type.', 'retried'),
    abandoned: new Counter({
      name: 'taskfarm_tasks_abandoned_total',
      help: 'Tasks that ended without a result from a worker, by task type and code: ECANCELLED (cancelled), EWORKERLOST (given up after too many lost workers).',
      labelNames: ['task_type', 'code'],
      registers,
    }),
    requeued: perType('taskfarm_tasks_requeued_total', 'Tasks lost with their worker and put back in their queue, by task type.', 'requeued'),
    dispatches: new Counter({
      name: 'taskfarm_dispatches_total',
      help: 'Tasks sent to workers, by how the worker was chosen: same (the resource it held), none (task without resource), unheld (a resource no worker held), shared (a resource another worker held), direct (Master.run).',
      labelNames: ['affinity'],
      registers,
      collect() {
        this.reset();
        for (const affinity of DISPATCH_KINDS) this.inc({ affinity }, dispatches[affinity]);
      },
    }),
    moves: new Counter({
      name: 'taskfarm_worker_moves_total',
      help: 'Ready workers moved between the Masters of a MultiWorkQueue, by how (lent, borrowed) and task types (none: a spare worker).',
      labelNames: ['how', 'from_task_type', 'to_task_type'],
      registers,
    }),
    duration: new HotHistogram({
      name: 'taskfarm_task_duration_seconds',
      help: 'Time task attempts that finished ran on their worker (from dispatch, or, behind another task on the same worker, from when that one came back), by task type.',
      labelName: 'task_type',
      buckets: DURATION_BUCKETS,
      registers,
    }),
    wait: new HotHistogram({
      name: 'taskfarm_task_queue_wait_seconds',
      help: 'Time tasks waited in their queue before dispatch (since queued, or requeued), by task type.',
      labelName: 'task_type',
      buckets: DURATION_BUCKETS,
      registers,
    }),
  };
}

type Event =
  | { kind: 'joined' }
  | { kind: 'left'; reason: LeaveReason }
  | { kind: 'rejected'; code: string }
  | { kind: 'dropped'; reason: string }
  | { kind: 'protocolError'; code: string }
  | { kind: 'moved'; from: Key | null; to: Key | null; how: 'lent' | 'borrowed' };

/**
 * The coordinator's events into FarmMetrics. A class rather than an object literal so that it may
 * implement callbacks a given coordinator does not have yet (`retried`). Times are read from the
 * farm's clock, the one `task.startedAt` is on.
 */
class MetricsObserver implements CoordinatorObserver {
  constructor(
    readonly m: FarmMetrics,
    readonly farm: Farm,
  ) {}

  joined(): void {
    this.m.record({ kind: 'joined' });
  }
  left(w: WorkerRecord, reason: LeaveReason, lost: Task | null): void {
    if (lost) this.m.ended(w, lost, null, this.farm.now());
    this.m.record({ kind: 'left', reason });
  }
  rejected(_peer: PeerId, code: string): void {
    this.m.record({ kind: 'rejected', code });
  }
  dropped(_peer: PeerId, reason: string): void {
    this.m.record({ kind: 'dropped', reason });
  }
  protocolError(_peer: PeerId, _rank: number | null, code: string): void {
    this.m.record({ kind: 'protocolError', code });
  }
  queued(task: Task): void {
    // Run for every task: no clock reading, which a first queueing does not use.
    this.m.enqueued(task, 'queued', task.queuedAt);
  }
  dispatched(_w: WorkerRecord, task: Task, kind: DispatchKind): void {
    this.m.dispatched(task, kind);
  }
  finished(w: WorkerRecord, task: Task, ok: boolean, now: number): void {
    this.m.ended(w, task, ok, now);
  }
  requeued(task: Task): void {
    this.m.enqueued(task, 'requeued', this.farm.now());
  }
  retried(task: Task): void {
    this.m.enqueued(task, 'retried', this.farm.now());
  }
  abandoned(task: Task, code: string, queued: boolean): void {
    this.m.abandoned(task, code, queued);
  }
  moved(_rank: number, from: Key | null, to: Key | null, how: 'lent' | 'borrowed'): void {
    this.m.record({ kind: 'moved', from, to, how });
  }
  /** A connection refused by authentication (CURVE/ZAP), by reason. */
  authFailed(reason: string): void {
    this.m.authFailure(reason);
  }
}

function newCounts(): TypeCounts {
  return { queued: 0, submitted: 0, completed: 0, failed: 0, retried: 0, requeued: 0, abandoned: 0 };
}

function round(seconds: number): number {
  return Math.round(seconds * 1000) / 1000;
}

