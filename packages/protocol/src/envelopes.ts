/**
 * The envelopes exchanged between a coordinator (ROUTER) and its workers (DEALER).
 * PROTOCOL.md beside this package is the normative description; these types mirror it.
 */

/** Bumped on any change a peer of the previous version could not read. */
export const PROTOCOL_VERSION = 1;

/** Rank 0 is the coordinator, as in MPI; workers hold ranks 1 and up. */
export const COORDINATOR_RANK = 0;

/** A task type (the seed's MultiWorkQueue task id) or a resource id: small scalar keys. */
export type Key = string | number;

/** An error as it crosses the wire: plain data, never a serialised Error object. */
export interface WireError {
  name: string;
  message: string;
  code?: string;
  stack?: string;
}

/** Settings a coordinator hands to a worker in `welcome`; the worker follows them. */
export interface WorkerSettings {
  /** How often each side sends a heartbeat when it has nothing else to send, in ms. */
  heartbeatMs: number;
  /** Silence after which a peer is presumed gone, in ms. */
  livenessMs: number;
  /** The largest frame the coordinator accepts; a worker fails a task whose result is larger. */
  maxMessageBytes: number;
  /**
   * The most tasks the coordinator will have in flight on this worker at once: the smaller of the
   * worker's `register.window` and its own limit. Above 1, tasks may come batched (`tasks`) and
   * results may go batched (`results`). Absent means 1 (every peer of version 1 speaks that).
   */
  window?: number;
  /**
   * True when the coordinator reads raw results (`result.raw`); the worker sends them only then.
   * Absent means false.
   */
  raw?: boolean;
}

/** Reject codes a coordinator may answer a `register` with. */
export type RejectCode =
  | 'EVERSION' // the worker speaks another protocol version
  | 'ERANKTAKEN' // the requested rank is held by another live worker
  | 'EPROTOCOL' // the peer's message could not be decoded (the message says why)
  | 'ENOTREGISTERED' // a message other than register from an unknown connection
  | 'ESHUTDOWN'; // the coordinator is shutting down

export interface Register {
  t: 'register';
  /** The rank the worker asks for, or null for "the lowest free one". */
  rank: number | null;
  host: string;
  pid: number;
  /**
   * Random per worker process, the same on every registration of that process: a worker that
   * reconnects before the coordinator noticed its old connection die takes over its own record
   * (rank and task in flight) instead of being refused its rank. Null when the worker sends none.
   */
  instance: string | null;
  /**
   * The most tasks this worker takes at once (it queues those it is not running yet); 1, the
   * default when absent, is one task at a time with the single `work`/`result` envelopes only.
   */
  window?: number;
  /** True when this worker reads raw payloads (`work.raw`); the coordinator sends them only then. */
  raw?: boolean;
}

export interface Welcome {
  t: 'welcome';
  rank: number;
  settings: WorkerSettings;
}

export interface Reject {
  t: 'reject';
  code: RejectCode;
  message: string;
  /** With EVERSION: the version the coordinator speaks. */
  version?: number;
}

/** The worker is idle and can take one task. */
export interface Ready {
  t: 'ready';
}

export interface Work {
  t: 'work';
  id: number;
  attempt: number;
  type: Key | null;
  resource: Key | null;
  /** Abort the handler after this many ms (the worker aborts its signal); null for no limit. */
  timeoutMs: number | null;
  /** The task's data, msgpack-encoded on its own (or its bytes, with `raw`); it travels as the next frame. */
  payload: Uint8Array;
  /**
   * The payload frame is the bytes of a binary value (a Buffer or Uint8Array over 8 KiB), not
   * msgpack: such data travels without being copied into an encoding. Only to a worker whose
   * register said `raw`.
   */
  raw?: boolean;
  /**
   * Sent to this worker before, on a connection that may not have delivered it (a takeover,
   * PROTOCOL.md §5.6): the worker runs it only if it does not hold it already. Only to a worker of
   * window above 1.
   */
  resent?: boolean;
}

/** The coordinator took the result or error of (id, attempt); the worker may forget it. */
export interface Ack {
  t: 'ack';
  id: number;
  attempt: number;
}

/** The application cancelled (id, attempt): abort the handler; its outcome will be ignored. */
export interface Cancel {
  t: 'cancel';
  id: number;
  attempt: number;
}

export interface Result {
  t: 'result';
  id: number;
  attempt: number;
  /** The handler's return value, msgpack-encoded on its own (or its bytes, with `raw`); it travels as the next frame. */
  payload: Uint8Array;
  /** As `work.raw`: only to a coordinator whose welcome said `raw`. */
  raw?: boolean;
  /** How long the handler ran, in µs, when the worker measured it (the coordinator sizes windows with it). */
  us?: number;
}

export interface TaskFailed {
  t: 'error';
  id: number;
  attempt: number;
  error: WireError;
  us?: number;
}

/**
 * Several tasks in one envelope (window > 1 only). On the wire: a header listing each task's
 * fields and payload length, then one frame holding the payloads back to back.
 */
export interface Tasks {
  t: 'tasks';
  tasks: Work[];
}

/** Several results in one envelope (window > 1 only); answered by one `receipt` carrying `seq`. */
export interface Results {
  t: 'results';
  /** Chosen by the worker, echoed in the receipt: which batch it may forget. */
  seq: number;
  /** How long the handlers of these results ran in all, in µs. */
  us: number;
  results: Result[];
}

/** The coordinator took the `results` envelope `seq` (accepted, or dropped as stale). */
export interface Receipt {
  t: 'receipt';
  seq: number;
}

export interface Heartbeat {
  t: 'heartbeat';
}

export interface Terminate {
  t: 'terminate';
}

export interface Bye {
  t: 'bye';
}

/** What a worker may send. */
export type WorkerMessage = Register | Ready | Result | Results | TaskFailed | Heartbeat | Bye;
/** What a coordinator may send. */
export type CoordinatorMessage = Welcome | Reject | Work | Tasks | Ack | Receipt | Cancel | Heartbeat | Terminate;
export type Envelope = WorkerMessage | CoordinatorMessage;
export type EnvelopeType = Envelope['t'];
