/**
 * The wire format: every envelope round-trips, every kind of bad input is refused with the right
 * ProtocolError code, and nothing else ever escapes the decoder. PROTOCOL.md is what is tested here.
 */
import { Packr } from 'msgpackr';
import t, { type Test } from 'tap';
import {
  BATCH_INLINE_BYTES,
  BATCH_MAX_BYTES,
  BATCH_MAX_TASKS,
  decodeFromCoordinator,
  decodeFromWorker,
  decodePayload,
  encode,
  encodeMessages,
  encodePayload,
  MAX_BATCH_ENTRIES,
  MAX_HEADER_BYTES,
  MAX_MESSAGE_FRAMES,
  PayloadError,
  PROTOCOL_VERSION,
  ProtocolError,
  rawPayload,
  decodeValue,
  toWireError,
  type CoordinatorMessage,
  type Envelope,
  type Frame,
  type ProtocolErrorCode,
  type WorkerMessage,
} from '../src/index.ts';
import { prng } from '../../../test/helpers/prng.ts';

// Crafts headers the way any msgpack library would: plain maps, no msgpackr records.
const raw = new Packr({ useRecords: false, mapsAsObjects: true });
const pack = (v: unknown): Frame => raw.pack(v);
/** A header map of protocol version 1 plus `fields`. */
const hdr = (fields: Record<string, unknown>): Frame => pack({ v: PROTOCOL_VERSION, ...fields });

type Side = 'worker' | 'coordinator';
/** Decodes frames as the receiver of `from` would. */
const decode = (from: Side, frames: Frame[], maxFrameBytes?: number): Envelope[] =>
  from === 'worker'
    ? decodeFromWorker(frames, maxFrameBytes === undefined ? undefined : { maxFrameBytes })
    : decodeFromCoordinator(frames, maxFrameBytes === undefined ? undefined : { maxFrameBytes });

/** Asserts that decoding throws a ProtocolError with `code`, and returns it. */
function refuses(tt: Tap, from: Side, frames: Frame[], code: ProtocolErrorCode, what: string, maxFrameBytes?: number): ProtocolError | undefined {
  try {
    const got = decode(from, frames, maxFrameBytes);
    tt.fail(`${what}: decoded instead of ${code}`, { got });
    return undefined;
  } catch (err) {
    if (!(err instanceof ProtocolError)) {
      tt.fail(`${what}: threw ${String(err)} instead of a ProtocolError`);
      return undefined;
    }
    tt.equal(err.code, code, `${what}: ${code}${err.code === code ? '' : ` (${err.message})`}`);
    tt.equal(err.name, 'ProtocolError');
    tt.type(err, Error);
    return err;
  }
}

type Tap = Test;

const bytes = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

// -----------------------------------------------------------------------------------------------
// Round trips

t.test('every worker envelope round-trips', (tt) => {
  const payload = encodePayload({ answer: 42, list: [1, 'two', null] });
  const cases: WorkerMessage[] = [
    { t: 'register', rank: null, host: 'node-7.cluster', pid: 4242, instance: null },
    { t: 'register', rank: 3, host: '', pid: 0, instance: null },
    { t: 'register', rank: null, host: 'h', pid: 1, instance: 'i', window: 64, raw: true },
    { t: 'ready' },
    { t: 'result', id: 17, attempt: 2, payload },
    { t: 'result', id: 18, attempt: 1, payload: Buffer.alloc(BATCH_INLINE_BYTES + 1, 1), raw: true, us: 5 },
    { t: 'error', id: 1, attempt: 1, error: { name: 'TypeError', message: 'x is not a function' } },
    { t: 'error', id: 9, attempt: 3, error: { name: 'Error', message: 'boom', code: 'ENOENT', stack: 'Error: boom\n    at f (a.ts:1:1)' } },
    { t: 'heartbeat' },
    { t: 'bye' },
  ];
  for (const env of cases) {
    const frames = encode(env);
    tt.equal(frames.length, env.t === 'result' ? 2 : 1, `${env.t}: frame count`);
    for (const f of frames) tt.ok(Buffer.isBuffer(f), `${env.t}: frames are Buffers`);
    const header = raw.unpack(frames[0]!) as Record<string, unknown>;
    tt.equal(header.v, 1, `${env.t}: header carries v = 1`);
    tt.equal(header.t, env.t, `${env.t}: header carries t`);
    tt.notOk('payload' in header, `${env.t}: the payload is not in the header`);
    const out = decodeFromWorker(frames);
    tt.equal(out.length, 1);
    tt.same(out[0], env, `${env.t} round-trips`);
    tt.equal(Object.keys(out[0]!).sort().join(), Object.keys(env).sort().join(), `${env.t}: no extra keys`);
  }
  tt.end();
});

t.test('every coordinator envelope round-trips', (tt) => {
  const payload = encodePayload([1, 2, 3]);
  const cases: CoordinatorMessage[] = [
    { t: 'welcome', rank: 1, settings: { heartbeatMs: 1000, livenessMs: 3000, maxMessageBytes: 65536 } },
    { t: 'welcome', rank: 2, settings: { heartbeatMs: 1000, livenessMs: 3000, maxMessageBytes: 65536, window: 8, raw: true } },
    { t: 'reject', code: 'ERANKTAKEN', message: 'rank 2 is held by another worker' },
    { t: 'reject', code: 'EVERSION', message: 'protocol version 2 is not supported', version: 1 },
    { t: 'work', id: 1, attempt: 1, type: null, resource: null, timeoutMs: null, payload },
    { t: 'work', id: 2, attempt: 1, type: null, resource: null, timeoutMs: null, payload: Buffer.from('not msgpack at all'), raw: true },
    { t: 'work', id: 3, attempt: 2, type: null, resource: 'r', timeoutMs: null, payload, resent: true },
    { t: 'work', id: 0, attempt: 5, type: 'render', resource: 7, timeoutMs: 2500, payload },
    { t: 'work', id: Number.MAX_SAFE_INTEGER, attempt: 1, type: -1.5, resource: 'gpu:0', timeoutMs: null, payload },
    { t: 'heartbeat' },
    { t: 'terminate' },
  ];
  for (const env of cases) {
    const frames = encode(env);
    tt.equal(frames.length, env.t === 'work' ? 2 : 1, `${env.t}: frame count`);
    const out = decodeFromCoordinator(frames);
    tt.equal(out.length, 1);
    tt.same(out[0], env, `${env.t} round-trips`);
  }
  tt.end();
});

t.test('payload frames travel byte for byte', (tt) => {
  // Not msgpack at all: the codec never looks inside a payload frame, it only forwards it.
  const opaque = Buffer.from([0xc1, 0x00, 0xff, 0x13, 0x37]);
  const work = decodeFromCoordinator(encode({ t: 'work', id: 5, attempt: 1, type: null, resource: null, timeoutMs: null, payload: opaque }))[0]!;
  tt.equal(work.t, 'work');
  if (work.t === 'work') tt.ok(bytes(work.payload).equals(opaque), 'work payload preserved');

  // A Uint8Array that is a view into the middle of a larger buffer: exactly the view is sent.
  const backing = new Uint8Array([9, 9, 9, 0x93, 1, 2, 3, 9, 9]);
  const view = backing.subarray(3, 7);
  const frames = encode({ t: 'result', id: 5, attempt: 1, payload: view });
  tt.ok(frames[1]!.equals(Buffer.from([0x93, 1, 2, 3])), 'the payload frame is the view, not its backing buffer');
  const result = decodeFromWorker(frames)[0]!;
  if (result.t === 'result') {
    tt.ok(bytes(result.payload).equals(Buffer.from([0x93, 1, 2, 3])), 'result payload preserved');
    tt.same(decodePayload(result.payload), [1, 2, 3]);
  }

  // Every byte value, and a large payload.
  const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const big = Buffer.alloc(1 << 20, 0xab);
  for (const p of [all, big, Buffer.alloc(0)]) {
    const r = decodeFromWorker(encode({ t: 'result', id: 1, attempt: 1, payload: p }))[0]!;
    if (r.t === 'result') tt.ok(bytes(r.payload).equals(p), `${p.length}-byte payload preserved`);
  }
  tt.end();
});

