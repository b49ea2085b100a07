export * from './envelopes.ts';
export * from './errors.ts';
export * from './codec.ts';
export * from './curve-keys.ts';
export { RateLimiter } from './rate-limit.ts';
export { Deque } from './deque.ts';
export { ResultRecord } from './records.ts';
