/** Why a frame or message was refused. Stable strings: metrics and peers key on them. */
export type ProtocolErrorCode =
  | 'EMSGPACK' // the frame is not valid msgpack
  | 'ENOTMAP' // the header frame is not a msgpack map
  | 'EVERSION' // the header carries a protocol version we do not speak
  | 'ETYPE' // unknown message type, or one the sender's side may not send
  | 'EFIELD' // a field is missing or has the wrong type
  | 'EFRAMES' // the message has the wrong number of frames
  | 'ETOOBIG'; // a frame exceeds the configured maximum size

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  readonly code: ProtocolErrorCode;
  /** With EVERSION: the version the peer sent. */
  readonly peerVersion?: unknown;

  constructor(code: ProtocolErrorCode, message: string, extra?: { peerVersion?: unknown }) {
    super(message);
    this.code = code;
    if (extra && 'peerVersion' in extra) this.peerVersion = extra.peerVersion;
  }
}

/** A value handed to us for encoding that msgpack cannot carry faithfully. */
export class PayloadError extends Error {
  override readonly name = 'PayloadError';
  readonly code = 'EPAYLOAD';
}
