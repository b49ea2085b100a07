/**
 * The coordinator's state, without I/O: which peers are connected, which worker holds which rank,
 * what each worker is doing, and which Master owns it. Events go in (`connected`, `receive`,
 * `disconnected`, ...); envelopes to send come out through `outbox`, and owners hear about their
 * workers through the `FarmListener` they registered. Time enters as an argument (or the injected
 * clock), never as a clock read, so every sequence can be replayed in a unit test.
 *
 * Liveness has two levels. A connection that drops (ZeroMQ heartbeats, process death) loses its
 * worker at once. Above that, an idle worker must keep sending heartbeats: its event loop is free,
 * so silence means it is stuck or gone. A busy worker may be deep in a synchronous handler and
 * silent for good reason; its task's timeout, if it has one, is what bounds it.
 */
import { describeValue, encodePayload, type Envelope, type Key, type Register, type WireError, type Work, type WorkerMessage, type WorkerSettings } from '@taskfarm/protocol';
import type { CoordinatorObserver, DispatchKind } from './observer.ts';
import { RankTable } from './ranks.ts';
import { DEFAULT_WINDOW, WorkerPace, type WindowSettings } from './window.ts';

/** ROUTER routing ids, as latin1 strings so that they can key a Map. */
export type PeerId = string;

/** One dispatch of a task: the (id, attempt) pair fences results. */
export interface Task {
  readonly id: number;
  attempt: number;
  readonly type: Key | null;
  readonly resource: Key | null;
  /**
   * The msgpack-encoded data, kept so the task can be sent again after a loss; null for a number,
   * string, boolean or null, which is kept as `data` and encoded when it leaves (cheaper to queue).
   */
  readonly payload: Buffer | null;
  /**
   * `payload` is binary data's own bytes (rawPayload(): a Buffer or Uint8Array over 8 KiB, kept and
   * sent without a copy), not msgpack.
   */
  readonly raw: boolean;
  /** The data as given, when `payload` is null or a Master subclass overrides run() and must see it again. */
  readonly data: unknown;
  /**
   * When it entered its queue, and when its current attempt started on its worker, by the farm's
   * clock (ms): when it left, or, behind other tasks on the same worker, when the one before it came back.
   */
  queuedAt: number;
  startedAt: number;
  /** Names the task within its queue across coordinator restarts (see journal.ts). */
  readonly key: Key;
  /** Timeout, retries and loss limit; usually shared by every task of a queue. */
  readonly policy: TaskPolicy;
  /** Runs that failed (handler error or timeout) and runs lost with their worker, so far. */
  failures: number;
  losses: number;
  /** Not to be dispatched before this time (a retry waiting out its backoff). */
  notBefore: number;
  /** Set by cancel(): whatever the worker returns is replaced by ECANCELLED. */
  cancelled: boolean;
}

/** What happens to a task when it fails or its worker is lost. */
export interface TaskPolicy {
  /** Abort the handler after this many ms (its AbortSignal fires; a handler that ignores it has its worker recycled). Default null: no limit. */
  readonly timeoutMs: number | null;
  /** How many times a task whose handler threw (or timed out) is run again before its error is reported. Default 0, the seed's behaviour. */
  readonly retries: number;
  /** Delay before the first retry, in ms; doubled for each further one up to maxBackoffMs. Default 1000. */
  readonly backoffMs: number;
  /** Default 60000. */
  readonly maxBackoffMs: number;
  /**
   * A task that was in flight on this many workers that died is failed with EWORKERLOST instead of
   * being run again, so that a poison task cannot kill the farm one worker at a time. Default 3.
   */
  readonly maxLosses: number;
}

export const DEFAULT_POLICY: TaskPolicy = Object.freeze({ timeoutMs: null, retries: 0, backoffMs: 1000, maxBackoffMs: 60_000, maxLosses: 3 });

