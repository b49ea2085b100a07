/**
 * A task a worker holds, running or waiting in its queue (a Deque in worker.ts) behind the one that
 * runs, up to the window it agreed on with the coordinator.
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
  /** The payload is binary data's own bytes (work.raw), not msgpack. */
  readonly raw: boolean;
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
    this.raw = work.raw === true;
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
