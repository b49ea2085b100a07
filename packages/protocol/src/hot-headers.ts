/**
 * The headers every task crosses the wire in, written and read by hand: `tasks` and `results`
 * (batches), and a lone `work` with the `ack` or `receipt` that usually rides along with it. Byte
 * for byte what msgpackr writes (tested), without its generic machinery.
 *
 * A worker process or a coordinator that has just started runs its code in V8's interpreter, and a
 * job of a few hundred or thousand tasks ends before that code is compiled: msgpackr's general
 * reader and writer, and the checks and arrays the general decoder builds around them, cost
 * 100–200 µs a message there (measured in a fresh worker process: about half of what a worker
 * spends outside its tasks in example 3). These few straight-line loops cost a fraction of that.
 *
 * Both sides are fast paths only. The writers return null for anything outside the commonest forms
 * (integers beyond 32 bits, non-ASCII or long strings, non-integer keys), and the reader returns null
 * for any header that is not exactly one of these forms with valid fields: the caller then takes the
 * general path, which accepts every other correct header and reports every error as before.
 */
import { PROTOCOL_VERSION, type Envelope, type Result, type Work } from './envelopes.ts';
import { WorkRecord } from './records.ts';

// The constant parts of the headers: the map header in msgpackr's form (map16, as it writes every
// object), `v`, `t` and the type's name (and for `tasks`, the name of its array), then the keys.
const TYPE_KEYS = [0xa1, 0x76, PROTOCOL_VERSION, 0xa1, 0x74];
const RESULTS_NAME = [0xa7, ...Buffer.from('results')];
const TASKS_NAME = [0xa5, ...Buffer.from('tasks')];
const SEQ_KEY = [0xa3, ...Buffer.from('seq')];
const US_KEY = [0xa2, ...Buffer.from('us')];
const WORK_NAME = [0xa4, ...Buffer.from('work')];
const ACK_NAME = [0xa3, ...Buffer.from('ack')];
const RECEIPT_NAME = [0xa7, ...Buffer.from('receipt')];
const ID_KEY = [0xa2, ...Buffer.from('id')];
const ATTEMPT_KEY = [0xa7, ...Buffer.from('attempt')];
const TYPE_KEY = [0xa4, ...Buffer.from('type')];
const RESOURCE_KEY = [0xa8, ...Buffer.from('resource')];
const TIMEOUT_KEY = [0xa9, ...Buffer.from('timeoutMs')];
const WORK_HEAD = Buffer.from([0xde, 0x00, 0x07, ...TYPE_KEYS, ...WORK_NAME]);
const ACK_HEAD = Buffer.from([0xde, 0x00, 0x04, ...TYPE_KEYS, ...ACK_NAME]);
const RECEIPT_HEAD = Buffer.from([0xde, 0x00, 0x03, ...TYPE_KEYS, ...RECEIPT_NAME]);
const RESULTS_HEAD = Buffer.from([0xde, 0x00, 0x05, ...TYPE_KEYS, ...RESULTS_NAME]);
const TASKS_HEAD = Buffer.from([0xde, 0x00, 0x03, ...TYPE_KEYS, ...TASKS_NAME, ...TASKS_NAME]);

/** The most bytes one entry takes in our forms: a fixarray byte, four 5-byte integers, two 32-byte keys. */
const ENTRY_MAX = 1 + 5 * 4 + 2 * 32;
/** The most bytes of a header beyond its head and entries: seq, us, their keys, the array header. */
const FIELDS_MAX = 64;

// Writer and reader keep their place in module state rather than in objects: they are synchronous,
// never reentered, and run for every message.

/** Where headers are written, grown as needed; each header leaves as a copy of its bytes. */
let out = Buffer.allocUnsafe(4096);
let at = 0;

function begin(head: Buffer, entries: number): void {
  const need = head.length + FIELDS_MAX + entries * ENTRY_MAX;
  if (out.length < need) out = Buffer.allocUnsafe(need);
  head.copy(out, 0);
  at = head.length;
}

function bytes(b: readonly number[]): void {
  for (let i = 0; i < b.length; i++) out[at++] = b[i]!;
}

/** A non-negative integer as msgpackr writes it; false (nothing written) beyond 32 bits. */
function uint(v: number): boolean {
  if (!(v >>> 0 === v)) return false;
  if (v < 0x80) out[at++] = v;
  else if (v < 0x100) {
    out[at++] = 0xcc;
    out[at++] = v;
  } else if (v < 0x10000) {
    out[at++] = 0xcd;
    out[at++] = v >>> 8;
    out[at++] = v & 0xff;
  } else {
    out[at++] = 0xce;
    out.writeUInt32BE(v, at);
    at += 4;
  }
  return true;
}

function arrayHeader(n: number): void {
  if (n < 16) out[at++] = 0x90 | n;
  else {
    out[at++] = 0xdc;
    out[at++] = n >>> 8;
    out[at++] = n & 0xff;
  }
}

