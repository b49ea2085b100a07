/** taskfarm's worker for the benchmarks: the anchors' scenarios, and example 3's resource affinity. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker, type TaskContext, type WorkerOptions } from 'taskfarm';
import { doTask, spinCpu, type Scenario } from './tasks.ts';

/** One example-3 task as bench/timeline.ts shows it: start and end (ms since the epoch), resource, whether it acquired it. */
export type TimelineEntry = [start: number, end: number, resource: unknown, acquired: boolean];

// With BENCH_TIMELINE=DIR, this process writes its example-3 tasks to DIR/<pid>.json as it exits.
const timelineDir = process.env.BENCH_TIMELINE;
const timeline: TimelineEntry[] = [];
if (timelineDir) process.once('exit', () => writeFileSync(join(timelineDir, `${process.pid}.json`), JSON.stringify(timeline)));
const epochMs = () => performance.timeOrigin + performance.now();

export class BenchWorker extends Worker<unknown, unknown> {
  readonly scenario: Scenario;
  #held: unknown = null;

  constructor(options?: WorkerOptions, scenario: Scenario = (process.env.BENCH_SCENARIO ?? 'a') as Scenario) {
    super(options);
    this.scenario = scenario;
  }

  // Synchronous for the anchors' scenarios, as their workers are: only example 3 awaits.
  doWork(data: unknown, ctx: TaskContext): unknown {
    return this.scenario === 'd' ? this.#affine(ctx) : doTask(this.scenario, data);
  }

  /** Example 3: acquiring a resource other than the one held costs 20 ms, then 1 ms of CPU. */
  async #affine(ctx: TaskContext): Promise<boolean> {
    const start = timelineDir ? epochMs() : 0;
    let acquired = false;
    if (this.#held !== ctx.resource) {
      await new Promise((r) => setTimeout(r, 20));
      this.#held = ctx.resource;
      acquired = true;
    }
    spinCpu(1);
    if (timelineDir) timeline.push([start, epochMs(), ctx.resource, acquired]);
    return acquired;
  }
}

/**
 * A benchmark worker process started by bench/run.ts with an IPC channel exits when its parent
 * does, whatever its workers are doing: a bench that fails or is killed leaves no orphans
 * reconnecting forever to a coordinator that is gone. `stop` gets a moment to say bye first.
 */
export function exitWithParent(stop: () => void, graceMs = 1000): void {
  if (!process.channel) return;
  // The channel must not keep the process alive once its workers are done.
  process.channel.unref();
  process.once('disconnect', () => {
    stop();
    setTimeout(() => process.exit(1), graceMs).unref();
  });
}
