/**
 * The hand-written hot headers (hot-headers.ts: `tasks`, `results`, `work`, `ack`, `receipt`) against msgpackr and the general
 * decoder: what the writers write is byte for byte msgpackr's, and whatever the reader accepts, the
 * general decoder decodes to the same envelope and payload lengths. Over arbitrary batches, other
 * writers' forms, and mutations of valid headers. Seeded and bounded, like decode-property.test.ts.
 */
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import t from 'tap';
import { encodeHotHeader, encodeResultsHeader, encodeTasksHeader, readHotHeader } from '../src/hot-headers.ts';
import { decodeAnyHeader } from '../src/codec.ts';
import { decodeFromCoordinator, decodeFromWorker, encode, MAX_BATCH_ENTRIES, PROTOCOL_VERSION, ProtocolError, type Envelope, type Result, type Work } from '../src/index.ts';

const SEED = 0xba7c;
const packr = new Packr({ useRecords: false, mapsAsObjects: true });
const FROM_WORKER = new Set(['results']);
const FROM_COORDINATOR = new Set(['tasks', 'work', 'ack', 'receipt']);
const BOTH = new Set(['tasks', 'results', 'work', 'ack', 'receipt']);

const int = fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.constantFrom(0, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 40));
const positive = int.map((v) => (v === 0 ? 1 : v));
const key = fc.oneof(fc.constant(null), int, fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 8 }), fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => (Object.is(d, -0) ? 0 : d)) /* msgpackr writes -0 as the integer 0, as we do */, fc.integer({ min: -5, max: -1 }));
const payload = fc.integer({ min: 0, max: 300 }).map((n) => new Uint8Array(n));
const work = fc.record({ id: int, attempt: positive, type: key, resource: key, timeoutMs: fc.oneof(fc.constant(null), positive), payload }).map((w): Work => ({ t: 'work', ...w }));
const result = fc.record({ id: int, attempt: positive, payload }).map((r): Result => ({ t: 'result', ...r }));

// The batches taskfarm itself sends: 32-bit ids, ASCII names, integer resources. All of them must
// take the fast path, or it is not worth having.
const small = fc.integer({ min: 0, max: 2 ** 32 - 1 });
const commonKey = fc.oneof(fc.constant(null), small, fc.stringMatching(/^[\x20-\x7e]{0,31}$/));
const commonWork = fc.record({ id: small, attempt: fc.integer({ min: 1, max: 100 }), type: commonKey, resource: commonKey, timeoutMs: fc.oneof(fc.constant(null), fc.integer({ min: 1, max: 2 ** 31 })), payload }).map((w): Work => ({ t: 'work', ...w }));
const commonResult = fc.record({ id: small, attempt: fc.integer({ min: 1, max: 100 }), payload }).map((r): Result => ({ t: 'result', ...r }));

const tasksHeader = (tasks: readonly Work[]) => packr.pack({ v: PROTOCOL_VERSION, t: 'tasks', tasks: tasks.map((w) => [w.id, w.attempt, w.type, w.resource, w.timeoutMs, w.payload.length]) });
// The lone envelopes, as codec.ts's general encoder writes them (its key order).
const workHeader = (w: Work) => packr.pack({ v: PROTOCOL_VERSION, t: 'work', id: w.id, attempt: w.attempt, type: w.type, resource: w.resource, timeoutMs: w.timeoutMs });
const ackHeader = (id: number, attempt: number) => packr.pack({ v: PROTOCOL_VERSION, t: 'ack', id, attempt });
const receiptHeader = (seq: number) => packr.pack({ v: PROTOCOL_VERSION, t: 'receipt', seq });
const resultsHeader = (seq: number, us: number, results: readonly Result[]) => packr.pack({ v: PROTOCOL_VERSION, t: 'results', seq, us, results: results.map((r) => [r.id, r.attempt, r.payload.length]) });

/** The general decoder's envelope and lengths, or its error code. */
function general(frame: Buffer, allowed: ReadonlySet<string>): { env: Envelope; lengths: number[] } | string {
  const lengths: number[] = [];
  try {
    return { env: decodeAnyHeader(frame, allowed, lengths), lengths };
  } catch (err) {
    if (err instanceof ProtocolError) return err.code;
    throw err;
  }
}

