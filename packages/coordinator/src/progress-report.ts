/**
 * Progress reports from rank 0 to `taskfarm run`, which draws them as a live line on its terminal.
 * Sent over the launcher's Node IPC channel, only when the launcher asks for them
 * (TASKFARM_PROGRESS=1, set when its stderr is a terminal): event-driven, coalesced so that a burst
 * of events makes one message, and skipped when nothing the line shows has changed.
 */
import type { FarmMetrics } from './metrics.ts';
import type { CoordinatorObserver } from './observer.ts';

/** What rank 0 sends; the launcher computes rate and ETA from `done` over time. */
export interface ProgressMessage {
  taskfarm: 'progress';
  /** Tasks with a final outcome, and of those the failures. */
  done: number;
  failed: number;
  /** Tasks submitted so far (it grows as the application queues work). */
  total: number;
  queued: number;
  busy: number;
  idle: number;
  joining: number;
}

export function isProgressMessage(m: unknown): m is ProgressMessage {
  const p = m as Partial<ProgressMessage> | null;
  return typeof p === 'object' && p !== null && p.taskfarm === 'progress' && typeof p.done === 'number' && typeof p.total === 'number';
}

/** Coalescing window: at most one report per this many ms. */
export const PROGRESS_INTERVAL_MS = 100;

export class ProgressReporter implements CoordinatorObserver {
  readonly #metrics: FarmMetrics;
  readonly #send: (m: ProgressMessage) => void;
  #timer: NodeJS.Timeout | null = null;
  #last = '';

  constructor(metrics: FarmMetrics, send: (m: ProgressMessage) => void) {
    this.#metrics = metrics;
    this.#send = send;
  }

  /** A reporter when this process is rank 0 under a launcher that asked for progress, else null. */
  static fromEnvironment(metrics: FarmMetrics, env: NodeJS.ProcessEnv = process.env): ProgressReporter | null {
    if (env.TASKFARM_PROGRESS !== '1' || !env.TASKFARM_LAUNCHER || !process.send) return null;
    return new ProgressReporter(metrics, (m) => {
      if (process.connected) process.send?.(m, undefined, undefined, () => {});
    });
  }

  joined(): void {
    this.schedule();
  }
  left(): void {
    this.schedule();
  }
  queued(): void {
    this.schedule();
  }
  dispatched(): void {
    this.schedule();
  }
  finished(): void {
    this.schedule();
  }
  requeued(): void {
    this.schedule();
  }
  retried(): void {
    this.schedule();
  }

  schedule(): void {
    if (this.#timer) return;
    this.#timer = setTimeout(() => this.flush(), PROGRESS_INTERVAL_MS);
    this.#timer.unref();
  }

  /** Sends the current progress now, unless it is what was sent last. */
  flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const t = this.#metrics.snapshot().totals;
    const m: ProgressMessage = { taskfarm: 'progress', done: t.done, failed: Math.max(0, t.failed - t.retried) + t.abandoned, total: t.submitted, queued: t.queued, busy: t.busy, idle: t.idle, joining: t.joining };
    const key = JSON.stringify(m);
    if (key === this.#last) return;
    this.#last = key;
    this.#send(m);
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
