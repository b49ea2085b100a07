/**
 * The seed's Master: a group of worker ranks, each ready, running a task, or holding a completed
 * result until the application collects it with getData(). A worker becomes ready again only once
 * its previous result has been collected, exactly as in mpi-master-slave.
 *
 * A WorkQueue that collects every result the moment it arrives (`onTaskFinished`) drives its Master
 * differently: it sends tasks with send() to any worker with room in its window (window.ts), several
 * at a time, instead of one per ready worker.
 */
import { decodeValue, encodePayload, rawPayload, type Key } from '@taskfarm/protocol';
import { RankOwnedError, TaskError, WorkerNotReadyError } from './errors.ts';
import { newTask, resolvePolicy, type Farm, type FarmListener, type LeaveReason, type Outcome, type Slot, type Task, type TaskPolicy, type WorkerRecord } from './farm.ts';
import type { Journal } from './journal.ts';
import type { DispatchKind } from './observer.ts';

export interface WaitOptions {
  /** Resolve with `false` after this many ms without a change. Default: wait until something changes. */
  timeoutMs?: number;
  /** Reject with the signal's reason when it aborts. */
  signal?: AbortSignal;
}

/**
 * Whether a group of Masters can expect workers: `none` means never (no ranks at all), `absent` that
 * none of their workers has connected yet, `present` that at least one is connected.
 */
export type Supply = 'none' | 'absent' | 'present';

/** What a Master needs from the coordinator it runs on; `Coordinator` implements it. */
export interface FarmHost {
  readonly farm: Farm;
  /** Where queues record outcomes so that a restarted coordinator resumes its job; null without one. */
  readonly journal: Journal | null;
  /** Sends whatever the farm has queued, soon (the shell batches within a tick). */
  flush(): void;
  /** Resolves when the farm's state changes; see Master.changed(). */
  waitForChange(options: WaitOptions, supply: () => Supply): Promise<boolean>;
  attach(master: Master): void;
  detach(master: Master): void;
}

export interface MasterOptions {
  /** The coordinator to run on. Default: the process's shared coordinator, configured from the environment. */
  coordinator?: FarmHost;
  /** Sent to workers with each task (`TaskContext.type`), so that one worker can serve several types. Default null. */
  taskType?: Key | null;
  /** Timeout of the tasks run() sends, in ms (retries and losses are the queues' business). Default none. */
  timeoutMs?: number | null;
}

/** A completed task as the queues collect it. */
export interface Completion {
  readonly rank: number;
  readonly task: Task;
  readonly outcome: Outcome;
}

let defaultHost: (() => FarmHost) | null = null;
/** Set by the coordinator module: how a Master without an explicit coordinator finds one. */
export function setDefaultHost(factory: () => FarmHost): void {
  defaultHost = factory;
}

export class Master implements FarmListener {
  readonly host: FarmHost;
  /** Sent with each task; a MultiWorkQueue sets it to the Master's task id when it is unset. */
  taskType: Key | null;
  readonly policy: TaskPolicy;
  readonly #ranks = new Set<number>();
  /** Ready ranks in the order they became ready, so the longest-idle worker is offered first. */
  readonly #ready = new Set<number>();
  /** Ranks that may have room in their window (send()); pruned by slots() when they have none. */
  readonly #open = new Set<number>();
  #inFlight = 0;
  readonly #completed = new Map<number, Completion>();
  readonly #lost: Task[] = [];
  #terminating: { pending: Set<number>; resolve: () => void; promise: Promise<void> } | null = null;
  #terminated = false;
  /** The queued task run() is dispatching on behalf of runQueued(). */
  #queuedTask: Task | null = null;
  #queuedKind: DispatchKind = 'direct';
  /** Bumped whenever a worker of this Master became ready, finished or left; see changed(). */
  #version = 0;
  #seenVersion = 0;
  /**
   * Told when a worker of this Master leaves, with the tasks it had in flight (see
   * FarmListener.workerGone); a WorkQueue puts them back at the head of its queue. Without one, lost
   * tasks wait in getLostWork().
   */
  onWorkerGone: ((rank: number, running: Task | null, waiting: readonly Task[], reason: LeaveReason) => void) | null = null;
  /**
   * Told of every completion as it arrives, instead of keeping it for getData(): a WorkQueue's way to
   * collect at once, so that its workers never wait to be collected and may hold several tasks.
   */
  onTaskFinished: ((rank: number, task: Task, outcome: Outcome) => void) | null = null;
  /** Told of a task a worker gave back unstarted (FarmListener.taskReturned); without one, it waits in getLostWork(). */
  onTaskReturned: ((rank: number, task: Task) => void) | null = null;