/** null, a 32-bit unsigned integer or an ASCII string under 32 characters; false for anything else. */
function key(v: string | number | null): boolean {
  if (v === null) {
    out[at++] = 0xc0;
    return true;
  }
  if (typeof v === 'number') return uint(v);
  if (v.length >= 32) return false;
  out[at++] = 0xa0 | v.length;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c >= 0x80) return false;
    out[at++] = c;
  }
  return true;
}

function done(): Buffer {
  const header = Buffer.allocUnsafe(at);
  out.copy(header, 0, 0, at);
  return header;
}

/** The header of a `results` envelope, or null when a field is beyond the fast path. */
export function encodeResultsHeader(seq: number, us: number, results: readonly Result[]): Buffer | null {
  begin(RESULTS_HEAD, results.length);
  // The envelope's keys in msgpackr's order, which is the object's: v, t, seq, us, results.
  bytes(SEQ_KEY);
  if (!uint(seq)) return null;
  bytes(US_KEY);
  if (!uint(us)) return null;
  bytes(RESULTS_NAME);
  arrayHeader(results.length);
  for (let i = 0; i < results.length; i++) {
    const r = results[i]!;
    out[at++] = 0x93;
    if (!uint(r.id) || !uint(r.attempt) || !uint(r.payload.length)) return null;
  }
  return done();
}

/** The header of a `tasks` envelope, or null when a field is beyond the fast path. */
export function encodeTasksHeader(tasks: readonly Work[]): Buffer | null {
  begin(TASKS_HEAD, tasks.length);
  arrayHeader(tasks.length);
  for (let i = 0; i < tasks.length; i++) {
    const w = tasks[i]!;
    out[at++] = 0x96;
    if (!uint(w.id) || !uint(w.attempt) || !key(w.type) || !key(w.resource) || !key(w.timeoutMs) || !uint(w.payload.length)) return null;
  }
  return done();
}

/**
 * The header of a lone `work` without `raw` or `resent`, an `ack` or a `receipt`; null for
 * anything else, or a field beyond the fast path.
 */
export function encodeHotHeader(env: Envelope): Buffer | null {
  switch (env.t) {
    case 'work':
      if (env.raw || env.resent) return null;
      // The keys in encode()'s order: v, t, id, attempt, type, resource, timeoutMs.
      begin(WORK_HEAD, 1);
      bytes(ID_KEY);
      if (!uint(env.id)) return null;
      bytes(ATTEMPT_KEY);
      if (!uint(env.attempt)) return null;
      bytes(TYPE_KEY);
      if (!key(env.type)) return null;
      bytes(RESOURCE_KEY);
      if (!key(env.resource)) return null;
      bytes(TIMEOUT_KEY);
      return key(env.timeoutMs) ? done() : null;
    case 'ack':
      begin(ACK_HEAD, 0);
      bytes(ID_KEY);
      if (!uint(env.id)) return null;
      bytes(ATTEMPT_KEY);
      return uint(env.attempt) ? done() : null;
    case 'receipt':
      begin(RECEIPT_HEAD, 0);
      bytes(SEQ_KEY);
      return uint(env.seq) ? done() : null;
    default:
      return null;
  }
}

// --- reading ---------------------------------------------------------------------------------

const EMPTY = new Uint8Array(0);
/** What readUint() and friends return for bytes outside the fast path. */
const NO = -1;

let src: Uint8Array = EMPTY;
let pos = 0;

function readUint(): number {
  const b = src[pos++]!;
  if (b < 0x80) return b;
  if (b === 0xcc) return src[pos++]!;
  if (b === 0xcd) return (src[pos++]! << 8) | src[pos++]!;
  if (b === 0xce) return ((src[pos++]! << 24) | (src[pos++]! << 16) | (src[pos++]! << 8) | src[pos++]!) >>> 0;
  return NO;
}

/** null, a 32-bit unsigned integer, or an ASCII string of fixstr or str8 form; undefined for anything else. */
function readKey(): string | number | null | undefined {
  const b = src[pos]!;
  if (b === 0xc0) {
    pos++;
    return null;
  }
  let n: number;
  if ((b & 0xe0) === 0xa0) n = b & 0x1f;
  else if (b === 0xd9) n = src[++pos]!;
  else {
    const v = readUint();
    return v === NO ? undefined : v;
  }
  pos++;
  const end = pos + n;
  if (end > src.length) return undefined;
  let s = '';
  for (; pos < end; pos++) {
    const c = src[pos]!;
    if (c >= 0x80) return undefined;
    s += String.fromCharCode(c);
  }
  return s;
}

/** An array header of 1 to `max` entries; NO otherwise. */
function readArray(max: number): number {
  const b = src[pos++]!;
  let n: number;
  if ((b & 0xf0) === 0x90) n = b & 0x0f;
  else if (b === 0xdc) n = (src[pos++]! << 8) | src[pos++]!;
  else return NO;
  return n >= 1 && n <= max ? n : NO;
}

/** Whether the next bytes are exactly `b`. */
function expect(b: readonly number[]): boolean {
  for (let i = 0; i < b.length; i++) if (src[pos++] !== b[i]) return false;
  return true;
}

