/** When a worker sends its own heartbeat, and when its other messages stand in for it. */
import t from 'tap';
import { heartbeatDue, Worker } from '../src/worker.ts';
import { FakeCoordinator } from './fake-coordinator.ts';

t.test('a beat is skipped after a send only when two intervals stay well within livenessMs', async (t) => {
  t.equal(heartbeatDue(false, 1000, 3000), true, 'nothing sent since the last beat: a heartbeat');
  t.equal(heartbeatDue(true, 1000, 3000), false, 'something sent, livenessMs = 3 intervals: skipped');
  t.equal(heartbeatDue(true, 1000, 2999), true, 'livenessMs under 3 intervals: never skipped, jitter could make the worker look silent');
  t.equal(heartbeatDue(true, 10, 20), true);
});

t.test('a worker that sends nothing else keeps beating, with skipping allowed', async (t) => {
  const fake = await FakeCoordinator.start();
  t.teardown(() => fake.close());
  class Idle extends Worker<number, number> {
    doWork(n: number): number {
      return n;
    }
  }
  const worker = new Idle({ connect: fake.endpoint, logLevel: 'silent', handleSignals: false });
  const run = worker.run();
  t.match(await fake.message(), [{ t: 'register' }]);
  await fake.welcome({ heartbeatMs: 10, livenessMs: 3000 });
  t.match(await fake.message(), [{ t: 'ready' }], 'ready, a message of its own, then nothing more to say');
  await fake.heartbeatsAfter(3);
  t.pass('three heartbeats came from the idle worker');
  await fake.send({ t: 'terminate' });
  t.match(await fake.message(), [{ t: 'bye' }]);
  await run;
});
