/**
 * Seed example 4: one WorkQueue, several types of task. The task type travels with the data, and a
 * single kind of worker handles every type.
 *   taskfarm run -n 4 examples/example4.ts
 * EXAMPLE_SEED picks the random task types (default 1).
 */
import { hostname } from 'node:os';
import { Master, rank, size, TaskError, Worker, WorkQueue } from 'taskfarm';
import { mulberry32, randint, range } from './python.ts';

/** The seed's IntEnum: the values are numbers (from 1), which is what travels in the payload. */
enum Tasks {
  TASK1 = 1,
  TASK2 = 2,
  TASK3 = 3,
}

/** Every task type has its own arguments... */
type Data = [Tasks.TASK1, number] | [Tasks.TASK2, [number, number]] | [Tasks.TASK3, [number, number, string]];
/** ...and its own return value. */
type Return =
  | [Tasks.TASK1, [done: boolean, arg1: number]]
  | [Tasks.TASK2, [done: boolean, arg1: number, arg2: string, arg3: string]]
  | [Tasks.TASK3, [done: boolean, arg1: number, arg2: string]];

/**
 * The application: it has a lot of work to do, so it hands it to its workers until all is done.
 * There are different types of work, so the workers must be able to do different tasks.
 */
class MyApp {
  readonly master: Master;
  readonly workQueue: WorkQueue;
  readonly #random = mulberry32(Number(process.env.EXAMPLE_SEED ?? 1));

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

  /** Creates a random task 1-3 and adds it to the work queue; every task type has its own arguments. */
  #addNextTask(i: number, task: Tasks = randint(this.#random, 1, 3)): void {
    let data: Data;
    if (task === Tasks.TASK1) data = [Tasks.TASK1, i];
    else if (task === Tasks.TASK2) data = [Tasks.TASK2, [i, i * 2]];
    else data = [Tasks.TASK3, [i, 999, 'something']];
    this.workQueue.addWork(data);
  }

  /** The core of the application: keep starting workers as long as there is work to do. */
  async run(tasks = 100): Promise<void> {
    // Let's prepare our work queue. This can be built at initialization time, but work can also be
    // added later as it becomes available.
    for (let i = 0; i < tasks; i++) this.#addNextTask(i);

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
        // Each task type has its own return type.
        const [task, data] = workerReturnData as Return;
        let done: boolean;
        if (task === Tasks.TASK1) {
          const [ok, _arg1] = data;
          done = ok;
        } else if (task === Tasks.TASK2) {
          const [ok, _arg1, _arg2, _arg3] = data;
          done = ok;
        } else {
          const [ok, _arg1, _arg2] = data;
          done = ok;
        }
        if (done) console.log(`Master: worker finished its ${Tasks[task]} returning: ${JSON.stringify(data)}`);
      }

      // Where the seed sleeps 0.3 s, wait until something happens.
      await this.workQueue.changed();
    }
    console.log(`Summary: tasks=${tasks} results=${results}`);
  }
}

/**
 * A worker extends Worker, implements doWork() and calls run(); the Master does the rest.
 *
 * There are different tasks here, but instead of a Worker class for each type of task there is one
 * that handles any type of work. This avoids idle processes when, at some point of the run, there
 * is only one type of work to do but the Master has no worker for that task.
 */
class MyWorker extends Worker<Data, Return> {
  doWork(args: Data): Return {
    // The data contains the task type.
    const r = rank();
    const name = hostname();

    // Every task type has its specific input data and return value.
    switch (args[0]) {
      case Tasks.TASK1: {
        const arg1 = args[1];
        console.log(`  Worker ${name} rank ${r} executing ${Tasks[args[0]]} with task_id ${arg1}`);
        return [Tasks.TASK1, [true, arg1]];
      }
      case Tasks.TASK2: {
        const [arg1, arg2] = args[1];
        console.log(`  Worker ${name} rank ${r} executing ${Tasks[args[0]]} with task_id ${arg1} arg2 ${arg2}`);
        return [Tasks.TASK2, [true, arg1, 'something', 'else']];
      }
      case Tasks.TASK3: {
        const [arg1, arg2, arg3] = args[1];
        console.log(`  Worker ${name} rank ${r} executing ${Tasks[args[0]]} with task_id ${arg1} arg2 ${arg2} arg3 ${arg3}`);
        return [Tasks.TASK3, [true, arg1, 'something']];
      }
      default:
        throw new Error(`unknown task type ${String((args as unknown[])[0])}`);
    }
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
