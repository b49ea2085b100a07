/**
 * `pnpm bench [--quick] [--only a,b,c,d,lat,q,scale]`: taskfarm through its public queue API against
 * the raw zeromq.js loops, measured in the same run (ratios are what count on a shared machine; the
 * two sides of a target's ratio run in alternation, except c's, and the summary gives the median
 * of the runs' ratios), 2 worker processes on loopback TCP unless a scenario says otherwise.
 * Prints a table and writes bench/results/latest.json (only-<scenarios>.json with --only).
 * Targets and anchors: issue 6 and ../shared/anchors/RESULTS.md. Benchmarks, not tests: nothing here
 * asserts a time.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Coordinator, Master, WorkQueue, type Key } from 'taskfarm';
import { AffinityQueue } from '../packages/coordinator/src/affinity.ts';
import { DEFAULT_POLICY, type Task } from '../packages/coordinator/src/farm.ts';
import { rawLoop } from './raw-zmq.ts';
import { exampleThreeResources, payload, PAYLOAD_BYTES, type Scenario } from './tasks.ts';

const SCENARIOS = ['a', 'b', 'c', 'd', 'lat', 'q', 'scale'] as const;
const quick = process.argv.includes('--quick');
const only = parseOnly(process.argv.slice(2));
/** Runs per row (BENCH_REPS overrides the 3 of a full run). */
const REPS = quick ? 1 : Number(process.env.BENCH_REPS ?? 3);
const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));
const WORKER_HOST = fileURLToPath(new URL('./worker-host.ts', import.meta.url));
/** How long a farm's workers may take to register before the run is given up. */
const REGISTER_TIMEOUT_MS = 60_000;

/** `--only a,scale` (or `--only=scale`, or repeated): run just those scenarios. */
function parseOnly(argv: string[]): Set<string> | null {
  const names: string[] = [];
  argv.forEach((arg, i) => {
    if (arg === '--only') names.push(...(argv[i + 1] ?? '').split(','));
    else if (arg.startsWith('--only=')) names.push(...arg.slice('--only='.length).split(','));
  });
  if (!argv.some((a) => a === '--only' || a.startsWith('--only='))) return null;
  const unknown = names.filter((n) => !(SCENARIOS as readonly string[]).includes(n));
  if (unknown.length > 0 || names.length === 0) {
    console.error(`--only takes a comma-separated list of: ${SCENARIOS.join(', ')} (got ${JSON.stringify(names.join(','))})`);
    process.exit(2);
  }
  return new Set(names);
}

function want(scenario: (typeof SCENARIOS)[number]): boolean {
  return only === null || only.has(scenario);
}

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
  return record(scenario, system, unit, runs, note);
}

interface Side {
  system: string;
  unit: string;
  once: () => Promise<number>;
  note?: string;
}

/**
 * Two systems whose ratio is a target, run in alternation (one, the other, one, ...) so that the
 * machine's drifts from one minute to the next (a third of its speed, at times) fall on both
 * alike, where a run leaves little garbage behind (not scenario c's). Records both rows; returns
 * the first's median and the median of the runs' ratios, `first` to `second`, which is what the
 * summary reports.
 */
async function measurePair(scenario: string, first: Side, second: Side, reps = REPS): Promise<{ first: number; ratio: number }> {
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < reps; i++) {
    a.push(await first.once());
    b.push(await second.once());
  }
  const m = record(scenario, first.system, first.unit, a, first.note);
  record(scenario, second.system, second.unit, b, second.note);
  return { first: m, ratio: median(a.map((x, i) => x / b[i]!)) };
}

/** Adds a row of runs measured elsewhere (measure() does this for its own). */
function record(scenario: string, system: string, unit: string, runs: number[], note?: string): number {
  rows.push({ scenario, system, unit, runs, ...(note ? { note } : {}) });
  const m = median(runs);
  console.error(`  ${scenario.padEnd(5)} ${system.padEnd(44)} ${fmt(m)} ${unit}  [${runs.map(fmt).join(', ')}]`);
  return m;
}

/** Worker processes still running: killed if this process exits before it could end them properly. */
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const k of live) k.kill('SIGKILL');
});

