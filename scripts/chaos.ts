/**
 * `pnpm chaos [--tasks N] [--workers N] [--duration S] [--seed N] [--kill-every MS] [--spin-ms MS]
 *             [--restarts N] [--no-partition] [--logs DIR]`
 *
 * A large job (the steady test fixture: TASKS tasks whose results the application prints as
 * `got N`) run while things break:
 *   - workers SIGKILLed at random (seeded; about every --kill-every ms) and replaced at once;
 *   - a network partition of one worker: as root, the coordinator and most workers run in network
 *     namespace A, one worker in namespace B behind a veth link, which goes down at 20% of the
 *     results for longer than the liveness and then up again (without root: skipped, said so);
 *   - a coordinator restart at 60% (--restarts N: N of them, spread from 30% to 90%): SIGKILL,
 *     then started again with the same journal file
 *     (when the coordinator has the `journal` option; otherwise skipped, said so).
 * The results the application prints are counted across coordinator incarnations; at the end it
 * prints tasks, lost (never delivered), duplicates (delivered more than once, beyond the result in
 * the application's hands at a restart, which the journal delivers again by design), errors, wall time,
 * kills, partitions and restarts, and exits non-zero unless lost and duplicates are 0 and the job
 * finished. It stops by itself: the job is abandoned (and reported) after --duration seconds.
 * Traffic stays on loopback, or inside the namespaces it creates and deletes.
 *
 * A script, not a test: it uses time to decide when to break things, never to decide what happened.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { FileJournal } from '../packages/coordinator/src/journal.ts';
import { DEFAULTS as COORDINATOR_DEFAULTS } from '../packages/coordinator/src/options.ts';
import { hostsUnavailable, makeHosts } from '../test/helpers/hosts.ts';
import { prng, startApp, type App } from '../packages/taskfarm/test/processes.ts';

const HELP = `pnpm chaos [options]: a large job under worker kills, a partition and a coordinator restart

  --tasks N         tasks in the job (default 20000)
  --workers N       workers kept running, the partitioned one included (default 4)
  --duration S      give up on the job after S seconds (default 60)
  --seed N          seed of the random kills (default: random, printed)
  --kill-every MS   mean time between worker kills, from 5% of the results on (default 1000)
  --spin-ms MS      CPU time per task (default 1)
  --no-partition    no network partition
  --restarts N      coordinator restarts (SIGKILL, start again with the journal) (default 1)
  --logs DIR        keep every process's output in DIR (coordinator-1.out, worker-7.err, ...)`;

const { values: flags } = parseArgs({
  options: {
    tasks: { type: 'string', default: '20000' },
    workers: { type: 'string', default: '4' },
    duration: { type: 'string', default: '60' },
    seed: { type: 'string' },
    'kill-every': { type: 'string', default: '1000' },
    'spin-ms': { type: 'string', default: '1' },
    'no-partition': { type: 'boolean', default: false },
    restarts: { type: 'string', default: '1' },
    logs: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (flags.help) {
  console.log(HELP);
  process.exit(0);
}

function int(name: string, raw: string, min: number): number {
  const v = Number(raw);
  if (!Number.isSafeInteger(v) || v < min) {
    console.error(`chaos: --${name} must be an integer >= ${min}, not ${JSON.stringify(raw)}\n\n${HELP}`);
    process.exit(2);
  }
  return v;
}
const TASKS = int('tasks', flags.tasks, 1);
const WORKERS = int('workers', flags.workers, 2);
const DURATION_MS = int('duration', flags.duration, 1) * 1000;
const SEED = flags.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : int('seed', flags.seed, 0);
const KILL_EVERY = int('kill-every', flags['kill-every'], 1);
const SPIN_MS = int('spin-ms', flags['spin-ms'], 0);
const RESTARTS = int('restarts', flags.restarts, 0);
const HEARTBEAT_MS = 250;
const LIVENESS_MS = 1500;
/** How long the link stays down: well past the liveness, so the coordinator gives the worker up. */
const PARTITION_MS = 3 * LIVENESS_MS;

