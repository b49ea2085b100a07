/**
 * One process may host hundreds of workers (a test harness, or a host process of many small
 * workers): each uses three ZeroMQ sockets, more than libzmq's default context allows past 341.
 */
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { Coordinator, Master, WorkQueue } from '../../coordinator/src/index.ts';
import { Worker } from '../src/index.ts';

class Echo extends Worker<number, number> {
  doWork(n: number): number {
    return n;
  }
}

const WORKERS = 400;
const fds = Number(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim());

t.test(`${WORKERS} workers in one process all register and work`, { skip: fds < 4 * WORKERS + 500 ? `ulimit -n is ${fds}` : false }, async (t) => {
  const coordinator = await Coordinator.start({ endpoint: 'tcp://127.0.0.1:*', logLevel: 'silent' });
  t.teardown(() => coordinator.close());
  const workers = Array.from({ length: WORKERS }, () => new Echo({ connect: coordinator.endpoint, logLevel: 'silent', handleSignals: false }));
  const runs = workers.map((w) => w.run());
  const master = new Master(undefined, { coordinator });
  await master.waitForWorkers(WORKERS);
  t.equal(master.numWorkers(), WORKERS);
  const queue = new WorkQueue(master);
  for (let i = 0; i < 2 * WORKERS; i++) queue.addWork(i);
  const results = await queue.drain();
  t.equal(results.length, 2 * WORKERS, 'every task done');
  await master.terminateWorkers();
  await Promise.all(runs);
});
