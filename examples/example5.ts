/**
 * Seed example 5: a MultiWorkQueue runs one Master per type of task, each with an optional limit on
 * its workers (here TASK1 at most 2, TASK2 unlimited, TASK3 at most 1). Workers move between the
 * Masters: a Master without work lends its idle workers, and gets workers back when it has work again.
 *   taskfarm run -n 9 examples/example5.ts
 * EXAMPLE_SEED picks the random task types (default 1).
 *
 * Lines meant for tests: workers print `rank R starts TASKk at=T` / `rank R ends TASKk at=T` (T in
 * ms since the epoch, so that lines from different processes can be ordered); rank 0 prints
 * `Master TASKk has N workers` whenever a Master's worker count changed after doWork(), and
 * `Summary: tasks=N results=N ...` at the end.
 */
import { hostname } from 'node:os';
import { Master, MultiWorkQueue, rank, size, TaskError, Worker, type TaskContext } from 'taskfarm';
import { mulberry32, randint, range } from './python.ts';

/** The seed's IntEnum: the values are numbers (from 1), which is what travels with each task. */
enum Tasks {
  TASK1 = 1,
  TASK2 = 2,
  TASK3 = 3,
}

/** How long each type of task takes, in ms (plus 0-4 ms that vary with the task). */
const TASK_MS: Record<Tasks, number> = { [Tasks.TASK1]: 5, [Tasks.TASK2]: 60, [Tasks.TASK3]: 10 };

type Data1 = number;
type Data2 = [number, number];
type Data3 = [number, number, string];
type Return1 = [done: boolean, arg1: number];
type Return2 = [done: boolean, arg1: number, arg2: string, arg3: string];
type Return3 = [done: boolean, arg1: number, arg2: string];

/**
 * A Master that handles one specific task: it sends the task type along with the data, so that the
 * worker knows what to do, and strips it from what comes back. The queues hand out and collect
 * work through run() and getData(), so overriding them works as in the seed.
 */
class MyMaster extends Master {
  constructor(
    readonly task: Tasks,
    workers?: Iterable<number>,
  ) {
    // Workers given explicitly (none: the MultiWorkQueue deals them out), so the Master adopts none.
    super(workers ?? []);
  }

  override run(rank: number, data: unknown): number {
    return super.run(rank, [this.task, data]);
  }

  override getData(rank: number): unknown {
    const returned = super.getData(rank);
    if (returned instanceof TaskError) return returned;
    const [, data] = returned as [Tasks, unknown];
    return data;
  }
}

/**
 * The application: it has a lot of work of different types to do, so the workers must be able to
 * do every type of task. It also limits the number of workers given to some of the tasks, with a
 * MultiWorkQueue: it handles several Masters, each with an optional limit on its workers, moves
 * workers away from Masters that are idle, and gives workers back once they have work again.
 */
class MyApp {
  readonly master1: MyMaster;
  readonly master2: MyMaster;
  readonly master3: MyMaster;
  readonly workQueue: MultiWorkQueue;
  readonly #random = mulberry32(Number(process.env.EXAMPLE_SEED ?? 1));

  /** Each task (Master) can be limited in its number of workers; null leaves it unlimited. */
  constructor(workers: Iterable<number>, task1NumWorkers: number | null = null, task2NumWorkers: number | null = null, task3NumWorkers: number | null = null) {
    // A Master for each task.
    this.master1 = new MyMaster(Tasks.TASK1);
    this.master2 = new MyMaster(Tasks.TASK2);
    this.master3 = new MyMaster(Tasks.TASK3);

    // MultiWorkQueue is a convenient class that runs multiple work queues. Each task needs an
    // entry [someId, Master, null or the maximum number of workers].
    this.workQueue = new MultiWorkQueue(workers, [
      [Tasks.TASK1, this.master1, task1NumWorkers],
      [Tasks.TASK2, this.master2, task2NumWorkers],
      [Tasks.TASK3, this.master3, task3NumWorkers],
    ]);
  }

  /** Makes all workers leave their run loop. */
  async terminateWorkers(): Promise<void> {
    await Promise.all([this.master1.terminateWorkers(), this.master2.terminateWorkers(), this.master3.terminateWorkers()]);
  }

