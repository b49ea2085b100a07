/**
 * Property-based tests of the codec with fast-check: over arbitrary bytes, arbitrary msgpack values
 * and mutations of valid frames, decoding either yields envelopes that meet PROTOCOL.md §3 or throws
 * a ProtocolError with a documented code; nothing else ever leaves it. Valid envelopes round-trip,
 * and payloads either encode or fail with a PayloadError. Seeded (replay a failure with its seed and
 * path, which fast-check prints) and bounded.
 */
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import t from 'tap';
import {
  decodeFromCoordinator,
  decodeFromWorker,
  decodePayload,
  encode,
  encodePayload,
  MAX_MESSAGE_FRAMES,
  PayloadError,
  ProtocolError,
  type Envelope,
  type Frame,
} from '../src/index.ts';

const SEED = 0x7a5c;
const packr = new Packr({ useRecords: false });
const CODES = new Set(['EMSGPACK', 'ENOTMAP', 'EVERSION', 'ETYPE', 'EFIELD', 'EFRAMES', 'ETOOBIG']);
const FROM_WORKER = new Set(['register', 'ready', 'result', 'error', 'heartbeat', 'bye']);
const FROM_COORDINATOR = new Set(['welcome', 'reject', 'work', 'ack', 'cancel', 'heartbeat', 'terminate']);
type Side = 'worker' | 'coordinator';

const isUint = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
const isPos = (v: unknown) => Number.isSafeInteger(v) && (v as number) > 0;
const str = (n: number) => (v: unknown) => typeof v === 'string' && v.length <= n;
const isKey = (v: unknown) => v === null || str(1024)(v) || (typeof v === 'number' && Number.isFinite(v));

/** What PROTOCOL.md §3 promises of a decoded envelope; a description of the breach, or null. */
function breach(env: Envelope, side: Side): string | null {
  if (!(side === 'worker' ? FROM_WORKER : FROM_COORDINATOR).has(env.t)) return `a '${env.t}' from the ${side}`;
  const e = env as unknown as Record<string, unknown>;
  const checks: Record<string, Array<[string, (v: unknown) => boolean]>> = {
    register: [['rank', (v) => v === null || isPos(v)], ['host', str(1024)], ['pid', isUint], ['instance', (v) => v === null || str(1024)(v)]],
    welcome: [['rank', isPos], ['settings', (v) => { const s = v as Record<string, unknown>; return isPos(s.heartbeatMs) && isPos(s.livenessMs) && isPos(s.maxMessageBytes); }]],
    reject: [['code', str(1024)], ['message', str(65536)], ['version', (v) => v === undefined || isUint(v)]],
    work: [['id', isUint], ['attempt', isPos], ['type', isKey], ['resource', isKey], ['timeoutMs', (v) => v === null || isPos(v)], ['payload', (v) => v instanceof Uint8Array]],
    result: [['id', isUint], ['attempt', isPos], ['payload', (v) => v instanceof Uint8Array]],
    error: [['id', isUint], ['attempt', isPos], ['error', (v) => { const w = v as Record<string, unknown>; return str(1024)(w.name) && str(65536)(w.message) && (w.code === undefined || str(1024)(w.code)) && (w.stack === undefined || str(65536)(w.stack)); }]],
    ack: [['id', isUint], ['attempt', isPos]],
    cancel: [['id', isUint], ['attempt', isPos]],
  };
  for (const [name, ok] of checks[env.t] ?? []) if (!ok(e[name])) return `'${env.t}'.${name} = ${String(e[name])}`;
  return null;
}

/** Decodes; returns null when all is as documented, else what went wrong. */
function check(side: Side, frames: readonly Frame[]): string | null {
  let out: Envelope[];
  try {
    out = side === 'worker' ? decodeFromWorker(frames) : decodeFromCoordinator(frames);
  } catch (err) {
    if (!(err instanceof ProtocolError)) return `threw ${String(err)}`;
    if (!CODES.has(err.code)) return `unknown code ${err.code}`;
    return err.message ? null : 'a ProtocolError without a message';
  }
  if (out.length === 0) return 'no envelope and no error';
  if (frames.length > MAX_MESSAGE_FRAMES) return `accepted ${frames.length} frames`;
  for (const env of out) {
    const b = breach(env, side);
    if (b) return b;
  }
  return null;
}

const side = fc.constantFrom<Side>('worker', 'coordinator');
const frame = (max: number) => fc.uint8Array({ maxLength: max }).map((u) => Buffer.from(u.buffer, u.byteOffset, u.byteLength));

