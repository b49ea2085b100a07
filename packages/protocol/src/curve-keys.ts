/**
 * CURVE keys as taskfarm reads and writes them: Z85 text (ZeroMQ RFC 32, 40 characters for a 32-byte
 * key), key files written by `taskfarm keygen`, and allow-lists of worker public keys. Pure text
 * handling (no file access) so that the coordinator, the worker and the launcher share one parser.
 *
 * Formats:
 * - a **secret key file** (mode 0600) holds `public-key = "Z85"` and `secret-key = "Z85"` lines, as
 *   CZMQ's `zcert` secret certificates do (those are read too); `#` starts a comment line;
 * - a **public key file** holds one line `Z85 [label]`, so that `cat *.pub >> workers.allow` builds an
 *   allow-list;
 * - an **allow-list** holds one key per line, optionally followed by a label; blank lines and
 *   comment lines (`#`) are ignored. Z85's alphabet contains `#`, but no key starts with it (its
 *   first 5-character group would exceed 2^32), so `#KEY` and `# KEY` are comments, never keys.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';

const Z85 = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';
const Z85_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < Z85.length; i++) Z85_VALUE[Z85.charCodeAt(i)] = i;

/** The length of a CURVE key in Z85 text. */
export const CURVE_KEY_LENGTH = 40;

/** A key file or allow-list that cannot be used; `code` is always ECURVEKEY. */
export class CurveKeyError extends Error {
  override readonly name = 'CurveKeyError';
  readonly code = 'ECURVEKEY';
}

