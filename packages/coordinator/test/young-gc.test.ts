/**
 * Young-generation collections paced by received bytes (young-gc.ts): the pacing alone, V8's
 * collection it calls, the option, and the receive loop feeding it from a real ROUTER socket.
 */
import { constants, PerformanceObserver } from 'node:perf_hooks';
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

t.test("the collector runs one of V8's young-generation collections, and adds no global gc", async (t) => {
  const before = typeof (globalThis as { gc?: unknown }).gc;
  const collect = v8YoungCollection();
  t.type(collect, 'function');
  // The collection runs inside the call: an entry that starts between the two clock readings is
  // ours, whatever else the runner's own allocations make V8 do. (Whether a young buffer is freed
  // is V8's to decide: a scavenge started by the allocation itself can promote it first, which once
  // made a test of that fail.)
  const kinds: number[] = [];
  let t0 = 0;
  let t1 = 0;
  const seen = new Promise<void>((resolve) => {
    const observer = new PerformanceObserver((list) => {
      const ours = list.getEntries().filter((e) => e.startTime >= t0 && e.startTime <= t1);
      kinds.push(...ours.map((e) => (e as unknown as { detail: { kind: number } }).detail.kind));
      if (ours.length === 0) return;
      observer.disconnect();
      resolve();
    });
    observer.observe({ entryTypes: ['gc'] });
  });
  t0 = performance.now();
  collect!();
  t1 = performance.now();
  await seen;
  t.same(kinds, [constants.NODE_PERFORMANCE_GC_MINOR], 'one collection, of the young generation');
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
