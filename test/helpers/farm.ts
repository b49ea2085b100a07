/**
 * A small farm in this process for the operations tests: a coordinator serving metrics on a free
 * loopback port and three in-process workers over loopback TCP, left in a known state:
 *   - task type `work`: 12 quick tasks completed on ranks 1-3, then one task held on rank 1 until
 *     release() (rank 1 busy, ranks 2 and 3 idle);
 *   - task type `backlog`: 5 tasks queued for rank 7, which never connects (queue depth 5).
 */
import { Coordinator, Master, Worker, WorkQueue } from 'taskfarm';

type Job = { n: number; hold?: boolean };

export interface TestFarm {
  coordinator: Coordinator;
  /** The metrics server's base URL, e.g. http://127.0.0.1:40123. */
  url: string;
  /** Lets rank 1's held task finish. */
  release(): void;
  /** Releases, terminates the workers and closes the coordinator. */
  close(): Promise<void>;
}

export async function startTestFarm(): Promise<TestFarm> {
  const coordinator = await Coordinator.start({ endpoint: 'tcp://127.0.0.1:*', metricsPort: 0, logLevel: 'silent' });
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  class Held extends Worker<Job, number> {
    async doWork(job: Job): Promise<number> {
      if (job.hold) await gate;
      return job.n;
    }
  }
  const workers = [1, 2, 3].map((rank) => new Held({ connect: coordinator.endpoint, rank, handleSignals: false, logLevel: 'silent' }));
  const runs = workers.map((w) => w.run());
  const master = new Master([1, 2, 3], { coordinator, taskType: 'work' });
  const work = new WorkQueue(master);
  await master.waitForWorkers();
  await work.map(Array.from({ length: 12 }, (_, n) => ({ n })), (job) => `r${job.n % 3}`);
  master.run(1, { n: 99, hold: true });
  const backlog = new WorkQueue(new Master([7], { coordinator, taskType: 'backlog' }));
  for (let n = 0; n < 5; n++) backlog.addWork({ n });
  let closing: Promise<void> | null = null;
  return {
    coordinator,
    url: coordinator.operations.statusServer!.url!,
    release,
    close: () =>
      (closing ??= (async () => {
        release();
        while (master.getCompletedWorkers().length === 0 && !master.getReadyWorkers().includes(1)) await master.changed();
        master.getData(1);
        await master.terminateWorkers();
        await Promise.all(runs);
        await coordinator.close();
      })()),
  };
}