/** How often disagreement() found the fast reader accepting a frame (so that a property is not vacuous). */
let accepted = 0;

/** Null when the fast reader declines `frame` or agrees with the general decoder; else what differs. */
function disagreement(frame: Buffer, allowed: ReadonlySet<string>): string | null {
  const lengths: number[] = [7];
  const fast = readHotHeader(frame, allowed, lengths, MAX_BATCH_ENTRIES);
  if (fast === null) return isDeepStrictEqual(lengths, [7]) ? null : 'declined, but left lengths behind';
  accepted++;
  const slow = general(frame, allowed);
  if (typeof slow === 'string') return `fast path accepted what the general decoder refuses (${slow})`;
  if (!isDeepStrictEqual(fast, slow.env)) return `envelopes differ: ${JSON.stringify(fast)} vs ${JSON.stringify(slow.env)}`;
  if (!isDeepStrictEqual(lengths, [7, ...slow.lengths])) return `lengths differ: ${lengths} vs ${slow.lengths}`;
  return null;
}

t.test('the writers write what msgpackr writes, or decline', (t) => {
  fc.assert(
    fc.property(fc.array(work, { minLength: 1, maxLength: 40 }), (tasks) => {
      const fast = encodeTasksHeader(tasks);
      return fast === null || fast.equals(tasksHeader(tasks));
    }),
    { seed: SEED, numRuns: 3_000 },
  );
  fc.assert(
    fc.property(int, int, fc.array(result, { minLength: 1, maxLength: 300 }), (seq, us, results) => {
      const fast = encodeResultsHeader(seq, us, results);
      if (fast === null) return seq > 2 ** 32 - 1 || us > 2 ** 32 - 1 || results.some((r) => r.id > 2 ** 32 - 1 || r.attempt > 2 ** 32 - 1);
      return fast.equals(resultsHeader(seq, us, results));
    }),
    { seed: SEED, numRuns: 3_000 },
  );
  fc.assert(
    fc.property(work, int, positive, (w, n, attempt) => {
      const checks: Array<[Buffer | null, () => Buffer]> = [
        [encodeHotHeader(w), () => workHeader(w)],
        [encodeHotHeader({ t: 'ack', id: n, attempt }), () => ackHeader(n, attempt)],
        [encodeHotHeader({ t: 'receipt', seq: n }), () => receiptHeader(n)],
      ];
      return checks.every(([fast, slow]) => fast === null || fast.equals(slow()));
    }),
    { seed: SEED, numRuns: 3_000 },
  );
  t.equal(encodeHotHeader({ ...({ t: 'work', id: 1, attempt: 1, type: null, resource: null, timeoutMs: null, payload: new Uint8Array(0) } as Work), raw: true }), null, 'raw work: the general encoder');
  t.equal(encodeHotHeader({ t: 'heartbeat' }), null, 'other envelopes: the general encoder');
  t.pass('9,000 headers: every header written by hand is byte for byte msgpackr\'s');
  t.end();
});