/** Checks a partial policy and completes it from `base`. */
export function resolvePolicy(p: Partial<TaskPolicy> | undefined, base: TaskPolicy = DEFAULT_POLICY): TaskPolicy {
  // Most tasks override nothing: share the base instead of making an object per task.
  if (!p || !Object.values(p).some((v) => v !== undefined)) return base;
  const r = { ...base, ...p };
  const int = (name: keyof TaskPolicy, min: number, v: number | null) => {
    if (v !== null && !(Number.isSafeInteger(v) && v >= min)) throw new RangeError(`${name} must be an integer >= ${min}, not ${v}`);
  };
  int('timeoutMs', 1, r.timeoutMs);
  int('retries', 0, r.retries);
  int('backoffMs', 0, r.backoffMs);
  int('maxBackoffMs', 0, r.maxBackoffMs);
  int('maxLosses', 1, r.maxLosses);
  return Object.freeze(r);
}

/** A new task, first attempt. One literal of one shape: a million queued tasks stay monomorphic. */
export function newTask(
  farm: Farm,
  type: Key | null,
  resource: Key | null,
  payload: Buffer | null,
  raw: boolean,
  data: unknown,
  policy: TaskPolicy,
  key?: Key,
): Task {
  const id = farm.newTaskId();
  // startedAt starts as a clock reading, not 0: V8 would keep a small integer field and migrate
  // every task to a wider layout at its first dispatch (a microsecond per task, measured).
  const now = farm.now();
  return {
    id,
    key: key ?? id,
    attempt: 1,
    type,
    resource,
    payload,
    raw,
    data,
    policy,
    failures: 0,
    losses: 0,
    notBefore: 0,
    cancelled: false,
    queuedAt: now,
    startedAt: now,
  };
}

/** Values msgpack always carries and that cost nothing to keep as they are until they leave. */
export function isScalar(v: unknown): v is number | string | boolean | null {
  const t = typeof v;
  return t === 'number' || t === 'string' || t === 'boolean' || v === null;
}

/** A worker's room in its window, as a Master fills it. */
export interface Slot {
  readonly rank: number;
  /** How many more tasks it may be sent. */
  free: number;
  /** It has tasks in flight: what it is sent joins a queue on the worker. */
  busy: boolean;
}

/** A task's outcome; `raw` as Task.raw: the payload is binary data's own bytes, not msgpack. */
export type Outcome = { ok: true; payload: Buffer; raw?: boolean } | { ok: false; error: WireError };

/**
 * joining: registered, has not said `ready` yet; idle: nothing in flight; busy: tasks in flight;
 * terminating: told to exit, waiting for its `bye`.
 */
export type WorkerState = 'joining' | 'idle' | 'busy' | 'terminating';

export interface WorkerRecord {
  readonly rank: number;
  /** Changes when the same worker process reconnects before its old connection was noticed dead. */
  peer: PeerId;
  readonly host: string;
  readonly pid: number;
  readonly instance: string | null;
  state: WorkerState;
  /** The task it runs, as far as the coordinator can tell: the oldest one in flight. */
  task: Task | null;
  /** Tasks in flight behind `task`, waiting on the worker in the order they were sent (window above 1). */
  readonly backlog: Task[];
  /** Its agreed window and its pace, from which its window is sized. */
  readonly pace: WorkerPace;
  /** It reads raw payloads (register.raw): binary data goes to it without a msgpack copy. */
  readonly raw: boolean;
  readonly joinedAt: number;
  lastSeen: number;
}

/**
 * How a worker left: `bye` (it said so), `disconnected` (its connection dropped), `silent` (idle
 * without a heartbeat for livenessMs).
 */
export type LeaveReason = 'bye' | 'disconnected' | 'silent';

/** What a Master implements to follow its workers. */
export interface FarmListener {
  workerReady(rank: number): void;
  taskFinished(rank: number, task: Task, outcome: Outcome): void;
  /**
   * The worker left with tasks in flight, to be run again elsewhere: `running`, handed back when
   * `reason` is `bye` (a worker stopping), lost with the worker otherwise; and `waiting`, the tasks
   * queued behind it that it never started, in the order they were sent.
   */
  workerGone(rank: number, running: Task | null, waiting: readonly Task[], reason: LeaveReason): void;
  /** A task taken back unstarted from a worker whose running task turned out long (see tick()), to run elsewhere. */
  taskReturned(rank: number, task: Task): void;
}