/** The map header (fixmap or map16) of `n` entries. */
function expectMap(n: number): boolean {
  const b = src[pos++]!;
  if (b === (0x80 | n)) return true;
  return b === 0xde && src[pos++] === 0 && src[pos++] === n;
}

/**
 * Reads `frame` if it is one of the hot headers in our form (any map header, keys in the order we
 * write them) with valid fields, and `t` is one of `allowed`: the envelope, and for a batch its
 * entries' payload lengths pushed on `lengths`. Null for anything else, left to the general decoder.
 */
export function readHotHeader(frame: Uint8Array, allowed: ReadonlySet<string>, lengths: number[], maxEntries: number): Envelope | null {
  src = frame;
  pos = 0;
  const before = lengths.length;
  const env = read(allowed, lengths, maxEntries);
  src = EMPTY;
  if (env === null) lengths.length = before;
  return env;
}

function read(allowed: ReadonlySet<string>, lengths: number[], maxEntries: number): Envelope | null {
  const first = src[0]!;
  const entries = first === 0xde ? src[2] : (first & 0xf0) === 0x80 ? first & 0x0f : 0;
  if (entries === undefined || !expectMap(entries) || !expect(TYPE_KEYS)) return null;
  // The type's name decides; it is the only str that starts where TYPE_KEYS ends.
  let env: Envelope | null;
  const name = src[pos + 1];
  if (entries === 5 && name === 0x72 && allowed.has('results') && expect(RESULTS_NAME)) env = readResults(lengths, maxEntries);
  else if (entries === 3 && name === 0x74 && allowed.has('tasks') && expect(TASKS_NAME)) env = readTasks(lengths, maxEntries);
  else if (entries === 7 && name === 0x77 && allowed.has('work') && expect(WORK_NAME)) env = readWork();
  else if (entries === 4 && name === 0x61 && allowed.has('ack') && expect(ACK_NAME)) env = readAck();
  else if (entries === 3 && name === 0x72 && allowed.has('receipt') && expect(RECEIPT_NAME)) env = readReceipt();
  else return null;
  // A frame cut short reads past its end (undefined bytes, refused above or counted here); one
  // with bytes to spare is refused by the general decoder, which says so.
  return pos === src.length ? env : null;
}

function readWork(): Envelope | null {
  if (!expect(ID_KEY)) return null;
  const id = readUint();
  if (id === NO || !expect(ATTEMPT_KEY)) return null;
  const attempt = readUint();
  if (attempt === NO || attempt === 0 || !expect(TYPE_KEY)) return null;
  const type = readKey();
  if (type === undefined || !expect(RESOURCE_KEY)) return null;
  const resource = readKey();
  if (resource === undefined || !expect(TIMEOUT_KEY)) return null;
  const timeoutMs = readKey();
  if (timeoutMs !== null && (typeof timeoutMs !== 'number' || timeoutMs === 0)) return null;
  return { t: 'work', id, attempt, type, resource, timeoutMs, payload: EMPTY };
}

function readAck(): Envelope | null {
  if (!expect(ID_KEY)) return null;
  const id = readUint();
  if (id === NO || !expect(ATTEMPT_KEY)) return null;
  const attempt = readUint();
  return attempt === NO || attempt === 0 ? null : { t: 'ack', id, attempt };
}

function readReceipt(): Envelope | null {
  if (!expect(SEQ_KEY)) return null;
  const seq = readUint();
  return seq === NO ? null : { t: 'receipt', seq };
}

function readResults(lengths: number[], maxEntries: number): Envelope | null {
  if (!expect(SEQ_KEY)) return null;
  const seq = readUint();
  if (seq === NO || !expect(US_KEY)) return null;
  const us = readUint();
  if (us === NO || !expect(RESULTS_NAME)) return null;
  const n = readArray(maxEntries);
  if (n === NO) return null;
  const results: Result[] = [];
  for (let i = 0; i < n; i++) {
    if (src[pos++] !== 0x93) return null;
    const id = readUint();
    const attempt = readUint();
    const bytes = readUint();
    if (id === NO || attempt === NO || attempt === 0 || bytes === NO) return null;
    results.push({ t: 'result', id, attempt, payload: EMPTY });
    lengths.push(bytes);
  }
  return { t: 'results', seq, us, results };
}

function readTasks(lengths: number[], maxEntries: number): Envelope | null {
  if (!expect(TASKS_NAME)) return null;
  const n = readArray(maxEntries);
  if (n === NO) return null;
  const tasks: Work[] = [];
  for (let i = 0; i < n; i++) {
    if (src[pos++] !== 0x96) return null;
    const id = readUint();
    const attempt = readUint();
    const type = readKey();
    const resource = readKey();
    const timeoutMs = readKey();
    const bytes = readUint();
    if (id === NO || attempt === NO || attempt === 0 || type === undefined || resource === undefined || bytes === NO) return null;
    if (timeoutMs !== null && (typeof timeoutMs !== 'number' || timeoutMs === 0)) return null;
    tasks.push(new WorkRecord(id, attempt, type, resource, timeoutMs, EMPTY));
    lengths.push(bytes);
  }
  return { t: 'tasks', tasks };
}