t.test('decode over arbitrary bytes: envelopes as documented, or a ProtocolError', (t) => {
  fc.assert(
    fc.property(side, fc.array(frame(96), { maxLength: 6 }), (s, frames) => check(s, frames) === null),
    { seed: SEED, numRuns: 5_000 },
  );
  // Bytes that start like msgpack containers reach deeper into the parser than uniform noise.
  const starts = [0x80, 0x81, 0x83, 0x8f, 0x90, 0x92, 0xdc, 0xdd, 0xde, 0xdf, 0xc4, 0xc7, 0xd4, 0xd6, 0xd8, 0xa1];
  fc.assert(
    fc.property(side, fc.array(fc.tuple(fc.constantFrom(...starts), frame(64)), { minLength: 1, maxLength: 4 }), (s, parts) =>
      check(s, parts.map(([first, rest]) => Buffer.concat([Buffer.from([first]), rest]))) === null,
    ),
    { seed: SEED + 1, numRuns: 5_000 },
  );
  t.end();
});

t.test('decode over arbitrary msgpack values as headers: envelopes as documented, or a ProtocolError', (t) => {
  const types = [...FROM_WORKER, ...FROM_COORDINATOR, 'bogus', ''];
  const value = fc.oneof(
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double(),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }),
    fc.string({ maxLength: 70 }),
    fc.string({ minLength: 1020, maxLength: 1030 }),
    fc.uint8Array({ maxLength: 8 }),
    fc.date({ noInvalidDate: true }),
    fc.array(fc.integer(), { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 12 }), fc.oneof(fc.integer(), fc.string({ maxLength: 5 }), fc.constant(null)), { maxKeys: 4 }),
  );
  const header = fc.record(
    {
      v: fc.oneof(fc.constant(1), fc.constant(1.0), value),
      t: fc.oneof(fc.constantFrom(...types), value),
      rank: value, host: value, pid: value, instance: value, id: value, attempt: value, type: value, resource: value, timeoutMs: value,
      code: value, message: value, version: value,
      settings: fc.oneof(value, fc.record({ heartbeatMs: value, livenessMs: value, maxMessageBytes: value }, { requiredKeys: [] })),
      error: fc.oneof(value, fc.record({ name: value, message: value, code: value, stack: value }, { requiredKeys: [] })),
    },
    { requiredKeys: [] },
  );
  fc.assert(
    fc.property(side, fc.array(header, { minLength: 1, maxLength: 3 }), fc.array(frame(16), { maxLength: 3 }), (s, headers, extra) => {
      const frames: Frame[] = [];
      for (const h of headers) {
        frames.push(packr.pack(h));
        if (extra.length > 0) frames.push(extra.shift()!);
      }
      return check(s, frames) === null;
    }),
    { seed: SEED + 2, numRuns: 1_500 },
  );
  t.end();
});

// Valid envelopes, by the schema of PROTOCOL.md §3.
const short = fc.string({ maxLength: 40 });
const uint = fc.nat({ max: Number.MAX_SAFE_INTEGER });
const pos = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
// -0 is written as the integer 0 (PROTOCOL.md §8): not a round trip to test.
const key = fc.oneof(fc.constant(null), short, fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => (Object.is(d, -0) ? 0 : d)));
const bytes = fc.uint8Array({ maxLength: 64 });
const workerEnvelope: fc.Arbitrary<Envelope> = fc.oneof(
  fc.record({ t: fc.constant('register' as const), rank: fc.option(pos), host: short, pid: uint, instance: fc.option(short) }),
  fc.constantFrom<Envelope>({ t: 'ready' }, { t: 'heartbeat' }, { t: 'bye' }),
  fc.record({ t: fc.constant('result' as const), id: uint, attempt: pos, payload: bytes }),
  fc.record({
    t: fc.constant('error' as const),
    id: uint,
    attempt: pos,
    error: fc.record({ name: short, message: fc.string({ maxLength: 200 }), code: short, stack: fc.string({ maxLength: 200 }) }, { requiredKeys: ['name', 'message'] }),
  }),
);
const coordinatorEnvelope: fc.Arbitrary<Envelope> = fc.oneof(
  fc.record({ t: fc.constant('welcome' as const), rank: pos, settings: fc.record({ heartbeatMs: pos, livenessMs: pos, maxMessageBytes: pos }) }),
  fc.record({ t: fc.constant('reject' as const), code: short, message: fc.string({ maxLength: 200 }), version: uint }, { requiredKeys: ['t', 'code', 'message'] }) as fc.Arbitrary<Envelope>,
  fc.record({ t: fc.constant('work' as const), id: uint, attempt: pos, type: key, resource: key, timeoutMs: fc.option(pos), payload: bytes }),
  fc.record({ t: fc.constantFrom('ack' as const, 'cancel' as const), id: uint, attempt: pos }),
  fc.constantFrom<Envelope>({ t: 'heartbeat' }, { t: 'terminate' }),
);

