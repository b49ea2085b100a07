export { Worker, type TaskContext } from './worker.ts';
export { RegistrationError, TaskAbortedError } from './errors.ts';
export { WORKER_DEFAULTS, type WorkerOptions } from './options.ts';
export type { WorkerCounters } from './worker.ts';