t.test('payload values round-trip through encodePayload/decodePayload and a work envelope', (tt) => {
  const values: Array<[string, unknown]> = [
    ['null', null],
    ['true', true],
    ['false', false],
    ['zero', 0],
    ['negative int', -123456],
    ['int32', 2 ** 31],
    ['safe int', Number.MAX_SAFE_INTEGER],
    ['float', 1.5],
    ['negative float', -0.1],
    ['empty string', ''],
    ['unicode string', 'añ ✓ 😀'],
    ['long string', 'x'.repeat(200_000)],
    ['empty array', []],
    ['nested array', [1, [2, [3, ['four']]], null]],
    ['empty map', {}],
    ['nested map', { a: 1, b: { c: [null, { d: 'e' }] }, 'key with spaces': true }],
    ['bigint in 64 bits', 2n ** 63n],
    ['negative bigint', -(2n ** 63n)],
    ['date', new Date(1_700_000_000_123)],
  ];
  for (const [name, value] of values) {
    const frame = encodePayload(value);
    tt.ok(Buffer.isBuffer(frame), `${name}: encodes to a Buffer`);
    tt.same(decodePayload(frame), value, `${name}: decodePayload`);
    const work = decodeFromCoordinator(encode({ t: 'work', id: 1, attempt: 1, type: null, resource: null, timeoutMs: null, payload: frame }))[0]!;
    if (work.t === 'work') tt.same(decodePayload(work.payload), value, `${name}: through a work envelope`);
  }

  // Binary data: a Buffer and a plain Uint8Array both travel as msgpack bin and come back as bytes.
  const buf = Buffer.from('\x00\x01binary\xff', 'latin1');
  const u8 = new Uint8Array([0, 255, 1, 254]);
  for (const [name, b] of [['Buffer', buf], ['Uint8Array', u8]] as const) {
    const frame = encodePayload(b);
    tt.equal(frame[0], 0xc4, `${name}: encoded as bin 8`);
    const back = decodePayload(frame);
    tt.ok(back instanceof Uint8Array, `${name}: decodes to bytes`);
    tt.ok(bytes(back as Uint8Array).equals(bytes(b)), `${name}: same bytes`);
  }
  const nested = decodePayload(encodePayload({ blob: u8, list: [buf] })) as { blob: Uint8Array; list: Uint8Array[] };
  tt.ok(bytes(nested.blob).equals(bytes(u8)), 'bytes inside a map');
  tt.ok(bytes(nested.list[0]!).equals(buf), 'bytes inside an array');

  // A JS Map is sent as a msgpack map and comes back as a plain object (maps decode as objects).
  tt.same(decodePayload(encodePayload(new Map<string, number>([['a', 1]]))), { a: 1 }, 'a Map comes back as a plain object');
  // Plain maps on the wire: a map from another msgpack library decodes too.
  tt.same(decodePayload(Buffer.from([0x82, 0xa1, 0x61, 0x01, 0xa1, 0x62, 0x91, 0xc0])), { a: 1, b: [null] }, 'a foreign map');
  tt.end();
});

t.test('frames are plain msgpack (no msgpackr records or extensions)', (tt) => {
  // msgpackr writes every map as map 16 (0xde), however small: valid msgpack, which any reader takes.
  const frame = encodePayload([{ a: 1 }, { a: 2 }]);
  // fixarray of 2, then map16 of 1 {"a": 1}, map16 of 1 {"a": 2}
  tt.same([...frame], [0x92, 0xde, 0, 1, 0xa1, 0x61, 0x01, 0xde, 0, 1, 0xa1, 0x61, 0x02]);
  const header = encode({ t: 'ready' })[0]!;
  tt.same([...header], [0xde, 0, 2, 0xa1, 0x76, 0x01, 0xa1, 0x74, 0xa5, ...Buffer.from('ready')], 'ready is {"v": 1, "t": "ready"}');
  // The same envelope as a minimal writer (Python's msgpack) produces it: fixmap.
  tt.same(decodeFromWorker([Buffer.from([0x82, 0xa1, 0x76, 0x01, 0xa1, 0x74, 0xa5, ...Buffer.from('ready')])]), [{ t: 'ready' }], 'fixmap is read too');
  const work = encode({ t: 'work', id: 1, attempt: 1, type: null, resource: null, timeoutMs: null, payload: encodePayload(null) })[0]!;
  tt.same(raw.unpack(work), { v: 1, t: 'work', id: 1, attempt: 1, type: null, resource: null, timeoutMs: null }, 'work header: nil type, resource and timeout are written out');
  tt.end();
});

t.test('decodePayload refuses bytes that are not msgpack', (tt) => {
  for (const [name, b] of [
    ['empty', Buffer.alloc(0)],
    ['truncated', encodePayload({ a: 'string' }).subarray(0, 5)],
    ['trailing bytes', Buffer.from([0x01, 0x02])],
    ['unknown extension', Buffer.from([0xd4, 0x05, 0x41])],
  ] as const) {
    tt.throws(() => decodePayload(b), { name: 'ProtocolError', code: 'EMSGPACK' }, name);
  }
  tt.end();
});

t.test('a message of several envelopes decodes in order', (tt) => {
  const p1 = encodePayload('one');
  const p2 = encodePayload({ two: 2 });
  const fromWorker = [
    ...encode({ t: 'ready' }),
    ...encode({ t: 'result', id: 1, attempt: 1, payload: p1 }),
    ...encode({ t: 'heartbeat' }),
    ...encode({ t: 'result', id: 2, attempt: 4, payload: p2 }),
    ...encode({ t: 'error', id: 3, attempt: 1, error: { name: 'Error', message: 'no' } }),
    ...encode({ t: 'bye' }),
  ];
  tt.equal(fromWorker.length, 8);
  const w = decodeFromWorker(fromWorker);
  tt.same(
    w.map((e) => e.t),
    ['ready', 'result', 'heartbeat', 'result', 'error', 'bye'],
  );
  const r2 = w[3]!;
  if (r2.t === 'result') {
    tt.equal(r2.id, 2);
    tt.equal(r2.attempt, 4);
    tt.same(decodePayload(r2.payload), { two: 2 });
  }

  const fromCoordinator = [
    ...encode({ t: 'welcome', rank: 4, settings: { heartbeatMs: 500, livenessMs: 1500, maxMessageBytes: 65536 } }),
    ...encode({ t: 'work', id: 10, attempt: 1, type: 't', resource: null, timeoutMs: null, payload: p1 }),
    ...encode({ t: 'work', id: 11, attempt: 1, type: 't', resource: 'r', timeoutMs: null, payload: p2 }),
    ...encode({ t: 'terminate' }),
  ];
  const c = decodeFromCoordinator(fromCoordinator);
  tt.same(
    c.map((e) => e.t),
    ['welcome', 'work', 'work', 'terminate'],
  );
  const w11 = c[2]!;
  if (w11.t === 'work') tt.same(decodePayload(w11.payload), { two: 2 }, 'each work keeps its own payload');

  // All or nothing: one bad envelope anywhere refuses the whole message.
  refuses(tt, 'worker', [...encode({ t: 'ready' }), hdr({ t: 'result', id: -1, attempt: 1 }), p1], 'EFIELD', 'bad second envelope');
  refuses(tt, 'worker', [...encode({ t: 'ready' }), pack([1])], 'ENOTMAP', 'second header not a map');
  tt.end();
});

