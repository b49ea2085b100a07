/** The coordinator refused this worker (`code` is the reject code, e.g. ERANKTAKEN), or it could not register. */
export class RegistrationError extends Error {
  override name = 'RegistrationError';
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/** Why a task's AbortSignal fired; it is also what the coordinator is told the task ended with. */
export class TaskAbortedError extends Error {
  override name: 'TimeoutError' | 'CancelledError' | 'WorkerStoppingError';
  readonly code: 'ETIMEDOUT' | 'ECANCELLED' | 'ESTOPPING';
  constructor(why: 'timeout' | 'cancel' | 'stop', message: string) {
    super(message);
    this.name = why === 'timeout' ? 'TimeoutError' : why === 'cancel' ? 'CancelledError' : 'WorkerStoppingError';
    this.code = why === 'timeout' ? 'ETIMEDOUT' : why === 'cancel' ? 'ECANCELLED' : 'ESTOPPING';
  }
}
