/**
 * Binary data over 8 KiB travels raw (PROTOCOL.md §5.8): the coordinator keeps and sends the
 * application's own bytes, never a msgpack copy, to workers that read raw payloads, and msgpack to
 * the others. Sockets-free: the real Farm, Master and WorkQueue on an InMemoryHost.
 */
import { BATCH_INLINE_BYTES, decodePayload, encodePayload, type Work } from '@taskfarm/protocol';
import t from 'tap';
import { Master } from '../src/master.ts';
import { WorkQueue } from '../src/work-queue.ts';
import { InMemoryHost } from './in-memory-host.ts';

function setup() {
  const host = new InMemoryHost();
  const master = new Master(undefined, { coordinator: host });
  return { host, master, queue: new WorkQueue(master) };
}

const lastWork = (host: InMemoryHost, peer: string) => host.worksTo(peer).at(-1) as Work;

t.test('a worker that reads raw payloads is sent the application\'s own bytes, not a copy', async (t) => {
  const { host, queue } = setup();
  const data = Buffer.alloc(BATCH_INLINE_BYTES + 1, 7);
  host.join('p1', null, 4, true);
  t.match(host.sent.find(([p, e]) => p === 'p1' && e.t === 'welcome')?.[1], { settings: { raw: true } }, 'its welcome says we read raw results too');
  queue.addWork(data);
  queue.doWork();
  const work = lastWork(host, 'p1');
  t.equal(work.raw, true);
  t.equal(work.payload.buffer, data.buffer, 'the same memory');
  t.equal(work.payload.byteOffset, data.byteOffset);
  t.equal(work.payload.byteLength, data.byteLength);
});

t.test('one that does not (register without raw) gets msgpack, as before', async (t) => {
  const { host, queue } = setup();
  const data = new Uint8Array(BATCH_INLINE_BYTES + 100).fill(3);
  host.join('p1', null, 4);
  t.notOk((host.sent.find(([p, e]) => p === 'p1' && e.t === 'welcome')?.[1] as { settings: { raw?: boolean } }).settings.raw, 'no raw in its welcome');
  queue.addWork(data);
  queue.doWork();
  const work = lastWork(host, 'p1');
  t.notOk(work.raw);
  t.same([...(decodePayload(work.payload) as Uint8Array)], [...data], 'the bytes, msgpack-encoded');
});

t.test('small binary data and other values stay msgpack; a raw result reaches the application as its bytes', async (t) => {
  const { host, queue } = setup();
  host.join('p1', null, 4, true);
  const small = Buffer.alloc(BATCH_INLINE_BYTES, 1);
  const p = queue.submit(small);
  queue.doWork();
  const work = lastWork(host, 'p1');
  t.notOk(work.raw, 'at most 8 KiB: msgpack, batched with others');
  t.same(decodePayload(work.payload), small);
  const bytes = Buffer.alloc(20_000, 9);
  host.deliver('p1', { t: 'result', id: work.id, attempt: work.attempt, payload: bytes, raw: true });
  const value = (await p) as Buffer;
  t.ok(Buffer.isBuffer(value));
  t.equal(value.buffer, bytes.buffer, 'the frame itself, not a copy');
  const q = queue.submit({ n: 1 });
  queue.doWork();
  const w2 = lastWork(host, 'p1');
  t.notOk(w2.raw);
  host.deliver('p1', { t: 'result', id: w2.id, attempt: w2.attempt, payload: encodePayload({ ok: 1 }) });
  t.same(await q, { ok: 1 }, 'a result without raw is msgpack');
});

t.test('a raw task requeued after its worker is lost goes to the next worker as it fits', async (t) => {
  const { host, queue } = setup();
  const data = Buffer.alloc(BATCH_INLINE_BYTES * 2, 5);
  host.join('p1', null, 4, true);
  const p = queue.submit(data);
  queue.doWork();
  host.disconnect('p1');
  host.join('p2', null, 4);
  queue.doWork();
  const work = lastWork(host, 'p2');
  t.notOk(work.raw, 'p2 reads msgpack only');
  t.same(decodePayload(work.payload), data);
  host.deliver('p2', { t: 'result', id: work.id, attempt: work.attempt, payload: encodePayload('done') });
  t.equal(await p, 'done');
});