t.test('decoding is lenient where the format says so', (tt) => {
  // Unknown fields are ignored (a newer peer may add optional ones).
  tt.same(decodeFromWorker([hdr({ t: 'ready', extra: { nested: [1] }, another: 'x' })]), [{ t: 'ready' }]);
  tt.same(decodeFromWorker([hdr({ t: 'register', host: 'h', pid: 1, future: true })]), [{ t: 'register', rank: null, host: 'h', pid: 1, instance: null }], 'absent rank is null');
  tt.same(decodeFromWorker([hdr({ t: 'register', rank: null, host: 'h', pid: 1, instance: null })]), [{ t: 'register', rank: null, host: 'h', pid: 1, instance: null }], 'nil rank is null');
  const work = decodeFromCoordinator([hdr({ t: 'work', id: 1, attempt: 1 }), pack(null)])[0]!;
  tt.same({ ...work, payload: undefined }, { t: 'work', id: 1, attempt: 1, type: null, resource: null, timeoutMs: null, payload: undefined }, 'absent type and resource are null');
  // Key order in the map does not matter.
  tt.same(decodeFromWorker([pack({ t: 'bye', v: 1 })]), [{ t: 'bye' }]);
  // nil code/stack in an error record are as good as absent.
  tt.same(decodeFromWorker([hdr({ t: 'error', id: 1, attempt: 1, error: { name: 'E', message: 'm', code: null, stack: null } })]), [
    { t: 'error', id: 1, attempt: 1, error: { name: 'E', message: 'm' } },
  ]);
  // A float that holds an integer value decodes as that integer (senders should send ints).
  tt.same(decodeFromWorker([hdr({ t: 'result', id: 3.0, attempt: 1.0 }), pack(null)]).map((e) => e.t), ['result']);
  // msgpackr writes integers beyond 32 bits as float 64; such ids must survive the round trip.
  const bigId = encode({ t: 'result', id: 2 ** 32 + 5, attempt: 1, payload: encodePayload(null) });
  tt.ok(bigId[0]!.includes(Buffer.from([0xcb])), 'an id of 2^32 + 5 is written as float 64');
  tt.same(decodeFromWorker(bigId).map((e) => (e.t === 'result' ? e.id : -1)), [2 ** 32 + 5], 'and read back as the integer');
  tt.equal(decodePayload(encodePayload(2 ** 40)), 2 ** 40, 'a 40-bit number payload comes back as a number');
  // Boundaries that are accepted.
  tt.equal(decodeFromWorker([hdr({ t: 'register', rank: 1, host: 'h'.repeat(1024), pid: 0, instance: null })]).length, 1, '1024-char host');
  tt.equal(
    decodeFromWorker([hdr({ t: 'error', id: 0, attempt: 1, error: { name: 'n'.repeat(1024), message: 'm'.repeat(65536), code: 'c'.repeat(1024), stack: 's'.repeat(65536) } })]).length,
    1,
    'longest error strings',
  );
  tt.equal(decodeFromCoordinator([hdr({ t: 'reject', code: 'E'.repeat(1024), message: 'm'.repeat(65536), version: 0 })]).length, 1, 'longest reject strings');
  tt.end();
});

// -----------------------------------------------------------------------------------------------
// Malformed input

t.test('EMSGPACK: a header that is not msgpack', (tt) => {
  const valid = hdr({ t: 'register', rank: 2, host: 'some-host', pid: 77, instance: null });
  for (let n = 0; n < valid.length; n++) refuses(tt, 'worker', [valid.subarray(0, n)], 'EMSGPACK', `header truncated to ${n} of ${valid.length} bytes`);
  refuses(tt, 'worker', [Buffer.from('{"v":1,"t":"ready"}')], 'EMSGPACK', 'JSON text');
  refuses(tt, 'worker', [Buffer.from([0x82, 0xa1, 0x76, 0x01, 0xa1, 0x74, 0xa5, 0x72])], 'EMSGPACK', 'string runs past the end');
  refuses(tt, 'worker', [Buffer.concat([encode({ t: 'ready' })[0]!, Buffer.from([0x00])])], 'EMSGPACK', 'trailing byte after the map');
  refuses(tt, 'coordinator', [Buffer.from([0xd4, 0x05, 0x41])], 'EMSGPACK', 'unknown extension type');
  refuses(tt, 'coordinator', [Buffer.from([0xdf, 0xff, 0xff, 0xff, 0xff])], 'EMSGPACK', 'map header claiming 4G entries');
  refuses(tt, 'coordinator', [Buffer.from([0x81, 0x91, 0x01, 0x02])], 'EMSGPACK', 'map with an array key');
  refuses(tt, 'worker', [Buffer.alloc(0)], 'EMSGPACK', 'empty header frame');
  // The REQ-style empty delimiter frame a DEALER must not send.
  refuses(tt, 'worker', [Buffer.alloc(0), ...encode({ t: 'ready' })], 'EMSGPACK', 'empty delimiter before the header');
  tt.end();
});

t.test('ENOTMAP: a header that is msgpack but not a map', (tt) => {
  const cases: Array<[string, Frame]> = [
    ['array', pack([1, 'ready'])],
    ['array shaped like an envelope', pack([{ v: 1, t: 'ready' }])],
    ['positive int', pack(1)],
    ['negative int', pack(-7)],
    ['float', pack(1.25)],
    ['string', pack('ready')],
    ['bin', pack(Buffer.from('{"v":1}'))],
    ['nil', pack(null)],
    ['true', pack(true)],
    ['timestamp', pack(new Date(0))],
    ['never-used byte 0xc1', Buffer.from([0xc1])],
  ];
  for (const [name, frame] of cases) {
    refuses(tt, 'worker', [frame], 'ENOTMAP', `${name} from a worker`);
    refuses(tt, 'coordinator', [frame], 'ENOTMAP', `${name} from the coordinator`);
  }
  tt.end();
});

t.test('EVERSION: a header of another protocol version', (tt) => {
  const v2 = refuses(tt, 'worker', [pack({ v: 2, t: 'register', rank: null, host: 'h', pid: 1 })], 'EVERSION', 'v: 2');
  tt.equal(v2?.peerVersion, 2, 'peerVersion is the version sent');
  const missing = refuses(tt, 'worker', [pack({ t: 'register', rank: null, host: 'h', pid: 1, instance: null })], 'EVERSION', 'v missing');
  tt.ok(missing && 'peerVersion' in missing, 'peerVersion is set');
  tt.equal(missing?.peerVersion, undefined, 'peerVersion is undefined when v is missing');
  tt.equal(refuses(tt, 'coordinator', [pack({ v: 0, t: 'welcome' })], 'EVERSION', 'v: 0')?.peerVersion, 0);
  tt.equal(refuses(tt, 'coordinator', [pack({ v: '1', t: 'terminate' })], 'EVERSION', 'v: "1" (a string)')?.peerVersion, '1');
  tt.equal(refuses(tt, 'worker', [pack({ v: null, t: 'ready' })], 'EVERSION', 'v: nil')?.peerVersion, null);
  tt.equal(refuses(tt, 'worker', [pack({ v: 1.5, t: 'ready' })], 'EVERSION', 'v: 1.5')?.peerVersion, 1.5);
  // The version is checked before the type and the fields: a newer peer is told "version", not "type".
  refuses(tt, 'worker', [pack({ v: 2, t: 'hello-from-the-future' })], 'EVERSION', 'v: 2 with an unknown type');
  refuses(tt, 'worker', [pack({ v: 2 })], 'EVERSION', 'v: 2 without t');
  tt.end();
});

