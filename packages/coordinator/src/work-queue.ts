/**
 * The seed's WorkQueue: tasks waiting for the workers of one Master, handed out with resource
 * affinity. Two ways to drive it:
 *   - the seed's loop: `while (!q.done()) { q.doWork(); for (const r of q.getCompletedWork()) ...; await q.changed(); }`
 *   - async: `await q.map(items)`, `await q.submit(data)`, `for await (const r of q.results())`, `await q.drain()`.
 */
import { encodePayload, type Key } from '@taskfarm/protocol';
import { AffinityQueue, type AffinityKind } from './affinity.ts';
import { TaskError } from './errors.ts';
import type { Task } from './farm.ts';
import { valueOf, type Master, type WaitOptions } from './master.ts';

/** One finished task, as the async API hands it out. */
export type TaskResult =
  | { readonly id: number; readonly resource: Key | null; readonly ok: true; readonly value: unknown }
  | { readonly id: number; readonly resource: Key | null; readonly ok: false; readonly error: TaskError };

/** Who hands out work and waits for changes: the queue itself, or the MultiWorkQueue it belongs to. */
export interface Driver {
  doWork(): void;
  changed(options?: WaitOptions): Promise<boolean>;
}

export class WorkQueue implements Driver {
  readonly master: Master;
  /** How many dispatches fell under each affinity rule (see affinity.ts). */
  readonly affinity: Record<AffinityKind, number> = { same: 0, none: 0, unheld: 0, shared: 0 };
  /** Set by a MultiWorkQueue so that async waits also lend and borrow workers. */
  driver: Driver = this;
  readonly #queue = new AffinityQueue();
  /** Collected from the Master, not yet handed to the application. */
  #results: TaskResult[] = [];
  readonly #waiters = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  #pumping = false;

  constructor(master: Master) {
    this.master = master;
    master.onWorkerGone = (rank, task) => {
      this.#queue.release(rank);
      if (task) {
        task.attempt++;
        this.#queue.unshift(task);
        this.master.host.farm.observer.requeued?.(task);
      }
    };
  }

  /**
   * Queues `data` for the next free worker; `resourceId` names the resource it needs, so that a
   * worker that already holds that resource gets it. Throws PayloadError at once if msgpack cannot
   * carry `data`. Returns the task's id.
   */
  addWork(data: unknown, resourceId: Key | null = null): number {
    const farm = this.master.host.farm;
    const task: Task = {
      id: farm.newTaskId(),
      attempt: 1,
      type: this.master.taskType,
      resource: resourceId,
      payload: encodePayload(data),
      ...(this.master.overridesRun ? { data } : {}),
      queuedAt: farm.now(),
      startedAt: 0,
    };
    this.#queue.push(task);
    farm.observer.queued?.(task);
    return task.id;
  }

  /** Gives queued work to every ready worker of the Master. */
  doWork(): void {
    if (this.#queue.length === 0) return;
    for (const rank of this.master.getReadyWorkers()) {
      const pick = this.#queue.pick(rank);
      if (!pick) break;
      this.affinity[pick.kind]++;
      this.master.runQueued(rank, pick.task, pick.kind);
    }
  }

  /** The results of the tasks completed since the last call; a task that failed appears as its TaskError. */
  getCompletedWork(): unknown[] {
    return this.takeResults().map((r) => (r.ok ? r.value : r.error));
  }

  /** Like getCompletedWork(), with each task's id and resource. */
  takeResults(): TaskResult[] {
    this.#collect();
    const out = this.#results;
    this.#results = [];
    return out;
  }

  /** No queued work, nothing running, nothing left to collect. */
  done(): boolean {
    return this.#queue.length === 0 && this.#results.length === 0 && this.master.done();
  }

  /** Tasks waiting for a worker. */
  get queued(): number {
    return this.#queue.length;
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
  changed(options?: WaitOptions): Promise<boolean> {
    if (this.done() || this.#results.length > 0) return Promise.resolve(true);
    return this.master.changed(options);
  }

  /** Results wait to be collected; used by MultiWorkQueue.changed(). */
  get hasResults(): boolean {
    return this.#results.length > 0 || this.master.completedCount > 0;
  }

  /** Runs one task and resolves with its result (rejects with its TaskError). */
  submit(data: unknown, resourceId: Key | null = null): Promise<unknown> {
    const id = this.addWork(data, resourceId);
    const p = new Promise<unknown>((resolve, reject) => this.#waiters.set(id, { resolve, reject }));
    this.#pump();
    return p;
  }

  /** Runs one task per item and resolves with their results in order; rejects with the first TaskError. */
  map<T>(items: Iterable<T>, resourceOf?: (item: T, index: number) => Key | null): Promise<unknown[]> {
    const tasks: Promise<unknown>[] = [];
    let i = 0;
    for (const item of items) tasks.push(this.submit(item, resourceOf ? resourceOf(item, i++) : null));
    return Promise.all(tasks);
  }

  /** Yields every task's result as it completes (except those of submit()/map()), until done(). */
  async *results(options?: WaitOptions): AsyncGenerator<TaskResult, void, undefined> {
    for (;;) {
      this.driver.doWork();
      yield* this.takeResults();
      if (this.done()) return;
      await this.driver.changed(options);
    }
  }

  /** Runs everything queued to completion and returns the results not claimed by submit()/map(). */
  async drain(options?: WaitOptions): Promise<TaskResult[]> {
    const out: TaskResult[] = [];
    for await (const r of this.results(options)) out.push(r);
    return out;
  }

  #collect(): void {
    if (!this.master.overridesGetData) {
      for (const c of this.master.takeCompleted()) this.#deliver(c.task, valueOf(c));
      return;
    }
    for (const rank of this.master.getCompletedWorkers()) {
      const { task } = this.master.completion(rank)!;
      this.#deliver(task, this.master.getData(rank));
    }
  }

  /** To the submit() that waits for it, else to the results the application collects. */
  #deliver(task: Task, value: unknown): void {
    const r = toResult(task, value);
    const waiter = this.#waiters.get(r.id);
    if (!waiter) {
      this.#results.push(r);
      return;
    }
    this.#waiters.delete(r.id);
    if (r.ok) waiter.resolve(r.value);
    else waiter.reject(r.error);
  }

  /** While submit() promises are outstanding, hand out work and collect on every change. */
  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    void (async () => {
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
    })();
  }
}

function toResult(task: Task, value: unknown): TaskResult {
  const { id, resource } = task;
  return value instanceof TaskError ? { id, resource, ok: false, error: value } : { id, resource, ok: true, value };
}
