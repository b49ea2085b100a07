/**
 * Seed example 3: a WorkQueue with resource affinity. Each task needs one of 3 resources, which is
 * slow for a worker to acquire; the queue gives a worker more work for the resource it already
 * holds, so that acquisitions are few.
 *   taskfarm run -n 4 examples/example3.ts
 * EXAMPLE_SEED picks the random resources (default 1); EXAMPLE_ACQUIRE_MS how long an acquisition takes.
 */
import { hostname } from 'node:os';
import { Master, rank, size, TaskError, Worker, WorkQueue, type TaskContext } from 'taskfarm';
import { mulberry32, randint, range } from './python.ts';

/** The seed sleeps 10 s to acquire a resource; a few ms shows the same thing without the wait. */
const ACQUIRE_MS = Number(process.env.EXAMPLE_ACQUIRE_MS ?? 30);

type Task = [task: string, taskId: number, resource: number];
type Result = [done: boolean, message: string];

/** The application: it has a lot of work to do, so it hands it to its workers until all is done. */
class MyApp {
  readonly master: Master;
  readonly workQueue: WorkQueue;

  constructor(workers: Iterable<number>) {
    // When creating the Master we tell it which worker ranks it can handle.
    this.master = new Master(workers);
    // WorkQueue is a convenient class that runs workers on a queue of tasks.
    this.workQueue = new WorkQueue(this.master);
  }

  /** Makes all workers leave their run loop. */
  terminateWorkers(): Promise<void> {
    return this.master.terminateWorkers();
  }

  /** The core of the application: keep starting workers as long as there is work to do. */
  async run(tasks = 100): Promise<void> {
    // Random, but reproducible: the same seed gives the same resources, hence comparable runs.
    const random = mulberry32(Number(process.env.EXAMPLE_SEED ?? 1));

    // Let's prepare our work queue. This can be built at initialization time, but work can also be
    // added later as it becomes available.
    for (let i = 0; i < tasks; i++) {
      // The worker will be working on one out of 3 resources.
      const resourceId = randint(random, 1, 3);
      const data: Task = ['Do something', i, resourceId];
      this.workQueue.addWork(data, resourceId);
    }

    let results = 0;

    // Every rank up first, as under mpiexec (see example 1).
    await this.master.waitForWorkers();

    // Keep starting workers as long as there is work to do.
    while (!this.workQueue.done()) {
      // Give more work to each idle worker (if any).
      this.workQueue.doWork();

      // Reclaim the data returned by completed workers.
      for (const workerReturnData of this.workQueue.getCompletedWork()) {
        results++;
        if (workerReturnData instanceof TaskError) {
          console.log(`Master: a worker failed its task: ${workerReturnData.message}`);
          continue;
        }
        const [done, message] = workerReturnData as Result;
        if (done) console.log(`Master: worker finished its task and says "${message}"`);
      }

      // Where the seed sleeps 0.3 s, wait until something happens.
      await this.workQueue.changed();
    }

    const a = this.workQueue.affinity;
    console.log(`Summary: tasks=${tasks} results=${results} same=${a.same} unheld=${a.unheld} shared=${a.shared} none=${a.none}`);
  }
}

/** A worker extends Worker, implements doWork() and calls run(); the Master does the rest. */
class MyWorker extends Worker<Task, Result> {
  /** The resource this worker acquired last: a worker keeps it until it needs another one. */
  resource: number | null = null;

  async doWork([task, taskId, resource]: Task, ctx: TaskContext): Promise<Result> {
    console.log(`  Worker rank ${ctx.rank} executing "${task}" task id "${taskId}" with resource "${resource}"`);

    // The worker can check whether it has already acquired the resource, and save time.
    if (this.resource !== resource) {
      console.log(`  Worker rank ${ctx.rank} acquires resource ${resource} (held ${this.resource ?? 'none'})`);
      // Simulate the time required to acquire this resource.
      await new Promise((r) => setTimeout(r, ACQUIRE_MS));
      this.resource = resource;
    }

    // Make use of the resource in some way and then return.
    return [true, `I completed my task (${taskId})`];
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