t.test('ETYPE: a type this side does not accept', (tt) => {
  refuses(tt, 'worker', [hdr({ t: 'frobnicate' })], 'ETYPE', 'unknown type from a worker');
  refuses(tt, 'coordinator', [hdr({ t: 'frobnicate' })], 'ETYPE', 'unknown type from the coordinator');
  refuses(tt, 'worker', [hdr({})], 'ETYPE', 't missing');
  refuses(tt, 'worker', [hdr({ t: null })], 'ETYPE', 't nil');
  refuses(tt, 'worker', [hdr({ t: 5 })], 'ETYPE', 't a number');
  refuses(tt, 'worker', [hdr({ t: 'READY' })], 'ETYPE', 'types are case-sensitive');
  refuses(tt, 'worker', [hdr({ t: Buffer.from('ready') })], 'ETYPE', 't as bin, not str');
  // Each side may only send its own types; heartbeat is the one both may send.
  const coordinatorOnly = {
    welcome: { rank: 1, settings: { heartbeatMs: 1, livenessMs: 1, maxMessageBytes: 1 } },
    reject: { code: 'ESHUTDOWN', message: 'm' },
    work: { id: 1, attempt: 1 },
    terminate: {},
  };
  for (const [type, fields] of Object.entries(coordinatorOnly)) {
    refuses(tt, 'worker', [hdr({ t: type, ...fields }), pack(null)], 'ETYPE', `'${type}' from a worker`);
  }
  const workerOnly = {
    register: { rank: null, host: 'h', pid: 1 },
    ready: {},
    result: { id: 1, attempt: 1 },
    error: { id: 1, attempt: 1, error: { name: 'E', message: 'm' } },
    bye: {},
  };
  for (const [type, fields] of Object.entries(workerOnly)) {
    refuses(tt, 'coordinator', [hdr({ t: type, ...fields }), pack(null)], 'ETYPE', `'${type}' from the coordinator`);
  }
  tt.same(decodeFromWorker([hdr({ t: 'heartbeat' })]), [{ t: 'heartbeat' }], 'heartbeat from a worker');
  tt.same(decodeFromCoordinator([hdr({ t: 'heartbeat' })]), [{ t: 'heartbeat' }], 'heartbeat from the coordinator');
  tt.end();
});

t.test('EFIELD: a required field missing or of the wrong type', (tt) => {
  const long1k = 'x'.repeat(1025);
  const long64k = 'x'.repeat(65537);
  const notSafe = 2 ** 53; // an integer, but not a safe one
  const posInt = [undefined, 0, -1, 1.5, '1', true, null, notSafe, [1], { n: 1 }];
  const uint = [undefined, -1, -0.5, 2.5, '0', false, null, notSafe, [0]];
  const shortStr = [undefined, 5, null, true, long1k, ['s'], Buffer.from('bin')];
  const longStr = [undefined, 5, null, long64k, { s: 's' }];

  interface Case {
    from: Side;
    t: string;
    base: Record<string, unknown>;
    /** field path → bad values (undefined: the field is left out). */
    bad: Record<string, unknown[]>;
    payload?: boolean;
  }
  const cases: Case[] = [
    {
      from: 'worker',
      t: 'register',
      base: { rank: 2, host: 'h', pid: 1 },
      // rank may be absent or nil (→ null), but if present it must be an integer >= 1.
      bad: { rank: [0, -1, 1.5, '2', true, notSafe, [2]], host: shortStr, pid: uint },
    },
    {
      from: 'coordinator',
      t: 'welcome',
      base: { rank: 1, settings: { heartbeatMs: 1000, livenessMs: 3000, maxMessageBytes: 65536 } },
      bad: {
        rank: posInt,
        settings: [undefined, null, 5, 'x', [1000, 3000], Buffer.from([1])],
        'settings.heartbeatMs': posInt,
        'settings.livenessMs': posInt,
        'settings.maxMessageBytes': posInt,
      },
    },
    {
      from: 'coordinator',
      t: 'reject',
      base: { code: 'ERANKTAKEN', message: 'm', version: 1 },
      // version is optional, but nil is not absent: if present it must be an integer >= 0.
      bad: { code: shortStr, message: longStr, version: [null, -1, 1.5, '1', true] },
    },
    {
      from: 'coordinator',
      t: 'work',
      base: { id: 1, attempt: 1, type: 'a', resource: 2 },
      payload: true,
      // type and resource may be absent or nil; a key is a string of <= 1024 chars or a finite number.
      bad: {
        id: uint,
        attempt: posInt,
        type: [true, long1k, [1], { k: 1 }, Buffer.from('k'), NaN, Infinity, -Infinity],
        resource: [false, long1k, ['r'], { k: 1 }, Buffer.from('r'), NaN, Infinity],
      },
    },
    { from: 'worker', t: 'result', base: { id: 1, attempt: 1 }, payload: true, bad: { id: uint, attempt: posInt } },
    {
      from: 'worker',
      t: 'error',
      base: { id: 1, attempt: 1, error: { name: 'E', message: 'm', code: 'C', stack: 's' } },
      bad: {
        id: uint,
        attempt: posInt,
        error: [undefined, null, 'boom', ['E', 'm'], 1, Buffer.from('e')],
        'error.name': shortStr,
        'error.message': longStr,
        // code and stack may be absent or nil, but if present they must be strings.
        'error.code': [5, true, long1k, ['C']],
        'error.stack': [5, false, long64k, {}],
      },
    },
  ];

  for (const c of cases) {
    const payload = c.payload ? [pack(null)] : [];
    tt.equal(decode(c.from, [hdr({ t: c.t, ...c.base }), ...payload]).length, 1, `${c.t}: the base case is valid`);
    for (const [path, values] of Object.entries(c.bad)) {
      for (const value of values) {
        const fields = structuredClone(c.base);
        const [outer, inner] = path.split('.') as [string, string | undefined];
        const target = inner === undefined ? fields : (fields[outer] as Record<string, unknown>);
        const key = inner ?? outer;
        if (value === undefined) delete target[key];
        else target[key] = value;
        const shown = typeof value === 'string' && value.length > 20 ? `${value.length}-char string` : String(value);
        const err = refuses(tt, c.from, [hdr({ t: c.t, ...fields }), ...payload], 'EFIELD', `${c.t}.${path} = ${value === undefined ? '(missing)' : shown}`);
        if (err) tt.match(err.message, `'${path}'`, `${c.t}.${path}: the message names the field`);
      }
    }
  }

  // Integers must use the compact msgpack formats: msgpackr reads uint 64 / int 64 as BigInt.
  const uint64Id = Buffer.concat([
    Buffer.from([0x84, 0xa1, 0x76, 0x01, 0xa1, 0x74, 0xa6]),
    Buffer.from('result'),
    Buffer.from([0xa2]),
    Buffer.from('id'),
    Buffer.from([0xcf, 0, 0, 0, 0, 0, 0, 0, 5]),
    Buffer.from([0xa7]),
    Buffer.from('attempt'),
    Buffer.from([0x01]),
  ]);
  refuses(tt, 'worker', [uint64Id, pack(null)], 'EFIELD', 'an id sent as uint 64');
  tt.end();
});

t.test('EFRAMES: the wrong number of frames', (tt) => {
  refuses(tt, 'worker', [], 'EFRAMES', 'empty message from a worker');
  refuses(tt, 'coordinator', [], 'EFRAMES', 'empty message from the coordinator');
  refuses(tt, 'coordinator', [hdr({ t: 'work', id: 1, attempt: 1 })], 'EFRAMES', 'work without its payload');
  refuses(tt, 'worker', [hdr({ t: 'result', id: 1, attempt: 1 })], 'EFRAMES', 'result without its payload');
  refuses(tt, 'worker', [...encode({ t: 'ready' }), hdr({ t: 'result', id: 1, attempt: 1 })], 'EFRAMES', 'a last result without its payload');
  // A payload frame only follows work/result; after anything else the next frame is a header.
  refuses(tt, 'worker', [...encode({ t: 'ready' }), encodePayload('stray')], 'ENOTMAP', 'a stray payload after ready');
  tt.end();
});

