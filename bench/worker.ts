/** taskfarm's worker for the benchmarks: the anchors' scenarios, and example 3's resource affinity. */
import { Worker, type TaskContext } from 'taskfarm';
import { doTask, spinCpu, type Scenario } from './tasks.ts';

const scenario = (process.env.BENCH_SCENARIO ?? 'a') as Scenario;

class BenchWorker extends Worker<unknown, unknown> {
  #held: unknown = null;

  async doWork(data: unknown, ctx: TaskContext): Promise<unknown> {
    if (scenario !== 'd') return doTask(scenario, data);
    // Example 3: acquiring a resource other than the one held costs 20 ms, then 1 ms of CPU.
    let acquired = false;
    if (this.#held !== ctx.resource) {
      await new Promise((r) => setTimeout(r, 20));
      this.#held = ctx.resource;
      acquired = true;
    }
    spinCpu(1);
    return acquired;
  }
}

await new BenchWorker({ logLevel: 'warn' }).run();
