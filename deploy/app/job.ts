/**
 * The demo job that docker-compose.yml and the bare-metal instructions run: one script for both
 * parts, as every taskfarm application is. Rank 0 runs a coordinator whose Master adopts every
 * worker that joins (workers are anonymous, e.g. `docker compose up --scale worker=8`), waits for
 * JOB_WORKERS of them, runs JOB_TASKS tasks with resource affinity through a WorkQueue, prints
 *   JOB DONE tasks=N failed=F ranks=1,2,... hosts=H
 * and keeps its coordinator and metrics up for JOB_LINGER_S seconds (`forever`: until SIGTERM), so
 * that Prometheus and Grafana can be looked at, before it terminates the workers and exits.
 *
 *   taskfarm run -n 4 deploy/app/job.ts                                   # one machine
 *   taskfarm run -n 1 --bind tcp://0.0.0.0:5555 --metrics-port 9464 deploy/app/job.ts
 *   taskfarm worker --connect tcp://COORDINATOR:5555 deploy/app/job.ts     # each worker
 *
 * Environment (rank 0): JOB_WORKERS (default 1), JOB_TASKS (100), JOB_TASK_MS (mean task time, 50),
 * JOB_RESOURCES (resources tasks need, for affinity; 4), JOB_LINGER_S (0), and the coordinator's
 * TASKFARM_* options (TASKFARM_METRICS_PORT, TASKFARM_WORKER_WAIT_MS, ...).
 */
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { Coordinator, Master, role, Worker, WorkQueue, type TaskContext } from 'taskfarm';

interface Job {
  n: number;
  ms: number;
}
interface Done {
  n: number;
  rank: number;
  host: string;
}

/** A worker "acquires" the resource a task needs (slow) unless it holds it already, then works. */
class JobWorker extends Worker<Job, Done> {
  #held: unknown = null;

  async doWork(job: Job, ctx: TaskContext): Promise<Done> {
    if (ctx.resource !== this.#held) {
      await sleep(job.ms / 2, undefined, { signal: ctx.signal });
      this.#held = ctx.resource;
    }
    await sleep(job.ms, undefined, { signal: ctx.signal });
    return { n: job.n, rank: ctx.rank, host: hostname() };
  }
}

function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < 0) throw new RangeError(`${name} must be a number >= 0, not ${JSON.stringify(raw)}`);
  return v;
}

async function coordinate(): Promise<number> {
  const workers = envNumber('JOB_WORKERS', 1);
  const tasks = envNumber('JOB_TASKS', 100);
  const taskMs = envNumber('JOB_TASK_MS', 50);
  const resources = Math.max(1, envNumber('JOB_RESOURCES', 4));
  const linger = process.env.JOB_LINGER_S === 'forever' ? Infinity : envNumber('JOB_LINGER_S', 0);

  // Our own coordinator (configured from TASKFARM_*), so that it outlives the job while we linger.
  const coordinator = await Coordinator.start();
  let stop!: (signal: NodeJS.Signals) => void;
  const stopped = new Promise<NodeJS.Signals>((resolve) => (stop = resolve));
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  let interrupted: NodeJS.Signals | null = null;
  void stopped.then((signal) => (interrupted = signal));

  const queue = new WorkQueue(new Master(undefined, { coordinator, taskType: 'demo' }));
  try {
    console.log(`JOB WAITING for ${workers} worker(s) on ${coordinator.endpoint}`);
    const ready = queue.master.waitForWorkers(workers);
    if ((await Promise.race([ready, stopped])) !== undefined) throw new Error('interrupted');
    console.log(`JOB START tasks=${tasks} workers=${queue.master.numWorkers()}`);
    const jobs = Array.from({ length: tasks }, (_, n): Job => ({ n, ms: Math.round(taskMs * (0.5 + ((n * 7919) % 101) / 100)) }));
    const results = queue.map(jobs, (job) => `r${job.n % resources}`);
    const outcome = await Promise.race([results.then((r) => ({ r }), (e: unknown) => ({ e })), stopped]);
    if (typeof outcome === 'string') throw new Error('interrupted');
    if ('e' in outcome) throw outcome.e;
    const done = outcome.r as Done[];
    const ranks = [...new Set(done.map((d) => d.rank))].sort((a, b) => a - b);
    const hosts = new Set(done.map((d) => d.host)).size;
    console.log(`JOB DONE tasks=${done.length} failed=0 ranks=${ranks.join(',')} hosts=${hosts}`);
    if (linger > 0) {
      console.log(`JOB LINGER ${linger === Infinity ? 'until SIGTERM' : `${linger} s`}: metrics stay up`);
      const timer = new AbortController();
      const elapsed = linger === Infinity ? [] : [sleep(linger * 1000, undefined, { signal: timer.signal }).catch(() => {})];
      await Promise.race([stopped, ...elapsed]);
      timer.abort();
    }
    return 0;
  } catch (err) {
    if (interrupted === null) throw err;
    console.log(`JOB INTERRUPTED by ${interrupted}`);
    return interrupted === 'SIGINT' ? 130 : 143;
  } finally {
    // Terminating the workers lets each finish its task and say bye; then the coordinator closes.
    await coordinator.close();
  }
}

if (role() === 'worker') {
  await new JobWorker().run();
} else {
  process.exitCode = await coordinate();
}
