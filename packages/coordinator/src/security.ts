/**
 * The coordinator's safe defaults and its CURVE settings: where it may listen in plaintext, and the
 * keys it serves with. CURVE (ZeroMQ's elliptic-curve encryption and authentication) is on when the
 * coordinator has a secret key; an allow-list of worker public keys then says who may connect.
 */
import { readFileSync } from 'node:fs';
import { CurveKeyError, isCurveKey, parseSecretKeyFile, type CurveKeyPair } from '@taskfarm/protocol';
import { TaskfarmError } from './errors.ts';

export { CurveKeyError };

/**
 * A coordinator asked to listen beyond this machine without CURVE and without `insecure: true`:
 * plaintext lets anyone who reaches the port join the farm, read its tasks and forge results.
 */
export class InsecureBindError extends TaskfarmError {
  override name = 'InsecureBindError';
  readonly endpoint: string;
  constructor(endpoint: string) {
    super(
      'EINSECURE',
      `refusing to listen on ${endpoint} in plaintext: it is not a loopback address, so anyone who can reach it could join ` +
        'the farm, read its tasks and send forged results. Give the coordinator a CURVE key and an allow-list of worker keys ' +
        '(curveSecretKey / curveAllowList, taskfarm run --curve-secret-key FILE --curve-allow-list FILE; see taskfarm keygen), ' +
        'or accept the risk on a trusted network with insecure: true (--insecure, TASKFARM_INSECURE=1)',
    );
    this.endpoint = endpoint;
  }
}

/**
 * True when `endpoint` can only be reached from this machine: ipc:// and inproc://, and tcp:// on
 * 127.0.0.0/8, ::1, localhost or the `lo` interface. A wildcard (`*`, 0.0.0.0, ::), any other
 * address, host name or interface is reachable from the network.
 */
export function isLocalEndpoint(endpoint: string): boolean {
  const m = /^([a-z]+):\/\/(.*)$/.exec(endpoint);
  if (!m) return false;
  if (m[1] === 'ipc' || m[1] === 'inproc') return true;
  if (m[1] !== 'tcp') return false;
  // tcp://HOST:PORT, tcp://[V6]:PORT; libzmq also takes tcp://SOURCE;HOST:PORT for connects only.
  const hostPort = m[2]!;
  const v6 = /^\[([^\]]*)\]:[^:]+$/.exec(hostPort);
  if (v6) return isV6Loopback(v6[1]!.toLowerCase());
  const host = hostPort.slice(0, Math.max(0, hostPort.lastIndexOf(':')));
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || host === 'localhost' || host === 'lo';
}

function isV6Loopback(host: string): boolean {
  if (host === '::1' || /^::ffff:127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)) return true;
  const groups = host.split(':');
  return groups.length === 8 && groups.slice(0, 7).every((g) => /^0{1,4}$/.test(g)) && /^0{0,3}1$/.test(groups[7]!);
}

/** What a CURVE coordinator serves with: its keypair and where its allowed worker keys come from. */
export interface CurveServerSettings extends CurveKeyPair {
  allowListPath: string | null;
  allowKeys: readonly string[];
}

/**
 * Reads the coordinator's CURVE secret key: `value` is a key file (taskfarm keygen's NAME.key) or
 * the Z85 secret itself. Throws CurveKeyError with what is wrong.
 */
export function loadSecretKey(value: string, what = 'curveSecretKey'): CurveKeyPair {
  let text: string;
  try {
    text = readFileSync(value, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (isCurveKey(value)) return parseSecretKeyFile(value, what);
    throw new CurveKeyError(`${what}: cannot read the key file ${value} (${code ?? (err as Error).message}); give a path to a key file written by taskfarm keygen, or the 40-character Z85 secret key`);
  }
  return parseSecretKeyFile(text, `${what} ${value}`);
}

/** The coordinator's CURVE settings from its options, or null for plaintext. */
export function curveServerSettings(o: { curveSecretKey: string | null; curveAllowList: string | null; curveAllowKeys: readonly string[] }): CurveServerSettings | null {
  if (o.curveSecretKey === null) {
    if (o.curveAllowList !== null || o.curveAllowKeys.length > 0) {
      throw new CurveKeyError('an allow-list of worker keys was given without a CURVE secret key for the coordinator (curveSecretKey, --curve-secret-key)');
    }
    return null;
  }
  for (const key of o.curveAllowKeys) {
    if (!isCurveKey(key)) throw new CurveKeyError(`curveAllowKeys: ${JSON.stringify(key)} is not a CURVE public key (40 characters of Z85)`);
  }
  if (o.curveAllowList === null && o.curveAllowKeys.length === 0) {
    throw new CurveKeyError('a CURVE coordinator needs the public keys of the workers it admits: give an allow-list file (curveAllowList, --curve-allow-list)');
  }
  return { ...loadSecretKey(o.curveSecretKey), allowListPath: o.curveAllowList, allowKeys: o.curveAllowKeys };
}