const started = performance.now();
const elapsed = () => `${((performance.now() - started) / 1000).toFixed(1)} s`;
const say = (msg: string) => console.log(`[chaos ${elapsed().padStart(7)}] ${msg}`);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const alive = (app: App) => app.child.exitCode === null && app.child.signalCode === null;

// --- what can be broken here --------------------------------------------------------------------

/** Host A (the coordinator and most workers) and host B (the worker that gets partitioned), as network namespaces. */
let net: { a: string; b: string; addressA: string; down(): void; up(): void; destroy(): void } | null = null;
if (flags['no-partition']) say('partition: off (--no-partition)');
else {
  const why = hostsUnavailable();
  if (why) say(`partition: SKIPPED: ${why}; run as root on Linux with iproute2 to include it`);
  else {
    const hosts = makeHosts(1);
    net = { a: hosts.coordinator, b: hosts.workers[0]!, addressA: hosts.coordAddresses[0]!, down: () => hosts.cut(0), up: () => hosts.mend(0), destroy: hosts.destroy };
  }
}
const hasJournal = 'journal' in COORDINATOR_DEFAULTS;
let journalDir: string | null = null;
if (RESTARTS === 0) say('coordinator restart: off (--restarts 0)');
else if (!hasJournal) {
  say('TODO coordinator restart: SKIPPED: this coordinator has no `journal` option yet (packages/coordinator/src/options.ts); a restart without one loses the job');
} else {
  const dir = (journalDir = mkdtempSync(join(tmpdir(), 'taskfarm-chaos-')));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
}

/** A port free right now (loopback), or any port inside namespace A, which is ours alone. */
async function pickPort(): Promise<number> {
  if (net) return 5555;
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}
// Fixed, so that a restarted coordinator is found where the workers dial.
const endpoint = `tcp://${net ? net.addressA : '127.0.0.1'}:${await pickPort()}`;
say(
  `tasks=${TASKS} workers=${WORKERS} seed=${SEED} kill-every=${KILL_EVERY}ms spin=${SPIN_MS}ms duration<=${DURATION_MS / 1000}s ` +
    `endpoint=${endpoint}${net ? ` (namespace ${net.a}; partitioned worker in ${net.b})` : ''}`,
);

// --- processes ----------------------------------------------------------------------------------

const heartbeats = { HEARTBEAT_MS: String(HEARTBEAT_MS), LIVENESS_MS: String(LIVENESS_MS) };
const coordinatorEnv: NodeJS.ProcessEnv = {
  ...heartbeats,
  TASKFARM_BIND: endpoint,
  // Plaintext: loopback, or a link between namespaces of ours (a non-loopback bind needs TASKFARM_INSECURE).
  TASKFARM_INSECURE: '1',
  TASKFARM_LOG_LEVEL: 'info',
  TASKS: String(TASKS),
  PRINT_RESULTS: '1',
  // Kills are random, not a poison task: never give a task up for the workers it was lost with.
  MAX_LOSSES: String(2 ** 31),
  ...(journalDir ? { TASKFARM_JOURNAL: join(journalDir, 'job.journal') } : {}),
};
const workerEnv: NodeJS.ProcessEnv = { ...heartbeats, TASKFARM_CONNECT: endpoint, TASKFARM_ROLE: 'worker', SPIN_MS: String(SPIN_MS) };

/** Deliveries per task, counted over every coordinator incarnation. */
const received = new Uint32Array(TASKS);
let deliveries = 0;
/** The last result each coordinator delivered: see `inHand` in the verdict. */
const lastGot = new Map<App, number>();
let coordinator: App;
const coordinators: App[] = [];
/** Coordinators this script SIGKILLed on purpose; any other exit ends the job. */
const restarted = new Set<App>();
type Exit = { code: number | null; signal: NodeJS.Signals | null };
let endJob: (exit: Exit) => void = () => {};
const jobEnded = new Promise<Exit>((resolve) => (endJob = resolve));