/** Z85-encodes bytes whose length is a multiple of 4 (a 32-byte key gives 40 characters). */
export function z85Encode(bytes: Uint8Array): string {
  if (bytes.length % 4 !== 0) throw new RangeError(`Z85 encodes multiples of 4 bytes, not ${bytes.length}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let out = '';
  for (let i = 0; i < bytes.length; i += 4) {
    let v = view.getUint32(i);
    const chunk = new Array<string>(5);
    for (let j = 4; j >= 0; j--) {
      chunk[j] = Z85[v % 85]!;
      v = Math.floor(v / 85);
    }
    out += chunk.join('');
  }
  return out;
}

/** Decodes Z85 text (a multiple of 5 characters); null when it is not valid Z85. */
export function z85Decode(text: string): Buffer | null {
  if (text.length % 5 !== 0) return null;
  const out = Buffer.alloc((text.length / 5) * 4);
  for (let i = 0, o = 0; i < text.length; i += 5, o += 4) {
    let v = 0;
    for (let j = 0; j < 5; j++) {
      const c = text.charCodeAt(i + j);
      const d = c < 128 ? Z85_VALUE[c]! : -1;
      if (d < 0) return null;
      v = v * 85 + d;
    }
    if (v > 0xffffffff) return null;
    out.writeUInt32BE(v, o);
  }
  return out;
}

/** True for 40 characters of valid Z85, which is what ZeroMQ takes as a CURVE key. */
export function isCurveKey(text: unknown): text is string {
  return typeof text === 'string' && text.length === CURVE_KEY_LENGTH && z85Decode(text) !== null;
}

// PKCS#8 and SPKI DER prefixes of an X25519 key (RFC 8410): CURVE keys are X25519 keys.
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');

/** The public key of a CURVE secret key (both Z85), as libzmq's zmq_curve_public() computes it. */
export function curvePublicKey(secretKey: string): string {
  const secret = z85Decode(secretKey);
  if (secret === null || secret.length !== 32) throw new CurveKeyError('not a CURVE secret key: expected 40 characters of Z85');
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_X25519, secret]), format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  return z85Encode(spki.subarray(spki.length - 32));
}

export interface CurveKeyPair {
  publicKey: string;
  secretKey: string;
}

/** A new CURVE keypair (Z85), from Node's X25519, the curve libzmq's CURVE uses: what zmq_curve_keypair() gives. */
export function generateCurveKeyPair(): CurveKeyPair {
  const { privateKey } = generateKeyPairSync('x25519');
  const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'der' });
  const secretKey = z85Encode(pkcs8.subarray(pkcs8.length - 32));
  return { publicKey: curvePublicKey(secretKey), secretKey };
}

const ASSIGNMENT = /^\s*(public-key|secret-key)\s*=\s*"?([^"\s]+)"?\s*$/;

/**
 * Reads a secret key file (`taskfarm keygen`'s NAME.key, or a CZMQ secret certificate), or a file
 * holding nothing but a Z85 secret key. The public key is derived, and checked when the file has one.
 */
export function parseSecretKeyFile(text: string, source = 'key file'): CurveKeyPair {
  let secretKey: string | null = null;
  let publicKey: string | null = null;
  const bare: string[] = [];
  for (const [n, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    const m = ASSIGNMENT.exec(line);
    if (m) {
      if (!isCurveKey(m[2])) throw new CurveKeyError(`${source}, line ${n + 1}: ${m[1]} is not 40 characters of Z85`);
      if (m[1] === 'secret-key') secretKey = m[2];
      else publicKey = m[2];
    } else if (isCurveKey(line)) {
      bare.push(line);
    }
  }
  if (secretKey === null && publicKey === null && bare.length === 1) secretKey = bare[0]!;
  if (secretKey === null) {
    throw new CurveKeyError(
      publicKey !== null
        ? `${source} holds a public key only; a secret key file (NAME.key from taskfarm keygen) is needed here`
        : `${source} holds no CURVE secret key (expected a line secret-key = "..." as taskfarm keygen writes)`,
    );
  }
  const derived = curvePublicKey(secretKey);
  if (publicKey !== null && publicKey !== derived) throw new CurveKeyError(`${source}: its public-key does not belong to its secret-key`);
  return { publicKey: derived, secretKey };
}

/** One key of an allow-list, with the label written after it (often a host name), if any. */
export interface AllowedKey {
  key: string;
  label: string;
}

/**
 * Parses an allow-list (or a public key file, which is a one-key allow-list): one Z85 key per line,
 * optionally followed by a label; `public-key = "KEY"` lines (CZMQ certificates) count as keys; blank
 * and comment lines are skipped. Anything else is an error naming the line, so that a typo never
 * silently locks a worker out (or lets one in).
 */
export function parseAllowList(text: string, source = 'allow-list'): AllowedKey[] {
  const keys: AllowedKey[] = [];
  for (const [n, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '') continue;
    const [first = '', ...rest] = line.split(/\s+/);
    if (isCurveKey(first)) {
      keys.push({ key: first, label: rest.join(' ') });
      continue;
    }
    const m = ASSIGNMENT.exec(line);
    if (m?.[1] === 'public-key' && isCurveKey(m[2])) {
      keys.push({ key: m[2], label: '' });
      continue;
    }
    // The other lines of a CZMQ certificate are `name = "value"`; the quote tells them from a broken
    // key, which may well hold '=' (Z85) but never '"'.
    if (line.startsWith('#') || m?.[1] === 'secret-key' || /^(metadata|curve)$/.test(line) || /^[\w-]+\s*=\s*"/.test(line)) {
      if (m?.[1] === 'secret-key') throw new CurveKeyError(`${source}, line ${n + 1}: a secret key does not belong in a list of public keys`);
      continue; // comments, and the other lines of a CZMQ certificate
    }
    throw new CurveKeyError(`${source}, line ${n + 1}: not a CURVE public key (40 characters of Z85): ${JSON.stringify(line.length > 60 ? `${line.slice(0, 60)}…` : line)}`);
  }
  return keys;
}

/** Reads a public key file (NAME.pub): it must hold exactly one key. */
export function parsePublicKeyFile(text: string, source = 'public key file'): string {
  const keys = parseAllowList(text, source);
  if (keys.length !== 1) throw new CurveKeyError(`${source} should hold one CURVE public key, not ${keys.length}`);
  return keys[0]!.key;
}

/** The text of NAME.key: the keypair, for the owner's eyes only. */
export function formatSecretKeyFile(pair: CurveKeyPair, name: string): string {
  return (
    `# taskfarm CURVE keypair "${oneLine(name)}", written by taskfarm keygen on ${new Date().toISOString()}\n` +
    `# SECRET: keep this file to yourself (mode 0600). Hand out ${oneLine(name)}.pub instead.\n` +
    `public-key = "${pair.publicKey}"\n` +
    `secret-key = "${pair.secretKey}"\n`
  );
}

/** The text of NAME.pub: one allow-list line, the key and its name. */
export function formatPublicKeyFile(publicKey: string, name: string): string {
  return `${publicKey} ${oneLine(name)}\n`;
}

function oneLine(s: string): string {
  return s.replace(/[\r\n"]+/g, ' ').trim();
}
