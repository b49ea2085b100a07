/**
 * Young-generation collections paced by received bytes (young-gc.ts): the pacing alone, V8's
 * collection it calls, the option, and the receive loop feeding it from a real ROUTER socket.
 */
import * as zmq from 'zeromq';
import t from 'tap';
import { resolveOptions } from '../src/options.ts';
import { RouterTransport } from '../src/transport.ts';
import { v8YoungCollection, YoungCollector, ZERO_COPY_MIN_BYTES } from '../src/young-gc.ts';

t.test('collects once per everyBytes of zero-copy frames, and never for small ones', async (t) => {
  let runs = 0;
  const y = new YoungCollector(1000, () => runs++);
  for (let i = 0; i < 100; i++) y.received(ZERO_COPY_MIN_BYTES - 1);
  t.equal(runs, 0, 'frames zeromq.js copies into the heap are not counted');
  y.received(600);
  t.equal(runs, 0);
  y.received(400);
  t.equal(runs, 1, 'the frame that reaches everyBytes triggers it');
  y.received(999);
  t.equal(runs, 1, 'the count starts again after a collection');
  y.received(5000);
  t.equal(runs, 2, 'one collection however far a frame overshoots');
});

t.test('everyBytes 0 never collects', async (t) => {
  let runs = 0;
  const y = new YoungCollector(0, () => runs++);
  for (let i = 0; i < 10; i++) y.received(1 << 20);
  t.equal(runs, 0);
});

t.test("V8's young-generation collection frees an unreachable young buffer", async (t) => {
  const before = typeof (globalThis as { gc?: unknown }).gc;
  const collect = v8YoungCollection();
  t.type(collect, 'function');
  // Measured against a baseline taken after a first collection, so that earlier garbage does not count.
  collect!();
  // A MiB of slack either way: allocating 16 MiB may itself start a collection that frees other
  // small buffers (the test runner's), which once made an exact comparison fail.
  const base = process.memoryUsage().arrayBuffers;
  let buffer: Buffer | null = Buffer.allocUnsafeSlow(16 << 20);
  const held = process.memoryUsage().arrayBuffers;
  t.ok(held - base > 15 << 20, 'the buffer is accounted');
  buffer = null;
  collect!();
  t.ok(held - process.memoryUsage().arrayBuffers > 15 << 20, 'and freed by the collection');
  t.equal(buffer, null);
  t.equal(typeof (globalThis as { gc?: unknown }).gc, before, 'the global scope gains no gc it did not have');
});

t.test('gcEveryBytes: 8 MiB by default, 0 allowed, negative refused', async (t) => {
  t.equal(resolveOptions({}, {}).gcEveryBytes, 8 * 1024 * 1024);
  t.equal(resolveOptions({ gcEveryBytes: 0 }, {}).gcEveryBytes, 0);
  t.throws(() => resolveOptions({ gcEveryBytes: -1 }, {}), RangeError);
  t.throws(() => resolveOptions({ gcEveryBytes: 1.5 }, {}), RangeError);
});

t.test('the receive loop counts every frame of every message', async (t) => {
  let runs = 0;
  const messages: Buffer[][] = [];
  let arrived!: () => void;
  const all = new Promise<void>((resolve) => (arrived = resolve));
  const transport = new RouterTransport(
    { heartbeatMs: 1000, livenessMs: 3000, maxMessageBytes: 1 << 20, lingerMs: 0, young: new YoungCollector(300_000, () => runs++) },
    {
      message: (_peer, frames) => {
        messages.push(frames);
        if (messages.length === 4) arrived();
      },
      notify: () => {},
      sendFailed: () => {},
      receiveFailed: (err) => t.fail(err.message),
    },
  );
  const endpoint = await transport.bind('tcp://127.0.0.1:*');
  const dealer = new zmq.Dealer({ linger: 0 });
  dealer.connect(endpoint);
  t.teardown(async () => {
    dealer.close();
    await transport.close();
  });
  // 4 messages of a small header and a 100,000-byte frame: 400,000 counted bytes, one collection.
  for (let i = 0; i < 4; i++) await dealer.send([Buffer.from('header'), Buffer.alloc(100_000)]);
  await all;
  t.equal(messages.length, 4);
  t.equal(runs, 1);
});
