/**
 * `node --import tsx bench/thread-cpu.ts latency|scale|b [rounds]`: where the CPU of a farm goes,
 * per process and per thread (Linux schedstat: the main thread, V8's threads, ZeroMQ's I/O
 * thread), for one scenario run several times in the same processes. The first round is cold, as
 * the bench's runs are; the later ones show the same farm warm. bench/RESULTS.md's per-thread
 * figures ("The sixth session") come from here.
 *
 *   latency  one worker, 5,000 submit() round trips after 2,000 to warm up: µs per round trip
 *   scale    300,000 empty tasks on 1,000 workers (4 processes × 250; SCALE_LAYOUT=2x5 for 10)
 *   b        2,000 tasks of 1 ms CPU on 2 workers: ms per process, beyond the tasks' own CPU
 *
 * BENCH_WORKER_FLAGS passes node flags to the worker processes: `--trace-opt --trace-deopt` there
 * (and on this process's command line for the coordinator) is how the seventh session found code
 * that V8 threw away and recompiled again and again during a run (bench/RESULTS.md).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Coordinator, Master, WorkQueue } from 'taskfarm';

type Threads = Record<'main' | 'v8' | 'zmq', number>;

/** CPU time (ms) of every thread of `pid` so far, grouped: its main thread, V8's, ZeroMQ's. */
function threads(pid: number): Threads {
  const out: Threads = { main: 0, v8: 0, zmq: 0 };
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
    const ns = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    out[Number(tid) === pid ? 'main' : name.startsWith('ZMQ') ? 'zmq' : 'v8'] += ns / 1e6;
  }
  return out;
}

function since(before: Threads, after: Threads, per = 1, unit = 'ms'): string {
  return (['main', 'v8', 'zmq'] as const).map((k) => `${k} ${((after[k] - before[k]) / per).toFixed(1)} ${unit}`).join(', ');
}

const HERE = (file: string) => fileURLToPath(new URL(file, import.meta.url));
const [scenario = 'latency', roundsArg] = process.argv.slice(2);
const rounds = Number(roundsArg ?? 3);
const [processes, perProcess] = scenario === 'scale' ? (process.env.SCALE_LAYOUT ?? '4x250').split('x').map(Number) : [scenario === 'b' ? 2 : 1, 1];
if (!['latency', 'scale', 'b'].includes(scenario) || !(processes! >= 1 && perProcess! >= 1)) {
  console.error('usage: bench/thread-cpu.ts latency|scale|b [rounds]  (SCALE_LAYOUT=PxW for scale)');
  process.exit(2);
}

const coordinator = await Coordinator.start({ endpoint: 'tcp://127.0.0.1:*', logLevel: 'warn' });
const kids: ChildProcess[] = Array.from({ length: processes! }, () =>
  spawn(process.execPath, [...(process.env.BENCH_WORKER_FLAGS?.split(' ').filter(Boolean) ?? []), '--import', 'tsx', HERE(perProcess === 1 ? './worker.ts' : './worker-host.ts')], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, BENCH_SCENARIO: scenario === 'b' ? 'b' : 'a', BENCH_WORKERS: String(perProcess), TASKFARM_LOG_LEVEL: 'warn', TASKFARM_CONNECT: coordinator.endpoint },
  }),
);
const master = new Master(undefined, { coordinator });
await master.waitForWorkers(processes! * perProcess!);

for (let round = 0; round < rounds; round++) {
  const queue = new WorkQueue(master);
  if (scenario === 'latency') for (let i = 0; i < 2_000; i++) await queue.submit(i);
  const c0 = threads(process.pid);
  const k0 = kids.map((k) => threads(k.pid!));
  const t0 = performance.now();
  const tasks = scenario === 'latency' ? 5_000 : scenario === 'scale' ? 300_000 : 2_000;
  const rtts: number[] = [];
  if (scenario === 'latency') {
    for (let i = 0; i < tasks; i++) {
      const t = performance.now();
      await queue.submit(i);
      rtts.push((performance.now() - t) * 1000);
    }
  } else {
    for (let i = 0; i < tasks; i++) queue.addWork(i);
    while (!queue.done()) {
      queue.doWork();
      queue.takeResults();
      await queue.changed();
    }
  }
  const s = (performance.now() - t0) / 1000;
  const c1 = threads(process.pid);
  const k1 = kids.map((k) => threads(k.pid!));
  if (scenario === 'latency') {
    rtts.sort((a, b) => a - b);
    console.log(`round ${round}: p50 ${rtts[rtts.length >> 1]!.toFixed(0)} µs | coordinator ${since(c0, c1, tasks / 1000, 'µs')} | worker ${since(k0[0]!, k1[0]!, tasks / 1000, 'µs')} (per round trip)`);
  } else {
    const figure = scenario === 'b' ? `efficiency ${((tasks * 0.001) / processes! / s * 100).toFixed(1)} %` : `${Math.round(tasks / s)} tasks/s`;
    console.log(`round ${round}: ${figure} | coordinator ${since(c0, c1)} | ${kids.map((_, i) => `process ${i}: ${since(k0[i]!, k1[i]!)}`).join(' | ')}`);
  }
}
await master.terminateWorkers();
await coordinator.close();
