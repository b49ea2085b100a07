/**
 * How many tasks a worker may have in flight: its window. Enough to hide the round trip and let
 * tasks and results travel in batches when tasks are short; one when they are long, so that a long
 * task never holds short ones hostage on its worker while other workers go idle. Sized from the
 * handler time workers report with their results (an average that leans towards recent tasks).
 */

export interface WindowSettings {
  /** The most tasks in flight on one worker (the worker may ask for fewer). 1 turns windows off. */
  readonly max: number;
  /** How much work (in ms of handler time) a worker should hold beyond the task it runs. */
  readonly targetMs: number;
  /** Tasks this long or longer run one at a time. */
  readonly longMs: number;
  /** Payload bytes in flight on one worker beyond which it gets no more tasks until some come back (it always gets one). */
  readonly maxBytes: number;
  /**
   * A task that has run this long with others waiting behind it on its worker has them taken back
   * when another worker sits idle (Farm.tick); longer on a worker that usually takes longer to
   * answer (WorkerPace.recallAfter). Long enough not to mistake a busy machine (a worker waiting for
   * a core, or for other workers in its process) for a long task.
   */
  readonly recallMs: number;
  /**
   * The most tasks in flight on all workers together, and each worker's share of it (this divided by
   * the workers connected). Windows hide a round trip; past a few tens of tasks per worker they only
   * make bursts: 1,000 workers with full windows would be sent a whole job at once, and the
   * processes that host them would stall under it. 65,536 (65 a worker with 1,000): with 32,768 the
   * 1,000-worker bench ran at 151–160k empty tasks/s, with 65,536 at 193–208k (131,072: no better),
   * its worker processes paying per message, ~60 µs, for batches half as large.
   */
  readonly maxTotal: number;
}

export const DEFAULT_WINDOW: WindowSettings = Object.freeze({ max: 1024, targetMs: 40, longMs: 20, maxBytes: 4 * 1024 * 1024, recallMs: 100, maxTotal: 65_536 });

/** Weight of the newest observation in the running average of a worker's handler time. */
const WEIGHT = 0.2;

/** What a coordinator knows of one worker's pace. */
export class WorkerPace {
  /** Average handler time per task, in ms; null until the worker reported one. */
  taskMs: number | null = null;
  /** Payload bytes of the tasks in flight on it. */
  bytes = 0;
  /**
   * How long it takes to answer while it holds tasks behind the one it runs (from when that one
   * started, as the coordinator reckons it, to the next message of outcomes): a smoothed mean and
   * mean deviation, as TCP estimates a round trip (RFC 6298). null until first seen.
   */
  answerMs: number | null = null;
  answerDevMs = 0;

  constructor(readonly agreed: number) {}

  /** `count` tasks ran for `us` µs in all. */
  observe(us: number, count: number): void {
    const ms = us / 1000 / count;
    // A batch counts as `count` observations, so that one batch of 64 outweighs one lone task.
    const w = 1 - (1 - WEIGHT) ** Math.min(count, 64);
    this.taskMs = this.taskMs === null ? ms : this.taskMs + w * (ms - this.taskMs);
  }

  /** It answered `ms` after its running task started, with tasks waiting behind that one. */
  observeAnswer(ms: number): void {
    if (this.answerMs === null) {
      this.answerMs = ms;
      this.answerDevMs = ms / 2;
      return;
    }
    this.answerDevMs += (Math.abs(ms - this.answerMs) - this.answerDevMs) / 4;
    this.answerMs += (ms - this.answerMs) / 8;
  }

  /**
   * How long its running task may go unanswered, with others waiting behind it, before those are
   * taken back: recallMs, or well beyond its usual answer time when that is longer. A worker in a
   * process that hosts hundreds of others, on a machine short of cores, answers every few hundred
   * ms however short its tasks; at a flat 100 ms its backlog was taken back again and again (5,000
   * to 165,000 cancels in a 300,000-task run on 1,000 workers), each one adding work to the
   * overloaded machine. A task that runs far past the worker's usual time is still caught.
   */
  recallAfter(s: WindowSettings): number {
    return this.answerMs === null ? s.recallMs : Math.max(s.recallMs, this.answerMs + 4 * this.answerDevMs);
  }

  /**
   * Its window with `workers` connected: sized by its pace (1 until that is known, since its tasks
   * might be long), within what it agreed to and its share of maxTotal.
   */
  window(s: WindowSettings, workers: number): number {
    return Math.min(windowFor(this.taskMs, Math.min(this.agreed, s.max), s), Math.max(1, Math.floor(s.maxTotal / workers)));
  }

  /**
   * How many more tasks it may be sent now, with `inFlight` in flight on it, `totalRoom` left under
   * maxTotal and `workers` connected: its window less what it holds. A worker with nothing in flight
   * always gets one task, whatever else is in flight.
   */
  room(inFlight: number, s: WindowSettings, workers: number, totalRoom: number): number {
    const window = this.window(s, workers);
    if (inFlight === 0) return Math.max(1, Math.min(window, totalRoom));
    if (this.bytes >= s.maxBytes) return 0;
    return Math.max(0, Math.min(window - inFlight, totalRoom));
  }

  /**
   * Whether a refill of `room` tasks is worth a message while `inFlight` are still on the worker:
   * it must be a quarter of its window at least. Without that threshold (TCP's silly window
   * syndrome), a farm whose tasks in flight reach maxTotal hands each task that comes back to
   * whichever worker has a slot, and settles into messages of a task or two.
   */
  worthSending(room: number, inFlight: number, s: WindowSettings, workers: number): boolean {
    return room > 0 && (inFlight === 0 || room >= Math.ceil(this.window(s, workers) / 4));
  }
}

export function windowFor(taskMs: number | null, max: number, s: WindowSettings): number {
  if (max <= 1 || taskMs === null || taskMs >= s.longMs) return 1;
  // At least 2: one running, one waiting, so the next task is there when the first finishes.
  return Math.max(2, Math.min(max, Math.ceil(s.targetMs / Math.max(taskMs, 1e-3))));
}