/** The envelope as decoding gives it back (payload bytes as a plain array, for comparison). */
function normal(env: Envelope): unknown {
  const e = { ...env } as Record<string, unknown>;
  if (e.payload instanceof Uint8Array) e.payload = [...e.payload];
  if (e.t === 'register') e.instance ??= null;
  return structuredClone(e); // plain prototypes: fast-check may build records without one
}

t.test('valid envelopes round-trip, several to a message', (t) => {
  for (const [s, arb] of [['worker', workerEnvelope], ['coordinator', coordinatorEnvelope]] as const) {
    fc.assert(
      fc.property(fc.array(arb, { minLength: 1, maxLength: 4 }), (envs) => {
        const frames = envs.flatMap((e) => encode(e));
        const out = s === 'worker' ? decodeFromWorker(frames) : decodeFromCoordinator(frames);
        return isDeepStrictEqual(out.map(normal), envs.map(normal)) && check(s, frames) === null;
      }),
      { seed: SEED + 3, numRuns: 1_000 },
    );
  }
  t.end();
});

t.test('mutations of valid messages: envelopes as documented, or a ProtocolError', (t) => {
  const mutation = fc.record({ frame: fc.nat(), pos: fc.nat(), op: fc.nat({ max: 5 }), byte: fc.integer({ min: 0, max: 255 }), len: fc.integer({ min: 1, max: 8 }) });
  const mutate = (frames: Frame[], m: { frame: number; pos: number; op: number; byte: number; len: number }): Frame[] => {
    if (frames.length === 0) return frames;
    const i = m.frame % frames.length;
    const b = Buffer.from(frames[i]!);
    const p = b.length === 0 ? 0 : m.pos % b.length;
    const next = [
      () => (b.length ? ((b[p] = b[p]! ^ (1 << (m.byte % 8))), b) : b),
      () => (b.length ? ((b[p] = m.byte), b) : b),
      () => b.subarray(0, p),
      () => Buffer.concat([b.subarray(0, p), b.subarray(p + m.len)]),
      () => Buffer.concat([b.subarray(0, p), Buffer.alloc(m.len, m.byte), b.subarray(p)]),
      () => Buffer.concat([b, b.subarray(p, p + m.len)]),
    ][m.op]!();
    const out = [...frames];
    out[i] = next;
    return out;
  };
  for (const [s, arb] of [['worker', workerEnvelope], ['coordinator', coordinatorEnvelope]] as const) {
    fc.assert(
      fc.property(fc.array(arb, { minLength: 1, maxLength: 3 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.boolean(), (envs, ms, dropLast) => {
        let frames = ms.reduce(mutate, envs.flatMap((e) => encode(e)));
        if (dropLast) frames = frames.slice(0, -1);
        return check(s, frames) === null && check(s === 'worker' ? 'coordinator' : 'worker', frames) === null;
      }),
      { seed: SEED + 4, numRuns: 3_000 },
    );
  }
  t.end();
});

t.test('decodePayload over arbitrary bytes: a value, or ProtocolError EMSGPACK', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 128 }), (u) => {
      try {
        decodePayload(u);
        return true;
      } catch (err) {
        return err instanceof ProtocolError && err.code === 'EMSGPACK';
      }
    }),
    { seed: SEED + 5, numRuns: 5_000 },
  );
  t.end();
});

t.test('encodePayload: JSON values round-trip exactly; anything else encodes or is a PayloadError', (t) => {
  // A key named __proto__ is the one exception: msgpackr renames it on decoding (PROTOCOL.md §8).
  const noProtoKey = (v: unknown): boolean => JSON.stringify(v)?.includes('"__proto__"') !== true;
  fc.assert(
    fc.property(fc.jsonValue().filter(noProtoKey), (v) => JSON.stringify(decodePayload(encodePayload(v))) === JSON.stringify(v)),
    { seed: SEED + 6, numRuns: 2_000 },
  );
  fc.assert(
    fc.property(fc.anything({ withBigInt: true, withBoxedValues: true, withDate: true, withMap: true, withSet: true, withTypedArray: true, withSparseArray: true, withNullPrototype: true, withObjectString: true }), (v) => {
      try {
        decodePayload(encodePayload(v));
        return true;
      } catch (err) {
        return err instanceof PayloadError && err.code === 'EPAYLOAD';
      }
    }),
    { seed: SEED + 7, numRuns: 2_000 },
  );
  t.end();
});
