/** One benchmark worker process (BENCH_SCENARIO, TASKFARM_CONNECT): see bench-worker.ts. */
import { BenchWorker, exitWithParent } from './bench-worker.ts';

const worker = new BenchWorker({ logLevel: 'warn' });
exitWithParent(() => worker.stop());
await worker.run();
