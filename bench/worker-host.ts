/**
 * One process holding BENCH_WORKERS taskfarm workers, each its own DEALER socket connected to
 * TASKFARM_CONNECT and registered for its own rank: the scale scenario's 1,000 workers without
 * 1,000 Node processes. Signals stop every worker (bye, then exit); the parent going away does too.
 */
import { BenchWorker, exitWithParent } from './bench-worker.ts';

const count = Number(process.env.BENCH_WORKERS ?? 1);
if (!(Number.isSafeInteger(count) && count >= 1)) throw new RangeError(`BENCH_WORKERS must be an integer >= 1, not ${process.env.BENCH_WORKERS}`);
const connect = process.env.TASKFARM_CONNECT;
if (!connect) throw new Error('TASKFARM_CONNECT is not set');

const workers = Array.from({ length: count }, () => new BenchWorker({ logLevel: 'warn', handleSignals: false, connect }));
const stopAll = () => {
  for (const w of workers) w.stop();
};
exitWithParent(stopAll);
let signals = 0;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (++signals > 1) process.exit(signal === 'SIGINT' ? 130 : 143);
    stopAll();
  });
}

const outcomes = await Promise.allSettled(workers.map((w) => w.run()));
const failed = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
if (failed.length > 0) {
  console.error(`worker-host: ${failed.length} of ${count} workers failed; the first: ${String(failed[0]!.reason?.stack ?? failed[0]!.reason)}`);
}
process.exit(failed.length > 0 ? 1 : 0);