/** `processes` worker processes of `perProcess` workers each (1: bench/worker.ts, more: bench/worker-host.ts). */
interface Layout {
  processes: number;
  perProcess: number;
}

/**
 * One taskfarm run: a coordinator here, the workers of `layout` (a number: that many worker
 * processes), `job` timed. `job` also gets the seconds from spawning the workers until every one
 * of them had registered. Whatever happens, the workers are terminated and their processes ended.
 */
async function farm<T>(scenario: Scenario, layout: number | Layout, job: (queue: WorkQueue, registered: number) => Promise<T>): Promise<T> {
  const { processes, perProcess } = typeof layout === 'number' ? { processes: layout, perProcess: 1 } : layout;
  const workers = processes * perProcess;
  const coordinator = await Coordinator.start({ endpoint: 'tcp://127.0.0.1:*', logLevel: 'warn' });
  const failed = new AbortController();
  const t0 = performance.now();
  const kids: ChildProcess[] = Array.from({ length: processes }, () => {
    const kid = spawn(process.execPath, ['--import', 'tsx', perProcess === 1 ? WORKER : WORKER_HOST], {
      // The IPC channel lets a worker process see this one go away (bench-worker.ts, exitWithParent).
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, TASKFARM_CONNECT: coordinator.endpoint, BENCH_SCENARIO: scenario, BENCH_WORKERS: String(perProcess), TASKFARM_LOG_LEVEL: 'warn' },
    });
    live.add(kid);
    kid.once('exit', (code, signal) => {
      live.delete(kid);
      if (code !== 0) failed.abort(new Error(`a worker process (pid ${kid.pid}) exited with ${code ?? signal}`));
    });
    return kid;
  });
  const master = new Master(undefined, { coordinator });
  try {
    try {
      await master.waitForWorkers(workers, { signal: AbortSignal.any([failed.signal, AbortSignal.timeout(REGISTER_TIMEOUT_MS)]) });
    } catch (err) {
      throw new Error(`${master.numWorkers()} of ${workers} workers registered: ${(err as Error).message}`, { cause: err });
    }
    const registered = (performance.now() - t0) / 1000;
    return await abortable(job(new WorkQueue(master), registered), failed.signal);
  } finally {
    failed.abort(new Error('finished'));
    await within(master.terminateWorkers(), 15_000);
    await coordinator.close();
    await Promise.all(kids.map((k) => ended(k, 5_000)));
  }
}

/** Rejects with the signal's reason when it aborts first. */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    p.then(resolve, reject);
  });
}

/** Waits for `p` at most `ms`; false when it did not settle in time or rejected. */
function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)));
  return Promise.race([p.then(() => true, () => false), timeout]).finally(() => clearTimeout(timer));
}

/** Resolves once `kid` has exited: it gets `ms` to do so on its own, then SIGTERM, then SIGKILL. */
async function ended(kid: ChildProcess, ms: number): Promise<void> {
  const exit = kid.exitCode !== null || kid.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => kid.once('exit', () => r()));
  if (await within(exit, ms)) return;
  kid.kill('SIGTERM');
  if (await within(exit, ms)) return;
  kid.kill('SIGKILL');
  await exit;
}

/**
 * Wall seconds to run `tasks` tasks of `data(i)` through the queue, taking results as they come
 * (the seed's loop) and keeping only what `keep` returns of each: like the raw loops, which drop
 * results on arrival, rather than holding every result (200 MB in scenario c) until the end.
 */
function throughput<K>(scenario: Scenario, layout: number | Layout, tasks: number, data: (i: number) => unknown, resource?: (i: number) => Key, keep?: (value: unknown) => K) {
  return farm(scenario, layout, async (queue, registered) => {
    const t0 = performance.now();
    for (let i = 0; i < tasks; i++) queue.addWork(data(i), resource ? resource(i) : null);
    const kept: K[] = [];
    let done = 0;
    while (!queue.done()) {
      queue.doWork();
      for (const r of queue.takeResults()) {
        if (!r.ok) throw new Error(`a benchmark task failed: ${r.error.message}`);
        done++;
        if (keep) kept.push(keep(r.value));
      }
      await queue.changed();
    }
    const wall = (performance.now() - t0) / 1000;
    if (done !== tasks) throw new Error(`${done} of ${tasks} results`);
    return { wall, kept, registered };
  });
}

