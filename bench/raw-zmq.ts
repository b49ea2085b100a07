/**
 * The raw zeromq.js ROUTER/DEALER loop the targets are measured against (as in
 * ../shared/anchors/node): BATCH tasks per message, WINDOW messages in flight per worker, msgpackr
 * plain maps. `node --import tsx bench/raw-zmq.ts worker ENDPOINT SCENARIO` is its worker side.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Packr } from 'msgpackr';
import * as zmq from 'zeromq';
import { doTask, type Scenario } from './tasks.ts';

const packr = new Packr({ useRecords: false });
const SELF = fileURLToPath(import.meta.url);

if (process.argv[2] === 'worker') {
  const [, , , endpoint, scenario, perProcess] = process.argv as [string, string, string, string, Scenario, string?];
  // Scale's raw reference hosts many workers in one process, each with a DEALER of its own, as bench/worker-host.ts does.
  await Promise.all(Array.from({ length: Number(perProcess ?? 1) }, () => serve(endpoint, scenario)));
}

async function serve(endpoint: string, scenario: Scenario): Promise<void> {
  const d = new zmq.Dealer({ linger: 0 });
  d.connect(endpoint);
  await d.send(packr.pack({ t: 'ready' }));
  for await (const [msg] of d) {
    const m = packr.unpack(msg!) as { t: string; tasks: Array<[number, unknown]> };
    if (m.t === 'exit') break;
    const r = new Array(m.tasks.length);
    for (let i = 0; i < m.tasks.length; i++) r[i] = [m.tasks[i]![0], doTask(scenario, m.tasks[i]![1])];
    await d.send(packr.pack({ t: 'results', r }));
  }
  d.close();
}

/**
 * Runs TASKS tasks; resolves with the wall time in seconds (from the first send to the last result).
 * With `rtts` (one worker, window 1), also records each round trip in ms: from building the task
 * to having decoded its result, as taskfarm's submit() round trip is timed. `perProcess` workers
 * share each worker process (default 1).
 */
export async function rawLoop(o: { scenario: Scenario; workers: number; perProcess?: number; tasks: number; batch: number; window: number; data: (i: number) => unknown; rtts?: number[] }): Promise<number> {
  const perProcess = o.perProcess ?? 1;
  // Every process holds perProcess DEALERs: a remainder would connect workers the loop never waits
  // for, whose `ready` would then be read as a result.
  if (!Number.isSafeInteger(o.workers / perProcess)) throw new RangeError(`${o.workers} workers do not divide into processes of ${perProcess}`);
  const r = new zmq.Router({ linger: 0 });
  await r.bind('tcp://127.0.0.1:*');
  const kids = Array.from({ length: o.workers / perProcess }, () =>
    spawn(process.execPath, ['--import', 'tsx', SELF, 'worker', r.lastEndpoint!, o.scenario, String(perProcess)], { stdio: 'inherit' }),
  );
  const ids: Buffer[] = [];
  const it = r[Symbol.asyncIterator]();
  while (ids.length < o.workers) ids.push(((await it.next()).value as Buffer[])[0]!);
  const t0 = performance.now();
  let next = 0;
  let done = 0;
  const sendBatch = async (id: Buffer) => {
    if (next >= o.tasks) return;
    sentAt = performance.now();
    const tasks: Array<[number, unknown]> = [];
    for (let k = 0; k < o.batch && next < o.tasks; k++, next++) tasks.push([next, o.data(next)]);
    await r.send([id, packr.pack({ t: 'work', tasks })]);
  };
  let sentAt = 0;
  for (const id of ids) for (let w = 0; w < o.window; w++) await sendBatch(id);
  while (done < o.tasks) {
    const [id, msg] = (await it.next()).value as [Buffer, Buffer];
    done += (packr.unpack(msg) as { r: unknown[] }).r.length;
    // After the decode: taskfarm's round trip (submit() to its result) includes its own.
    o.rtts?.push(performance.now() - sentAt);
    await sendBatch(id);
  }
  const wall = (performance.now() - t0) / 1000;
  for (const id of ids) await r.send([id, packr.pack({ t: 'exit' })]);
  await Promise.all(kids.map((k) => new Promise((res) => k.on('exit', res))));
  r.close();
  return wall;
}