t.test('ETOOBIG: a frame over maxFrameBytes', (tt) => {
  const header = encode({ t: 'register', rank: null, host: 'h'.repeat(100), pid: 1, instance: null });
  const size = header[0]!.length;
  tt.equal(decodeFromWorker(header, { maxFrameBytes: size }).length, 1, 'a header of exactly maxFrameBytes is accepted');
  refuses(tt, 'worker', header, 'ETOOBIG', 'a header one byte over', size - 1);
  // The size is checked before the bytes are parsed: even garbage is ETOOBIG, not EMSGPACK.
  refuses(tt, 'worker', [Buffer.alloc(100, 0xc1)], 'ETOOBIG', 'oversized garbage', 99);

  const payload = encodePayload('p'.repeat(1000));
  const work = encode({ t: 'work', id: 1, attempt: 1, type: null, resource: null, timeoutMs: null, payload });
  const result = encode({ t: 'result', id: 1, attempt: 1, payload });
  tt.ok(work[0]!.length < 100 && result[0]!.length < 100, 'headers are small');
  tt.equal(decodeFromCoordinator(work, { maxFrameBytes: payload.length }).length, 1, 'a payload of exactly maxFrameBytes is accepted');
  refuses(tt, 'coordinator', work, 'ETOOBIG', 'a work payload over', payload.length - 1);
  refuses(tt, 'worker', result, 'ETOOBIG', 'a result payload over', 100);
  // The limit applies to each frame on its own, not to the message.
  const many = [...result, ...result, ...result];
  tt.equal(decodeFromWorker(many, { maxFrameBytes: payload.length }).length, 3, 'frames are measured one by one');
  tt.end();
});

// -----------------------------------------------------------------------------------------------
// Robustness: nothing but ProtocolError ever leaves the decoder.


const CODES = new Set<string>(['EMSGPACK', 'ENOTMAP', 'EVERSION', 'ETYPE', 'EFIELD', 'EFRAMES', 'ETOOBIG']);
const WORKER_TYPES = new Set(['register', 'ready', 'result', 'error', 'heartbeat', 'bye']);
const COORDINATOR_TYPES = new Set(['welcome', 'reject', 'work', 'heartbeat', 'terminate']);

/** Decodes and returns a description of anything wrong: a foreign throw, an unknown code, a bad result. */
function probe(from: Side, frames: Frame[], maxFrameBytes?: number): string | null {
  let out: Envelope[];
  try {
    out = decode(from, frames, maxFrameBytes);
  } catch (err) {
    if (!(err instanceof ProtocolError)) return `threw ${String(err)}`;
    if (!CODES.has(err.code)) return `unknown code ${err.code}`;
    if (typeof err.message !== 'string' || err.message === '') return 'no message';
    return null;
  }
  const allowed = from === 'worker' ? WORKER_TYPES : COORDINATOR_TYPES;
  for (const env of out) {
    if (!allowed.has(env.t)) return `decoded a '${env.t}' from the ${from}`;
    if ((env.t === 'work' || env.t === 'result') && !(env.payload instanceof Uint8Array)) return `'${env.t}' without payload bytes`;
  }
  return null;
}

const hex = (frames: Frame[]) => frames.map((f) => f.toString('hex')).join(' ');

t.test('random byte strings: only ProtocolError', (tt) => {
  const rnd = prng(0x7a5cfa12);
  const byte = () => Math.floor(rnd() * 256);
  // Bias the first byte toward msgpack containers so that the parser goes deep, not just fails at once.
  const starts = [0x80, 0x81, 0x82, 0x83, 0x85, 0x8f, 0x90, 0x92, 0xde, 0xdf, 0xdc, 0xdd, 0xc4, 0xd4, 0xd6, 0xc7, 0xa1, 0xc1];
  const failures: string[] = [];
  let decoded = 0;
  for (let i = 0; i < 4000; i++) {
    const frameCount = 1 + Math.floor(rnd() * 3);
    const frames: Frame[] = [];
    for (let f = 0; f < frameCount; f++) {
      const len = Math.floor(rnd() ** 2 * 64);
      const b = Buffer.alloc(len);
      for (let k = 0; k < len; k++) b[k] = byte();
      if (len > 0 && rnd() < 0.6) b[0] = starts[Math.floor(rnd() * starts.length)]!;
      frames.push(b);
    }
    for (const from of ['worker', 'coordinator'] as const) {
      const problem = probe(from, frames, rnd() < 0.2 ? Math.floor(rnd() * 64) : undefined);
      if (problem) failures.push(`${from} ${hex(frames)}: ${problem}`);
    }
    try {
      decodePayload(frames[0]!);
      decoded++;
    } catch (err) {
      if (!(err instanceof ProtocolError && err.code === 'EMSGPACK')) failures.push(`payload ${hex(frames)}: threw ${String(err)}`);
    }
  }
  tt.same(failures.slice(0, 20), [], 'no foreign exceptions');
  tt.ok(decoded > 0, `some random payloads are msgpack (${decoded})`);
  tt.end();
});

t.test('random mutations of valid frames: only ProtocolError', (tt) => {
  const rnd = prng(20240611);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const payload = encodePayload({ data: [1, 2.5, 'three', null, true, Buffer.from([4, 5])], nested: { k: 'v' } });
  const valid: Array<[Side, Frame[]]> = [
    ['worker', encode({ t: 'register', rank: 3, host: 'worker-host', pid: 31337, instance: null })],
    ['worker', encode({ t: 'register', rank: null, host: 'h', pid: 1, instance: null })],
    ['worker', encode({ t: 'ready' })],
    ['worker', encode({ t: 'result', id: 123456, attempt: 2, payload })],
    ['worker', encode({ t: 'error', id: 7, attempt: 1, error: toWireError(Object.assign(new Error('failed'), { code: 'EFAIL' })) })],
    ['worker', encode({ t: 'heartbeat' })],
    ['worker', encode({ t: 'bye' })],
    ['coordinator', encode({ t: 'welcome', rank: 12, settings: { heartbeatMs: 1000, livenessMs: 3000, maxMessageBytes: 65536 } })],
    ['coordinator', encode({ t: 'reject', code: 'EVERSION', message: 'no', version: 1 })],
    ['coordinator', encode({ t: 'work', id: 99, attempt: 1, type: 'kind', resource: 42, timeoutMs: null, payload })],
    ['coordinator', encode({ t: 'terminate' })],
  ];
  // The interesting bytes to write: type markers, lengths, v/t values.
  const interesting = [0x00, 0x01, 0x02, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xca, 0xcb, 0xcf, 0xd3, 0xd4, 0xd9, 0xdc, 0xde, 0xdf, 0xe0, 0xff];
  const mutate = (src: Frame): Frame => {
    const b = Buffer.from(src);
    const pos = Math.floor(rnd() * Math.max(1, b.length));
    switch (Math.floor(rnd() * 6)) {
      case 0: // flip a bit
        if (b.length) b[pos] = b[pos]! ^ (1 << Math.floor(rnd() * 8));
        return b;
      case 1: // overwrite with a random or interesting byte
        if (b.length) b[pos] = rnd() < 0.5 ? Math.floor(rnd() * 256) : pick(interesting);
        return b;
      case 2: // truncate
        return b.subarray(0, pos);
      case 3: // delete a byte
        return Buffer.concat([b.subarray(0, pos), b.subarray(pos + 1)]);
      case 4: // insert a byte
        return Buffer.concat([b.subarray(0, pos), Buffer.from([rnd() < 0.5 ? Math.floor(rnd() * 256) : pick(interesting)]), b.subarray(pos)]);
      default: // duplicate a slice
        return Buffer.concat([b, b.subarray(pos, pos + 1 + Math.floor(rnd() * 8))]);
    }
  };
  const failures: string[] = [];
  const outcomes = new Map<string, number>();
  for (let i = 0; i < 5000; i++) {
    const [from, original] = pick(valid);
    let frames: Frame[] = original.map((f) => Buffer.from(f));
    const rounds = 1 + Math.floor(rnd() * 3);
    for (let r = 0; r < rounds; r++) {
      const which = Math.floor(rnd() * frames.length);
      frames[which] = mutate(frames[which]!);
    }
    if (rnd() < 0.1) frames = frames.slice(0, -1); // drop the last frame
    if (rnd() < 0.1) frames = [...frames, ...pick(valid)[1]]; // append another envelope
    // Sent to the wrong side now and then.
    const to: Side = rnd() < 0.15 ? (from === 'worker' ? 'coordinator' : 'worker') : from;
    const problem = probe(to, frames);
    if (problem) failures.push(`${to} ${hex(frames)}: ${problem}`);
    let outcome = 'ok';
    try {
      decode(to, frames);
    } catch (err) {
      outcome = (err as ProtocolError).code;
    }
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
  }
  tt.same(failures.slice(0, 20), [], 'no foreign exceptions');
  // The mutations reach every layer of the decoder, not just the msgpack parser.
  for (const code of ['ok', 'EMSGPACK', 'ENOTMAP', 'EVERSION', 'ETYPE', 'EFIELD', 'EFRAMES']) {
    tt.ok((outcomes.get(code) ?? 0) > 0, `some mutations end in ${code} (${outcomes.get(code) ?? 0})`);
  }
  tt.end();
});

