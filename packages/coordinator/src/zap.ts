/**
 * ZAP, the ZeroMQ Authentication Protocol (RFC 27), without the socket: libzmq asks a handler bound
 * at inproc://zeromq.zap.01 (in the socket's own context) whether a peer that completed the CURVE
 * key exchange may connect, and waits for the answer before the connection carries any message.
 * transport.ts owns the socket; this module reads requests and writes replies.
 */
import { z85Encode } from '@taskfarm/protocol';

export const ZAP_ENDPOINT = 'inproc://zeromq.zap.01';
const ZAP_VERSION = '1.0';

export interface ZapRequest {
  /** Echoed in the reply so that libzmq can match it. */
  requestId: Buffer;
  domain: string;
  /** The peer's IP address. */
  address: string;
  /** NULL, PLAIN or CURVE. */
  mechanism: string;
  /** With CURVE: the client's long-term public key, Z85; null otherwise. */
  clientKey: string | null;
}

/** The request in `frames` (as a Reply socket receives them), or null when it is not one. */
export function parseZapRequest(frames: readonly Buffer[]): ZapRequest | null {
  const [version, requestId, domain, address, , mechanism, ...credentials] = frames;
  if (!version || !requestId || !domain || !address || !mechanism || version.toString('latin1') !== ZAP_VERSION) return null;
  const mech = mechanism.toString('latin1');
  const key = mech === 'CURVE' && credentials.length === 1 && credentials[0]!.length === 32 ? z85Encode(credentials[0]!) : null;
  return { requestId, domain: domain.toString('utf8'), address: address.toString('utf8'), mechanism: mech, clientKey: key };
}

/**
 * The reply frames: status 200 admits the peer (as `userId`), 400 refuses it, 500 is a failure of
 * the handler itself. A request that could not be read is answered 500 with an empty request id.
 */
export function zapReply(requestId: Buffer | null, status: '200' | '400' | '500', text: string, userId = ''): Buffer[] {
  return [Buffer.from(ZAP_VERSION), requestId ?? Buffer.alloc(0), Buffer.from(status), Buffer.from(text), Buffer.from(userId), Buffer.alloc(0)];
}