t.test("taskfarm's own batches take the fast path both ways", (t) => {
  fc.assert(
    fc.property(fc.array(commonWork, { minLength: 1, maxLength: 256 }), fc.array(commonResult, { minLength: 1, maxLength: 256 }), small, small, (tasks, results, seq, us) => {
      const th = encodeTasksHeader(tasks);
      const rh = encodeResultsHeader(seq, us, results);
      return th !== null && rh !== null && readHotHeader(th, FROM_COORDINATOR, [], MAX_BATCH_ENTRIES) !== null && readHotHeader(rh, FROM_WORKER, [], MAX_BATCH_ENTRIES) !== null;
    }),
    { seed: SEED, numRuns: 500 },
  );
  t.pass('500 batches of up to 256 tasks and results: all written and read by hand');
  fc.assert(
    fc.property(commonWork, small, fc.integer({ min: 1, max: 100 }), (w, n, attempt) =>
      [encodeHotHeader(w), encodeHotHeader({ t: 'ack', id: n, attempt }), encodeHotHeader({ t: 'receipt', seq: n })].every((h) => h !== null && readHotHeader(h, FROM_COORDINATOR, [], MAX_BATCH_ENTRIES) !== null),
    ),
    { seed: SEED, numRuns: 500 },
  );
  t.pass('500 lone work, ack and receipt headers: all written and read by hand');

  const tasks: Work[] = Array.from({ length: 20 }, (_, i) => ({ t: 'work', id: i * 1000, attempt: 1, type: i % 2 ? 'render' : null, resource: i % 3 ? i : null, timeoutMs: i % 4 ? null : 60_000, payload: new Uint8Array(3) }));
  const header = encodeTasksHeader(tasks);
  t.ok(header, 'written by hand');
  const lengths: number[] = [];
  t.same(readHotHeader(header!, FROM_COORDINATOR, lengths, MAX_BATCH_ENTRIES), { t: 'tasks', tasks: tasks.map((w) => ({ ...w, payload: new Uint8Array(0) })) }, 'read by hand');
  t.same(lengths, tasks.map(() => 3));
  const results: Result[] = Array.from({ length: 300 }, (_, i) => ({ t: 'result', id: i, attempt: 2, payload: new Uint8Array(i % 5) }));
  const rh = encodeResultsHeader(17, 123_456, results);
  t.ok(rh, 'results written by hand');
  t.ok(readHotHeader(rh!, FROM_WORKER, [], MAX_BATCH_ENTRIES), 'and read by hand');
  t.equal(readHotHeader(rh!, FROM_COORDINATOR, [], MAX_BATCH_ENTRIES), null, 'results from a coordinator: left to the general decoder (ETYPE)');
  t.throws(() => decodeFromCoordinator([rh!, Buffer.alloc(results.reduce((n, r) => n + r.payload.length, 0))]), { code: 'ETYPE' });
  t.equal(readHotHeader(rh!, FROM_WORKER, [], 10), null, 'more entries than allowed: left to the general decoder');
  t.end();
});

t.test("other writers' forms (fixmap, str8, uint forms) read as the general decoder reads them", (t) => {
  // A hand-made fixmap header with a str8 resource, as a Python msgpack writer would produce it.
  const str8 = 'r'.repeat(40);
  const frame = Buffer.concat([
    Buffer.from([0x83, 0xa1, 0x76, PROTOCOL_VERSION, 0xa1, 0x74, 0xa5]),
    Buffer.from('tasks'),
    Buffer.from([0xa5]),
    Buffer.from('tasks'),
    Buffer.from([0x91, 0x96, 0xcd, 0x01, 0x00, 0x01, 0xc0, 0xd9, str8.length]),
    Buffer.from(str8),
    Buffer.from([0xc0, 0x00]),
  ]);
  const lengths: number[] = [];
  t.same(readHotHeader(frame, FROM_COORDINATOR, lengths, MAX_BATCH_ENTRIES), { t: 'tasks', tasks: [{ t: 'work', id: 256, attempt: 1, type: null, resource: str8, timeoutMs: null, payload: new Uint8Array(0) }] });
  t.equal(disagreement(frame, FROM_COORDINATOR), null);
  t.end();
});

