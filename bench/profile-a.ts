/**
 * `node --cpu-prof --import tsx bench/profile-a.ts [tasks]`: scenario a (empty tasks through a
 * WorkQueue, 2 worker processes) alone, for a CPU profile of the coordinator. BENCH_SCENARIO=b
 * runs 1 ms CPU tasks instead, c 100 KiB payloads; PROFILE_WORKERS=DIR writes the workers' CPU
 * profiles there.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Coordinator, Master, WorkQueue } from 'taskfarm';
import { payload } from './tasks.ts';

const tasks = Number(process.argv[2] ?? 200_000);
const coordinator = await Coordinator.start({ endpoint: 'tcp://127.0.0.1:*', logLevel: 'warn' });
const worker = fileURLToPath(new URL('./worker.ts', import.meta.url));
// PROFILE_WORKERS=DIR: CPU profiles of the workers too.
const profile = process.env.PROFILE_WORKERS ? ['--cpu-prof', `--cpu-prof-dir=${process.env.PROFILE_WORKERS}`] : [];
const kids = [0, 1].map(() => spawn(process.execPath, [...profile, '--import', 'tsx', worker], { stdio: 'inherit', env: { BENCH_SCENARIO: 'a', ...process.env, TASKFARM_CONNECT: coordinator.endpoint } }));
const master = new Master(undefined, { coordinator });
await master.waitForWorkers(2);
const queue = new WorkQueue(master);
const t0 = performance.now();
const cpu0 = process.cpuUsage();
const data = process.env.BENCH_SCENARIO === 'c' ? payload() : null;
for (let i = 0; i < tasks; i++) queue.addWork(data ?? i);
// As bench/run.ts: results taken as they come and dropped, like the raw loops.
let results = 0;
while (!queue.done()) {
  queue.doWork();
  results += queue.takeResults().length;
  await queue.changed();
}
const s = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
console.log(`${results} tasks in ${s.toFixed(3)} s: ${Math.round(tasks / s)} tasks/s; coordinator CPU ${(((cpu.user + cpu.system) / 1e6 / s) * 100).toFixed(0)}% of a core`);
await master.terminateWorkers();
await coordinator.close();
await Promise.all(kids.map((k) => new Promise((r) => (k.exitCode !== null ? r(null) : k.on('exit', r)))));