// -----------------------------------------------------------------------------------------------
// Encoding side helpers

t.test('encodePayload throws PayloadError for what msgpack cannot carry', (tt) => {
  const cases: Array<[string, unknown]> = [
    ['a Symbol', Symbol('s')],
    ['a Symbol inside a map', { ok: 1, bad: Symbol('s') }],
    ['a BigInt of 2^64', 2n ** 64n],
    ['a BigInt below -2^63', -(2n ** 63n) - 1n],
    ['a BigInt inside an array', [1, 2n ** 70n]],
  ];
  for (const [name, value] of cases) {
    try {
      encodePayload(value);
      tt.fail(`${name}: encoded`);
    } catch (err) {
      tt.type(err, PayloadError, `${name}: PayloadError`);
      tt.type(err, Error);
      tt.equal((err as PayloadError).code, 'EPAYLOAD', `${name}: code EPAYLOAD`);
      tt.equal((err as PayloadError).name, 'PayloadError');
      tt.match((err as Error).message, /msgpack/, `${name}: says why`);
    }
  }
  // The largest 64-bit integers still fit.
  tt.equal(decodePayload(encodePayload(2n ** 64n - 1n)), 2n ** 64n - 1n, '2^64 - 1 fits');
  tt.equal(decodePayload(encodePayload(-(2n ** 63n))), -(2n ** 63n), '-2^63 fits');
  tt.end();
});

t.test('the payload contract (PROTOCOL.md §8): what survives the trip, and how', (tt) => {
  const trip = (v: unknown) => decodePayload(encodePayload(v));
  tt.same(trip({ a: [1, 'two', { b: null }], c: true }), { a: [1, 'two', { b: null }], c: true }, 'objects, arrays, strings, numbers, booleans, null');
  tt.equal(trip('añ ✓ 😀'), 'añ ✓ 😀', 'strings in any script');
  tt.equal(trip('a\ud800b'), 'a\ufffdb', 'a lone surrogate becomes U+FFFD (UTF-8 cannot carry it)');
  tt.ok(Number.isNaN(trip(NaN)), 'NaN');
  tt.equal(trip(Infinity), Infinity, 'Infinity');
  tt.ok(Object.is(trip(-0), 0), '-0 arrives as 0');
  tt.equal(trip(2 ** 53 - 1), 2 ** 53 - 1, 'integers up to 2^53');
  tt.equal(trip(5n), 5n, 'a BigInt in 64 bits comes back a BigInt, however small');
  tt.equal(trip(undefined), undefined, 'undefined');
  tt.same(trip({ u: undefined }), { u: undefined }, 'undefined inside a map');
  tt.same(trip([1, , 3]), [1, undefined, 3], 'the hole of a sparse array becomes undefined');
  const date = new Date(1_700_000_000_123);
  tt.same(trip(date), date, 'a Date');
  tt.ok(bytes(trip(Buffer.from([1, 2])) as Uint8Array).equals(Buffer.from([1, 2])), 'a Buffer arrives as bytes');
  tt.ok(bytes(trip(new Float64Array([1.5])) as Uint8Array).equals(Buffer.from(new Float64Array([1.5]).buffer)), 'other typed arrays arrive as their raw bytes');
  tt.ok(bytes(trip(new Uint8Array([9]).buffer) as Uint8Array).equals(Buffer.from([9])), 'an ArrayBuffer arrives as bytes');
  tt.same(trip(new Map<unknown, unknown>([[1, 'a'], ['b', 2]])), { 1: 'a', b: 2 }, 'a Map arrives as a plain object, number keys as strings');
  tt.same(trip(new Set([1, 'x'])), [1, 'x'], 'a Set arrives as an array');
  tt.same(trip(new (class P { x = 1; m() {} })()), { x: 1 }, 'a class instance arrives as a plain object of its own properties');
  tt.equal(trip(new (class D { toJSON() { return 'D!'; } })()), 'D!', 'an object with toJSON() arrives as what toJSON() returns');
  tt.same(trip(Object.assign(Object.create(null), { a: 1 })), { a: 1 }, 'an object without a prototype arrives as a plain object');
  tt.same(trip({ [Symbol('s')]: 1, a: 1 }), { a: 1 }, 'properties keyed by a Symbol are left out');
  tt.same(trip(JSON.parse('{"__proto__": 1, "a": 2}')), { __proto_: 1, a: 2 }, 'a key named __proto__ is renamed __proto_ by the decoder');

  const refused: Array<[string, unknown, RegExp]> = [
    ['a function', () => 1, /the value is a function/],
    ['a method', { f() {} }, /the value\.f is a function/],
    ['a function deep inside', { a: [{ b: new Map([['c', () => 1]]) }] }, /the value\.a\[0\]\.b\.c is a function/],
    ['a Symbol value', new Set([Symbol('s')]), /the value\[0\] is a Symbol/],
    ['a Promise', { p: Promise.resolve(1) }, /the value\.p is a Promise: await it first/],
    ['a WeakMap', new WeakMap(), /WeakMap, whose contents cannot be read/],
    ['a WeakSet', [new WeakSet()], /WeakSet/],
    ['an Error', { e: new TypeError('x') }, /is an Error/],
    ['a RegExp', /x/g, /is a RegExp/],
    ['a boxed primitive', { n: new Number(1) }, /boxed primitive/],
    ['a Map with an object key', new Map([[{}, 1]]), /Map with a key of type object/],
    ['a Map with a boolean key', new Map([[true, 1]]), /Map with a key of type boolean/],
    ['a BigInt of 2^64', { big: 2n ** 64n }, /BigInt outside the 64-bit range/],
    ['a key with spaces', { 'a b': () => 1 }, /the value\["a b"\] is a function/],
  ];
  const cycle: Record<string, unknown> = { a: 1 };
  cycle.self = { back: cycle };
  refused.push(['a cycle', cycle, /the value\.self\.back refers to an object that contains it/]);
  let deep: unknown[] = [];
  const root = deep;
  for (let i = 0; i < 600; i++) deep = (deep[0] = []) as unknown[];
  refused.push(['nesting 600 deep', root, /the value\[0\]\[0\]\[0\]\[0\]\[0\]\[0\]…\[0\]\[0\]\[0\]\[0\] is nested more than 512 levels deep/]);
  for (const [name, value, message] of refused) tt.throws(() => encodePayload(value), { name: 'PayloadError', code: 'EPAYLOAD', message }, `${name}: PayloadError naming where`);
  // The same object twice (not a cycle) is fine.
  const shared = { s: 1 };
  tt.same(trip([shared, shared]), [{ s: 1 }, { s: 1 }], 'an object referred to twice is sent twice');
  tt.end();
});

