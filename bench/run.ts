/**
 * `pnpm bench [--quick]`: taskfarm through its public queue API against the raw zeromq.js loops,
 * measured in the same run (ratios are what count on a shared machine), 2 worker processes on
 * loopback TCP unless a scenario says otherwise. Prints a table and writes bench/results/latest.json.
 * Targets and anchors: issue 6 and ../shared/anchors/RESULTS.md. Benchmarks, not tests: nothing here
 * asserts a time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Coordinator, Master, WorkQueue, type Key } from 'taskfarm';
import { AffinityQueue } from '../packages/coordinator/src/affinity.ts';
import { DEFAULT_POLICY, type Task } from '../packages/coordinator/src/farm.ts';
import { rawLoop } from './raw-zmq.ts';
import { payload, PAYLOAD_BYTES, type Scenario } from './tasks.ts';

const quick = process.argv.includes('--quick');
const REPS = quick ? 1 : 3;
const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));

interface Row {
  scenario: string;
  system: string;
  unit: string;
  runs: number[];
  note?: string;
}
const rows: Row[] = [];

async function measure(scenario: string, system: string, unit: string, once: () => Promise<number>, note?: string): Promise<number> {
  const runs: number[] = [];
  for (let i = 0; i < REPS; i++) runs.push(await once());
  rows.push({ scenario, system, unit, runs, ...(note ? { note } : {}) });
  const m = median(runs);
  console.error(`  ${scenario.padEnd(4)} ${system.padEnd(44)} ${fmt(m)} ${unit}  [${runs.map(fmt).join(', ')}]`);
  return m;
}

/** One taskfarm run: a coordinator here, `workers` worker processes, `job` timed. */
async function farm<T>(scenario: Scenario, workers: number, job: (queue: WorkQueue) => Promise<T>): Promise<T> {
  const coordinator = await Coordinator.start({ endpoint: 'tcp://127.0.0.1:*', logLevel: 'warn' });
  const kids: ChildProcess[] = Array.from({ length: workers }, () =>
    spawn(process.execPath, ['--import', 'tsx', WORKER], {
      stdio: 'inherit',
      env: { ...process.env, TASKFARM_CONNECT: coordinator.endpoint, BENCH_SCENARIO: scenario, TASKFARM_LOG_LEVEL: 'warn' },
    }),
  );
  const master = new Master(undefined, { coordinator });
  await master.waitForWorkers(workers);
  const result = await job(new WorkQueue(master));
  await master.terminateWorkers();
  await coordinator.close();
  await Promise.all(kids.map((k) => new Promise((r) => (k.exitCode !== null ? r(null) : k.on('exit', r)))));
  return result;
}

/** Wall seconds to run `tasks` tasks of `data(i)` through the queue and drain every result. */
function throughput(scenario: Scenario, workers: number, tasks: number, data: (i: number) => unknown, resource?: (i: number) => Key) {
  return farm(scenario, workers, async (queue) => {
    const t0 = performance.now();
    for (let i = 0; i < tasks; i++) queue.addWork(data(i), resource ? resource(i) : null);
    const results = await queue.drain();
    const wall = (performance.now() - t0) / 1000;
    if (results.length !== tasks || results.some((r) => !r.ok)) throw new Error('a benchmark task failed');
    return { wall, results };
  });
}