  /**
   * @param workers the ranks this Master controls, as in the seed (`range(1, size())`). Omitted:
   *   the Master adopts every worker no other Master owns, including workers that join later.
   */
  constructor(workers?: Iterable<number>, options: MasterOptions = {}) {
    if (!options.coordinator && !defaultHost) throw new Error('internal: no default coordinator registered');
    this.host = options.coordinator ?? defaultHost!();
    this.taskType = options.taskType ?? null;
    this.policy = resolvePolicy({ timeoutMs: options.timeoutMs ?? null });
    this.host.attach(this);
    if (workers === undefined) {
      if (this.host.farm.adopter === null) this.host.farm.setAdopter(this);
    } else {
      for (const rank of workers) this.addWorker(rank);
    }
  }

  /** True when this Master takes every unowned worker that joins. */
  get adopting(): boolean {
    return this.host.farm.adopter === this;
  }

  /** Stops adopting joining workers (a MultiWorkQueue deals workers out itself). */
  stopAdopting(): void {
    if (this.adopting) this.host.farm.setAdopter(null);
  }

  numWorkers(): number {
    return this.#ranks.size;
  }

  ranks(): number[] {
    return [...this.#ranks];
  }

  /** Gives this Master a worker rank. The rank need not have connected yet. */
  addWorker(rank: number): void {
    if (!Number.isSafeInteger(rank) || rank < 1) throw new RangeError(`worker ranks are integers >= 1, not ${rank}`);
    const farm = this.host.farm;
    const owner = farm.owner(rank);
    if (owner && owner !== this) throw new RankOwnedError(rank);
    this.#ranks.add(rank);
    farm.setOwner(rank, this);
    if (farm.worker(rank)?.state === 'idle' && !this.#completed.has(rank)) this.workerReady(rank);
  }

  /** Releases a ready worker (only a ready one, as in the seed); returns whether it was released. */
  removeWorker(rank: number): boolean {
    if (!this.#ready.has(rank)) return false;
    this.#ready.delete(rank);
    this.#open.delete(rank);
    this.#ranks.delete(rank);
    this.host.farm.setOwner(rank, null);
    return true;
  }

  /** Moves a ready worker (the given one, or the first ready) to another Master; returns its rank or null. */
  moveWorker(to: Master, rank?: number): number | null {
    const r = rank ?? this.#ready.values().next().value;
    if (r === undefined || !this.removeWorker(r)) return null;
    to.addWorker(r);
    return r;
  }

  getReadyWorkers(): number[] {
    return [...this.#ready];
  }

  hasReadyWorker(): boolean {
    return this.#ready.size > 0;
  }

  /**
   * Sends `data` to a ready worker; returns the task id. Throws WorkerNotReadyError otherwise, and
   * PayloadError if msgpack cannot carry `data`. Subclasses may override it (the seed's example 5
   * wraps data with its task type here); the queues then hand out their work through it.
   */
  run(rank: number, data: unknown): number {
    this.#assertReady(rank);
    const queued = this.#queuedTask;
    const bytes = rawPayload(data);
    const payload = bytes ?? encodePayload(data);
    const raw = bytes !== null;
    if (queued) {
      // The queue's task, carrying what run() made of its data.
      this.dispatch(rank, { ...queued, payload, raw }, this.#queuedKind);
      return queued.id;
    }
    const task = newTask(this.host.farm, this.taskType, null, payload, raw, undefined, this.policy);
    this.dispatch(rank, task, 'direct');
    return task.id;
  }

  /** True when a subclass overrides run(), so a queue must keep each task's data to pass it there. */
  get overridesRun(): boolean {
    return this.run !== Master.prototype.run;
  }

  /** True when a subclass overrides getData(), so a queue must collect through it. */
  get overridesGetData(): boolean {
    return this.getData !== Master.prototype.getData;
  }

  /** How a queue hands out a task: through an overriding run() with the task's data, else directly. */
  runQueued(rank: number, task: Task, kind: DispatchKind): void {
    if (!this.overridesRun) return this.dispatch(rank, task, kind);
    this.#queuedTask = task;
    this.#queuedKind = kind;
    try {
      this.run(rank, task.data);
    } finally {
      this.#queuedTask = null;
    }
  }

  /** Sends an already-encoded task to a ready worker. */
  dispatch(rank: number, task: Task, kind: DispatchKind): void {
    this.#assertReady(rank);
    this.#send(rank, task, kind);
  }

  /**
   * Sends a task to a worker with room in its window, busy or not (a slot from slots()), and returns
   * how much room it has left. For a queue that collects through onTaskFinished: results never wait
   * for getData() there.
   */
  send(rank: number, task: Task, kind: DispatchKind): number {
    const farm = this.host.farm;
    if (!this.hasRoom(rank)) throw new WorkerNotReadyError(rank, 'its window is full');
    this.#send(rank, task, kind);
    return farm.capacity(rank);
  }

  /** Whether send() may send `rank` a task now. */
  hasRoom(rank: number): boolean {
    return this.#ranks.has(rank) && !this.#terminating && this.host.farm.capacity(rank) > 0;
  }

  #send(rank: number, task: Task, kind: DispatchKind): void {
    this.#ready.delete(rank);
    this.#inFlight++;
    this.host.farm.dispatch(rank, task, kind);
    this.host.flush();
  }

  /**
   * Up to `count` workers with room in their windows worth a message (Farm.refill), longest-open
   * first, with how many more tasks each may take. Only ranks that gained room since they were last
   * full are looked at, and no more of them than asked for: a queue of a few tasks costs a few steps
   * here, however many workers are idle.
   */
  slots(count: number): Slot[] {
    const out: Slot[] = [];
    if (this.#terminating) return out;
    const farm = this.host.farm;
    for (const rank of this.#open) {
      if (out.length >= count) break;
      const slot = farm.refill(rank);
      if (slot) out.push(slot);
      else this.#open.delete(rank);
    }
    return out;
  }

  getCompletedWorkers(): number[] {
    return [...this.#completed.keys()];
  }

  /**
   * The result of the task a completed worker ran, which makes the worker ready again. A task whose
   * handler threw yields a TaskError (it is returned, not thrown, so that the run goes on).
   * Undefined for a rank with nothing to collect, as in the seed.
   */
  getData(rank: number): unknown {
    const c = this.#collect(rank);
    return c === undefined ? undefined : valueOf(c);
  }

  /**
   * Asks the worker running task `taskId` to abort it; the task then completes with an ECANCELLED
   * TaskError once the worker answers. Returns false when no worker of this Master runs it.
   */
  cancel(taskId: number): boolean {
    if (this.#inFlight === 0) return false;
    for (const rank of this.#ranks) {
      if (!this.host.farm.cancel(rank, taskId)) continue;
      this.host.flush();
      return true;
    }
    return false;
  }

  /** The completed task of `rank`, without collecting it. */
  completion(rank: number): Completion | undefined {
    return this.#completed.get(rank);
  }

  /** Collects every completed task at once (the queues use this). */
  takeCompleted(): Completion[] {
    const out = [...this.#completed.values()];
    for (const c of out) this.#collect(c.rank);
    return out;
  }

  /** Tasks lost with their worker when nobody (no queue) took them back; their data, oldest first. */
  getLostWork(): unknown[] {
    return this.#lost.splice(0).map((t) => (t.payload ? decodeValue(t.payload, t.raw) : t.data));
  }

  /** Nothing running and nothing left to collect. */
  done(): boolean {
    return this.#inFlight === 0 && this.#completed.size === 0;
  }

  /** Tasks in flight on this Master's workers. */
  get runningCount(): number {
    return this.#inFlight;
  }

  /** Completed tasks whose results have not been collected. */
  get completedCount(): number {
    return this.#completed.size;
  }

  /**
   * Resolves with true when anything changed (a result arrived, a worker joined or left), or false
   * after `timeoutMs`. Rejects with NoWorkersError when this Master has no ranks at all, or none of
   * them connected within the coordinator's `workerWaitMs`. This replaces the seed's sleep.
   */
  changed(options: WaitOptions = {}): Promise<boolean> {
    if (this.takeChange()) return Promise.resolve(true);
    return this.host.waitForChange(options, this.#supplyNow).then(this.#afterWait);
  }

  // Made once: changed() runs once per application loop turn, and per submit() round trip.
  readonly #supplyNow = (): Supply => this.supply();
  readonly #afterWait = (changed: boolean): boolean => {
    this.takeChange();
    return changed;
  };

  /**
   * Whether anything happened to this Master's workers since the last call. changed() resolves at
   * once when something did, so a loop never sleeps through an event that came while it was busy
   * elsewhere (or through a worker it made ready itself with getData()).
   */
  takeChange(): boolean {
    const changed = this.#version !== this.#seenVersion;
    this.#seenVersion = this.#version;
    return changed;
  }

  /**
   * Resolves once `count` of this Master's workers have connected and said ready (default: all its
   * ranks), like Dask's wait_for_workers. Rejects as changed() does, e.g. NoWorkersError after
   * workerWaitMs.
   */
  async waitForWorkers(count = this.#ranks.size, options: WaitOptions = {}): Promise<void> {
    while (this.#connectedCount((w) => w.state !== 'joining') < count) await this.changed(options);
  }

  #connectedCount(which: (w: WorkerRecord) => boolean): number {
    const farm = this.host.farm;
    let n = 0;
    if (this.adopting) {
      for (const w of farm.workers()) if (which(w)) n++;
    } else {
      for (const r of this.#ranks) {
        const w = farm.worker(r);
        if (w && which(w)) n++;
      }
    }
    return n;
  }

  supply(): Supply {
    if (!this.adopting && this.#ranks.size === 0) return 'none';
    // Asked on every wait: look no further than the first worker connected.
    if (this.adopting) return this.host.farm.workerCount > 0 ? 'present' : 'absent';
    for (const r of this.#ranks) if (this.host.farm.worker(r)) return 'present';
    return 'absent';
  }

  /**
   * Tells every worker of this Master to exit and resolves once each connected one has said bye.
   * Ranks that connect later are told to exit as soon as they are ready.
   */
  terminateWorkers(): Promise<void> {
    if (this.#terminating) return this.#terminating.promise;
    const farm = this.host.farm;
    this.stopAdopting();
    const pending = new Set<number>();
    for (const r of this.#ranks) {
      if (farm.worker(r)) {
        pending.add(r);
        farm.terminate(r);
      }
    }
    this.#ready.clear();
    this.#open.clear();
    this.host.flush();
    let resolve!: () => void;
    const promise = new Promise<void>((res) => (resolve = res));
    this.#terminating = { pending, resolve, promise };
    if (pending.size === 0) this.#finishTerminate();
    return promise;
  }

  #finishTerminate(): void {
    if (this.#terminated) return;
    this.#terminated = true;
    this.#terminating!.resolve();
    this.host.detach(this);
  }

  // --- FarmListener ---------------------------------------------------------------------------

  workerReady(rank: number): void {
    this.#version++;
    this.#ranks.add(rank);
    if (this.#terminating) {
      this.#terminating.pending.add(rank);
      this.host.farm.terminate(rank);
      this.host.flush();
      return;
    }
    if (!this.#completed.has(rank)) this.#reopen(rank);
  }

  taskFinished(rank: number, task: Task, outcome: Outcome): void {
    this.#version++;
    this.#inFlight--;
    if (!this.onTaskFinished) {
      this.#completed.set(rank, { rank, task, outcome });
      return;
    }
    this.onTaskFinished(rank, task, outcome);
    if (this.#ranks.has(rank) && !this.#terminating) this.#reopen(rank);
  }

  taskReturned(rank: number, task: Task): void {
    this.#version++;
    this.#inFlight--;
    if (this.onTaskReturned) this.onTaskReturned(rank, task);
    else this.#lost.push(task);
    if (this.#ranks.has(rank) && !this.#terminating) this.#reopen(rank);
  }

  workerGone(rank: number, running: Task | null, waiting: readonly Task[], reason: LeaveReason): void {
    this.#version++;
    this.#ready.delete(rank);
    this.#open.delete(rank);
    this.#inFlight -= (running ? 1 : 0) + waiting.length;
    if (this.onWorkerGone) this.onWorkerGone(rank, running, waiting, reason);
    else this.#lost.push(...(running ? [running] : []), ...waiting);
    if (this.#terminating?.pending.delete(rank) && this.#terminating.pending.size === 0) this.#finishTerminate();
  }

  // ---------------------------------------------------------------------------------------------

  #collect(rank: number): Completion | undefined {
    const c = this.#completed.get(rank);
    if (c === undefined) return undefined;
    this.#completed.delete(rank);
    if (this.#ranks.has(rank) && !this.#terminating && this.#reopen(rank)) this.#version++;
    return c;
  }

  /** A worker of ours has room again: open to send(); ready to run() too if it is idle. Returns whether it is ready. */
  #reopen(rank: number): boolean {
    this.#open.add(rank);
    if (this.host.farm.worker(rank)?.state !== 'idle') return false;
    this.#ready.add(rank);
    return true;
  }

  #assertReady(rank: number): void {
    if (this.#ready.has(rank)) return;
    let why: string;
    if (!this.#ranks.has(rank)) why = 'it does not belong to this Master';
    else if (this.host.farm.worker(rank)?.state === 'busy') why = 'it is running a task';
    else if (this.#completed.has(rank)) why = 'its previous result has not been collected with getData()';
    else if (this.#terminating) why = 'it is being terminated';
    else why = 'it has not connected';
    throw new WorkerNotReadyError(rank, why);
  }
}

/** The application-facing value of a completion: the decoded result, or a TaskError. */
export function valueOf(c: Completion): unknown {
  if (!c.outcome.ok) return new TaskError(c.outcome.error, c.task, c.rank);
  try {
    return decodeValue(c.outcome.payload, c.outcome.raw);
  } catch (err) {
    return new TaskError({ name: 'ProtocolError', message: (err as Error).message, code: 'EPROTOCOL' }, c.task, c.rank);
  }
}