t.test('limits on a message: frames per message, header size', (tt) => {
  const beat = encode({ t: 'heartbeat' })[0]!;
  tt.equal(decodeFromWorker(Array.from({ length: MAX_MESSAGE_FRAMES }, () => beat)).length, MAX_MESSAGE_FRAMES, `${MAX_MESSAGE_FRAMES} envelopes in one message are fine`);
  const e = refuses(tt, 'worker', Array.from({ length: MAX_MESSAGE_FRAMES + 1 }, () => beat), 'EFRAMES', 'one frame more');
  tt.match(e?.message, /more than 64/);
  refuses(tt, 'coordinator', [Buffer.alloc(MAX_HEADER_BYTES + 1, 0x90)], 'ETOOBIG', 'a header over MAX_HEADER_BYTES, whatever maxFrameBytes says');
  // A payload frame may be larger than a header: only maxFrameBytes limits it.
  const big = Buffer.alloc(MAX_HEADER_BYTES + 10);
  const r = decodeFromWorker([...encode({ t: 'result', id: 1, attempt: 1, payload: big })])[0]!;
  tt.equal(r.t === 'result' && r.payload.length, big.length, 'a payload over MAX_HEADER_BYTES is accepted');
  tt.end();
});

t.test('toWireError keeps what matters of an Error', (tt) => {
  const plain = new Error('plain failure');
  tt.same(toWireError(plain), { name: 'Error', message: 'plain failure', stack: plain.stack });

  const typeErr = new TypeError('not a function');
  const w = toWireError(typeErr);
  tt.equal(w.name, 'TypeError');
  tt.equal(w.message, 'not a function');
  tt.notOk('code' in w, 'no code when the error has none');
  tt.match(w.stack, /^TypeError: not a function\n\s+at /, 'the stack is kept');

  const withCode = Object.assign(new Error('no such file'), { code: 'ENOENT' });
  tt.equal(toWireError(withCode).code, 'ENOENT', 'a string code is kept');
  tt.equal(toWireError(Object.assign(new Error('x'), { code: 42 })).code, '42', 'a numeric code becomes a string');
  tt.notOk('code' in toWireError(Object.assign(new Error('x'), { code: { nested: true } })), 'a code that is neither is left out');

  class CustomError extends Error {
    override name = 'CustomError';
  }
  tt.equal(toWireError(new CustomError('custom')).name, 'CustomError', 'a subclass keeps its name');

  const noStack = new Error('no stack');
  delete (noStack as { stack?: string }).stack;
  tt.notOk('stack' in toWireError(noStack), 'no stack when the error has none');

  // Everything is cut to what the decoder accepts, so that an error report is never refused.
  const huge = Object.assign(new Error('m'.repeat(100_000)), { code: 'C'.repeat(5000) });
  huge.name = 'N'.repeat(5000);
  huge.stack = 'S'.repeat(100_000);
  const cut = toWireError(huge);
  tt.equal(cut.name.length, 1024);
  tt.equal(cut.message.length, 65536);
  tt.equal(cut.code?.length, 1024);
  tt.equal(cut.stack?.length, 65536);
  const env = decodeFromWorker(encode({ t: 'error', id: 1, attempt: 1, error: cut }))[0]!;
  tt.same(env, { t: 'error', id: 1, attempt: 1, error: cut }, 'the cut record crosses the wire');

  // Round trip through an error envelope.
  const back = decodeFromWorker(encode({ t: 'error', id: 4, attempt: 2, error: toWireError(withCode) }))[0]!;
  tt.same(back, { t: 'error', id: 4, attempt: 2, error: { name: 'Error', message: 'no such file', code: 'ENOENT', stack: withCode.stack } });
  tt.end();
});

t.test('toWireError handles throws that are not Errors', (tt) => {
  tt.same(toWireError('just a string'), { name: 'Error', message: 'just a string' });
  tt.same(toWireError(42), { name: 'Error', message: '42' });
  tt.same(toWireError(undefined), { name: 'Error', message: 'undefined' });
  tt.same(toWireError(null), { name: 'Error', message: 'null' });
  tt.same(toWireError({ message: 'an object' }), { name: 'Error', message: '[object Object]' });
  tt.same(toWireError(Symbol('sym')), { name: 'Error', message: 'Symbol(sym)' });
  tt.same(toWireError(Object.create(null)), { name: 'Error', message: '[object Object]' }, 'an object without toString');
  tt.same(toWireError({ toString: () => 'custom text' }), { name: 'Error', message: 'custom text' });
  tt.equal(toWireError('x'.repeat(70_000)).message.length, 65536, 'cut to 64 Ki characters');
  for (const thrown of ['s', 1, undefined, null, Object.create(null), [1, 2]]) {
    const env = decodeFromWorker(encode({ t: 'error', id: 1, attempt: 1, error: toWireError(thrown) }))[0]!;
    tt.equal(env.t, 'error', `${typeof thrown} crosses the wire`);
  }
  tt.end();
});

t.test('batches: tasks and results carry many tasks in two frames, payloads as views', (tt) => {
  const works = [1, 2, 3].map((id): Envelope => ({ t: 'work', id, attempt: 1, type: id === 2 ? 'render' : null, resource: id === 3 ? 7 : null, timeoutMs: id === 1 ? 500 : null, payload: encodePayload(`data ${id}`) }));
  const [frames, more] = encodeMessages(works, true);
  tt.equal(more, undefined, 'one message');
  tt.equal(frames!.length, 2, 'one header frame and one payload frame for three tasks');
  const [batch] = decodeFromCoordinator(frames!);
  tt.equal(batch!.t, 'tasks');
  const tasks = (batch as Extract<CoordinatorMessage, { t: 'tasks' }>).tasks;
  tt.same(tasks.map((w) => [w.id, w.type, w.resource, w.timeoutMs, decodePayload(w.payload)]), [
    [1, null, null, 500, 'data 1'],
    [2, 'render', null, null, 'data 2'],
    [3, null, 7, null, 'data 3'],
  ]);
  tt.equal(tasks[1]!.payload.buffer, frames![1]!.buffer, 'each payload is a view of the payload frame, not a copy');

  tt.equal(encodeMessages(works, false)[0]!.length, 6, 'without batching: two frames per task, as a window-1 peer expects');
  const big: Envelope = { t: 'work', id: 9, attempt: 1, type: null, resource: null, timeoutMs: null, payload: Buffer.alloc(BATCH_INLINE_BYTES + 1) };
  const mixed = decodeFromCoordinator(encodeMessages([works[0]!, works[1]!, big, { t: 'ack', id: 4, attempt: 1 }, works[2]!], true)[0]!);
  tt.same(mixed.map((e) => e.t), ['tasks', 'work', 'ack', 'work'], 'a large payload travels as its own frame; order with other envelopes is kept');
  const many = Array.from({ length: BATCH_MAX_TASKS + 1 }, (_, i): Envelope => ({ ...(works[0] as object), id: i } as Envelope));
  tt.same(decodeFromCoordinator(encodeMessages(many, true)[0]!).map((e) => e.t), ['tasks', 'work'], 'at most BATCH_MAX_TASKS per batch');
  const bigs = Array.from({ length: MAX_MESSAGE_FRAMES }, (_, i): Envelope => ({ ...(big as object), id: i } as Envelope));
  const split = encodeMessages(bigs, true);
  tt.ok(split.every((m) => m.length <= MAX_MESSAGE_FRAMES), 'never more frames per message than a receiver accepts');
  const bytesOf = (m: Frame[]) => m.reduce((n, f) => n + f.length, 0);
  tt.ok(split.every((m) => bytesOf(m) <= BATCH_MAX_BYTES), 'nor more payload than a batch, so that large tasks are not held back behind each other');
  const huge: Envelope = { ...(big as object), payload: Buffer.alloc(BATCH_MAX_BYTES * 2) } as unknown as Envelope;
  tt.equal(encodeMessages([huge], true).length, 1, 'a payload larger than that still travels, alone');
  tt.same(split.flatMap((m) => decodeFromCoordinator(m).map((e) => (e as { id: number }).id)), bigs.map((_, i) => i), 'in order');

  const results: Envelope = { t: 'results', seq: 5, us: 1234, results: [10, 11].map((id) => ({ t: 'result' as const, id, attempt: 2, payload: encodePayload({ id }) })) };
  const [r] = decodeFromWorker(encode(results));
  tt.equal(r!.t, 'results');
  const rs = r as Extract<WorkerMessage, { t: 'results' }>;
  tt.same([rs.seq, rs.us, rs.results.map((x) => [x.id, x.attempt, decodePayload(x.payload)])], [5, 1234, [[10, 2, { id: 10 }], [11, 2, { id: 11 }]]]);
  tt.same(decodeFromCoordinator(encode({ t: 'receipt', seq: 5 })), [{ t: 'receipt', seq: 5 }]);
  tt.same(decodeFromWorker(encode({ t: 'result', id: 1, attempt: 1, payload: encodePayload(1), us: 42 }))[0], { t: 'result', id: 1, attempt: 1, payload: encodePayload(1), us: 42 });
  tt.end();
});

