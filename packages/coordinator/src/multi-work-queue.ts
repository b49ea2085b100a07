/**
 * The seed's MultiWorkQueue: one Master (and WorkQueue) per task type, each with an optional limit
 * on its workers. Workers are dealt round-robin at construction; on every doWork() a Master under
 * its limit that has work borrows a ready worker from a Master that is done or unlimited, and a
 * Master without work lends a ready worker to one that has work and room for it. Only ready workers
 * move, so no task is interrupted and no limit is ever exceeded.
 */
import type { Key } from '@taskfarm/protocol';
import type { Master, Supply, WaitOptions } from './master.ts';
import { WorkQueue, type Driver, type TaskResult } from './work-queue.ts';

/** `[taskId, master, maxWorkers]` as in the seed; null or undefined means no limit. */
export type MasterDetail = readonly [taskId: Key, master: Master, maxWorkers?: number | null];

interface Entry {
  readonly id: Key;
  readonly master: Master;
  readonly queue: WorkQueue;
  readonly limit: number | null;
}

export class MultiWorkQueue implements Driver {
  readonly #entries: Entry[] = [];
  readonly #byId = new Map<Key, Entry>();
  /** Ranks left over when every Master was at its limit; borrowed before any Master's worker. */
  readonly #spare: number[] = [];
  /** Workers moved between Masters: `lent` counts moves out of a Master without work, `borrowed` moves into one under its limit. */
  readonly moves = { lent: 0, borrowed: 0 };

