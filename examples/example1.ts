/**
 * Seed example 1: a Master with a WorkQueue keeps its workers busy until the queue is empty.
 *   taskfarm run -n 4 examples/example1.ts
 */
import { hostname } from 'node:os';
import { Master, rank, size, Worker, WorkQueue } from 'taskfarm';
import { range } from './python.ts';

/** The application: it has a lot of work to do, so it hands it to its workers until all is done. */
class MyApp {
  readonly master: Master;
  readonly workQueue: WorkQueue;

  constructor(workers: Iterable<number>) {
    // The Master controls the given worker ranks; the WorkQueue keeps them running on its tasks.
    this.master = new Master(workers);
    this.workQueue = new WorkQueue(this.master);
  }

  /** Makes all workers leave their run loop. */
  terminateWorkers(): Promise<void> {
    return this.master.terminateWorkers();
  }

  async run(tasks = 10): Promise<void> {
    // Work can be queued up front, or later as it becomes available; data can be any msgpack value.
    for (let i = 0; i < tasks; i++) this.workQueue.addWork(['Do task', i]);

    // Under mpiexec every rank is up before this runs; here ranks start as processes do: wait for
    // them, or the first to start would run every task before the others have joined.
    await this.master.waitForWorkers();

    // Keep starting workers as long as there is work to do.
    while (!this.workQueue.done()) {
      // Give more work to each idle worker (if any).
      this.workQueue.doWork();
      // Collect what completed workers returned.
      for (const workerReturnData of this.workQueue.getCompletedWork()) {
        const [done, message] = workerReturnData as [boolean, string];
        if (done) console.log(`Master: worker finished its task and says "${message}"`);
      }
      // Where the seed sleeps 0.3 s, wait until something happens.
      await this.workQueue.changed();
    }
  }
}

/** A worker extends Worker, implements doWork() and calls run(); the Master does the rest. */
class MyWorker extends Worker<[string, number], [boolean, string]> {
  doWork([task, taskArg]: [string, number]): [boolean, string] {
    console.log(`  Worker ${hostname()} rank ${rank()} executing "${task}" task_id "${taskArg}"`);
    return [true, `I completed my task (${taskArg})`];
  }
}

async function main(): Promise<void> {
  console.log(`I am ${hostname()} rank ${rank()} (total ${size()})`);
  if (rank() === 0) {
    const app = new MyApp(range(1, size()));
    await app.run();
    await app.terminateWorkers();
  } else {
    await new MyWorker().run();
  }
  console.log(`Task completed (rank ${rank()})`);
}

await main();