function startCoordinator(): App {
  const app = startApp('steady', coordinatorEnv, net ? { netns: net.a } : {});
  void app.exited.then((exit) => restarted.has(app) || endJob(exit));
  createInterface({ input: app.child.stdout }).on('line', (line) => {
    if (!line.startsWith('got ')) return;
    const n = Number(line.slice(4));
    if (Number.isSafeInteger(n) && n >= 0 && n < TASKS) received[n]!++;
    deliveries++;
    lastGot.set(app, n);
  });
  coordinators.push(app);
  return app;
}

const workers: App[] = [];
/** The worker in namespace B, the one that gets cut off; killed only by accident. */
let partitioned: App | null = null;
function startWorker(): App {
  const app = startApp('steady', workerEnv, net ? { netns: net.a } : {});
  workers.push(app);
  return app;
}

// Whatever happens (Ctrl-C, a crash of this script), children stop and namespaces go.
let cleaned = false;
async function cleanup(): Promise<void> {
  if (cleaned) return;
  cleaned = true;
  const all = [...coordinators, ...workers, ...(partitioned ? [partitioned] : [])].filter(alive);
  for (const app of all) app.child.kill('SIGTERM');
  await Promise.race([Promise.all(all.map((a) => a.exited)), sleep(3000)]);
  for (const app of all.filter(alive)) app.child.kill('SIGKILL');
  await Promise.all(all.map((a) => a.exited));
  net?.destroy();
  if (journalDir) rmSync(journalDir, { recursive: true, force: true });
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    say(`${signal}: stopping`);
    void cleanup().then(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  });
}

// --- the run ------------------------------------------------------------------------------------

coordinator = startCoordinator();
try {
  await coordinator.waitFor(/^endpoint /m);
} catch (err) {
  console.error(`chaos: the coordinator did not start: ${(err as Error).message}`);
  await cleanup();
  process.exit(1);
}
for (let i = 0; i < WORKERS - (net ? 1 : 0); i++) startWorker();
if (net) {
  // Slow tasks (20 ms each) keep it busy, so the cut most likely finds a task in flight there, whose
  // result then comes back late.
  partitioned = startApp('steady', { ...workerEnv, SLEEP_MS: '20', TASKFARM_LOG_LEVEL: 'info' }, { netns: net.b });
}

let kills = 0;
let partitions = 0;
let restarts = 0;
let finished = false;
const notes: string[] = [];
const random = prng(SEED);
const deadline = started + DURATION_MS;

