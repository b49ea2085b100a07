/**
 * A long task that strands short ones behind it on its worker, over real sockets: the coordinator
 * takes the waiting ones back once another worker sits idle (Farm.tick, recallMs), the worker
 * answers all of them at once, and they run on the idle worker while the long one still runs.
 */
import t from 'tap';
import { Coordinator, Master, WorkQueue } from '../../coordinator/src/index.ts';
import { Worker, type TaskContext } from '../src/index.ts';

class Gated extends Worker<string, string> {
  readonly ran: string[] = [];
  constructor(
    readonly gate: Promise<void>,
    connect: string,
  ) {
    // rank: null: a worker in a process where another has registered would ask for its rank ($TASKFARM_RANK).
    super({ connect, rank: null, logLevel: 'silent', handleSignals: false });
  }

  async doWork(data: string, _ctx: TaskContext): Promise<string> {
    this.ran.push(data);
    if (data === 'long') await this.gate;
    return `${data} by ${this.rank}`;
  }
}

t.test('tasks waiting behind a long one are taken back and run on an idle worker', async (t) => {
  const coordinator = await Coordinator.start({ endpoint: 'tcp://127.0.0.1:*', logLevel: 'silent' });
  t.teardown(() => coordinator.close());
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const first = new Gated(gate, coordinator.endpoint);
  const runs = [first.run()];
  const master = new Master(undefined, { coordinator });
  await master.waitForWorkers(1);
  const queue = new WorkQueue(master);
  // Its pace known as short, the first worker is sent the long task and the short ones in one window.
  await queue.map(['warm-1', 'warm-2', 'warm-3']);
  const shorts = Array.from({ length: 20 }, (_, i) => `short-${i}`);
  const long = queue.submit('long');
  const done = queue.map(shorts);
  // Only now a second worker: idle while the first one is stuck in the long task.
  const second = new Gated(gate, coordinator.endpoint);
  runs.push(second.run());
  const results = (await done) as string[];
  t.same(results.map((r) => r.split(' by ')[0]), shorts, 'every short task done once, in order, while the long one still runs');
  t.ok(results.every((r) => r.endsWith(`by ${second.rank}`)), 'on the second worker');
  t.same(first.ran, ['warm-1', 'warm-2', 'warm-3', 'long'], 'the first worker never started them');
  release();
  t.equal(await long, `long by ${first.rank}`);
  await master.terminateWorkers();
  await Promise.all(runs);
});