async function main(): Promise<void> {
  console.error(`taskfarm bench${quick ? ' --quick' : ''}: ${REPS} run(s) each, median [runs]`);
  const N = 2;

  // a. empty tasks
  const aTasks = quick ? 5_000 : 30_000;
  const tfA = await measure('a', `taskfarm WorkQueue, ${N} workers`, 'tasks/s', async () => aTasks / (await throughput('a', N, aTasks, (i) => i)).wall);
  await measure('a', 'raw zeromq.js, 1 in flight', 'tasks/s', async () => aTasks / (await rawLoop({ scenario: 'a', workers: N, tasks: aTasks, batch: 1, window: 1, data: (i) => i })));
  await measure('a', 'raw zeromq.js, 8 in flight', 'tasks/s', async () => aTasks / (await rawLoop({ scenario: 'a', workers: N, tasks: aTasks, batch: 1, window: 8, data: (i) => i })));
  const rawBatch = quick ? 100_000 : 500_000;
  const raw64 = await measure('a', 'raw zeromq.js, 64 per message x 4 in flight', 'tasks/s', async () => rawBatch / (await rawLoop({ scenario: 'a', workers: N, tasks: rawBatch, batch: 64, window: 4, data: (i) => i })));

  // b. 1 ms CPU tasks: efficiency = ideal / wall, ideal = tasks x 1 ms / workers
  const bTasks = quick ? 500 : 2_000;
  const ideal = (bTasks * 0.001) / N;
  await measure('b', `taskfarm WorkQueue, ${N} workers`, '% eff', async () => (100 * ideal) / (await throughput('b', N, bTasks, (i) => i)).wall);
  await measure('b', 'raw zeromq.js, 8 in flight', '% eff', async () => (100 * ideal) / (await rawLoop({ scenario: 'b', workers: N, tasks: bTasks, batch: 1, window: 8, data: (i) => i })));

  // c. 100 KiB payloads returned back: MB/s one way
  const cTasks = quick ? 300 : 2_000;
  const bytes = payload();
  const mbps = (wall: number) => (cTasks * PAYLOAD_BYTES) / wall / 1e6;
  await measure('c', `taskfarm WorkQueue, ${N} workers`, 'MB/s', async () => mbps((await throughput('c', N, cTasks, () => bytes)).wall));
  await measure('c', 'raw zeromq.js, 8 in flight', 'MB/s', async () => mbps(await rawLoop({ scenario: 'c', workers: N, tasks: cTasks, batch: 1, window: 8, data: () => bytes })));

  // d. seed example 3: 300 tasks over resources 1..3 (seeded), 20 ms to acquire, 1 ms CPU
  const seedD: Record<number, string> = { 1: '0.371 s, 3 acq.', 2: '0.278 s, 4 acq.', 4: '0.208 s, 9 acq.' };
  for (const workers of [1, 2, 4]) {
    let acquisitions = 0;
    let x = 42;
    const res = Array.from({ length: 300 }, () => ((x = (x * 1103515245 + 12345) >>> 0), 1 + (x % 3)));
    await measure('d', `taskfarm WorkQueue, ${workers} worker(s)`, 's', async () => {
      const { wall, results } = await throughput('d', workers, 300, (i) => i, (i) => res[i]!);
      acquisitions = results.filter((r) => r.ok && r.value === true).length;
      return wall;
    }, `seed: ${seedD[workers]}`);
    rows.at(-1)!.note += `; taskfarm: ${acquisitions} acquisitions (last run)`;
  }

  // Latency: one task at a time on an idle farm (mean round trip), against the raw loop with 1 in flight.
  const lTasks = quick ? 300 : 2_000;
  const tfLat = await measure('lat', 'taskfarm submit(), 1 worker, one at a time', 'µs', () =>
    farm('a', 1, async (queue) => {
      const t0 = performance.now();
      for (let i = 0; i < lTasks; i++) await queue.submit(i);
      return ((performance.now() - t0) * 1000) / lTasks;
    }),
  );
  const rawLat = await measure('lat', 'raw zeromq.js, 1 worker, 1 in flight', 'µs', async () => ((await rawLoop({ scenario: 'a', workers: 1, tasks: lTasks, batch: 1, window: 1, data: (i) => i })) * 1e6) / lTasks);

  // Queue: addWork rate and bytes per queued task beyond the payload; affinity picks over 10,000 resources.
  const qTasks = quick ? 200_000 : 1_000_000;
  await measure('q', `addWork x ${qTasks.toLocaleString('en')} (no workers)`, 'tasks/s', async () => {
    const coordinator = await Coordinator.start({ endpoint: 'tcp://127.0.0.1:*', logLevel: 'warn' });
    const queue = new WorkQueue(new Master([1], { coordinator }));
    gc();
    const heap0 = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
    const t0 = performance.now();
    for (let i = 0; i < qTasks; i++) queue.addWork(i);
    const rate = qTasks / ((performance.now() - t0) / 1000);
    gc();
    const perTask = (process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers - heap0) / qTasks;
    lastNote = `${perTask.toFixed(0)} bytes per queued task (payload included: 1-5 bytes)`;
    await coordinator.close();
    return rate;
  });
  rows.at(-1)!.note = lastNote;
  await measure('q', 'affinity picks, 10,000 resources held by 100 workers', 'picks/s', async () => {
    const q = new AffinityQueue();
    const n = quick ? 200_000 : 1_000_000;
    for (let i = 0; i < n; i++) q.push(task(i, i % 10_000));
    const t0 = performance.now();
    for (let i = 0; i < n; i++) q.pick(i % 100);
    return n / ((performance.now() - t0) / 1000);
  });

  const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
  const summary = {
    'a: taskfarm / 64x4 raw loop (target >= 0.3x)': ratio(tfA, raw64),
    'a: taskfarm tasks/s (target >= 250,000)': Math.round(tfA),
    'latency: taskfarm / raw 1-in-flight (target <= 1.2x)': ratio(tfLat, rawLat),
  };
  printTable(summary);
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  const out = fileURLToPath(new URL('./results/latest.json', import.meta.url));
  writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), quick, reps: REPS, rows, summary }, null, 2));
  console.log(`\n(JSON: ${out})`);
}

let lastNote = '';

function task(id: number, resource: Key): Task {
  return { id, key: id, attempt: 1, type: null, resource, payload: null, data: id, policy: DEFAULT_POLICY, failures: 0, losses: 0, notBefore: 0, cancelled: false, queuedAt: 0, startedAt: 0 };
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function fmt(x: number): string {
  return x >= 100 ? Math.round(x).toLocaleString('en') : x.toFixed(x >= 10 ? 1 : 3);
}

function printTable(summary: Record<string, unknown>): void {
  console.log('\n| scenario | system | median | min-max | unit | note |\n|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(`| ${r.scenario} | ${r.system} | ${fmt(median(r.runs))} | ${fmt(Math.min(...r.runs))}-${fmt(Math.max(...r.runs))} | ${r.unit} | ${r.note ?? ''} |`);
  }
  console.log('\n| ratio | value |\n|---|---|');
  for (const [k, v] of Object.entries(summary)) console.log(`| ${k} | ${v} |`);
}

await main();
process.exit(0);
