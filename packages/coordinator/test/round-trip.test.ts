/**
 * The path of one task on an idle farm, through the real Coordinator and a ROUTER socket, with a
 * DEALER playing the worker: what an application awaiting one task at a time sets going when a
 * result arrives must leave before anything else is done.
 */
import { decodeFromCoordinator, decodePayload, encode, encodePayload } from '@taskfarm/protocol';
import * as zmq from 'zeromq';
import t from 'tap';
import { Coordinator } from '../src/coordinator.ts';
import { Master } from '../src/master.ts';
import { WorkQueue } from '../src/work-queue.ts';

/** A worker that answers every task with its input doubled, until the socket closes. */
async function echoWorker(endpoint: string): Promise<zmq.Dealer> {
  const sock = new zmq.Dealer({ linger: 0 });
  sock.connect(endpoint);
  await sock.send(encode({ t: 'register', rank: null, host: 'test', pid: process.pid, instance: null, window: 4 }));
  void (async () => {
    try {
      while (!sock.closed) {
        const msgs = decodeFromCoordinator(await sock.receive());
        for (const m of msgs) {
          if (m.t === 'welcome') await sock.send(encode({ t: 'ready' }));
          else if (m.t === 'work') await sock.send(encode({ t: 'result', id: m.id, attempt: m.attempt, payload: encodePayload((decodePayload(m.payload) as number) * 2) }));
        }
      }
    } catch {
      // closed
    }
  })();
  return sock;
}

t.test('submit() made as the previous result resolves dispatches its task within the call', async (t) => {
  const coordinator = await Coordinator.start({ endpoint: 'tcp://127.0.0.1:*', logLevel: 'silent' });
  const worker = await echoWorker(coordinator.endpoint!);
  t.teardown(async () => {
    worker.close();
    await coordinator.close();
  });
  const master = new Master(undefined, { coordinator });
  await master.waitForWorkers(1);
  const queue = new WorkQueue(master);
  const dispatched: number[] = [];
  coordinator.observers.add({ dispatched: (_w, task) => dispatched.push(task.id) });

  const first = queue.submit(3);
  let sentWithin: number[] = [];
  // The application's continuation runs before the queue's pump hears that something changed: a
  // task it submits there must not wait for the pump's next turn (and the flush after it).
  const second = first.then(() => {
    const p = queue.submit(4);
    sentWithin = [...dispatched];
    return p;
  });
  t.equal(await first, 6);
  t.equal(await second, 8);
  t.equal(sentWithin.length, 2, 'the second task was dispatched inside submit()');
});
