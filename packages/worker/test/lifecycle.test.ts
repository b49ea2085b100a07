/** A Worker's life around run(): stop() is safe whenever it is called. */
import t from 'tap';
import { Worker } from '../src/worker.ts';
import { FakeCoordinator } from './fake-coordinator.ts';

class Echo extends Worker<number, number> {
  doWork(n: number): number {
    return n;
  }
}

t.test('stop() after run() ended on a refused registration does nothing, and does not throw', async (t) => {
  const fake = await FakeCoordinator.start();
  t.teardown(() => fake.close());
  const worker = new Echo({ connect: fake.endpoint, logLevel: 'silent', handleSignals: false });
  const run = worker.run();
  t.match(await fake.message(), [{ t: 'register' }]);
  await fake.send({ t: 'reject', code: 'ESHUTDOWN', message: 'the coordinator is shutting down' });
  await t.rejects(run, { name: 'RegistrationError', code: 'ESHUTDOWN' }, 'run() rejects: the coordinator refused it');
  // A process of many workers stops them all on SIGTERM, whatever became of each: this one used
  // to throw ENOTSOCK here (setting an option of its closed socket), out of the signal handler.
  t.doesNotThrow(() => worker.stop());
  t.doesNotThrow(() => worker.stop(), 'twice too');
});