t.test('whatever the reader accepts, the general decoder decodes the same; mutations included', (t) => {
  const valid = fc.oneof(
    fc.array(work, { minLength: 1, maxLength: 20 }).map((tasks) => tasksHeader(tasks)),
    fc.array(commonWork, { minLength: 1, maxLength: 20 }).map((tasks) => tasksHeader(tasks)),
    fc.tuple(int, int, fc.array(result, { minLength: 1, maxLength: 20 })).map(([s, u, r]) => resultsHeader(s, u, r)),
    fc.tuple(small, small, fc.array(commonResult, { minLength: 1, maxLength: 20 })).map(([s, u, r]) => resultsHeader(s, u, r)),
    work.map(workHeader),
    commonWork.map(workHeader),
    fc.tuple(int, positive).map(([id, attempt]) => ackHeader(id, attempt)),
    int.map(receiptHeader),
  );
  const mutated = fc.tuple(valid, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 0, maxLength: 3 }), fc.integer({ min: -3, max: 3 })).map(([f, edits, cut]) => {
    const b = Buffer.from(f);
    for (const [at, byte] of edits) b[at % b.length] = byte;
    return cut < 0 ? b.subarray(0, Math.max(0, b.length + cut)) : Buffer.concat([b, Buffer.alloc(cut)]);
  });
  accepted = 0;
  fc.assert(
    fc.property(valid, (f) => disagreement(f, BOTH) === null),
    { seed: SEED, numRuns: 3_000 },
  );
  t.ok(accepted > 300, `valid headers: the general decoder agrees with the ${accepted} the fast reader read`);
  // Our shapes with any values in their fields (0, negatives, floats, strings, nil where an integer
  // belongs): the general decoder refuses many of them, and the fast reader must then decline.
  const anyValue = fc.oneof(int, key, fc.constantFrom(0, -1, 0.5, null, 'x', true));
  const shaped = fc.oneof(
    fc.tuple(anyValue, anyValue, anyValue, anyValue, anyValue).map(([id, attempt, type, resource, timeoutMs]) => packr.pack({ v: PROTOCOL_VERSION, t: 'work', id, attempt, type, resource, timeoutMs })),
    fc.tuple(anyValue, anyValue).map(([id, attempt]) => packr.pack({ v: PROTOCOL_VERSION, t: 'ack', id, attempt })),
    anyValue.map((seq) => packr.pack({ v: PROTOCOL_VERSION, t: 'receipt', seq })),
    fc.array(fc.tuple(anyValue, anyValue, anyValue, anyValue, anyValue, anyValue), { minLength: 1, maxLength: 3 }).map((tasks) => packr.pack({ v: PROTOCOL_VERSION, t: 'tasks', tasks })),
    fc.tuple(anyValue, anyValue, fc.array(fc.tuple(anyValue, anyValue, anyValue), { minLength: 1, maxLength: 3 })).map(([seq, us, results]) => packr.pack({ v: PROTOCOL_VERSION, t: 'results', seq, us, results })),
  );
  accepted = 0;
  fc.assert(
    fc.property(shaped, (f) => disagreement(f, BOTH) === null),
    { seed: SEED, numRuns: 20_000 },
  );
  t.ok(accepted > 500, `any values in our shapes: the general decoder agrees with the ${accepted} the fast reader read`);
  accepted = 0;
  fc.assert(
    fc.property(mutated, fc.constantFrom(BOTH, FROM_WORKER, FROM_COORDINATOR), (f, allowed) => disagreement(f, allowed) === null),
    { seed: SEED, numRuns: 20_000 },
  );
  t.ok(accepted > 100, `mutated headers: the general decoder agrees with the ${accepted} the fast reader still read`);
  t.end();
});

t.test('a batch round-trips through encode() and the decoders whichever path it takes', (t) => {
  fc.assert(
    fc.property(fc.array(work, { minLength: 1, maxLength: 30 }), fc.array(result, { minLength: 1, maxLength: 30 }), (tasks, results) => {
      const decodedTasks = decodeFromCoordinator(encode({ t: 'tasks', tasks }));
      const decodedResults = decodeFromWorker(encode({ t: 'results', seq: 1, us: 2, results }));
      const strip = (p: Uint8Array) => Buffer.from(p);
      return (
        isDeepStrictEqual(
          (decodedTasks[0] as { tasks: Work[] }).tasks.map((w) => ({ ...w, payload: strip(w.payload) })),
          tasks.map((w) => ({ ...w, payload: strip(w.payload) })),
        ) && isDeepStrictEqual((decodedResults[0] as { results: Result[] }).results.map((r) => ({ ...r, payload: strip(r.payload) })), results.map((r) => ({ ...r, payload: strip(r.payload) })))
      );
    }),
    { seed: SEED, numRuns: 1_000 },
  );
  t.pass('1,000 batches each way round-trip');
  t.end();
});
