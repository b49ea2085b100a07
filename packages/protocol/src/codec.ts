import { Packr } from 'msgpackr';
import {
  PROTOCOL_VERSION,
  type CoordinatorMessage,
  type Envelope,
  type Key,
  type Result,
  type WireError,
  type Work,
  type WorkerMessage,
  type WorkerSettings,
} from './envelopes.ts';
import { encodeHotHeader, encodeResultsHeader, encodeTasksHeader, readHotHeader } from './hot-headers.ts';
import { PayloadError, ProtocolError } from './errors.ts';

// Plain msgpack maps (no msgpackr records) so that any msgpack library can read our frames.
// msgpackr would write a function as `undefined` without a word; reaching one here means the payload
// checks below missed it (a toJSON() that returns one, say): refuse rather than lose data silently.
const packr = new Packr({
  useRecords: false,
  mapsAsObjects: true,
  writeFunction: () => {
    throw new PayloadError('payload contains a function: msgpack carries data, not code');
  },
});

/** A frame as zeromq.js hands it to us or takes it from us. */
export type Frame = Buffer;

const WORKER_TYPES = new Set(['register', 'ready', 'result', 'results', 'error', 'heartbeat', 'bye']);
const COORDINATOR_TYPES = new Set(['welcome', 'reject', 'work', 'tasks', 'ack', 'receipt', 'cancel', 'heartbeat', 'terminate']);
const WITH_PAYLOAD = new Set(['work', 'result', 'tasks', 'results']);

/**
 * Payloads up to this size ride in a batch, copied once into its payload frame; a larger one
 * travels as its own frame, never copied. A ZeroMQ frame costs about a microsecond to send and
 * receive, the price of copying some 8 KiB.
 */
export const BATCH_INLINE_BYTES = 8 * 1024;
/** What one `tasks`/`results` envelope holds at most, as written by the reference peers. */
export const BATCH_MAX_TASKS = 256;
export const BATCH_MAX_BYTES = 256 * 1024;
/** The most entries a receiver accepts in one `tasks`/`results` envelope. */
export const MAX_BATCH_ENTRIES = 1024;

/** The longest string we accept in a header field (host names, error texts are cut by the sender). */
const MAX_SHORT_STRING = 1024;
const MAX_LONG_STRING = 64 * 1024;

/**
 * The largest header frame a receiver parses. The biggest legitimate header, an `error` with every
 * string at its limit, is under 400 KiB even in 3-byte UTF-8; a peer that sends more is refused
 * (ETOOBIG) before msgpack is parsed, so a small message cannot make us build a huge object graph.
 */
export const MAX_HEADER_BYTES = 1024 * 1024;

/**
 * The most frames one message may have. The reference peers send at most three (result, payload,
 * ready); without a bound, one message of many tiny envelopes would make the receiver do (and
 * answer) a great deal of work.
 */
export const MAX_MESSAGE_FRAMES = 64;

// ---------------------------------------------------------------------------------------------
// Encoding

/**
 * Encodes a payload once, when work or a result is created, so that an unencodable value is
 * reported to whoever produced it and the bytes are forwarded untouched afterwards. A value that
 * would not arrive as it was given (a function, a Symbol, a Promise, a cycle, a BigInt beyond 64
 * bits, a Map with keys msgpack maps cannot carry; PROTOCOL.md §8 lists them) is a PayloadError
 * here, naming where in the value it sits. Numbers, strings and byte buffers skip every check.
 */
export function encodePayload(value: unknown): Frame {
  const type = typeof value;
  if (type === 'number') {
    const int = packInt(value as number);
    if (int !== null) return int;
  }
  // true, false and null are one byte each: a handler's flag needs no msgpackr (none at all, in a
  // worker whose tasks are integers: its code never runs there, cold or warm).
  if (type === 'boolean' || value === null) {
    const b = Buffer.allocUnsafe(1);
    b[0] = value === null ? 0xc0 : value ? 0xc3 : 0xc2;
    return b;
  }
  if (type === 'object' ? value !== null : type === 'function' || type === 'symbol' || type === 'bigint') checkPayload(value);
  try {
    return packr.pack(value);
  } catch (err) {
    if (err instanceof PayloadError) throw err;
    throw new PayloadError(`payload cannot be encoded as msgpack: ${(err as Error).message}`);
  }
}

