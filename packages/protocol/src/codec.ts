import { Packr } from 'msgpackr';
import {
  PROTOCOL_VERSION,
  type CoordinatorMessage,
  type Envelope,
  type Key,
  type WireError,
  type WorkerMessage,
} from './envelopes.ts';
import { PayloadError, ProtocolError } from './errors.ts';

// Plain msgpack maps (no msgpackr records) so that any msgpack library can read our frames.
const packr = new Packr({ useRecords: false, mapsAsObjects: true });

/** A frame as zeromq.js hands it to us or takes it from us. */
export type Frame = Buffer;

const WORKER_TYPES = new Set(['register', 'ready', 'result', 'error', 'heartbeat', 'bye']);
const COORDINATOR_TYPES = new Set(['welcome', 'reject', 'work', 'ack', 'cancel', 'heartbeat', 'terminate']);
const WITH_PAYLOAD = new Set(['work', 'result']);

/** The longest string we accept in a header field (host names, error texts are cut by the sender). */
const MAX_SHORT_STRING = 1024;
const MAX_LONG_STRING = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// Encoding

/**
 * Encodes a payload once, when work or a result is created, so that an unencodable value is
 * reported to whoever produced it and the bytes are forwarded untouched afterwards.
 */
export function encodePayload(value: unknown): Frame {
  try {
    return packr.pack(value);
  } catch (err) {
    throw new PayloadError(`payload cannot be encoded as msgpack: ${(err as Error).message}`);
  }
}

/** Decodes a payload frame; a frame that is not msgpack is the sender's fault: ProtocolError. */
export function decodePayload(frame: Uint8Array): unknown {
  try {
    return packr.unpack(frame);
  } catch (err) {
    throw new ProtocolError('EMSGPACK', `payload is not valid msgpack: ${(err as Error).message}`);
  }
}

/** The frames of one envelope: its header, then its payload for `work` and `result`. */
export function encode(env: Envelope): Frame[] {
  switch (env.t) {
    case 'work':
      return [
        packr.pack({ v: PROTOCOL_VERSION, t: 'work', id: env.id, attempt: env.attempt, type: env.type, resource: env.resource, timeoutMs: env.timeoutMs }),
        asFrame(env.payload),
      ];
    case 'result':
      return [packr.pack({ v: PROTOCOL_VERSION, t: 'result', id: env.id, attempt: env.attempt }), asFrame(env.payload)];
    default:
      return [packr.pack({ v: PROTOCOL_VERSION, ...env })];
  }
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
  const max = options?.maxFrameBytes ?? Infinity;
  const out: Envelope[] = [];
  for (let i = 0; i < frames.length; i++) {
    const header = frames[i]!;
    if (header.length > max) throw new ProtocolError('ETOOBIG', `frame ${i} has ${header.length} bytes, more than ${max}`);
    const env = decodeHeader(header, allowed);
    if (WITH_PAYLOAD.has(env.t)) {
      const payload = frames[++i];
      if (payload === undefined) throw new ProtocolError('EFRAMES', `'${env.t}' must be followed by a payload frame`);
      if (payload.length > max) throw new ProtocolError('ETOOBIG', `frame ${i} has ${payload.length} bytes, more than ${max}`);
      (env as { payload: Uint8Array }).payload = payload;
    }
    out.push(env);
  }
  return out;
}

function decodeHeader(frame: Frame, allowed: ReadonlySet<string>): Envelope {
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
    throw new ProtocolError('EVERSION', `protocol version ${describe(m.v)} is not ${PROTOCOL_VERSION}`, { peerVersion: m.v });
  }
  const t = m.t;
  if (typeof t !== 'string' || !allowed.has(t)) {
    throw new ProtocolError('ETYPE', `message type ${describe(t)} is not one this side accepts`);
  }
  switch (t) {
    case 'register':
      return {
        t,
        rank: nullable(m, 'rank', isRank),
        host: field(m, 'host', isShortString),
        pid: field(m, 'pid', isUint),
        instance: nullable(m, 'instance', isShortString),
      };
    case 'welcome': {
      const s = field(m, 'settings', isMap);
      return {
        t,
        rank: field(m, 'rank', isRank),
        settings: {
          heartbeatMs: field(s, 'heartbeatMs', isPositiveInt, 'settings.'),
          livenessMs: field(s, 'livenessMs', isPositiveInt, 'settings.'),
          maxMessageBytes: field(s, 'maxMessageBytes', isPositiveInt, 'settings.'),
        },
      };
    }
    case 'reject': {
      const env = { t, code: field(m, 'code', isShortString), message: field(m, 'message', isLongString) } as Envelope & { t: 'reject' };
      if (m.version !== undefined) env.version = field(m, 'version', isUint);
      return env;
    }
    case 'work':
      return {
        t,
        id: field(m, 'id', isUint),
        attempt: field(m, 'attempt', isPositiveInt),
        type: nullable(m, 'type', isKey),
        resource: nullable(m, 'resource', isKey),
        timeoutMs: nullable(m, 'timeoutMs', isPositiveInt),
        payload: EMPTY,
      };
    case 'ack':
    case 'cancel':
      return { t, id: field(m, 'id', isUint), attempt: field(m, 'attempt', isPositiveInt) };
    case 'result':
      return { t, id: field(m, 'id', isUint), attempt: field(m, 'attempt', isPositiveInt), payload: EMPTY };
    case 'error': {
      const e = field(m, 'error', isMap);
      const error: WireError = { name: field(e, 'name', isShortString, 'error.'), message: field(e, 'message', isLongString, 'error.') };
      if (e.code !== undefined && e.code !== null) error.code = field(e, 'code', isShortString, 'error.');
      if (e.stack !== undefined && e.stack !== null) error.stack = field(e, 'stack', isLongString, 'error.');
      return { t, id: field(m, 'id', isUint), attempt: field(m, 'attempt', isPositiveInt), error };
    }
    default:
      return { t } as Envelope; // ready, heartbeat, terminate, bye: no fields
  }
}

const EMPTY = new Uint8Array(0);

type Check<T> = (v: unknown) => v is T;

function field<T>(m: Record<string, unknown>, name: string, check: Check<T>, prefix = ''): T {
  const v = m[name];
  if (!check(v)) throw new ProtocolError('EFIELD', `field '${prefix}${name}' is ${v === undefined ? 'missing' : `invalid (${describe(v)})`}`);
  return v;
}

function nullable<T>(m: Record<string, unknown>, name: string, check: Check<T>): T | null {
  const v = m[name];
  return v === null || v === undefined ? null : field(m, name, check);
}

const isUint = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isPositiveInt = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) > 0;
const isRank = isPositiveInt;
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

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (v === null || v === undefined || typeof v === 'number' || typeof v === 'boolean') return String(v);
  return Array.isArray(v) ? 'an array' : typeof v;
}
