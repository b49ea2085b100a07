/**
 * The seed's WorkQueue: tasks waiting for the workers of one Master, handed out with resource
 * affinity. Two ways to drive it:
 *   - the seed's loop: `while (!q.done()) { q.doWork(); for (const r of q.getCompletedWork()) ...; await q.changed(); }`
 *   - async: `await q.map(items)`, `await q.submit(data)`, `for await (const r of q.results())`, `await q.drain()`.
 */
import { encodePayload, rawPayload, type Key } from '@taskfarm/protocol';
import { AffinityQueue, type AffinityKind } from './affinity.ts';
import { TaskError } from './errors.ts';
import { isScalar, newTask, resolvePolicy, type Outcome, type Task, type TaskPolicy } from './farm.ts';
import { valueOf, type Master, type WaitOptions } from './master.ts';

/** One finished task, as the async API hands it out. */
export type TaskResult =
  | { readonly id: number; readonly key: Key; readonly resource: Key | null; readonly ok: true; readonly value: unknown }
  | { readonly id: number; readonly key: Key; readonly resource: Key | null; readonly ok: false; readonly error: TaskError };

/** Per-task settings for addWork(): a policy override, and a key. */
export interface AddOptions extends Partial<TaskPolicy> {
  /**
   * Names the task within its queue across coordinator restarts, for the journal. Default: the
   * order of addWork() calls on this queue (0, 1, 2, ...), which is stable when a job adds its
   * tasks in the same order on every run.
   */
  key?: Key;
}

/** Per-task settings for submit(): those of addWork(), and an AbortSignal that cancels the task. */
export interface TaskOptions extends AddOptions {
  signal?: AbortSignal;
}

export interface WorkQueueOptions extends Partial<TaskPolicy> {
  /** Names the queue in the journal. Default `default`; a MultiWorkQueue names each queue by its task id. */
  name?: string;
}

/** Who hands out work and waits for changes: the queue itself, or the MultiWorkQueue it belongs to. */
export interface Driver {
  doWork(): void;
  changed(options?: WaitOptions): Promise<boolean>;
}

export class WorkQueue implements Driver {
  readonly master: Master;
  /** Timeout, retries and loss limit of this queue's tasks (addWork() may override them per task). */
  readonly policy: TaskPolicy;
  /** Tasks retried after a failure, sent back to a worker, failed for good; counted for the curious. */
  readonly counts = { retried: 0, requeued: 0, lostForGood: 0, resumed: 0 };
  /** This queue's name in the journal. */
  readonly name: string;
  /** How many dispatches fell under each affinity rule (see affinity.ts). */
  readonly affinity: Record<AffinityKind, number> = { same: 0, none: 0, unheld: 0, shared: 0 };
  /** Set by a MultiWorkQueue so that async waits also lend and borrow workers. */
  driver: Driver = this;
  readonly #queue = new AffinityQueue();
  /** Retries waiting out their backoff, earliest first. */
  readonly #delayed: Task[] = [];
  /** Collected from the Master, not yet handed to the application. */
  #results: TaskResult[] = [];
  readonly #waiters = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  #pumping = false;
  /** Keys of results handed to the application, journaled as delivered when it comes back for more. */
  readonly #handedOut: Key[] = [];
  /** addWork() calls so far: the default task key. */
  #ordinal = 0;
  readonly #windowed: boolean;