/**
 * A 32-bit integer (task ids, counts: the commonest small payload) in msgpack, byte for byte as
 * msgpackr writes it (tested): msgpackr's set-up per call costs more than these few bytes, and a
 * queue of small tasks encodes a payload per task each way. Null for any other number.
 */
function packInt(v: number): Frame | null {
  let b: Buffer;
  if (v >>> 0 === v) {
    if (v < 0x80) {
      b = Buffer.allocUnsafe(1);
      b[0] = v;
    } else if (v < 0x100) {
      b = Buffer.allocUnsafe(2);
      b[0] = 0xcc;
      b[1] = v;
    } else if (v < 0x10000) {
      b = Buffer.allocUnsafe(3);
      b[0] = 0xcd;
      b.writeUInt16BE(v, 1);
    } else {
      b = Buffer.allocUnsafe(5);
      b[0] = 0xce;
      b.writeUInt32BE(v, 1);
    }
    return b;
  }
  if (v >> 0 === v) {
    if (v >= -0x20) {
      b = Buffer.allocUnsafe(1);
      b[0] = 0x100 + v;
    } else if (v >= -0x80) {
      b = Buffer.allocUnsafe(2);
      b[0] = 0xd0;
      b.writeInt8(v, 1);
    } else if (v >= -0x8000) {
      b = Buffer.allocUnsafe(3);
      b[0] = 0xd1;
      b.writeInt16BE(v, 1);
    } else {
      b = Buffer.allocUnsafe(5);
      b[0] = 0xd2;
      b.writeInt32BE(v, 1);
    }
    return b;
  }
  return null;
}

/** The integer in a frame of one of packInt()'s forms (from any writer); undefined for any other frame. */
function unpackInt(f: Uint8Array): number | undefined {
  const b = f[0]!;
  switch (f.length) {
    case 1:
      return b < 0x80 ? b : b >= 0xe0 ? b - 0x100 : undefined;
    case 2:
      return b === 0xcc ? f[1]! : b === 0xd0 ? (f[1]! << 24) >> 24 : undefined;
    case 3:
      return b === 0xcd ? (f[1]! << 8) | f[2]! : b === 0xd1 ? (((f[1]! << 8) | f[2]!) << 16) >> 16 : undefined;
    case 5: {
      const u = (f[1]! << 24) | (f[2]! << 16) | (f[3]! << 8) | f[4]!;
      return b === 0xce ? u >>> 0 : b === 0xd2 ? u : undefined;
    }
    default:
      return undefined;
  }
}

/** Nesting deeper than this is refused (msgpack readers recurse; so do we). */
const MAX_PAYLOAD_DEPTH = 512;
const MIN_INT64 = -(2n ** 63n);
const MAX_UINT64 = 2n ** 64n - 1n;