  /** Creates a random task 1-3 and adds it to the right work queue. */
  #addNextTask(i: number, task: Tasks = randint(this.#random, 1, 3)): void {
    if (task === Tasks.TASK1) this.workQueue.addWork(Tasks.TASK1, i satisfies Data1);
    else if (task === Tasks.TASK2) this.workQueue.addWork(Tasks.TASK2, [i, i * 2] satisfies Data2);
    else this.workQueue.addWork(Tasks.TASK3, [i, 999, 'something'] satisfies Data3);
  }

  /** The core of the application: keep starting workers as long as there is work to do. */
  async run(tasks = 100): Promise<void> {
    // Let's prepare our work queue. This can be built at initialization time, but work can also be
    // added later as it becomes available.
    for (let i = 0; i < tasks; i++) this.#addNextTask(i);

    const masters = [this.master1, this.master2, this.master3];
    // Under mpiexec every rank is up before this runs; here ranks start as processes do, so wait
    // for them: otherwise the Masters whose ranks started first would run ahead of the others.
    await this.workQueue.waitForWorkers();
    const numWorkers = masters.map(() => -1);
    const maxWorkers = masters.map(() => 0);
    let results = 0;
    /** Prints the result of one task; every task type has its own return type. */
    const collect = (task: Tasks, data: unknown): void => {
      results++;
      if (data instanceof TaskError) {
        console.log(`Master: a worker failed its ${Tasks[task]}: ${data.message}`);
        return;
      }
      const [done] = data as Return1 | Return2 | Return3;
      if (done) console.log(`Master: worker finished its ${Tasks[task]} returning: ${JSON.stringify(data)}`);
    };

    // Keep starting workers as long as there is work to do.
    while (!this.workQueue.done()) {
      // Give more work to each idle worker (if any); this is also when workers move between Masters.
      this.workQueue.doWork();
      masters.forEach((m, i) => {
        const n = m.numWorkers();
        maxWorkers[i] = Math.max(maxWorkers[i]!, n);
        if (n === numWorkers[i]) return;
        numWorkers[i] = n;
        console.log(`Master ${Tasks[m.task]} has ${n} workers`);
      });

      // Reclaim the data returned by completed workers.
      for (const data of this.workQueue.getCompletedWork(Tasks.TASK1)) collect(Tasks.TASK1, data);
      for (const data of this.workQueue.getCompletedWork(Tasks.TASK2)) collect(Tasks.TASK2, data);
      for (const data of this.workQueue.getCompletedWork(Tasks.TASK3)) collect(Tasks.TASK3, data);

      // Where the seed sleeps 0.3 s, wait until something happens.
      await this.workQueue.changed();
    }
    const { lent, borrowed } = this.workQueue.moves;
    console.log(
      `Summary: tasks=${tasks} results=${results} max1=${maxWorkers[0]} max2=${maxWorkers[1]} max3=${maxWorkers[2]} lent=${lent} borrowed=${borrowed}`,
    );
  }
}

/**
 * A worker extends Worker, implements doWork() and calls run(); the Master does the rest.
 *
 * There are different tasks here, but instead of a Worker class for each type of task there is one
 * that handles any type of work. This avoids idle processes when, at some point of the run, there
 * is only one type of work to do but the Master has no worker for that task.
 */
class MyWorker extends Worker<[Tasks, Data1 | Data2 | Data3], [Tasks, Return1 | Return2 | Return3]> {
  async doWork([task, data]: [Tasks, Data1 | Data2 | Data3], ctx: TaskContext): Promise<[Tasks, Return1 | Return2 | Return3]> {
    // The data contains the task type, put there by MyMaster.run().
    const r = ctx.rank;
    const name = hostname();
    console.log(`rank ${r} starts ${Tasks[task]} at=${now()}`);

    // Every task type has its specific input data and return value.
    let ret: Return1 | Return2 | Return3;
    let taskId: number;
    if (task === Tasks.TASK1) {
      const arg1 = data as Data1;
      console.log(`  Worker ${name} rank ${r} executing ${Tasks[task]} with task_id ${arg1}`);
      ret = [true, arg1];
      taskId = arg1;
    } else if (task === Tasks.TASK2) {
      const [arg1, arg2] = data as Data2;
      console.log(`  Worker ${name} rank ${r} executing ${Tasks[task]} with task_id ${arg1} arg2 ${arg2}`);
      ret = [true, arg1, 'something', 'else'];
      taskId = arg1;
    } else if (task === Tasks.TASK3) {
      const [arg1, arg2, arg3] = data as Data3;
      console.log(`  Worker ${name} rank ${r} executing ${Tasks[task]} with task_id ${arg1} arg2 ${arg2} arg3 ${arg3}`);
      ret = [true, arg1, 'something'];
      taskId = arg1;
    } else {
      throw new Error(`unknown task type ${String(task)}`);
    }

    // The work takes a little while, so that tasks overlap and the limits matter. TASK2 is the
    // slowest: TASK1 runs out of work first, and lends its workers to TASK2.
    await new Promise((resolve) => setTimeout(resolve, TASK_MS[task] + (taskId % 5)));
    console.log(`rank ${r} ends ${Tasks[task]} at=${now()}`);
    return [task, ret];
  }
}

async function main(): Promise<void> {
  console.log(`I am ${hostname()} rank ${rank()} (total ${size()})`);
  if (rank() === 0) {
    const app = new MyApp(range(1, size()), 2, null, 1);
    await app.run();
    await app.terminateWorkers();
  } else {
    await new MyWorker().run();
  }
  console.log(`Task completed (rank ${rank()})`);
}

/** Wall-clock time in ms with sub-ms precision, comparable between processes of one host. */
function now(): string {
  return (performance.timeOrigin + performance.now()).toFixed(3);
}

await main();