/** `ulimit -n` of this shell (children inherit it), or Infinity. */
function openFileLimit(): number {
  try {
    const out = execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim();
    return out === 'unlimited' ? Infinity : Number(out);
  } catch {
    return NaN;
  }
}

async function main(): Promise<void> {
  console.error(`taskfarm bench${quick ? ' --quick' : ''}${only ? ` --only ${[...only].join(',')}` : ''}: ${REPS} run(s) each, median [runs]`);
  const N = 2;
  const summary: Record<string, unknown> = {};
  const ratio = (r: number) => `${r.toFixed(2)}x`;
  // Scenario a's task count, which scale runs too: its ratio is of (a)'s throughput.
  const aTasks = quick ? 30_000 : 300_000;

  // a. empty tasks
  if (want('a')) {
    const rawBatch = quick ? 100_000 : 500_000;
    const a = await measurePair(
      'a',
      { system: `taskfarm WorkQueue, ${N} workers`, unit: 'tasks/s', once: async () => aTasks / (await throughput('a', N, aTasks, (i) => i)).wall },
      { system: 'raw zeromq.js, 64 per message x 4 in flight', unit: 'tasks/s', once: async () => rawBatch / (await rawLoop({ scenario: 'a', workers: N, tasks: rawBatch, batch: 64, window: 4, data: (i) => i })) },
    );
    await measure('a', 'raw zeromq.js, 1 in flight', 'tasks/s', async () => aTasks / (await rawLoop({ scenario: 'a', workers: N, tasks: aTasks, batch: 1, window: 1, data: (i) => i })));
    await measure('a', 'raw zeromq.js, 8 in flight', 'tasks/s', async () => aTasks / (await rawLoop({ scenario: 'a', workers: N, tasks: aTasks, batch: 1, window: 8, data: (i) => i })));
    summary['a: taskfarm / 64x4 raw loop, alternating runs (target >= 0.3x)'] = ratio(a.ratio);
    summary['a: taskfarm tasks/s (target >= 250,000)'] = Math.round(a.first);
  }

  // b. 1 ms CPU tasks: efficiency = ideal / wall, ideal = tasks x 1 ms / workers
  if (want('b')) {
    const bTasks = quick ? 500 : 2_000;
    const ideal = (bTasks * 0.001) / N;
    const tfB = await measure('b', `taskfarm WorkQueue, ${N} workers`, '% eff', async () => (100 * ideal) / (await throughput('b', N, bTasks, (i) => i)).wall);
    const rawB = await measure('b', 'raw zeromq.js, 8 in flight', '% eff', async () => (100 * ideal) / (await rawLoop({ scenario: 'b', workers: N, tasks: bTasks, batch: 1, window: 8, data: (i) => i })));
    summary['b: taskfarm efficiency (target >= 95 %)'] = `${tfB.toFixed(1)} % (raw 8 in flight: ${rawB.toFixed(1)} %)`;
  }

  // c. 100 KiB payloads returned back: MB/s one way
  if (want('c')) {
    const cTasks = quick ? 300 : 2_000;
    const bytes = payload();
    const mbps = (wall: number) => (cTasks * PAYLOAD_BYTES) / wall / 1e6;
    // Not alternated: a run here inherits the heap of the run before it (200 MB of payloads went
    // through this process), and each system's runs should follow their own, not the other's
    // (alternating, taskfarm's runs pay for the raw loop's uncollected buffers: bench/RESULTS.md).
    const tfC = await measure('c', `taskfarm WorkQueue, ${N} workers`, 'MB/s', async () => mbps((await throughput('c', N, cTasks, () => bytes)).wall));
    const rawC = await measure('c', 'raw zeromq.js, 8 in flight', 'MB/s', async () => mbps(await rawLoop({ scenario: 'c', workers: N, tasks: cTasks, batch: 1, window: 8, data: () => bytes })));
    summary['c: taskfarm MB/s (target >= 400)'] = Math.round(tfC);
    summary['c: taskfarm / raw 8 in flight (target >= 1.0x)'] = ratio(tfC / rawC);
  }

  // d. seed example 3: 300 tasks over resources 1..3 (seeded), 20 ms to acquire, 1 ms CPU
  if (want('d')) {
    const seedD: Record<number, string> = { 1: '0.371 s, 3 acq.', 2: '0.278 s, 4 acq.', 4: '0.208 s, 9 acq.' };
    for (const workers of [1, 2, 4]) {
      let acquisitions = 0;
      const res = exampleThreeResources();
      await measure('d', `taskfarm WorkQueue, ${workers} worker(s)`, 's', async () => {
        const { wall, kept } = await throughput('d', workers, 300, (i) => i, (i) => res[i]!, (acquired) => acquired === true);
        acquisitions = kept.filter(Boolean).length;
        return wall;
      }, `seed: ${seedD[workers]}`);
      rows.at(-1)!.note += `; taskfarm: ${acquisitions} acquisitions (last run)`;
    }
  }

  // Latency: one task at a time on an idle farm (median round trip), against the raw loop with 1 in flight.
  if (want('lat')) {
    const lTasks = quick ? 300 : 2_000;
    // The target's figure is a fresh worker's first lTasks round trips (as a farm answers its
    // first tasks). Each run then goes on, `warmup` round trips unmeasured and lTasks more: the
    // steady state of the same processes, which tells how much of the gap is the JIT compiler's
    // warm-up, paid once by a long-running farm, and how much every round trip pays (RESULTS.md).
    const warmup = quick ? 300 : 3_000;
    const total = 2 * lTasks + warmup;
    const steady = { ours: [] as number[], raw: [] as number[] };
    /** The first lTasks round trips' p50 (returned), the last lTasks' p50 (kept in `into`). */
    const p50s = (rtts: number[], into: number[]) => {
      into.push(median(rtts.slice(-lTasks)));
      return median(rtts.slice(0, lTasks));
    };
    // A run is short (half a second), and one round trip's cost swings with where the scheduler
    // puts four threads on two vCPUs: more pairs than the other scenarios take.
    const lat = await measurePair(
      'lat',
      {
        system: `taskfarm submit(), 1 worker, one at a time: p50 of the first ${lTasks.toLocaleString('en')}`,
        unit: 'µs',
        once: () =>
          farm('a', 1, async (queue) => {
            const rtts: number[] = [];
            for (let i = 0; i < total; i++) {
              const t0 = performance.now();
              await queue.submit(i);
              rtts.push((performance.now() - t0) * 1000);
            }
            return p50s(rtts, steady.ours);
          }),
      },
      {
        system: `raw zeromq.js, 1 worker, 1 in flight: p50 of the first ${lTasks.toLocaleString('en')}`,
        unit: 'µs',
        once: async () => {
          const rtts: number[] = [];
          await rawLoop({ scenario: 'a', workers: 1, tasks: total, batch: 1, window: 1, data: (i) => i, rtts });
          return p50s(rtts.map((ms) => ms * 1000), steady.raw);
        },
      },
      quick ? 1 : 7,
    );
    const steadyNote = `round trips ${(lTasks + warmup + 1).toLocaleString('en')}-${total.toLocaleString('en')} of the same runs`;
    record('lat', 'taskfarm submit(), steady state: p50', 'µs', steady.ours, steadyNote);
    record('lat', 'raw zeromq.js, steady state: p50', 'µs', steady.raw, steadyNote);
    summary['latency p50: taskfarm / raw 1-in-flight, alternating runs (target <= 1.2x)'] = ratio(lat.ratio);
    summary['latency p50, steady state (same runs, after the warm-up): taskfarm / raw'] = ratio(median(steady.ours.map((x, i) => x / steady.raw[i]!)));
  }

  // Queue: addWork rate and bytes per queued task beyond the payload; affinity picks over 10,000 resources.
  if (want('q')) {
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
  }

  // Scale: scenario a's empty tasks with 1,000 connected workers (4 processes x 250 DEALER sockets)
  // against 10 (2 x 5), and how long the 1,000 take to register (spawn to waitForWorkers). The
  // processes each hold one socket per worker and the coordinator one connection per worker.
  if (want('scale')) {
    const fds = openFileLimit();
    if (!(fds >= 2_500)) {
      const note = `skipped: ulimit -n is ${fds}; 1,000 workers want about 2,500 file descriptors (raise it with ulimit -n 4096)`;
      console.error(`  scale ${note}`);
      summary['scale'] = note;
    } else {
      // As many tasks as scenario a: with fewer, the 1,000 workers' first windows (1 task each,
      // before their pace is known) weigh on the figure more than the steady state does.
      const sTasks = aTasks;
      const small: Layout = { processes: 2, perProcess: 5 };
      const large: Layout = { processes: 4, perProcess: 250 };
      const registration = new Map<Layout, number[]>([[small, []], [large, []]]);
      const run = (layout: Layout) => async () => {
        const { wall, registered } = await throughput('a', layout, sTasks, (i) => i);
        registration.get(layout)!.push(registered);
        return sTasks / wall;
      };
      const name = (l: Layout) => `${(l.processes * l.perProcess).toLocaleString('en')} workers (${l.processes} x ${l.perProcess})`;
      const note = `${sTasks.toLocaleString('en')} empty tasks`;
      const scale = await measurePair(
        'scale',
        { system: `taskfarm WorkQueue, ${name(small)}`, unit: 'tasks/s', once: run(small), note },
        { system: `taskfarm WorkQueue, ${name(large)}`, unit: 'tasks/s', once: run(large), note },
      );
      // The transport's own ratio for the same job: the raw loop in the same layouts, each worker's
      // messages as large as its share of the job allows (up to 1,024 tasks; 300 with 1,000
      // workers: the whole job in one message a worker), 2 in flight. What 1,000 connections
      // cost ZeroMQ and the processes that hold them, with nothing done per task.
      const raw = (l: Layout) => async () => {
        const workers = l.processes * l.perProcess;
        const batch = Math.min(1024, Math.ceil(sTasks / workers));
        return sTasks / (await rawLoop({ scenario: 'a', workers, perProcess: l.perProcess, tasks: sTasks, batch, window: 2, data: (i) => i }));
      };
      const rawScale = await measurePair(
        'scale',
        { system: `raw zeromq.js, ${name(small)}`, unit: 'tasks/s', once: raw(small), note: `${note}, up to 1,024 a message, 2 in flight` },
        { system: `raw zeromq.js, ${name(large)}`, unit: 'tasks/s', once: raw(large), note: `${note}, ${Math.ceil(sTasks / (large.processes * large.perProcess))} a message (a worker's whole share)` },
      );
      record('scale', `registration, ${name(small)}`, 's', registration.get(small)!, 'spawn to waitForWorkers(); process start-up included');
      const reg1000 = record('scale', `registration, ${name(large)}`, 's', registration.get(large)!, 'spawn to waitForWorkers(); target <= 5 s');
      // scale.ratio is the 10 workers' to the 1,000's; the target is the other way round.
      summary['scale: 1,000 / 10 workers tasks/s, alternating runs (target >= 0.8x)'] = ratio(1 / scale.ratio);
      summary['scale, raw zeromq.js at its largest batches: 1,000 / 10 workers tasks/s, alternating runs'] = ratio(1 / rawScale.ratio);
      summary['scale: 1,000 workers registered in (target <= 5 s)'] = `${reg1000.toFixed(2)} s`;
    }
  }

  printTable(summary);
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  // A partial run does not overwrite the full one.
  const out = fileURLToPath(new URL(only ? `./results/only-${[...only].join(',')}.json` : './results/latest.json', import.meta.url));
  writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), quick, reps: REPS, only: only ? [...only] : null, rows, summary }, null, 2));
  console.log(`\n(JSON: ${out})`);
}

let lastNote = '';

function task(id: number, resource: Key): Task {
  return { id, key: id, attempt: 1, type: null, resource, payload: null, raw: false, data: id, policy: DEFAULT_POLICY, failures: 0, losses: 0, notBefore: 0, cancelled: false, queuedAt: 0, startedAt: 0 };
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