/** Resolves once `fraction` of the tasks have been delivered, or false when the job ended or ran out of time. */
async function until(fraction: number): Promise<boolean> {
  while (deliveries < fraction * TASKS) {
    if (finished || performance.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

/** Random kills from 5% of the results on: a live worker (not the partitioned one) gets SIGKILL and a replacement starts. */
async function killer(): Promise<void> {
  if (!(await until(0.05))) return;
  while (!finished && performance.now() < deadline) {
    await sleep(-Math.log(1 - random()) * KILL_EVERY);
    if (finished) return;
    const live = workers.filter(alive);
    const victim = live[Math.floor(random() * live.length)];
    if (victim?.child.kill('SIGKILL')) kills++;
    startWorker();
  }
}

/** The rank the coordinator last gave the process `pid`, from its `worker joined` lines. */
function rankOf(pid: number): string | undefined {
  const joins = [...coordinator.stderr.matchAll(new RegExp(`"rank":(\\d+),"host":"[^"]*","pid":${pid},"msg":"worker joined"`, 'g'))];
  return joins.at(-1)?.[1];
}

/** Lines of `text` after `offset` that match every one of `patterns`. */
function linesAfter(text: string, offset: number, ...patterns: RegExp[]): string[] {
  return text.slice(offset).split('\n').filter((line) => patterns.every((p) => p.test(line)));
}

async function partition(): Promise<void> {
  if (!net || !partitioned || !(await until(0.2))) return;
  const victim = partitioned;
  const rank = rankOf(victim.child.pid!);
  const [coordinatorFrom, workerFrom] = [coordinator.stderr.length, victim.stderr.length];
  net.down();
  partitions++;
  say(`partition: link to the worker in ${net.b} (pid ${victim.child.pid}, rank ${rank ?? '?'}) down for ${PARTITION_MS} ms`);
  await sleep(PARTITION_MS);
  const lost = linesAfter(coordinator.stderr, coordinatorFrom, new RegExp(`"rank":${rank},`), /"msg":"worker lost"/).length > 0;
  const ended = finished;
  net.up();
  if (ended) return say('partition: link up; the job had ended meanwhile');
  // Back: it registers again (the same rank if still free) and the coordinator says it joined.
  const isBack = () =>
    linesAfter(victim.stderr, workerFrom, /"msg":"registered again"/).length > 0 &&
    linesAfter(coordinator.stderr, coordinatorFrom, new RegExp(`"pid":${victim.child.pid},"msg":"worker joined"`)).length > 0;
  const end = performance.now() + 15_000;
  while (!isBack() && !finished && performance.now() < end) await sleep(100);
  const back = isBack();
  if (!back && finished) return say('partition: link up; the job ended before the worker was back');
  const note = `partition: link up; the coordinator ${lost ? 'had declared the worker lost' : 'had NOT declared the worker lost'}; the worker ${back ? `registered again as rank ${rankOf(victim.child.pid!)}` : 'did NOT register again within 15 s'}`;
  say(note);
  if (!lost || !back) notes.push(note);
}

/** SIGKILL the coordinator once `fraction` of the results are in, and start it again with its journal. */
async function restart(fraction: number): Promise<void> {
  if (!(await until(fraction)) || !alive(coordinator)) return;
  restarted.add(coordinator);
  coordinator.child.kill('SIGKILL');
  await coordinator.exited;
  restarts++;
  say(`coordinator: SIGKILLed after ${deliveries} deliveries; starting it again with its journal`);
  await sleep(500);
  coordinator = startCoordinator();
  await coordinator.waitFor(/^endpoint /m);
  const resumed = /"msg":"resuming from the journal"/.test(coordinator.stderr);
  say(`coordinator: listening again${resumed ? ', resuming from the journal' : ' (it did NOT say it resumed from the journal)'}`);
  if (!resumed) notes.push('a restarted coordinator did not say it resumed from the journal');
}

async function restarter(): Promise<void> {
  if (!journalDir) return;
  await partitionDone; // one disaster at a time, so each can be told apart in the logs
  for (let i = 0; i < RESTARTS; i++) await restart(RESTARTS === 1 ? 0.6 : 0.3 + (0.6 * i) / (RESTARTS - 1));
}

const progress = setInterval(() => say(`${deliveries}/${TASKS} delivered, ${kills} kills, ${workers.filter(alive).length + (partitioned && alive(partitioned) ? 1 : 0)} workers`), 2000);
const partitionDone = partition();
const chaos = Promise.all([killer(), partitionDone, restarter()]).catch((err: Error) => {
  // A step that could not be carried out (a restarted coordinator that did not start, say) ends the run.
  notes.push(`chaos: ${err.message}`);
  endJob({ code: null, signal: null });
});

// The job ends when a coordinator finishes it (or dies unasked), or at the deadline.
const exit = await Promise.race([jobEnded, sleep(DURATION_MS).then(() => null)]);
finished = true;
clearInterval(progress);
const wall = elapsed();
if (exit === null) say(`gave up: the job did not finish within ${DURATION_MS / 1000} s`);
await chaos;
if (flags.logs) {
  mkdirSync(flags.logs, { recursive: true });
  if (journalDir && existsSync(join(journalDir, 'job.journal'))) copyFileSync(join(journalDir, 'job.journal'), join(flags.logs, 'job.journal'));
}
/** What the journal says of each result the application never printed (read from a copy: opening truncates a torn tail). */
const journalSays = new Map<string, number[]>();
if (journalDir && existsSync(join(journalDir, 'job.journal'))) {
  const copy = join(journalDir, 'inspect.journal');
  copyFileSync(join(journalDir, 'job.journal'), copy);
  const journal = new FileJournal(copy);
  for (const [n, c] of received.entries()) {
    if (c > 0) continue;
    const known = journal.lookup('default', n);
    const what = known === undefined ? 'unknown to the journal' : known === 'delivered' ? 'marked delivered' : 'completed, not delivered';
    journalSays.set(what, [...(journalSays.get(what) ?? []), n]);
  }
  journal.close();
}
await cleanup();
if (flags.logs) {
  const save = (name: string, app: App) => {
    writeFileSync(join(flags.logs!, `${name}.out`), app.stdout);
    writeFileSync(join(flags.logs!, `${name}.err`), app.stderr);
  };
  coordinators.forEach((app, i) => save(`coordinator-${i + 1}`, app));
  workers.forEach((app, i) => save(`worker-${i + 1}`, app));
  if (partitioned) save('worker-partitioned', partitioned);
}

// --- verdict ------------------------------------------------------------------------------------

// The result the application had in hand when its coordinator was killed is delivered once more by
// the restarted one (README, Failure semantics: at least once for that one, rather than lost). Such
// a repeat is reported apart; any other is a duplicate.
const inHand: number[] = [];
for (const app of restarted) {
  const n = lastGot.get(app);
  if (n !== undefined && received[n]! > 1) inHand.push(n);
}
let lost = 0;
let duplicates = 0;
for (const [n, c] of received.entries()) {
  if (c === 0) lost++;
  else duplicates += c - 1 - inHand.filter((k) => k === n).length;
}
const summary = /^summary (.*)$/m.exec(coordinator.stdout)?.[1] ?? '';
const errors = Number(/errors=(\d+)/.exec(summary)?.[1] ?? 0);
const ok = exit !== null && exit.code === 0 && lost === 0 && duplicates === 0 && errors === 0 && notes.length === 0;
const rows: Array<[string, string | number]> = [
  ['tasks', TASKS],
  ['delivered', deliveries],
  ['lost', lost],
  ['duplicates', duplicates],
  ['in hand', `${inHand.length} (delivered again after a restart by design: ${inHand.join(' ') || 'none'})`],
  ['errors', errors],
  ['wall time', wall],
  ['kills', kills],
  ['partitions', net ? partitions : 'skipped (no network namespaces)'],
  ['restarts', journalDir ? restarts : RESTARTS === 0 ? 'off' : 'skipped (TODO: no journal option)'],
  ['seed', SEED],
];
console.log('');
for (const [k, v] of rows) console.log(`${k.padEnd(12)} ${v}`);
if (exit === null || exit.code !== 0) console.log(`\nthe job did not finish: last coordinator ${exit ? `exited with ${exit.code ?? exit.signal}` : 'was still running at the deadline'}`);
const missing = [...received.keys()].filter((n) => received[n] === 0);
const twice = [...received.keys()].filter((n) => received[n]! > 1 + inHand.filter((k) => k === n).length);
if (missing.length) console.log(`\nnever delivered: ${missing.slice(0, 20).join(' ')}${missing.length > 20 ? ' ...' : ''}`);
for (const [what, keys] of journalSays) {
  console.log(`  ${keys.length} of them ${what} in the journal${what === 'marked delivered' ? ' (handed to the application by a coordinator killed before the application printed them)' : ''}`);
}
if (twice.length) console.log(`\ndelivered more than once: ${twice.slice(0, 20).join(' ')}${twice.length > 20 ? ' ...' : ''}`);
for (const n of notes) console.log(`\n${n}`);
if (!ok) console.log(`\nFAILED (replay with --seed ${SEED})\n--- last coordinator's stderr (tail) ---\n${coordinator.stderr.split('\n').slice(-30).join('\n')}`);
process.exit(ok ? 0 : 1);