t.test('batches: malformed entries and lengths are refused', (tt) => {
  const payload = Buffer.from([1, 2, 3]);
  refuses(tt, 'coordinator', [hdr({ t: 'tasks', tasks: [[1, 1, null, null, null, 2]] }), payload], 'EFRAMES', 'lengths that do not add up to the payload frame');
  refuses(tt, 'coordinator', [hdr({ t: 'tasks', tasks: [] }), Buffer.alloc(0)], 'EFIELD', 'an empty batch');
  refuses(tt, 'coordinator', [hdr({ t: 'tasks', tasks: [[1, 1, null, null, null]] }), payload], 'EFIELD', 'an entry with a field missing');
  refuses(tt, 'coordinator', [hdr({ t: 'tasks', tasks: [[1, 0, null, null, null, 3]] }), payload], 'EFIELD', 'attempt 0');
  refuses(tt, 'coordinator', [hdr({ t: 'tasks', tasks: [[1, 1, null, null, null, -3]] }), payload], 'EFIELD', 'a negative length');
  refuses(tt, 'coordinator', [hdr({ t: 'tasks', tasks: [[1, 1, null, null, null, 3]] })], 'EFRAMES', 'no payload frame');
  refuses(tt, 'coordinator', [hdr({ t: 'tasks', tasks: Array.from({ length: MAX_BATCH_ENTRIES + 1 }, () => [1, 1, null, null, null, 0]) }), Buffer.alloc(0)], 'EFIELD', 'too many entries');
  refuses(tt, 'worker', [hdr({ t: 'results', seq: 1, us: 0, results: [[1, 1, 4]] }), payload], 'EFRAMES', 'result lengths that do not add up');
  refuses(tt, 'worker', [hdr({ t: 'results', us: 0, results: [[1, 1, 3]] }), payload], 'EFIELD', 'results without seq');
  refuses(tt, 'worker', [hdr({ t: 'tasks', tasks: [[1, 1, null, null, null, 3]] }), payload], 'ETYPE', 'tasks sent by a worker');
  refuses(tt, 'coordinator', [hdr({ t: 'results', seq: 1, us: 0, results: [[1, 1, 3]] }), payload], 'ETYPE', 'results sent by a coordinator');
  refuses(tt, 'worker', [hdr({ t: 'register', rank: null, host: 'h', pid: 1, instance: null, window: 0 })], 'EFIELD', 'a window of 0');
  tt.same((decodeFromWorker([hdr({ t: 'register', rank: null, host: 'h', pid: 1, instance: null, window: 64 })])[0] as { window?: number }).window, 64, 'a window is read');
  tt.end();
});

t.test('raw payloads: flagged in the header, the frame as it is, never batched; a raw that is not boolean is refused', (tt) => {
  const bytes = Buffer.alloc(BATCH_INLINE_BYTES + 1, 0xc1); // 0xc1 is never valid msgpack
  const [header, frame] = encode({ t: 'work', id: 1, attempt: 1, type: null, resource: null, timeoutMs: null, payload: bytes, raw: true });
  tt.equal((raw.unpack(header!) as Record<string, unknown>).raw, true);
  tt.equal(frame, bytes, 'the payload frame is the bytes themselves');
  const small = (id: number) => ({ t: 'work' as const, id, attempt: 1, type: null, resource: null, timeoutMs: null, payload: encodePayload(id) });
  const [message] = encodeMessages([small(1), { ...small(2), payload: bytes, raw: true }, small(3)], true);
  const decoded = decodeFromCoordinator(message!);
  tt.same(decoded.map((e) => e.t), ['work', 'work', 'work'], 'the raw task splits the run: no batch holds it');
  const [resentMessage] = encodeMessages([small(1), { ...small(2), resent: true }, small(3)], true);
  tt.same(decodeFromCoordinator(resentMessage!).map((e) => [e.t, (e as { resent?: boolean }).resent ?? false]), [['work', false], ['work', true], ['work', false]], 'nor a resent one');
  tt.equal((decoded[1] as { raw?: boolean }).raw, true);
  tt.same(rawPayload(bytes), bytes, 'binary data over 8 KiB travels raw');
  tt.equal(rawPayload(Buffer.alloc(BATCH_INLINE_BYTES)), null, 'at most 8 KiB: msgpack');
  tt.equal(rawPayload('x'.repeat(20_000)), null, 'only binary data');
  const view = new Uint8Array(new ArrayBuffer(30_000), 100, 20_000);
  tt.equal(rawPayload(view)!.buffer, view.buffer, 'a Uint8Array view: the same memory, as a Buffer');
  tt.same(decodeValue(bytes, true), bytes);
  tt.equal(decodeValue(encodePayload(5), false), 5);
  const bad = raw.pack({ v: PROTOCOL_VERSION, t: 'result', id: 1, attempt: 1, raw: 'yes' });
  tt.throws(() => decodeFromWorker([bad, Buffer.alloc(1)]), { code: 'EFIELD', message: /raw/ });
  tt.end();
});

t.test('32-bit integers, booleans and null, written and read by hand, are byte for byte what msgpackr writes and reads', (tt) => {
  const reference = new Packr({ useRecords: false, mapsAsObjects: true });
  const edges = [0, -0, 1, 31, 32, 127, 128, 255, 256, 65535, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, -1, -31, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, 0.5, NaN, Infinity];
  const rand = prng(7);
  const values = [...edges, ...Array.from({ length: 20_000 }, () => Math.floor((rand() - 0.5) * 2 ** (1 + Math.floor(rand() * 34))))];
  let mismatches = 0;
  for (const v of values) {
    const ours = encodePayload(v);
    const theirs = reference.pack(v);
    if (!ours.equals(theirs)) mismatches++;
    const back = decodePayload(theirs);
    if (!Object.is(back, reference.unpack(theirs)) && !(Number.isNaN(back) && Number.isNaN(v))) mismatches++;
  }
  tt.equal(mismatches, 0, `${values.length} numbers, both ways`);
  for (const v of [true, false, null]) {
    tt.same(encodePayload(v), reference.pack(v), `${v}: msgpackr's byte`);
    tt.equal(decodePayload(reference.pack(v)), v, `${v}: read back`);
  }
  // Frames of the hand-read lengths that are something else, or not msgpack at all: read as before.
  let differ = 0;
  for (let i = 0; i < 20_000; i++) {
    const frame = Buffer.from(Array.from({ length: [1, 2, 3, 5][i % 4]! }, () => Math.floor(rand() * 256)));
    let expected: unknown;
    let expectedError = false;
    try {
      expected = reference.unpack(frame);
    } catch {
      expectedError = true;
    }
    try {
      const got = decodePayload(frame);
      if (expectedError || !(Object.is(got, expected) || JSON.stringify(got) === JSON.stringify(expected))) differ++;
    } catch (err) {
      if (!expectedError || !(err instanceof ProtocolError)) differ++;
    }
  }
  tt.equal(differ, 0, 'random short frames decode as msgpackr decodes them (or fail as ProtocolError)');
  tt.end();
});
