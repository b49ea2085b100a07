import type { WireError } from '@taskfarm/protocol';

/** Every error taskfarm raises on purpose carries a stable `code`; match on the code, not the message. */
export class TaskfarmError extends Error {
  override name = 'TaskfarmError';
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** `Master.run` on a rank that is busy, unknown to this Master, or not connected. */
export class WorkerNotReadyError extends TaskfarmError {
  override name = 'WorkerNotReadyError';
  readonly rank: number;
  constructor(rank: number, why: string) {
    super('EWORKERNOTREADY', `worker rank ${rank} is not ready: ${why}`);
    this.rank = rank;
  }
}

/** Work is waiting and no worker can ever take it, or none joined within `workerWaitMs`. */
export class NoWorkersError extends TaskfarmError {
  override name = 'NoWorkersError';
  constructor(message: string) {
    super('ENOWORKERS', message);
  }
}

/** A rank handed to a Master that another Master owns. */
export class RankOwnedError extends TaskfarmError {
  override name = 'RankOwnedError';
  constructor(rank: number) {
    super('ERANKOWNED', `worker rank ${rank} belongs to another Master; move it with moveWorker()`);
  }
}

/** The coordinator was closed (or failed to bind) while the application was waiting on it. */
export class CoordinatorClosedError extends TaskfarmError {
  override name = 'CoordinatorClosedError';
  constructor(message = 'the coordinator is closed', options?: { cause?: unknown }) {
    super('ECLOSED', message, options);
  }
}

/**
 * A task whose handler threw on its worker, or that could not be completed. It is delivered to the
 * application in place of the task's result, so one failing task never stops a run.
 */
export class TaskError extends TaskfarmError {
  override name = 'TaskError';
  /** The task's id within its coordinator. */
  readonly taskId: number;
  /** The attempt that failed (1 for the first). */
  readonly attempt: number;
  /** The rank that ran it, when a worker did. */
  readonly rank: number | null;
  /** The error as the worker reported it. */
  readonly remote: WireError;

  constructor(remote: WireError, task: { id: number; attempt: number }, rank: number | null) {
    super(remote.code ?? 'ETASK', `task ${task.id} failed on rank ${rank ?? '?'}: ${remote.name}: ${remote.message}`);
    this.taskId = task.id;
    this.attempt = task.attempt;
    this.rank = rank;
    this.remote = remote;
    if (remote.stack) this.stack = `${this.name}: ${this.message}\n    --- on the worker ---\n${remote.stack}`;
  }
}