export type DropReason =
  | 'unregistered' // a message other than register from a peer that has not registered
  | 'reregister' // register from a peer that holds a rank already
  | 'stale-result' // a result for a task or attempt the sender does not hold (a late one from a lost worker)
  | 'unexpected-ready' // ready from a worker that is not joining
  | 'unread'; // a message to a peer whose queue is full: it does not read what it is sent

export class Farm {
  readonly settings: WorkerSettings;
  readonly window: WindowSettings;
  readonly outbox: Array<[PeerId, Envelope]> = [];
  readonly #ranks: RankTable;
  readonly #byRank = new Map<number, WorkerRecord>();
  readonly #byPeer = new Map<PeerId, WorkerRecord>();
  readonly #byInstance = new Map<string, WorkerRecord>();
  readonly #connected = new Set<PeerId>();
  readonly #owners = new Map<number, FarmListener>();
  #adopter: FarmListener | null = null;
  /** Busy workers told to terminate: they finish their task, then exit. */
  readonly #terminateRequested = new Set<number>();
  /**
   * Workers whose running task has run long with others waiting behind it: the waiting ones are
   * taken back, and the worker gets nothing more until that task is done.
   */
  readonly #stalled = new Set<WorkerRecord>();
  /** Tasks asked back from a stalled worker, until it answers for them. */
  readonly #recalled = new Set<Task>();
  /** Tasks in flight on all workers (window.maxTotal bounds it). */
  #inFlight = 0;
  #nextTaskId = 1;
  #closing = false;

  readonly observer: CoordinatorObserver;
  /** The farm's clock, in ms: the shell passes a monotonic one, tests a scripted one. */
  readonly now: () => number;

  constructor(
    settings: WorkerSettings,
    options: { firstFreeRank?: number; observer?: CoordinatorObserver; clock?: () => number; window?: WindowSettings } = {},
  ) {
    this.settings = settings;
    this.window = options.window ?? DEFAULT_WINDOW;
    this.#ranks = new RankTable(options.firstFreeRank ?? 1);
    this.observer = options.observer ?? {};
    this.now = options.clock ?? (() => 0);
  }

  // --- queries -------------------------------------------------------------------------------

  worker(rank: number): WorkerRecord | undefined {
    return this.#byRank.get(rank);
  }

  workers(): IterableIterator<WorkerRecord> {
    return this.#byRank.values();
  }

  get workerCount(): number {
    return this.#byRank.size;
  }

  /** The rank a peer registered as, or null. */
  rankOf(peer: PeerId): number | null {
    return this.#byPeer.get(peer)?.rank ?? null;
  }

  owner(rank: number): FarmListener | undefined {
    return this.#owners.get(rank);
  }

  newTaskId(): number {
    return this.#nextTaskId++;
  }

  // --- ownership (Masters) ---------------------------------------------------------------------

  /** Gives `rank` to `listener`; a registered idle worker is announced to its new owner at once. */
  setOwner(rank: number, listener: FarmListener | null): void {
    if (listener === null) this.#owners.delete(rank);
    else this.#owners.set(rank, listener);
  }

  /** The listener that takes every worker nobody owns, now and when it becomes ready. */
  setAdopter(listener: FarmListener | null): void {
    this.#adopter = listener;
    if (listener === null) return;
    for (const w of this.#byRank.values()) {
      if (!this.#owners.has(w.rank) && w.state === 'idle') {
        this.#owners.set(w.rank, listener);
        listener.workerReady(w.rank);
      }
    }
  }

  get adopter(): FarmListener | null {
    return this.#adopter;
  }

  // --- commands from Masters -----------------------------------------------------------------

  /** How many more tasks `rank` may be sent now: its window less what it has in flight (WorkerPace.room). */
  capacity(rank: number): number {
    const w = this.#sendable(rank);
    return w === null ? 0 : this.#room(w, inFlight(w));
  }

