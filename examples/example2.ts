/**
 * Seed example 2: the Master alone, without a WorkQueue. The application keeps its own list of work
 * and hands it to whichever workers are ready, then collects what the completed ones returned.
 *   taskfarm run -n 4 examples/example2.ts
 */
import { hostname } from 'node:os';
import { Master, rank, size, TaskError, Worker } from 'taskfarm';
import { range } from './python.ts';

/** The application: it has a lot of work to do, so it hands it to its workers until all is done. */
class MyApp {
  readonly master: Master;

  constructor(workers: Iterable<number>) {
    // When creating the Master we tell it which worker ranks it can handle.
    this.master = new Master(workers);
  }

  /** Makes all workers leave their run loop. */
  terminateWorkers(): Promise<void> {
    return this.master.terminateWorkers();
  }

  /** The core of the application: keep starting workers as long as there is work to do. */
  async run(tasks = 10): Promise<void> {
    const workQueue = Array.from({ length: tasks }, (_, i) => i); // let's pretend this is our work queue
    let results = 0;

    // Every rank up first, as under mpiexec (see example 1).
    await this.master.waitForWorkers();

    // While we have work to do and not all workers completed.
    while (workQueue.length > 0 || !this.master.done()) {
      // Give work to each idle worker.
      for (const worker of this.master.getReadyWorkers()) {
        if (workQueue.length === 0) break;
        const task = workQueue.shift()!; // the next task in the queue
        console.log(`Master: worker ${worker} is going to do task ${task}`);
        this.master.run(worker, ['Do task', task]);
      }

      // Reclaim the workers that have finished, so that we can give them more work.
      for (const worker of this.master.getCompletedWorkers()) {
        const data = this.master.getData(worker);
        results++;
        // A task whose doWork() threw comes back as a TaskError instead of its result.
        const [done, message] = data instanceof TaskError ? [false, ''] : (data as [boolean, string]);
        if (done) console.log(`Master: worker ${worker} finished its task and says "${message}"`);
        else console.log(`Master: worker ${worker} failed to accomplish its task`);
      }

      // Where the seed sleeps 0.3 s, wait until something happens (a result, a worker joining...).
      await this.master.changed();
    }
    console.log(`Summary: tasks=${tasks} results=${results}`);
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