/** Walks a payload the way msgpackr will write it, refusing what would not survive the trip. */
function checkPayload(root: unknown): void {
  const path: Array<string | number> = [];
  const open = new Set<object>();
  const fail = (what: string): never => {
    throw new PayloadError(`payload cannot be sent as msgpack: ${pathText(path)} ${what}`);
  };
  const visit = (v: unknown): void => {
    switch (typeof v) {
      case 'object':
        if (v !== null) visitObject(v);
        return;
      case 'function':
        return fail('is a function: msgpack carries data, not code');
      case 'symbol':
        return fail('is a Symbol');
      case 'bigint':
        if (v < MIN_INT64 || v > MAX_UINT64) fail('is a BigInt outside the 64-bit range (-2^63 to 2^64-1)');
        return;
      default:
        return; // number, string, boolean, undefined
    }
  };
  const child = (key: string | number, v: unknown): void => {
    const t = typeof v;
    if (t === 'object' ? v === null : t !== 'function' && t !== 'symbol' && t !== 'bigint') return;
    path.push(key);
    visit(v);
    path.pop();
  };
  const visitObject = (o: object): void => {
    if (ArrayBuffer.isView(o) || o instanceof ArrayBuffer || o instanceof Date) return;
    if (open.has(o)) fail('refers to an object that contains it (a cycle)');
    if (open.size >= MAX_PAYLOAD_DEPTH) fail(`is nested more than ${MAX_PAYLOAD_DEPTH} levels deep`);
    open.add(o);
    const proto: unknown = Object.getPrototypeOf(o);
    if (Array.isArray(o)) {
      for (let i = 0; i < o.length; i++) child(i, o[i]);
    } else if (proto === Object.prototype || proto === null) {
      for (const key of Object.keys(o)) child(key, (o as Record<string, unknown>)[key]);
    } else if (o instanceof Map) {
      for (const [key, v] of o) {
        if (typeof key !== 'string' && typeof key !== 'number') fail(`is a Map with a key of type ${typeof key}: msgpack maps here have string or number keys`);
        child(key as string | number, v);
      }
    } else if (o instanceof Set) {
      let i = 0;
      for (const v of o) child(i++, v);
    } else if (typeof (o as { toJSON?: unknown }).toJSON === 'function') {
      // msgpackr sends what toJSON() returns (a decimal type's string, say).
    } else if (o instanceof Promise) {
      fail('is a Promise: await it first');
    } else if (o instanceof WeakMap || o instanceof WeakSet || o instanceof WeakRef) {
      fail(`is a ${o.constructor.name}, whose contents cannot be read`);
    } else if (o instanceof Error) {
      fail('is an Error, which msgpack turns into an array: throw it from doWork() to fail the task, or send {name, message}');
    } else if (o instanceof RegExp) {
      fail('is a RegExp, which msgpack turns into an array: send its source');
    } else if (o instanceof Number || o instanceof String || o instanceof Boolean) {
      fail('is a boxed primitive (new Number/String/Boolean): send the primitive');
    } else {
      // A class instance travels as a plain object of its own enumerable properties.
      for (const key of Object.keys(o)) child(key, (o as Record<string, unknown>)[key]);
    }
    open.delete(o);
  };
  visit(root);
}

function pathText(path: ReadonlyArray<string | number>): string {
  const step = (k: string | number) => (typeof k === 'number' ? `[${k}]` : /^[A-Za-z_$][\w$]*$/.test(k) ? `.${k}` : `[${JSON.stringify(k.length > 40 ? `${k.slice(0, 40)}…` : k)}]`);
  const shown = path.length > 12 ? [...path.slice(0, 6).map(step), '…', ...path.slice(-4).map(step)] : path.map(step);
  return `the value${shown.join('')}`;
}

/**
 * The value itself as a payload frame, when it travels raw (`work.raw`, `result.raw`): binary data
 * over BATCH_INLINE_BYTES, sent as it is, without the copy a msgpack encoding would make. Null for
 * anything else (encodePayload() it). The caller must not change the bytes until they are sent.
 */
export function rawPayload(value: unknown): Frame | null {
  return value instanceof Uint8Array && value.byteLength > BATCH_INLINE_BYTES ? asFrame(value) : null;
}

/** The value a payload frame carries: its bytes as a Buffer when it travelled raw, else decodePayload(). */
export function decodeValue(frame: Uint8Array, raw: boolean | undefined): unknown {
  return raw ? asFrame(frame) : decodePayload(frame);
}

/** Decodes a payload frame; a frame that is not msgpack is the sender's fault: ProtocolError. */
export function decodePayload(frame: Uint8Array): unknown {
  if (frame.length === 1) {
    const b = frame[0];
    if (b === 0xc3) return true;
    if (b === 0xc2) return false;
    if (b === 0xc0) return null;
  }
  const int = unpackInt(frame);
  if (int !== undefined) return int;
  try {
    return packr.unpack(frame);
  } catch (err) {
    throw new ProtocolError('EMSGPACK', `payload is not valid msgpack: ${(err as Error).message}`);
  }
}