  /**
   * `rank`'s room as a slot to fill, or null unless the room is worth a message
   * (WorkerPace.worthSending): what a Master asks before it starts to fill a window; once started,
   * it fills it up to capacity().
   */
  refill(rank: number): Slot | null {
    const w = this.#sendable(rank);
    if (w === null) return null;
    const held = inFlight(w);
    const room = this.#room(w, held);
    return w.pace.worthSending(room, held, this.window, this.#byRank.size) ? { rank, free: room, busy: held > 0 } : null;
  }

  #room(w: WorkerRecord, held: number): number {
    return w.pace.room(held, this.window, this.#byRank.size, this.window.maxTotal - this.#inFlight);
  }

  #sendable(rank: number): WorkerRecord | null {
    const w = this.#byRank.get(rank);
    if (!w || (w.state !== 'idle' && w.state !== 'busy') || this.#terminateRequested.has(rank)) return null;
    if (this.#stalled.size > 0 && this.#stalled.has(w)) return null;
    return w;
  }

  /** Sends `task` to a worker with room for it. The caller (a Master) has checked readiness or capacity. */
  dispatch(rank: number, task: Task, kind: DispatchKind): void {
    const w = this.#byRank.get(rank);
    if (!w || (w.state !== 'idle' && w.state !== 'busy')) throw new Error(`internal: dispatch to rank ${rank} in state ${w?.state ?? 'absent'}`);
    w.state = 'busy';
    if (w.task === null) w.task = task;
    else w.backlog.push(task);
    this.#inFlight++;
    task.startedAt = this.now();
    this.observer.dispatched?.(w, task, kind);
    if (task.payload !== null) w.pace.bytes += task.payload.length;
    this.outbox.push([w.peer, workFor(w, task)]);
  }

  /**
   * Asks `rank`'s worker to abort task `taskId` (or to drop it unstarted). The task stays in flight
   * until the worker answers; its answer, whatever it is, reaches the owner as an ECANCELLED error.
   * Returns false when the worker does not hold the task.
   */
  cancel(rank: number, taskId: number): boolean {
    const w = this.#byRank.get(rank);
    const task = w?.task?.id === taskId ? w.task : w?.backlog.find((t) => t.id === taskId);
    if (!w || !task) return false;
    if (task.cancelled) return true;
    task.cancelled = true;
    this.outbox.push([w.peer, { t: 'cancel', id: task.id, attempt: task.attempt }]);
    return true;
  }

  /** Whether messages to `peer` may carry batches (its window is above 1). */
  batches(peer: PeerId): boolean {
    return (this.#byPeer.get(peer)?.pace.agreed ?? 1) > 1;
  }

  /**
   * The clock's sweep, several times a second: an idle or joining worker silent for livenessMs is
   * lost; a task past its timeout plus `graceMs` fails with ETIMEDOUT and its worker (stuck in a
   * handler that ignores its abort signal, or it would have answered) is told to go; it is replaced
   * when it reconnects or its process is recycled. While some worker sits idle, a worker whose
   * running task has run for the window's `recallMs` (longer on a worker that is always slow to
   * answer: WorkerPace.recallAfter) with others waiting behind it is asked for those back (a
   * `cancel` each, which a worker answers for an unstarted task with ECANCELLED), so that a long
   * task does not hold short ones hostage while other workers could run them.
   */
  tick(now: number, graceMs: number): void {
    const workers = [...this.#byRank.values()];
    const idle = workers.some((w) => w.state === 'idle');
    for (const w of workers) {
      if (w.state === 'busy') {
        const task = w.task!;
        const limit = task.policy.timeoutMs;
        if (limit !== null && now - task.startedAt > limit + graceMs) this.#timedOut(w, now);
        else if (idle && w.backlog.length > 0 && now - task.startedAt >= w.pace.recallAfter(this.window) && !this.#stalled.has(w)) this.#recall(w);
      } else if ((w.state === 'idle' || w.state === 'joining') && now - w.lastSeen > this.settings.livenessMs) {
        this.#remove(w, 'silent', now);
      }
    }
  }

  /** Tells a worker to exit once its current task (if any) is done. */
  terminate(rank: number): void {
    const w = this.#byRank.get(rank);
    if (!w || w.state === 'terminating' || this.#terminateRequested.has(rank)) return;
    if (w.state === 'busy') this.#terminateRequested.add(rank);
    else w.state = 'terminating';
    this.outbox.push([w.peer, { t: 'terminate' }]);
  }

  /** From now on, registrations are refused: the coordinator is shutting down. */
  close(): void {
    this.#closing = true;
  }

  // --- events from the transport -------------------------------------------------------------

  connected(peer: PeerId): void {
    this.#connected.add(peer);
  }

  /** The peer's connection dropped (ROUTER notify, transport heartbeat expiry or process death). */
  disconnected(peer: PeerId): void {
    this.#connected.delete(peer);
    const w = this.#byPeer.get(peer);
    if (w) this.#remove(w, 'disconnected', this.now());
  }

  isConnected(peer: PeerId): boolean {
    return this.#connected.has(peer);
  }

  /** Answers a peer whose header was unreadable because it speaks another protocol version. */
  rejectVersion(peer: PeerId, peerVersion: unknown, ours: number): void {
    // describeValue, never String(): a peer's map with a `toString` key would make String() throw.
    const message = `protocol version ${describeValue(peerVersion)} is not supported; this coordinator speaks version ${ours}`;
    this.outbox.push([peer, { t: 'reject', code: 'EVERSION', message, version: ours }]);
    this.observer.rejected?.(peer, 'EVERSION', message);
  }

  /** Answers an unregistered peer whose message could not be decoded, so that it learns why. */
  rejectMalformed(peer: PeerId, message: string): void {
    this.outbox.push([peer, { t: 'reject', code: 'EPROTOCOL', message }]);
    this.observer.rejected?.(peer, 'EPROTOCOL', message);
  }

  receive(peer: PeerId, msg: WorkerMessage, now: number): void {
    const w = this.#byPeer.get(peer);
    if (msg.t === 'register') {
      if (w) this.observer.dropped?.(peer, 'reregister', `rank ${w.rank} sent register again`);
      else this.#register(peer, msg, now);
      return;
    }
    if (!w) {
      this.observer.dropped?.(peer, 'unregistered', `'${msg.t}' before register`);
      if (msg.t !== 'bye') this.outbox.push([peer, { t: 'reject', code: 'ENOTREGISTERED', message: 'register first' }]);
      return;
    }
    w.lastSeen = now;
    switch (msg.t) {
      case 'ready':
        // Said on the way out by a worker told to terminate before it was ready, or again by a
        // worker that took over its record after a reconnect: nothing to do.
        if (w.state === 'terminating' || (w.state !== 'joining' && w.instance !== null)) return;
        if (w.state !== 'joining') {
          this.observer.dropped?.(peer, 'unexpected-ready', `rank ${w.rank} is ${w.state}`);
          return;
        }
        w.state = 'idle';
        this.#announceReady(w);
        return;
      case 'result':
      case 'error':
        // Acknowledged whether accepted or stale: either way the worker may forget it.
        this.outbox.push([peer, { t: 'ack', id: msg.id, attempt: msg.attempt }]);
        this.#answered(w, now);
        if (msg.us !== undefined) w.pace.observe(msg.us, 1);
        this.#outcome(w, msg.id, msg.attempt, msg.t === 'result' ? { ok: true, payload: msg.payload as Buffer, raw: msg.raw === true } : { ok: false, error: msg.error }, now);
        return;
      case 'results':
        this.outbox.push([peer, { t: 'receipt', seq: msg.seq }]);
        this.#answered(w, now);
        w.pace.observe(msg.us, msg.results.length);
        for (const r of msg.results) this.#outcome(w, r.id, r.attempt, { ok: true, payload: r.payload as Buffer, raw: false }, now);
        return;
      case 'bye':
        this.#remove(w, 'bye', now);
        return;
      case 'heartbeat':
        // Both ways: the worker learns the coordinator still knows it.
        this.outbox.push([peer, { t: 'heartbeat' }]);
        return;
    }
  }

  /** Outcomes came from `w`: how long they took, while tasks waited behind its running one, sets how patient recalls are with it. */
  #answered(w: WorkerRecord, now: number): void {
    if (w.task !== null && w.backlog.length > 0) w.pace.observeAnswer(now - w.task.startedAt);
  }

  #recall(w: WorkerRecord): void {
    this.#stalled.add(w);
    for (const task of w.backlog) {
      if (task.cancelled) continue;
      this.#recalled.add(task);
      this.outbox.push([w.peer, { t: 'cancel', id: task.id, attempt: task.attempt }]);
    }
  }

  /** What a worker reported for (id, attempt): the outcome of a task it holds, or a stale report. */
  #outcome(w: WorkerRecord, id: number, attempt: number, outcome: Outcome, now: number): void {
    let task = w.task;
    if (task !== null && task.id === id && task.attempt === attempt) {
      // The usual case: the task it ran; the next one it holds starts now.
      const next = w.backlog.shift() ?? null;
      w.task = next;
      if (next !== null) next.startedAt = now;
      if (this.#stalled.size > 0) this.#stalled.delete(w);
    } else {
      // A task it dropped unstarted (cancelled), or reported out of order.
      const i = w.backlog.findIndex((t) => t.id === id && t.attempt === attempt);
      if (i < 0) {
        this.observer.dropped?.(w.peer, 'stale-result', `rank ${w.rank} reported task ${id} attempt ${attempt}`);
        return;
      }
      task = w.backlog.splice(i, 1)[0]!;
    }
    if (this.#recalled.size > 0 && this.#recalled.delete(task) && !task.cancelled && !outcome.ok && outcome.error.code === 'ECANCELLED') {
      // Given back unstarted (or aborted at its start): it runs elsewhere, no harm done.
      this.#release(w, task);
      this.#owners.get(w.rank)?.taskReturned(w.rank, task);
      return;
    }
    if (task.cancelled) outcome = { ok: false, error: { name: 'CancelledError', message: `task ${task.id} was cancelled`, code: 'ECANCELLED' } };
    this.#finish(w, task, outcome, now);
  }

  #finish(w: WorkerRecord, task: Task, outcome: Outcome, now: number): void {
    this.#release(w, task);
    this.observer.finished?.(w, task, outcome.ok, now);
    this.#owners.get(w.rank)?.taskFinished(w.rank, task, outcome);
  }

  /** `task`, out of w's hands now, no longer counts against its window. */
  #release(w: WorkerRecord, task: Task): void {
    this.#inFlight--;
    // Scalars are a few bytes, encoded when they leave: not counted.
    if (task.payload !== null) w.pace.bytes -= task.payload.length;
    // A worker told to terminate while busy finishes what it holds first, then exits.
    if (w.task === null && w.state === 'busy') w.state = this.#terminateRequested.delete(w.rank) ? 'terminating' : 'idle';
  }

  #timedOut(w: WorkerRecord, now: number): void {
    const task = w.task!;
    const error = { name: 'TimeoutError', message: `task ${task.id} exceeded its timeout of ${task.policy.timeoutMs} ms`, code: 'ETIMEDOUT' };
    // The tasks behind it stay in flight until the worker leaves, and are handed back then.
    w.task = null;
    this.#inFlight--;
    w.state = 'terminating';
    this.#terminateRequested.delete(w.rank);
    this.observer.finished?.(w, task, false, now);
    this.#owners.get(w.rank)?.taskFinished(w.rank, task, { ok: false, error });
    this.outbox.push([w.peer, { t: 'terminate' }]);
  }

  #register(peer: PeerId, msg: Register, now: number): void {
    const reject = (code: 'ERANKTAKEN' | 'ESHUTDOWN', message: string) => {
      this.outbox.push([peer, { t: 'reject', code, message }]);
      this.observer.rejected?.(peer, code, message);
    };
    if (this.#closing) return reject('ESHUTDOWN', 'the coordinator is shutting down');
    const previous = msg.instance === null ? undefined : this.#byInstance.get(msg.instance);
    if (previous) {
      // The same process on a new connection, before its old one was noticed dead: it keeps its
      // rank and its task in flight, whose result it will send again.
      this.#byPeer.delete(previous.peer);
      previous.peer = peer;
      previous.lastSeen = now;
      this.#byPeer.set(peer, previous);
      this.outbox.push([peer, { t: 'welcome', rank: previous.rank, settings: this.#settingsFor(previous) }]);
      // Tasks sent on the old connection may never have arrived, and nobody would run them: they
      // go again, marked, and the worker runs those it does not hold. (With window 1 the worker
      // sends again the result of its one task, or runs it; it cannot take a second.)
      if (previous.pace.agreed > 1 && previous.task !== null) {
        for (const task of [previous.task, ...previous.backlog]) this.outbox.push([peer, { ...workFor(previous, task), resent: true }]);
      }
      return;
    }
    let rank: number;
    if (msg.rank !== null) {
      if (!this.#ranks.claim(msg.rank)) {
        const holder = this.#byRank.get(msg.rank);
        return reject('ERANKTAKEN', `rank ${msg.rank} is held by another worker${holder ? ` (host ${holder.host}, pid ${holder.pid})` : ''}`);
      }
      rank = msg.rank;
    } else {
      rank = this.#ranks.allocate();
    }
    const pace = new WorkerPace(Math.min(msg.window ?? 1, this.window.max));
    const w: WorkerRecord = { rank, peer, host: msg.host, pid: msg.pid, instance: msg.instance, state: 'joining', task: null, backlog: [], pace, raw: msg.raw === true, joinedAt: now, lastSeen: now };
    this.#byRank.set(rank, w);
    this.#byPeer.set(peer, w);
    if (w.instance !== null) this.#byInstance.set(w.instance, w);
    this.outbox.push([peer, { t: 'welcome', rank, settings: this.#settingsFor(w) }]);
    this.observer.joined?.(w);
  }

  /**
   * The settings, with the window agreed with this worker (left out at 1, as a version-1 peer
   * expects), and `raw` (we read raw results) for a worker that reads raw payloads itself.
   */
  #settingsFor(w: WorkerRecord): WorkerSettings {
    const s: WorkerSettings = w.pace.agreed > 1 ? { ...this.settings, window: w.pace.agreed } : { ...this.settings };
    if (w.raw) s.raw = true;
    return s;
  }

  #announceReady(w: WorkerRecord): void {
    let owner = this.#owners.get(w.rank);
    if (!owner && this.#adopter) {
      owner = this.#adopter;
      this.#owners.set(w.rank, owner);
    }
    owner?.workerReady(w.rank);
  }

  #remove(w: WorkerRecord, reason: LeaveReason, now: number): void {
    // Told to exit, holding nothing, it hung up: it did as it was told, its bye lost as its process
    // ended (a process of several workers exits once the last is done). Not a loss to alert on.
    if (reason === 'disconnected' && w.state === 'terminating' && inFlight(w) === 0) reason = 'bye';
    let task = w.task;
    // A worker that died after its task's timeout was most likely recycled for ignoring it: that is
    // the task's failure (retried or failed per policy), not a loss to run again as it was.
    if (task && task.policy.timeoutMs !== null && now - task.startedAt >= task.policy.timeoutMs) {
      this.#timedOut(w, now);
      task = null;
    }
    this.#byRank.delete(w.rank);
    this.#byPeer.delete(w.peer);
    if (w.instance !== null) this.#byInstance.delete(w.instance);
    this.#ranks.release(w.rank);
    this.#terminateRequested.delete(w.rank);
    this.#stalled.delete(w);
    this.#inFlight -= inFlight(w);
    w.task = null;
    const waiting = w.backlog.splice(0);
    for (const t of waiting) this.#recalled.delete(t);
    this.observer.left?.(w, reason, task, waiting);
    this.#owners.get(w.rank)?.workerGone(w.rank, task, waiting, reason);
  }
}

/** The `work` envelope of `task` for `w`: binary data raw if `w` reads raw payloads, else msgpack as it always was. */
function workFor(w: WorkerRecord, task: Task): Work {
  let payload = task.payload ?? encodePayload(task.data);
  const raw = task.raw && w.raw;
  if (task.raw && !raw) payload = encodePayload(payload);
  return { t: 'work', id: task.id, attempt: task.attempt, type: task.type, resource: task.resource, timeoutMs: task.policy.timeoutMs, payload, raw };
}

/** Tasks in flight on a worker. */
export function inFlight(w: WorkerRecord): number {
  return (w.task === null ? 0 : 1) + w.backlog.length;
}
