/**
 * The tasks a worker holds: the one running and those waiting behind it in its own queue, up to the
 * window it agreed on with the coordinator.
 */
import type { Key, Work } from '@taskfarm/protocol';
import type { TaskAbortedError } from './errors.ts';
import type { TaskContext } from './worker.ts';

const NO_PAYLOAD = new Uint8Array(0);

/**
 * One task, queued or running. It is also the TaskContext its handler gets, so that a task costs one
 * object of ours. Its AbortController is made only once someone reads `signal` or aborts the task:
 * making one costs more than running an empty task.
 */
export class HeldTask implements TaskContext {
  readonly taskId: number;
  readonly attempt: number;
  readonly type: Key | null;
  readonly resource: Key | null;
  /** Set when the task starts: the rank may change while it waits (a re-registration). */
  rank = 0;
  readonly timeoutMs: number | null;
  /** While running: the timers that abort it (its timeout; the stop grace). */
  timeout: NodeJS.Timeout | null = null;
  grace: NodeJS.Timeout | null = null;
  #payload: Uint8Array;
  #abort: AbortController | null = null;

  constructor(work: Work) {
    this.taskId = work.id;
    this.attempt = work.attempt;
    this.type = work.type;
    this.resource = work.resource;
    this.timeoutMs = work.timeoutMs;
    this.#payload = work.payload;
  }

  get signal(): AbortSignal {
    return (this.#abort ??= new AbortController()).signal;
  }

  /**
   * The task's data as it came, once: it may be a view into a whole batch's frame, which a handler
   * that keeps its context must not keep alive.
   */
  takePayload(): Uint8Array {
    const p = this.#payload;
    this.#payload = NO_PAYLOAD;
    return p;
  }

  abort(reason: TaskAbortedError): void {
    (this.#abort ??= new AbortController()).abort(reason);
  }

  /** Why its signal fired, or undefined: a handler that failed then is reported for that reason. */
  get abortReason(): TaskAbortedError | undefined {
    return this.#abort?.signal.aborted ? (this.#abort.signal.reason as TaskAbortedError) : undefined;
  }
}

/** The tasks waiting to run, first in first out: a ring, so that taking the next one is O(1) at any window. */
export class TaskQueue {
  #ring: Array<HeldTask | undefined> = new Array(16);
  #head = 0;
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(task: HeldTask): void {
    if (this.#length === this.#ring.length) this.#grow();
    this.#ring[(this.#head + this.#length) % this.#ring.length] = task;
    this.#length++;
  }

  shift(): HeldTask | undefined {
    if (this.#length === 0) return undefined;
    const task = this.#ring[this.#head];
    this.#ring[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#ring.length;
    this.#length--;
    return task;
  }

  /** Takes (id, attempt) out of the queue, keeping the others' order; O(length), for a cancel. */
  remove(id: number, attempt: number): HeldTask | undefined {
    const n = this.#ring.length;
    for (let i = 0; i < this.#length; i++) {
      const task = this.#ring[(this.#head + i) % n]!;
      if (task.taskId !== id || task.attempt !== attempt) continue;
      for (let j = i; j < this.#length - 1; j++) this.#ring[(this.#head + j) % n] = this.#ring[(this.#head + j + 1) % n];
      this.#ring[(this.#head + this.#length - 1) % n] = undefined;
      this.#length--;
      return task;
    }
    return undefined;
  }

  clear(): void {
    this.#ring.fill(undefined);
    this.#head = 0;
    this.#length = 0;
  }

  #grow(): void {
    const ring: Array<HeldTask | undefined> = new Array(this.#ring.length * 2);
    for (let i = 0; i < this.#length; i++) ring[i] = this.#ring[(this.#head + i) % this.#ring.length];
    this.#ring = ring;
    this.#head = 0;
  }
}