/** The frames of one envelope: its header, then its payload for `work`, `result`, `tasks` and `results`. */
export function encode(env: Envelope): Frame[] {
  switch (env.t) {
    case 'work': {
      const hot = encodeHotHeader(env);
      if (hot) return [hot, asFrame(env.payload)];
      const header: Record<string, unknown> = { v: PROTOCOL_VERSION, t: 'work', id: env.id, attempt: env.attempt, type: env.type, resource: env.resource, timeoutMs: env.timeoutMs };
      if (env.raw) header.raw = true;
      if (env.resent) header.resent = true;
      return [packr.pack(header), asFrame(env.payload)];
    }
    case 'result': {
      const header: Record<string, unknown> = { v: PROTOCOL_VERSION, t: 'result', id: env.id, attempt: env.attempt };
      if (env.us !== undefined) header.us = env.us;
      if (env.raw) header.raw = true;
      return [packr.pack(header), asFrame(env.payload)];
    }
    case 'tasks': {
      const header = encodeTasksHeader(env.tasks) ?? packr.pack({ v: PROTOCOL_VERSION, t: 'tasks', tasks: env.tasks.map((w) => [w.id, w.attempt, w.type, w.resource, w.timeoutMs, w.payload.length]) });
      return [header, concat(env.tasks.map((w) => w.payload))];
    }
    case 'results': {
      const header = encodeResultsHeader(env.seq, env.us, env.results) ?? packr.pack({ v: PROTOCOL_VERSION, t: 'results', seq: env.seq, us: env.us, results: env.results.map((r) => [r.id, r.attempt, r.payload.length]) });
      return [header, concat(env.results.map((r) => r.payload))];
    }
    default:
      return [encodeHotHeader(env) ?? packr.pack({ v: PROTOCOL_VERSION, ...env })];
  }
}

/**
 * Several envelopes as ZeroMQ messages: as few as MAX_MESSAGE_FRAMES (a receiver refuses more
 * frames) and BATCH_MAX_BYTES (beyond one envelope) allow. With `batch` (a peer whose window is above 1), each run of consecutive `work`
 * envelopes with small payloads leaves as `tasks` envelopes of up to BATCH_MAX_TASKS tasks and
 * BATCH_MAX_BYTES of payload: one header and one payload frame for many tasks instead of two each.
 */
export function encodeMessages(envs: readonly Envelope[], batch: boolean): Frame[][] {
  const out = new MessageBuilder();
  let run: Work[] = [];
  let runBytes = 0;
  for (const env of envs) {
    if (batch && env.t === 'work' && !env.raw && !env.resent && env.payload.length <= BATCH_INLINE_BYTES) {
      if (run.length === BATCH_MAX_TASKS || runBytes + env.payload.length > BATCH_MAX_BYTES) {
        out.addRun(run);
        run = [];
        runBytes = 0;
      }
      run.push(env);
      runBytes += env.payload.length;
      continue;
    }
    if (run.length > 0) {
      out.addRun(run);
      run = [];
      runBytes = 0;
    }
    out.add(encode(env));
  }
  out.addRun(run);
  return out.done();
}

/** encodeMessages()'s messages as they fill (a class, not closures: it runs for every message sent). */
class MessageBuilder {
  readonly #messages: Frame[][] = [];
  #message: Frame[] = [];
  #bytes = 0;

  /** A run of `work` envelopes: one as it is, more as a `tasks` batch. */
  addRun(run: Work[]): void {
    if (run.length === 1) this.add(encode(run[0]!));
    else if (run.length > 1) this.add(encode({ t: 'tasks', tasks: run }));
  }

  add(frames: Frame[]): void {
    let size = 0;
    for (const f of frames) size += f.length;
    // A receiver sees nothing of a message before all of it has arrived: large payloads go in
    // messages of their own, so that a worker starts on the first while the next is on its way.
    if (this.#message.length > 0 && (this.#message.length + frames.length > MAX_MESSAGE_FRAMES || this.#bytes + size > BATCH_MAX_BYTES)) {
      this.#messages.push(this.#message);
      this.#message = [];
      this.#bytes = 0;
    }
    for (const f of frames) this.#message.push(f);
    this.#bytes += size;
  }

