/**
 * The seed's resource affinity, as a queue. For an idle worker, work is picked in this order:
 *   1. more work for the resource the worker held last          ('same')
 *   2. work that needs no resource                               ('none')
 *   3. work for a resource no worker holds                       ('unheld')
 *   4. work for any resource, even one another worker holds      ('shared')
 * A worker "holds" the resource of the last task it was given (none after a task without one), as
 * in mpi-master-slave's WorkQueue. Queues are FIFO; resources are tried in the order their work
 * arrived. Every operation is O(1): no scan over workers or resources.
 */
import { Deque, type Key } from '@taskfarm/protocol';
import type { Task } from './farm.ts';

export type AffinityKind = 'same' | 'none' | 'unheld' | 'shared';

export class AffinityQueue {
  readonly #anonymous = new Deque<Task>();
  /** Work per resource; a resource is deleted when its queue empties, so iteration order is arrival order. */
  readonly #byResource = new Map<Key, Deque<Task>>();
  /** How many workers hold each resource. */
  readonly #holders = new Map<Key, number>();
  /** What each worker holds. */
  readonly #held = new Map<number, Key | null>();
  /** Resources with work that no worker holds, in arrival order. */
  readonly #unheld = new Set<Key>();
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(task: Task): void {
    (this.#queueFor(task.resource) ?? this.#anonymous).push(task);
    this.#length++;
  }

  /**
   * Puts a task back near the head of its queue (work lost with a worker, handed back or retried
   * runs next): before every queued task that was added after it. Tasks handed back one by one
   * (a recall's answers) so keep the order they were added in, instead of reversing it.
   */
  requeue(task: Task): void {
    (this.#queueFor(task.resource) ?? this.#anonymous).insertBefore(task, (other) => other.id > task.id);
    this.#length++;
  }

  /**
   * Picks the next task for `rank` and records that the worker now holds its resource. A `busy`
   * worker (tasks queued on it already) gets no 'shared' work: a resource another worker holds
   * waits for that worker, or for this one to run dry, rather than queue behind this one's tasks.
   * Windows made that matter: filled past the end of its resource's work, a window took the next
   * resource's tasks while that resource's holder was about to go idle, and both paid to acquire.
   */
  pick(rank: number, busy = false): { task: Task; kind: AffinityKind } | null {
    if (this.#length === 0) return null;
    const prev = this.#held.get(rank) ?? null;
    let kind: AffinityKind;
    let resource: Key | null;
    if (prev !== null && this.#byResource.has(prev)) {
      kind = 'same';
      resource = prev;
    } else if (this.#anonymous.length > 0) {
      kind = 'none';
      resource = null;
    } else if (this.#unheld.size > 0) {
      kind = 'unheld';
      resource = first(this.#unheld)!;
    } else if (!busy) {
      kind = 'shared';
      resource = first(this.#byResource.keys())!;
    } else {
      return null;
    }
    const task = resource === null ? this.#anonymous.shift()! : this.#popResource(resource);
    this.#length--;
    this.#hold(rank, resource);
    return { task, kind };
  }

  /** Takes a queued task out (cancel); undefined when it is not queued here. */
  remove(taskId: number): Task | undefined {
    const match = (t: Task) => t.id === taskId;
    let task = this.#anonymous.removeFirst(match);
    if (!task) {
      for (const [resource, q] of this.#byResource) {
        task = q.removeFirst(match);
        if (!task) continue;
        if (q.length === 0) {
          this.#byResource.delete(resource);
          this.#unheld.delete(resource);
        }
        break;
      }
    }
    if (task) this.#length--;
    return task;
  }

  /** The resource `rank` holds, if any. */
  heldBy(rank: number): Key | null {
    return this.#held.get(rank) ?? null;
  }

  /** Forgets what a departed worker held, so its resource counts as unheld again. */
  release(rank: number): void {
    if (!this.#held.has(rank)) return;
    this.#drop(this.#held.get(rank) ?? null);
    this.#held.delete(rank);
  }

  /** Every queued task, in no particular order (for inspection). */
  *tasks(): IterableIterator<Task> {
    yield* this.#anonymous;
    for (const q of this.#byResource.values()) yield* q;
  }

  #queueFor(resource: Key | null): Deque<Task> | null {
    if (resource === null) return null;
    let q = this.#byResource.get(resource);
    if (!q) {
      q = new Deque<Task>(4);
      this.#byResource.set(resource, q);
      if (!this.#holders.get(resource)) this.#unheld.add(resource);
    }
    return q;
  }

  #popResource(resource: Key): Task {
    const q = this.#byResource.get(resource)!;
    const task = q.shift()!;
    if (q.length === 0) {
      this.#byResource.delete(resource);
      this.#unheld.delete(resource);
    }
    return task;
  }

  #hold(rank: number, resource: Key | null): void {
    const prev = this.#held.get(rank) ?? null;
    this.#held.set(rank, resource);
    if (prev === resource) return;
    this.#drop(prev);
    if (resource !== null) {
      const n = this.#holders.get(resource) ?? 0;
      this.#holders.set(resource, n + 1);
      if (n === 0) this.#unheld.delete(resource);
    }
  }

  #drop(resource: Key | null): void {
    if (resource === null) return;
    const n = (this.#holders.get(resource) ?? 1) - 1;
    if (n > 0) {
      this.#holders.set(resource, n);
      return;
    }
    this.#holders.delete(resource);
    if (this.#byResource.has(resource)) this.#unheld.add(resource);
  }
}

function first<T>(it: Iterable<T>): T | undefined {
  for (const v of it) return v;
  return undefined;
}