  constructor(workers: Iterable<number>, details: Iterable<MasterDetail>) {
    for (const [id, master, limit] of details) {
      if (this.#byId.has(id)) throw new Error(`task id ${String(id)} appears twice`);
      if (limit !== null && limit !== undefined && !(Number.isSafeInteger(limit) && limit >= 0)) {
        throw new RangeError(`maxWorkers for task ${String(id)} must be an integer >= 0 or null, not ${limit}`);
      }
      master.stopAdopting();
      // Workers and metrics see the task type without the application wrapping its data.
      master.taskType ??= id;
      const entry: Entry = { id, master, queue: new WorkQueue(master, { name: String(id) }), limit: limit ?? null };
      entry.queue.driver = this;
      this.#entries.push(entry);
      this.#byId.set(id, entry);
    }
    if (this.#entries.length === 0) throw new Error('MultiWorkQueue needs at least one Master');
    // Deal round-robin up to each limit. The seed loops forever when every Master is full; here
    // the remaining ranks stay unassigned until a Master borrows them.
    const ranks = [...workers];
    let next = 0;
    while (next < ranks.length) {
      let dealt = false;
      for (const e of this.#entries) {
        if (next >= ranks.length) break;
        if (hasRoom(e)) {
          e.master.addWorker(ranks[next++]!);
          dealt = true;
        }
      }
      if (!dealt) break;
    }
    this.#spare.push(...ranks.slice(next));
  }

  addWork(taskId: Key, data: unknown, resourceId: Key | null = null): number {
    return this.#entry(taskId).queue.addWork(data, resourceId);
  }

  /**
   * The seed's pass (borrow, dispatch, lend; at most one move per Master), repeated while it moves a
   * worker: the seed relied on its polling loop to converge, here no poll comes, so one call settles.
   */
  doWork(): void {
    // Every move goes from a done or unlimited Master to one with work and room, so passes are few;
    // the cap only guards against a bug turning that into a loop.
    for (let pass = 0; pass < 1000; pass++) {
      let moved = false;
      for (const e of this.#entries) {
        if (!e.queue.done()) {
          if (e.limit !== null && e.master.numWorkers() < e.limit) moved = this.#borrow(e) || moved;
          e.queue.doWork();
        } else {
          moved = this.#lend(e) || moved;
        }
      }
      if (!moved) return;
    }
  }

  getCompletedWork(taskId: Key): unknown[] {
    return this.#entry(taskId).queue.getCompletedWork();
  }

  done(): boolean {
    return this.#entries.every((e) => e.queue.done());
  }

  /** The WorkQueue of one task type. */
  queue(taskId: Key): WorkQueue {
    return this.#entry(taskId).queue;
  }

  /**
   * Resolves once every Master's workers have connected (Master.waitForWorkers for each): a job
   * started by `taskfarm run -n N` then begins, as under mpiexec, with all its ranks up, rather
   * than dealing its first tasks to whichever ranks started first. Rejects as changed() does.
   */
  async waitForWorkers(options: WaitOptions = {}): Promise<void> {
    await Promise.all(this.#entries.map((e) => e.master.waitForWorkers(undefined, options)));
  }

  /** As WorkQueue.changed(), over all the Masters. */
  changed(options: WaitOptions = {}): Promise<boolean> {
    if (this.#takeChange() || this.done() || this.#entries.some((e) => e.queue.hasResults)) return Promise.resolve(true);
    return this.#entries[0]!.master.host.waitForChange(options, () => this.#supply()).then((changed) => {
      this.#takeChange();
      return changed;
    });
  }

  #takeChange(): boolean {
    let changed = false;
    for (const e of this.#entries) changed = e.master.takeChange() || changed;
    return changed;
  }

  /** Runs one task of type `taskId`; resolves with its result, rejects with its TaskError. */
  submit(taskId: Key, data: unknown, resourceId: Key | null = null): Promise<unknown> {
    return this.#entry(taskId).queue.submit(data, resourceId);
  }

  /** Yields every result as it completes, with its task type, until done(). */
  async *results(options?: WaitOptions): AsyncGenerator<TaskResult & { readonly taskId: Key }, void, undefined> {
    for (;;) {
      this.doWork();
      for (const e of this.#entries) for (const r of e.queue.takeResults()) yield { ...r, taskId: e.id };
      if (this.done()) return;
      await this.changed(options);
    }
  }

  async drain(options?: WaitOptions): Promise<Array<TaskResult & { readonly taskId: Key }>> {
    const out: Array<TaskResult & { readonly taskId: Key }> = [];
    for await (const r of this.results(options)) out.push(r);
    return out;
  }

  #entry(taskId: Key): Entry {
    const e = this.#byId.get(taskId);
    if (!e) throw new Error(`unknown task id ${String(taskId)}`);
    return e;
  }

  /** A Master under its limit takes a ready worker from one that is done or unlimited. */
  #borrow(e: Entry): boolean {
    const farm = e.master.host.farm;
    const i = this.#spare.findIndex((r) => farm.worker(r)?.state === 'idle' && farm.owner(r) === undefined);
    if (i >= 0) {
      const rank = this.#spare.splice(i, 1)[0]!;
      e.master.addWorker(rank);
      this.#moved(rank, null, e, 'borrowed');
      return true;
    }
    for (const other of this.#entries) {
      if (other === e || !(other.queue.done() || other.limit === null)) continue;
      const rank = other.master.moveWorker(e.master);
      if (rank !== null) {
        this.#moved(rank, other, e, 'borrowed');
        return true;
      }
    }
    return false;
  }

  /** A Master without work gives a ready worker to one that has work and room. */
  #lend(e: Entry): boolean {
    if (!e.master.hasReadyWorker()) return false;
    for (const other of this.#entries) {
      if (other === e || other.queue.done() || !hasRoom(other)) continue;
      const rank = e.master.moveWorker(other.master);
      if (rank === null) return false;
      this.#moved(rank, e, other, 'lent');
      return true;
    }
    return false;
  }

  #moved(rank: number, from: Entry | null, to: Entry, how: 'lent' | 'borrowed'): void {
    this.moves[how]++;
    to.master.host.farm.observer.moved?.(rank, from?.id ?? null, to.id, how);
  }

  #supply(): Supply {
    let result: Supply = 'none';
    for (const e of this.#entries) {
      const s = e.master.supply();
      if (s === 'present') return s;
      if (s === 'absent') result = 'absent';
    }
    return result;
  }
}

function hasRoom(e: Entry): boolean {
  return e.limit === null || e.master.numWorkers() < e.limit;
}