  done(): Frame[][] {
    if (this.#message.length > 0) this.#messages.push(this.#message);
    return this.#messages;
  }
}

function concat(parts: Uint8Array[]): Frame {
  return parts.length === 1 ? asFrame(parts[0]!) : Buffer.concat(parts);
}

function asFrame(bytes: Uint8Array): Frame {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Turns any thrown value into the plain error record that crosses the wire. Every field is cut to
 * the length the receiving decoder accepts, so that the report of a failure is never refused itself.
 */
export function toWireError(err: unknown): WireError {
  if (err instanceof Error) {
    const out: WireError = { name: text(err.name, MAX_SHORT_STRING), message: text(err.message, MAX_LONG_STRING) };
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' || typeof code === 'number') out.code = text(code, MAX_SHORT_STRING);
    if (typeof err.stack === 'string') out.stack = err.stack.slice(0, MAX_LONG_STRING);
    return out;
  }
  return { name: 'Error', message: text(err, MAX_LONG_STRING) };
}

/** String(v) cut to `max`, for any v: String() throws for some objects (Object.create(null)). */
function text(v: unknown, max: number): string {
  let s: string;
  try {
    s = String(v);
  } catch {
    s = Object.prototype.toString.call(v);
  }
  return s.slice(0, max);
}

// ---------------------------------------------------------------------------------------------
// Decoding: everything a peer sends passes through here, and nothing but ProtocolError leaves.

export interface DecodeOptions {
  /** Frames longer than this are refused with ETOOBIG. Default: no limit beyond the socket's. */
  maxFrameBytes?: number;
}

/** Decodes a message a worker sent (everything after the ROUTER's routing-id frame). */
export function decodeFromWorker(frames: readonly Frame[], options?: DecodeOptions): WorkerMessage[] {
  return decodeMessage(frames, WORKER_TYPES, options) as WorkerMessage[];
}

/** Decodes a message a coordinator sent. */
export function decodeFromCoordinator(frames: readonly Frame[], options?: DecodeOptions): CoordinatorMessage[] {
  return decodeMessage(frames, COORDINATOR_TYPES, options) as CoordinatorMessage[];
}

function decodeMessage(frames: readonly Frame[], allowed: ReadonlySet<string>, options?: DecodeOptions): Envelope[] {
  if (frames.length === 0) throw new ProtocolError('EFRAMES', 'empty message');
  if (frames.length > MAX_MESSAGE_FRAMES) throw new ProtocolError('EFRAMES', `message has ${frames.length} frames, more than ${MAX_MESSAGE_FRAMES}`);
  const max = options?.maxFrameBytes ?? Infinity;
  const maxHeader = Math.min(max, MAX_HEADER_BYTES);
  const out: Envelope[] = [];
  /** A batch's payload lengths, as its header gives them. */
  const lengths: number[] = [];
  for (let i = 0; i < frames.length; i++) {
    const header = frames[i]!;
    if (header.length > maxHeader) throw new ProtocolError('ETOOBIG', `frame ${i} has ${header.length} bytes, more than ${maxHeader}${maxHeader < max ? ' (a header)' : ''}`);
    // Checked first: setting an array's length is a runtime call even when it changes nothing.
    if (lengths.length !== 0) lengths.length = 0;
    const env = decodeHeader(header, allowed, lengths);
    if (WITH_PAYLOAD.has(env.t)) {
      const payload = frames[++i];
      if (payload === undefined) throw new ProtocolError('EFRAMES', `'${env.t}' must be followed by a payload frame`);
      if (payload.length > max) throw new ProtocolError('ETOOBIG', `frame ${i} has ${payload.length} bytes, more than ${max}`);
      if (env.t === 'tasks') split(env.tasks, lengths, payload);
      else if (env.t === 'results') split(env.results, lengths, payload);
      else (env as { payload: Uint8Array }).payload = payload;
    }
    out.push(env);
  }
  return out;
}

/** Hands each entry of a batch its slice of the payload frame (a view, not a copy). */
function split(entries: Array<{ payload: Uint8Array }>, lengths: readonly number[], frame: Uint8Array): void {
  let total = 0;
  for (const n of lengths) total += n;
  if (total !== frame.length) throw new ProtocolError('EFRAMES', `the batch's payload lengths add up to ${total} bytes, but its payload frame has ${frame.length}`);
  let offset = 0;
  for (let i = 0; i < entries.length; i++) entries[i]!.payload = frame.subarray(offset, (offset += lengths[i]!));
}

/**
 * Reads the entries of a batch header: an array of 1..MAX_BATCH_ENTRIES arrays of `width` fields,
 * the last of which, the entry's payload length, goes to `lengths`.
 */
function batchEntries(m: Record<string, unknown>, name: string, width: number, lengths: number[]): unknown[][] {
  const list = m[name];
  if (!Array.isArray(list) || list.length === 0 || list.length > MAX_BATCH_ENTRIES) {
    throw new ProtocolError('EFIELD', `field '${name}' must be an array of 1 to ${MAX_BATCH_ENTRIES} entries, not ${Array.isArray(list) ? `${list.length} entries` : describeValue(list)}`);
  }
  for (let i = 0; i < list.length; i++) {
    const e: unknown = list[i];
    if (!Array.isArray(e) || e.length !== width) throw new ProtocolError('EFIELD', `${name}[${i}] must be an array of ${width} fields`);
    lengths.push(at(e, width - 1, 'bytes', isUint, `${name}[${i}]`));
  }
  return list as unknown[][];
}

/** A field of a batch entry, validated like a header field. */
function at<T>(e: unknown[], i: number, name: string, check: Check<T>, where: string): T {
  const v = e[i];
  if (!check(v)) throw new ProtocolError('EFIELD', `${where} field '${name}' is ${v === undefined ? 'missing' : `invalid (${describeValue(v)})`}`);
  return v;
}

function decodeHeader(frame: Frame, allowed: ReadonlySet<string>, lengths: number[]): Envelope {
  return readHotHeader(frame, allowed, lengths, MAX_BATCH_ENTRIES) ?? decodeAnyHeader(frame, allowed, lengths);
}

/**
 * Any header, through msgpackr: every envelope type, every msgpack form, and every error. Exported
 * for the tests that hold hot-headers.ts's fast path to it; the decoders above are the API.
 */
export function decodeAnyHeader(frame: Frame, allowed: ReadonlySet<string>, lengths: number[]): Envelope {
  let raw: unknown;
  try {
    raw = packr.unpack(frame);
  } catch (err) {
    throw new ProtocolError('EMSGPACK', `header is not valid msgpack: ${(err as Error).message}`);
  }
  if (!isMap(raw)) {
    throw new ProtocolError('ENOTMAP', 'header is not a msgpack map');
  }
  const m = raw as Record<string, unknown>;
  if (m.v !== PROTOCOL_VERSION) {
    throw new ProtocolError('EVERSION', `protocol version ${describeValue(m.v)} is not ${PROTOCOL_VERSION}`, { peerVersion: m.v });
  }
  const t = m.t;
  if (typeof t !== 'string' || !allowed.has(t)) {
    throw new ProtocolError('ETYPE', `message type ${describeValue(t)} is not one this side accepts`);
  }
  switch (t) {
    case 'register': {
      const r: Envelope = {
        t,
        rank: nullable(m, 'rank', isRank),
        host: field(m, 'host', isShortString),
        pid: field(m, 'pid', isUint),
        instance: nullable(m, 'instance', isShortString),
      };
      const window = nullable(m, 'window', isWindow);
      if (window !== null) r.window = window;
      if (flag(m, 'raw')) r.raw = true;
      return r;
    }
    case 'welcome': {
      const s = field(m, 'settings', isMap);
      const settings: WorkerSettings = {
        heartbeatMs: field(s, 'heartbeatMs', isPositiveInt, 'settings.'),
        livenessMs: field(s, 'livenessMs', isPositiveInt, 'settings.'),
        maxMessageBytes: field(s, 'maxMessageBytes', isPositiveInt, 'settings.'),
      };
      if (s.window !== undefined && s.window !== null) settings.window = field(s, 'window', isWindow, 'settings.');
      if (flag(s, 'raw', 'settings.')) settings.raw = true;
      return { t, rank: field(m, 'rank', isRank), settings };
    }
    case 'reject': {
      const env = { t, code: field(m, 'code', isShortString), message: field(m, 'message', isLongString) } as Envelope & { t: 'reject' };
      if (m.version !== undefined) env.version = field(m, 'version', isUint);
      return env;
    }
    case 'work': {
      const w: Work = {
        t,
        id: field(m, 'id', isUint),
        attempt: field(m, 'attempt', isPositiveInt),
        type: nullable(m, 'type', isKey),
        resource: nullable(m, 'resource', isKey),
        timeoutMs: nullable(m, 'timeoutMs', isPositiveInt),
        payload: EMPTY,
      };
      if (flag(m, 'raw')) w.raw = true;
      if (flag(m, 'resent')) w.resent = true;
      return w;
    }
    case 'tasks':
      return {
        t,
        tasks: batchEntries(m, 'tasks', 6, lengths).map((e, i): Work => {
          const where = `tasks[${i}]`;
          return {
            t: 'work',
            id: at(e, 0, 'id', isUint, where),
            attempt: at(e, 1, 'attempt', isPositiveInt, where),
            type: e[2] === null ? null : at(e, 2, 'type', isKey, where),
            resource: e[3] === null ? null : at(e, 3, 'resource', isKey, where),
            timeoutMs: e[4] === null ? null : at(e, 4, 'timeoutMs', isPositiveInt, where),
            payload: EMPTY,
          };
        }),
      };
    case 'ack':
    case 'cancel':
      return { t, id: field(m, 'id', isUint), attempt: field(m, 'attempt', isPositiveInt) };
    case 'receipt':
      return { t, seq: field(m, 'seq', isUint) };
    case 'result': {
      const r: Result = { t, id: field(m, 'id', isUint), attempt: field(m, 'attempt', isPositiveInt), payload: EMPTY };
      if (m.us !== undefined && m.us !== null) r.us = field(m, 'us', isUint);
      if (flag(m, 'raw')) r.raw = true;
      return r;
    }
    case 'results':
      return {
        t,
        seq: field(m, 'seq', isUint),
        us: field(m, 'us', isUint),
        results: batchEntries(m, 'results', 3, lengths).map(
          (e, i): Result => ({ t: 'result', id: at(e, 0, 'id', isUint, `results[${i}]`), attempt: at(e, 1, 'attempt', isPositiveInt, `results[${i}]`), payload: EMPTY }),
        ),
      };
    case 'error': {
      const e = field(m, 'error', isMap);
      const error: WireError = { name: field(e, 'name', isShortString, 'error.'), message: field(e, 'message', isLongString, 'error.') };
      if (e.code !== undefined && e.code !== null) error.code = field(e, 'code', isShortString, 'error.');
      if (e.stack !== undefined && e.stack !== null) error.stack = field(e, 'stack', isLongString, 'error.');
      const failed: Envelope = { t, id: field(m, 'id', isUint), attempt: field(m, 'attempt', isPositiveInt), error };
      if (m.us !== undefined && m.us !== null) failed.us = field(m, 'us', isUint);
      return failed;
    }
    default:
      return { t } as Envelope; // ready, heartbeat, terminate, bye: no fields
  }
}

const EMPTY = new Uint8Array(0);

type Check<T> = (v: unknown) => v is T;

function field<T>(m: Record<string, unknown>, name: string, check: Check<T>, prefix = ''): T {
  const v = m[name];
  if (!check(v)) throw new ProtocolError('EFIELD', `field '${prefix}${name}' is ${v === undefined ? 'missing' : `invalid (${describeValue(v)})`}`);
  return v;
}

/** An optional boolean: absent or nil is false. */
function flag(m: Record<string, unknown>, name: string, prefix = ''): boolean {
  const v = m[name];
  return v === undefined || v === null ? false : field(m, name, isBool, prefix);
}

function nullable<T>(m: Record<string, unknown>, name: string, check: Check<T>): T | null {
  const v = m[name];
  return v === null || v === undefined ? null : field(m, name, check);
}

const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
const isUint = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isPositiveInt = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) > 0;
const isRank = isPositiveInt;
/** A window: 1 (one task at a time) up to 65535 tasks in flight. */
const isWindow = (v: unknown): v is number => isPositiveInt(v) && (v as number) <= 65_535;
const isShortString = (v: unknown): v is string => typeof v === 'string' && v.length <= MAX_SHORT_STRING;
const isLongString = (v: unknown): v is string => typeof v === 'string' && v.length <= MAX_LONG_STRING;
const isKey = (v: unknown): v is Key => isShortString(v) || (typeof v === 'number' && Number.isFinite(v));
/**
 * A msgpack map decodes to a plain object. msgpackr turns some other values into objects too (an
 * array, a bin into a Buffer, a timestamp into a Date, the never-used byte 0xc1 into a C1Type): not maps.
 */
const isMap = (v: unknown): v is Record<string, unknown> => {
  if (v === null || typeof v !== 'object') return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
};

/** A short, safe description of any decoded value for messages and logs (never calls its methods). */
export function describeValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (v === null || v === undefined || typeof v === 'number' || typeof v === 'boolean') return String(v);
  return Array.isArray(v) ? 'an array' : typeof v;
}
