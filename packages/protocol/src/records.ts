/**
 * `work` and `result` envelopes made by constructors rather than object literals, for the places
 * that make them by the thousand and keep them a while (a batch's tasks; a worker's results, kept
 * until the coordinator's receipt).
 *
 * V8 keeps statistics on every object literal's allocation site, and once most of a site's objects
 * outlive a young-generation collection it allocates them in the old generation instead, throwing
 * away every compiled function that inlined the site. In a process of 250 workers, windows of
 * tasks and unreceipted results outlive collections often enough that the batch reader and the
 * worker's task loop were discarded and recompiled 3 to 5 times a run, each compilation taking a
 * core for 10–40 ms (bench scale: worker processes' compiler threads 150–190 ms a run, 120–140
 * without). A constructor call has no allocation site. Its prototype is Object.prototype, so the
 * records are the plain objects an object literal would have made.
 */
import type { Key, Result, Work } from './envelopes.ts';

interface WorkRecordConstructor {
  new (id: number, attempt: number, type: Key | null, resource: Key | null, timeoutMs: number | null, payload: Uint8Array): Work;
}

export const WorkRecord = function (this: Work, id: number, attempt: number, type: Key | null, resource: Key | null, timeoutMs: number | null, payload: Uint8Array) {
  this.t = 'work';
  this.id = id;
  this.attempt = attempt;
  this.type = type;
  this.resource = resource;
  this.timeoutMs = timeoutMs;
  this.payload = payload;
} as unknown as WorkRecordConstructor;
WorkRecord.prototype = Object.prototype;

interface ResultRecordConstructor {
  new (id: number, attempt: number, payload: Uint8Array): Result;
}

export const ResultRecord = function (this: Result, id: number, attempt: number, payload: Uint8Array) {
  this.t = 'result';
  this.id = id;
  this.attempt = attempt;
  this.payload = payload;
} as unknown as ResultRecordConstructor;
ResultRecord.prototype = Object.prototype;