  /**
   * @param options defaults for every task of this queue: `timeoutMs`, `retries` (with `backoffMs`,
   *   `maxBackoffMs`) and `maxLosses`; see TaskPolicy. By default a failing task is reported at once
   *   (as in the seed), a task has no timeout, and a task lost with 3 workers fails with EWORKERLOST.
   *   `name` names the queue in the coordinator's journal.
   */
  constructor(master: Master, options: WorkQueueOptions = {}) {
    const { name, ...policy } = options;
    this.master = master;
    this.name = name ?? 'default';
    this.policy = resolvePolicy(policy);
    master.onWorkerGone = (rank, running, waiting, reason) => {
      this.#queue.release(rank);
      // Back at the head in the order they were queued: the unstarted ones were never at risk.
      for (const task of waiting) this.#lost(task, true);
      if (running) this.#lost(running, reason === 'bye');
    };
    master.onTaskReturned = (_rank, task) => this.#lost(task, true);
    // Collected the moment they arrive, so that workers may hold several tasks (windows); a Master
    // whose run() or getData() is overridden keeps the seed's one-task, collect-to-free cycle.
    this.#windowed = !master.overridesRun && !master.overridesGetData;
    if (this.#windowed) master.onTaskFinished = (rank, task, outcome) => this.#settle(task, valueOf({ rank, task, outcome }), outcome);
  }

  /**
   * Queues `data` for the next free worker; `resourceId` names the resource it needs, so that a
   * worker that already holds that resource gets it. Throws PayloadError at once if msgpack cannot
   * carry `data`. Returns the task's id. A Buffer or Uint8Array over 8 KiB is kept and sent as it
   * is, without a copy (PROTOCOL.md §5.8): do not change its bytes until the task's result is in.
   */
  addWork(data: unknown, resourceId: Key | null = null, options?: AddOptions): number {
    let key: Key = this.#ordinal++;
    let policy = this.policy;
    if (options) {
      const { key: given, ...override } = options;
      if (given !== undefined) key = given;
      policy = resolvePolicy(override, this.policy);
    }
    const farm = this.master.host.farm;
    // Scalars are always encodable: they wait as they are and are encoded when they leave.
    const scalar = isScalar(data);
    // Binary data over 8 KiB is kept and sent as it is, without a copy: rawPayload().
    const bytes = scalar ? null : rawPayload(data);
    const payload = scalar ? null : (bytes ?? encodePayload(data));
    const task = newTask(farm, this.master.taskType, resourceId, payload, bytes !== null, scalar || this.master.overridesRun ? data : undefined, policy, key);
    // A restarted coordinator resumes: what the application already took is not run or given again,
    // and a result that had arrived is given without running the task again.
    const known = this.master.host.journal?.lookup(this.name, key);
    if (known !== undefined) {
      this.counts.resumed++;
      if (known !== 'delivered') this.#hand(task, valueOf({ rank: 0, task, outcome: known }));
      return task.id;
    }
    this.#queue.push(task);
    farm.observer.queued?.(task);
    return task.id;
  }

  /**
   * Cancels a task: a queued one never runs, a running one has its worker's AbortSignal fired. Either
   * way it completes with an ECANCELLED TaskError. Returns false for a task this queue does not hold.
   */
  cancel(taskId: number): boolean {
    const queued = this.#queue.remove(taskId) ?? takeWhere(this.#delayed, (t) => t.id === taskId);
    if (queued) {
      queued.cancelled = true;
      this.master.host.farm.observer.abandoned?.(queued, 'ECANCELLED', true);
      this.#settle(queued, failure(queued, 'CancelledError', `task ${taskId} was cancelled`, 'ECANCELLED'));
      return true;
    }
    return this.master.cancel(taskId);
  }

  /** Gives queued work to every worker of the Master with room for it. */
  doWork(): void {
    if (this.#delayed.length > 0) this.#promoteDue();
    if (this.#queue.length === 0) return;
    if (this.#windowed) return this.#fill();
    for (const rank of this.master.getReadyWorkers()) {
      const pick = this.#queue.pick(rank);
      if (!pick) break;
      this.affinity[pick.kind]++;
      this.master.runQueued(rank, pick.task, pick.kind);
    }
  }

  /** Fills windows one task per worker per round, so that a short queue is spread over the workers. */
  #fill(): void {
    const slots = this.master.slots(this.#queue.length);
    // The slots still open are kept at the front of the array, counted rather than cut off with
    // `slots.length = open`: V8 trims an array's store in a runtime call, a tenth of a µs a pass.
    let count = slots.length;
    while (count > 0) {
      let open = 0;
      for (let i = 0; i < count; i++) {
        const slot = slots[i]!;
        // Room shared by all workers (window.maxTotal) may have gone to the workers before this one.
        if (!this.master.hasRoom(slot.rank)) continue;
        const pick = this.#queue.pick(slot.rank, slot.busy);
        if (!pick) {
          if (this.#queue.length === 0) return;
          continue;
        }
        this.affinity[pick.kind]++;
        // Its room, not one less: payload bytes in flight may close the window early.
        slot.free = this.master.send(slot.rank, pick.task, pick.kind);
        slot.busy = true;
        if (slot.free > 0) slots[open++] = slot;
      }
      count = open;
    }
  }

  /** The results of the tasks completed since the last call; a task that failed appears as its TaskError. */
  getCompletedWork(): unknown[] {
    return this.takeResults().map((r) => (r.ok ? r.value : r.error));
  }

  /**
   * Like getCompletedWork(), with each task's id and resource. With a journal, the batch counts as
   * delivered once the application comes back for more (the next takeResults(), changed() or
   * done()), so a batch in its hands when the coordinator dies is delivered again after the restart
   * rather than lost.
   */
  takeResults(): TaskResult[] {
    this.#confirmDelivered();
    const out = this.#take();
    if (this.master.host.journal) for (const r of out) this.#handedOut.push(r.key);
    return out;
  }

  /** No queued work, nothing running, nothing left to collect. */
  done(): boolean {
    this.#confirmDelivered();
    return this.#queue.length === 0 && this.#delayed.length === 0 && this.#results.length === 0 && this.master.done();
  }

  /** Tasks waiting for a worker, retries waiting out their backoff included. */
  get queued(): number {
    return this.#queue.length + this.#delayed.length;
  }

  /** What the worker of `rank` holds, as far as this queue's affinity is concerned. */
  resourceOf(rank: number): Key | null {
    return this.#queue.heldBy(rank);
  }

  /**
   * Resolves when something changed, replacing the seed's sleep in its loop. Resolves at once when
   * something happened since the last call, when results wait to be collected, or when there is
   * nothing left to wait for (done()), so a loop that calls it last never hangs on its final round.
   */
  changed(options: WaitOptions = {}): Promise<boolean> {
    this.#confirmDelivered();
    if (this.done() || this.#results.length > 0) return Promise.resolve(true);
    const due = this.#delayed[0]?.notBefore;
    if (due === undefined) return this.master.changed(options);
    // A retry becomes due: that is a change too, so wake for it.
    const untilDue = Math.max(0, Math.ceil(due - this.master.host.farm.now()));
    const timeoutMs = options.timeoutMs === undefined ? untilDue : Math.min(options.timeoutMs, untilDue);
    return this.master.changed({ ...options, timeoutMs }).then((changed) => changed || timeoutMs === untilDue);
  }

  /** Results wait to be collected; used by MultiWorkQueue.changed(). */
  get hasResults(): boolean {
    return this.#results.length > 0 || this.master.completedCount > 0;
  }

  /**
   * Runs one task and resolves with its result (rejects with its TaskError). `options.signal`
   * cancels it; the policy fields override the queue's for this task.
   */
  submit(data: unknown, resourceId: Key | null = null, options?: TaskOptions): Promise<unknown> {
    const [, p] = this.#submit(data, resourceId, options);
    // The pump, if already running, waits for the next change before it hands out work: the task
    // leaves now instead, with what the current turn sends (an idle farm's round trip).
    if (this.#pumping) this.driver.doWork();
    return p;
  }

  #submit(data: unknown, resourceId: Key | null, options: TaskOptions | undefined): [number, Promise<unknown>] {
    let signal: AbortSignal | undefined;
    let policy: AddOptions | undefined;
    // Without options (the common case) no policy is resolved for the task: it takes the queue's.
    if (options) ({ signal, ...policy } = options);
    signal?.throwIfAborted();
    const id = this.addWork(data, resourceId, policy);
    const p = new Promise<unknown>((resolve, reject) => this.#waiters.set(id, { resolve, reject }));
    if (signal) {
      const onAbort = () => this.cancel(id);
      signal.addEventListener('abort', onAbort, { once: true });
      void p.catch(() => {}).finally(() => signal.removeEventListener('abort', onAbort));
    }
    this.#pump();
    return [id, p];
  }

  /**
   * Runs one task per item and resolves with their results in order; rejects with the first
   * TaskError. An item msgpack cannot carry throws PayloadError at once, and then none of the items
   * runs (those already queued are cancelled).
   */
  map<T>(items: Iterable<T>, resourceOf?: (item: T, index: number) => Key | null): Promise<unknown[]> {
    const submitted: Array<[number, Promise<unknown>]> = [];
    let i = 0;
    try {
      for (const item of items) submitted.push(this.#submit(item, resourceOf ? resourceOf(item, i++) : null, undefined));
    } catch (err) {
      for (const [id, p] of submitted) {
        p.catch(() => {});
        this.cancel(id);
      }
      throw err;
    }
    return Promise.all(submitted.map(([, p]) => p));
  }

  /** Yields every task's result as it completes (except those of submit()/map()), until done(). */
  async *results(options?: WaitOptions): AsyncGenerator<TaskResult, void, undefined> {
    for (;;) {
      this.driver.doWork();
      this.#confirmDelivered();
      for (const r of this.#take()) {
        // Delivered once the consumer asks for the next one (or stops): a result it was handling
        // when the coordinator died comes again after the restart instead of being lost.
        try {
          yield r;
        } finally {
          this.master.host.journal?.delivered(this.name, r.key);
        }
      }
      if (this.done()) return;
      await this.driver.changed(options);
    }
  }

  /** Runs everything queued to completion and returns the results not claimed by submit()/map(). */
  async drain(options?: WaitOptions): Promise<TaskResult[]> {
    // A batch at a time rather than through results(): an async generator costs promises per item.
    // They count as delivered once the application comes back to the queue, as with takeResults().
    const out: TaskResult[] = [];
    for (;;) {
      this.driver.doWork();
      for (const r of this.takeResults()) out.push(r);
      if (this.done()) return out;
      await this.driver.changed(options);
    }
  }

  /**
   * A task whose worker was lost (or handed it back on stopping) runs again at the head of the
   * queue, unless it was in flight on too many workers that died: a poison task.
   */
  #lost(task: Task, handedBack: boolean): void {
    if (!handedBack) task.losses++;
    if (task.losses >= task.policy.maxLosses) {
      this.counts.lostForGood++;
      const msg = `task ${task.id} was in flight on ${task.losses} workers that were lost; not trying again`;
      this.master.host.farm.observer.abandoned?.(task, 'EWORKERLOST', false);
      this.#settle(task, failure(task, 'WorkerLostError', msg, 'EWORKERLOST'));
      return;
    }
    task.attempt++;
    this.#queue.requeue(task);
    this.counts.requeued++;
    this.master.host.farm.observer.requeued?.(task);
  }

  /** Retries waiting out their backoff go back to the head of the queue once due. */
  #promoteDue(): void {
    const now = this.master.host.farm.now();
    let n = 0;
    while (n < this.#delayed.length && this.#delayed[n]!.notBefore <= now) n++;
    for (const task of this.#delayed.splice(0, n)) this.#queue.requeue(task);
  }

  /** Whether a failed task gets another run; if so, it waits out its backoff first. */
  #retry(task: Task, error: TaskError): boolean {
    const p = task.policy;
    if (task.cancelled || error.code === 'ECANCELLED' || task.failures >= p.retries) return false;
    task.failures++;
    task.attempt++;
    task.notBefore = this.master.host.farm.now() + Math.min(p.maxBackoffMs, p.backoffMs * 2 ** (task.failures - 1));
    const at = this.#delayed.findIndex((t) => t.notBefore > task.notBefore);
    this.#delayed.splice(at < 0 ? this.#delayed.length : at, 0, task);
    this.counts.retried++;
    this.master.host.farm.observer.retried?.(task, error.code);
    return true;
  }

  #take(): TaskResult[] {
    this.#collect();
    const out = this.#results;
    this.#results = [];
    return out;
  }

  /** Journals as delivered the results handed out before the application came back to the queue. */
  #confirmDelivered(): void {
    if (this.#handedOut.length === 0) return;
    const journal = this.master.host.journal!;
    for (const key of this.#handedOut) journal.delivered(this.name, key);
    this.#handedOut.length = 0;
  }

  #collect(): void {
    this.#confirmDelivered();
    if (!this.master.overridesGetData) {
      for (const c of this.master.takeCompleted()) this.#settle(c.task, valueOf(c), c.outcome);
      return;
    }
    for (const rank of this.master.getCompletedWorkers()) {
      const { task, outcome } = this.master.completion(rank)!;
      this.#settle(task, this.master.getData(rank), outcome);
    }
  }

  /** A task's final outcome, unless it is retried: journaled, then handed over. */
  #settle(task: Task, value: unknown, outcome?: Outcome): void {
    if (value instanceof TaskError && this.#retry(task, value)) return;
    const journal = this.master.host.journal;
    if (journal) journal.completed(this.name, task.key, outcome ?? { ok: false, error: (value as TaskError).remote });
    this.#hand(task, value);
  }

  /** To the submit() that waits for it, else to the results the application collects. */
  #hand(task: Task, value: unknown): void {
    const r = toResult(task, value);
    const waiter = this.#waiters.get(r.id);
    if (!waiter) {
      this.#results.push(r);
      return;
    }
    this.#waiters.delete(r.id);
    // Confirmed at the next collection, after the awaiting code has run.
    if (this.master.host.journal) this.#handedOut.push(r.key);
    if (r.ok) waiter.resolve(r.value);
    else waiter.reject(r.error);
  }

  /** While submit() promises are outstanding, hand out work and collect on every change. */
  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    void this.#pumpUntilSettled();
  }

  async #pumpUntilSettled(): Promise<void> {
    try {
      for (;;) {
        this.driver.doWork();
        this.#collect();
        if (this.#waiters.size === 0) return;
        await this.driver.changed();
      }
    } catch (err) {
      for (const w of this.#waiters.values()) w.reject(err);
      this.#waiters.clear();
    } finally {
      this.#pumping = false;
    }
  }
}

function toResult(task: Task, value: unknown): TaskResult {
  const { id, key, resource } = task;
  return value instanceof TaskError ? { id, key, resource, ok: false, error: value } : { id, key, resource, ok: true, value };
}

/** A failure decided here rather than on a worker (cancelled, lost too often). */
function failure(task: Task, name: string, message: string, code: string): TaskError {
  return new TaskError({ name, message, code }, task, null);
}

function takeWhere<T>(list: T[], pred: (v: T) => boolean): T | undefined {
  const i = list.findIndex(pred);
  return i < 0 ? undefined : list.splice(i, 1)[0];
}
