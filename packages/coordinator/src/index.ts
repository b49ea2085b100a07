export { Coordinator } from './coordinator.ts';
export { Master, type MasterOptions, type WaitOptions } from './master.ts';
export { WorkQueue, type TaskResult } from './work-queue.ts';
export { MultiWorkQueue, type MasterDetail } from './multi-work-queue.ts';
export { DEFAULTS as COORDINATOR_DEFAULTS, type CoordinatorOptions } from './options.ts';
export type { AffinityKind } from './affinity.ts';
export type { WorkerRecord, WorkerState, Task, LeaveReason, DropReason } from './farm.ts';
export type { CoordinatorObserver, DispatchKind } from './observer.ts';
export * from './errors.ts';
