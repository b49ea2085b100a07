/**
 * `node --import tsx bench/timeline.ts [workers] [rounds]`: example 3 (scenario d: 300 tasks over
 * three resources, 20 ms to acquire one, 1 ms of CPU each) on fresh worker processes, and what each
 * worker ran when: its runs of tasks on one resource, the acquisitions, and the gaps over 2 ms in
 * which it had nothing to run. This is how the seventh session saw windows queue a resource's tasks
 * behind another's while that resource's holder ran dry (bench/RESULTS.md). Default: 4 workers, 3 rounds.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Coordinator, Master, WorkQueue } from 'taskfarm';
import type { TimelineEntry } from './bench-worker.ts';
import { exampleThreeResources } from './tasks.ts';

const workers = Number(process.argv[2] ?? 4);
const rounds = Number(process.argv[3] ?? 3);
if (!(Number.isSafeInteger(workers) && workers >= 1 && Number.isSafeInteger(rounds) && rounds >= 1)) {
  console.error('usage: bench/timeline.ts [workers] [rounds]');
  process.exit(2);
}
const resources = exampleThreeResources();

for (let round = 0; round < rounds; round++) {
  const dir = mkdtempSync(join(tmpdir(), 'taskfarm-timeline-'));
  const coordinator = await Coordinator.start({ endpoint: 'tcp://127.0.0.1:*', logLevel: 'warn' });
  const kids = Array.from({ length: workers }, () =>
    spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./worker.ts', import.meta.url))], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, BENCH_SCENARIO: 'd', BENCH_TIMELINE: dir, TASKFARM_LOG_LEVEL: 'warn', TASKFARM_CONNECT: coordinator.endpoint },
    }),
  );
  const master = new Master(undefined, { coordinator });
  await master.waitForWorkers(workers);
  const queue = new WorkQueue(master);
  const t0 = performance.timeOrigin + performance.now();
  resources.forEach((resource, i) => queue.addWork(i, resource));
  while (!queue.done()) {
    queue.doWork();
    queue.takeResults();
    await queue.changed();
  }
  const wall = performance.timeOrigin + performance.now() - t0;
  await master.terminateWorkers();
  await coordinator.close();
  await Promise.all(kids.map((k) => new Promise((r) => (k.exitCode !== null ? r(null) : k.once('exit', r)))));
  const lines: string[] = [];
  let acquisitions = 0;
  for (const file of readdirSync(dir)) {
    const tasks = (JSON.parse(readFileSync(join(dir, file), 'utf8')) as TimelineEntry[]).sort((a, b) => a[0] - b[0]);
    const parts: string[] = [];
    let run: { from: number; to: number; resource: unknown; n: number; acquired: boolean } | null = null;
    const flush = () => run && parts.push(`[${run.from.toFixed(0)}–${run.to.toFixed(0)} r${String(run.resource)} ×${run.n}${run.acquired ? ' acquired' : ''}]`);
    for (const [start, end, resource, acquired] of tasks) {
      const from = start - t0;
      const to = end - t0;
      if (acquired) acquisitions++;
      if (run && run.resource === resource && !acquired && from - run.to <= 2) {
        run.to = to;
        run.n++;
        continue;
      }
      flush();
      if (run && from - run.to > 2) parts.push(`(idle ${(from - run.to).toFixed(0)})`);
      run = { from, to, resource, n: 1, acquired };
    }
    flush();
    lines.push(`  pid ${file.replace('.json', '')}: ${parts.join(' ')}`);
  }
  rmSync(dir, { recursive: true, force: true });
  console.log(`round ${round}: ${workers} workers, ${wall.toFixed(0)} ms, ${acquisitions} acquisitions (ms from the first addWork)`);
  for (const line of lines) console.log(line);
}
