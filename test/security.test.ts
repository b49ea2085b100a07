/**
 * Hostile network (issue 4), with real sockets in this process: bad input of every kind from
 * strangers and from registered peers is refused, counted by reason and answered as PROTOCOL.md
 * says, and the coordinator keeps serving; the same on the worker's side; safe defaults; CURVE with
 * an allow-list enforced by ZAP, reloaded on SIGHUP.
 *
 * Every step waits for an answer or an event, never for time: a refused message from a stranger is
 * answered with a reject; one from a registered peer is followed by a heartbeat, whose answer means
 * everything before it on that connection was handled.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import t, { type Test } from 'tap';
import {
  Coordinator,
  formatPublicKeyFile,
  formatSecretKeyFile,
  generateCurveKeyPair,
  InsecureBindError,
  isLocalEndpoint,
  Master,
  PayloadError,
  Worker,
  WorkQueue,
  type TaskContext,
} from 'taskfarm';
import { encode, encodePayload, MAX_HEADER_BYTES, MAX_MESSAGE_FRAMES, type CoordinatorMessage } from '../packages/protocol/src/index.ts';
import { resolveOptions } from '../packages/coordinator/src/options.ts';
import { eventCounter, FakeCoordinator, nextEvent, Rogue } from './helpers/rogue.ts';

const packr = new Packr({ useRecords: false });
const raw = (m: unknown) => packr.pack(m);
const quiet = { logLevel: 'silent', handleSignals: false } as const;

class Square extends Worker<number, number> {
  doWork(n: number): number {
    return n * n;
  }
}

/** A worker whose tasks wait until release() (or return at once once released). */
class Gated extends Worker<number, number> {
  #open!: () => void;
  readonly #gate = new Promise<void>((r) => (this.#open = r));
  readonly started: Promise<number>;
  #started!: (n: number) => void;
  constructor(options: ConstructorParameters<typeof Worker>[0]) {
    super(options);
    this.started = new Promise((r) => (this.#started = r));
  }
  release(): void {
    this.#open();
  }
  async doWork(n: number): Promise<number> {
    this.#started(n);
    await this.#gate;
    return n * 10;
  }
}

async function start(t: Test, options: ConstructorParameters<typeof Coordinator>[0] = {}): Promise<Coordinator> {
  const c = await Coordinator.start({ endpoint: 'tcp://127.0.0.1:*', logLevel: 'silent', ...options });
  t.teardown(() => c.close());
  return c;
}

function rogueOf(t: Test, endpoint: string, options?: ConstructorParameters<typeof Rogue>[1]): Rogue {
  const r = new Rogue(endpoint, options);
  t.teardown(() => r.close());
  return r;
}

/** Sends a heartbeat and waits for its answer: everything the rogue sent before has been handled. */
async function settle(rogue: Rogue): Promise<CoordinatorMessage[]> {
  await rogue.envelope({ t: 'heartbeat' });
  const seen: CoordinatorMessage[] = [];
  for (;;) {
    const msgs = await rogue.receive();
    seen.push(...msgs);
    if (msgs.some((m) => m.t === 'heartbeat')) return seen;
  }
}

/** Runs one task on a fresh honest worker: proof that the coordinator still serves. */
async function stillServes(t: Test, c: Coordinator, n: number, workerOptions: object = {}): Promise<void> {
  const w = new Square({ connect: c.endpoint, ...quiet, ...workerOptions });
  const run = w.run();
  const master = new Master(undefined, { coordinator: c });
  const queue = new WorkQueue(master);
  t.equal(await queue.submit(n), n * n, `a new worker registers and computes ${n}² = ${n * n}`);
  await master.terminateWorkers();
  await run;
}

t.test('bad input from a stranger: refused, counted by reason, answered; the coordinator keeps serving', async (t) => {
  const c = await start(t);
  const counts = eventCounter(c);
  const rogue = rogueOf(t, c.endpoint);
  const heartbeat = encode({ t: 'heartbeat' })[0]!;
  const cases: Array<[string, Array<Buffer | string>, string, string]> = [
    ['malformed msgpack', [Buffer.from([0xc1, 0x00])], 'protocol:EMSGPACK', 'EPROTOCOL'],
    ['truncated msgpack', [heartbeat.subarray(0, 6)], 'protocol:EMSGPACK', 'EPROTOCOL'],
    ['an empty frame before the header', [Buffer.alloc(0), heartbeat], 'protocol:EMSGPACK', 'EPROTOCOL'],
    ['not a map', [raw([1, 'ready'])], 'protocol:ENOTMAP', 'EPROTOCOL'],
    ['a result without its payload frame', [raw({ v: 1, t: 'result', id: 1, attempt: 1 })], 'protocol:EFRAMES', 'EPROTOCOL'],
    [`more than ${MAX_MESSAGE_FRAMES} frames`, Array.from({ length: MAX_MESSAGE_FRAMES + 1 }, () => heartbeat), 'protocol:EFRAMES', 'EPROTOCOL'],
    ['a missing field', [raw({ v: 1, t: 'register', rank: null, pid: 1 })], 'protocol:EFIELD', 'EPROTOCOL'],
    ['a mistyped field', [raw({ v: 1, t: 'register', rank: 'one', host: 'h', pid: 1 })], 'protocol:EFIELD', 'EPROTOCOL'],
    ['rank 0', [raw({ v: 1, t: 'register', rank: 0, host: 'h', pid: 1 })], 'protocol:EFIELD', 'EPROTOCOL'],
    ['an unknown type', [raw({ v: 1, t: 'launch' })], 'protocol:ETYPE', 'EPROTOCOL'],
    ['a type only the coordinator sends', [raw({ v: 1, t: 'terminate' })], 'protocol:ETYPE', 'EPROTOCOL'],
    [`a header over ${MAX_HEADER_BYTES} bytes`, [Buffer.alloc(MAX_HEADER_BYTES + 1, 0x90)], 'protocol:ETOOBIG', 'EPROTOCOL'],
    ['ready before register', encode({ t: 'ready' }), 'dropped:unregistered', 'ENOTREGISTERED'],
    ['a result before register', encode({ t: 'result', id: 1, attempt: 1, payload: encodePayload(1) }), 'dropped:unregistered', 'ENOTREGISTERED'],
  ];
  for (const [name, frames, key, code] of cases) {
    const before = counts.get(key) ?? 0;
    await rogue.send(frames);
    const [reply] = await rogue.receive();
    t.match(reply, { t: 'reject', code }, `${name}: answered ${code}`);
    t.equal(counts.get(key), before + 1, `${name}: counted as ${key}`);
  }

  // Another protocol version: the reject names both.
  await rogue.send([raw({ v: 2, t: 'register', rank: null, host: 'h', pid: 1 })]);
  const [v2] = await rogue.receive();
  t.match(v2, { t: 'reject', code: 'EVERSION', version: 1, message: /version 2 .*version 1/ }, 'version 2: answered EVERSION naming both versions');
  // A "version" that is a map with a toString key once made the reject itself throw, and the coordinator close.
  await rogue.send([raw({ v: { toString: 1, valueOf: 2 }, t: 'ready' })]);
  const [odd] = await rogue.receive();
  t.match(odd, { t: 'reject', code: 'EVERSION', version: 1 }, 'a version that is a map with toString: answered EVERSION');
  t.equal(counts.get('protocol:EVERSION'), 2, 'both counted as EVERSION');

  // A lone empty frame looks like a connect/disconnect notification: from a stranger it changes nothing.
  const workersBefore = c.farm.workerCount;
  await rogue.send([Buffer.alloc(0)]);
  await rogue.envelope({ t: 'bye' }); // a stranger's bye is ignored silently...
  await rogue.envelope({ t: 'ready' }); // ...so this answer follows what came before
  t.match(await rogue.receive(), [{ t: 'reject', code: 'ENOTREGISTERED' }], 'a spoofed notification and a stranger\'s bye change nothing');
  t.equal(c.farm.workerCount, workersBefore);

  t.notOk(c.closed, 'the coordinator is still up');
  await stillServes(t, c, 7);
});

t.test('bad input from a registered peer: other ranks, tasks it does not hold, repeats; dropped and counted', async (t) => {
  const c = await start(t);
  const counts = eventCounter(c);
  const honest = new Gated({ connect: c.endpoint, rank: 1, ...quiet });
  const honestRun = honest.run();
  const master = new Master([1], { coordinator: c }); // the rogue's rank is never given work
  await master.waitForWorkers();
  const taskId = master.run(1, 4);
  await honest.started;

  // A stranger registers: it is a worker now, but nobody's.
  const rogue = rogueOf(t, c.endpoint);
  await rogue.envelope({ t: 'register', rank: null, host: 'rogue', pid: 666, instance: null });
  const [welcome] = await rogue.receive();
  t.match(welcome, { t: 'welcome', rank: 2 }, 'the rogue is registered as rank 2');

  // The honest worker's task, reported by the rogue, which does not hold it.
  await rogue.envelope({ t: 'result', id: taskId, attempt: 1, payload: encodePayload('forged') });
  t.match(await rogue.receive(), [{ t: 'ack', id: taskId, attempt: 1 }], 'acknowledged, as every result is');
  t.equal(counts.get('dropped:stale-result'), 1, 'a result for a task the sender does not hold: dropped as stale-result');

  await rogue.envelope({ t: 'register', rank: 1, host: 'rogue', pid: 666, instance: null });
  await rogue.envelope({ t: 'ready' });
  await rogue.envelope({ t: 'ready' });
  await rogue.send([Buffer.from([0x92, 0x01])]);
  const replies = await settle(rogue);
  t.same(replies.map((m) => m.t), ['heartbeat'], 'a registered peer\'s bad messages get no answer');
  t.equal(counts.get('dropped:reregister'), 1, 'a second register: dropped as reregister');
  t.equal(counts.get('dropped:unexpected-ready'), 1, 'a second ready: dropped as unexpected-ready');
  t.equal(counts.get('protocol:EMSGPACK'), 1, 'bad msgpack from a registered peer: counted, no reject');

  // Claims of another worker's rank, with or without a guessed instance id.
  const claimant = rogueOf(t, c.endpoint);
  for (const instance of [null, 'a-guessed-instance-id']) {
    await claimant.envelope({ t: 'register', rank: 1, host: 'claimant', pid: 1, instance });
    t.match(await claimant.receive(), [{ t: 'reject', code: 'ERANKTAKEN' }], `rank 1 claimed (instance ${instance}): ERANKTAKEN`);
  }
  t.equal(counts.get('rejected:ERANKTAKEN'), 2, 'counted as rejected ERANKTAKEN');

  // A peer that takes the honest worker's routing id is refused by the ROUTER (ROUTER_HANDOVER off):
  // its forged result never reaches the coordinator. (Were it let in, it would be taken as rank 1's.)
  const impostor = rogueOf(t, c.endpoint, { routingId: Buffer.from(c.farm.worker(1)!.peer, 'latin1') as unknown as string });
  await impostor.envelope({ t: 'result', id: taskId, attempt: 1, payload: encodePayload(-1) });
  await impostor.handshake;
  t.pass('the impostor connected and sent a forged result for rank 1\'s task');

  honest.release();
  while (master.getCompletedWorkers().length === 0) await master.changed();
  t.equal(master.getData(1), 40, 'the application gets the honest worker\'s result');
  t.equal(counts.get('dropped:stale-result'), 1, 'and nothing more was dropped');
  t.equal(c.farm.worker(1)?.host, honest.options.host, 'rank 1 is still the honest worker');
  await master.terminateWorkers();
  await honestRun;
});

t.test('a frame over maxMessageBytes: libzmq drops the connection; a registered sender is lost, counted; the coordinator serves on', async (t) => {
  const c = await start(t, { maxMessageBytes: 64 * 1024 });
  const lost: string[] = [];
  c.observers.add({ left: (w, reason) => lost.push(`${w.rank}:${reason}`) });
  const rogue = rogueOf(t, c.endpoint);
  await rogue.envelope({ t: 'register', rank: 5, host: 'big', pid: 1, instance: null });
  t.match(await rogue.receive(), [{ t: 'welcome', rank: 5 }]);
  const cut = rogue.next('disconnect');
  await rogue.envelope({ t: 'result', id: 1, attempt: 1, payload: Buffer.alloc(64 * 1024 + 1) });
  await cut;
  t.pass('the connection that sent a frame of 64 KiB + 1 was dropped');
  await rogue.next('handshake'); // it reconnects at once, as a new peer
  await rogue.envelope({ t: 'ready' });
  t.match(await rogue.receive(), [{ t: 'reject', code: 'ENOTREGISTERED' }], 'on its new connection it is a stranger');
  t.same(lost, ['5:disconnected'], 'its worker was lost (taskfarm_workers_lost_total{reason="disconnected"})');
  await stillServes(t, c, 8);
});

t.test('a peer that does not read what it is sent: its queue is bounded, the drop is counted, and it is given up', async (t) => {
  const c = await start(t);
  const counts = eventCounter(c);
  // Rank 7 answers every task it is sent (task ids count from 1) without ever reading; each answer
  // earns an ack and, at once, the next task of 4 KiB, which pile up unread.
  const master = new Master([7], { coordinator: c });
  const blob = Buffer.alloc(4096, 7);
  let dispatched = () => {};
  const off = c.onChange(() => {
    if (master.getCompletedWorkers().includes(7)) master.getData(7);
    if (master.getReadyWorkers().includes(7)) {
      master.run(7, blob);
      dispatched();
    }
  });
  t.teardown(off);
  const rogue = rogueOf(t, c.endpoint, { receiveHighWaterMark: 1, receiveBufferSize: 4096 });
  await rogue.envelope({ t: 'register', rank: 7, host: 'deaf', pid: 1, instance: null });
  let next = new Promise<void>((r) => (dispatched = r));
  await rogue.envelope({ t: 'ready' });
  let unread = false;
  void nextEvent(c, 'dropped:unread').then(() => (unread = true));
  let id = 1;
  for (; !unread && id <= 20_000; id++) {
    // One answer at a time, each task sent (a message of its own) before the next answer leaves.
    await next;
    await new Promise((r) => setImmediate(r));
    next = new Promise<void>((r) => (dispatched = r));
    await rogue.envelope({ t: 'error', id, attempt: 1, error: { name: 'Error', message: 'no' } });
  }
  if (!unread) await Promise.race([next, nextEvent(c, 'dropped:unread')]);
  t.ok(unread, `after ${id - 1} tasks sent and never read, the coordinator stops queueing for it (dropped:unread)`);
  t.equal(c.farm.worker(7), undefined, 'the worker that does not read was given up');
  t.equal(counts.get('dropped:stale-result') ?? 0, 0, 'every answer was for the task it held');
  await stillServes(t, c, 3);
});

t.test('the worker side: bad frames from the coordinator are dropped, counted by reason, and the worker serves on', async (t) => {
  const fake = await new FakeCoordinator().bind();
  t.teardown(() => fake.close());
  class Probe extends Worker<number, boolean> {
    async doWork(_n: number, ctx: TaskContext): Promise<boolean> {
      // A timeout beyond what a Node timer holds used to fire after 1 ms; this timer outlasts that.
      await new Promise((r) => setTimeout(r, 20));
      return ctx.signal.aborted;
    }
  }
  const worker = new Probe({ connect: fake.endpoint, ...quiet });
  const run = worker.run();
  t.match(await fake.receive(), [{ t: 'register' }], 'the worker registers');
  await fake.send([Buffer.from([0x92, 0x01])]);
  await fake.send([raw([1, 2])]);
  await fake.send([raw({ v: 2, t: 'welcome' })]);
  await fake.send([raw({ v: 1, t: 'welcome', rank: 0, settings: {} })]);
  await fake.send([raw({ v: 1, t: 'register', rank: null, host: 'h', pid: 1 })]);
  await fake.send([raw({ v: 1, t: 'work', id: 1, attempt: 1, type: null, resource: null })]);
  await fake.envelope({ t: 'work', id: 1, attempt: 1, type: null, resource: null, timeoutMs: null, payload: encodePayload(1) });
  await fake.envelope({ t: 'welcome', rank: 3, settings: { heartbeatMs: 1, livenessMs: 3000, maxMessageBytes: 1 << 20 } });
  t.match(await fake.receive(), [{ t: 'ready' }], 'a valid welcome after all that is followed by ready');
  t.same(
    worker.counters,
    { protocolErrors: { EMSGPACK: 1, ENOTMAP: 1, EVERSION: 1, EFIELD: 1, ETYPE: 1, EFRAMES: 1 }, dropped: { 'before-welcome': 1 }, handshakeFailures: {} },
    'each refused by reason; work before welcome is dropped, not run',
  );
  await fake.envelope({ t: 'cancel', id: 77, attempt: 1 });
  await fake.envelope({ t: 'work', id: 5, attempt: 1, type: null, resource: null, timeoutMs: 2 ** 40, payload: encodePayload(5) });
  let result: unknown;
  for (;;) {
    const msgs = await fake.receive();
    const r = msgs.find((m) => m.t === 'result');
    if (r && r.t === 'result') {
      result = (await import('../packages/protocol/src/index.ts')).decodePayload(r.payload);
      break;
    }
  }
  t.equal(result, false, 'a task with a timeout of 2^40 ms is not aborted at once');
  t.equal(worker.counters.dropped['stale-cancel'], 1, 'a cancel for a task it does not run: counted');
  await fake.envelope({ t: 'terminate' });
  await run;
});

t.test('payloads: a value that cannot be sent is a PayloadError when it is added, not at dispatch', async (t) => {
  const c = await start(t);
  const master = new Master([1], { coordinator: c });
  const queue = new WorkQueue(master);
  const bad: Array<[string, unknown, RegExp]> = [
    ['a function', { f: () => 1 }, /the value\.f is a function/],
    ['a Symbol', [1, Symbol('s')], /the value\[1\] is a Symbol/],
    ['a Promise', Promise.resolve(1), /Promise: await it first/],
    ['a BigInt over 64 bits', 2n ** 64n, /BigInt outside the 64-bit range/],
  ];
  for (const [name, value, message] of bad) {
    t.throws(() => queue.addWork(value), { name: 'PayloadError', code: 'EPAYLOAD', message }, `addWork(${name}) throws at once`);
  }
  t.ok(queue.done(), 'nothing was queued');
  const w = new Square({ connect: c.endpoint, rank: 1, ...quiet });
  const run = w.run();
  await master.waitForWorkers();
  t.throws(() => master.run(1, { cb: () => 1 }), PayloadError, 'Master.run() throws too, and the worker stays ready');
  t.same(master.getReadyWorkers(), [1]);
  await master.terminateWorkers();
  await run;
});

t.test('safe defaults: loopback unless told; plaintext beyond it only with insecure, and a warning', async (t) => {
  for (const e of ['tcp://127.0.0.1:5555', 'tcp://127.1.2.3:*', 'tcp://localhost:5555', 'tcp://[::1]:5555', 'tcp://lo:5555', 'ipc:///tmp/x.sock', 'inproc://x']) {
    t.ok(isLocalEndpoint(e), `${e} is local`);
  }
  for (const e of ['tcp://0.0.0.0:5555', 'tcp://*:5555', 'tcp://[::]:5555', 'tcp://10.0.0.5:5555', 'tcp://example.org:5555', 'tcp://eth0:5555', 'tcp://[::2]:1']) {
    t.notOk(isLocalEndpoint(e), `${e} is reachable from the network`);
  }
  t.equal(resolveOptions({}, {}).endpoint, 'tcp://127.0.0.1:5555', 'the default endpoint is loopback');
  t.equal(resolveOptions({}, {}).metricsHost, '127.0.0.1', 'the metrics server listens on loopback by default');
  t.throws(() => new Coordinator({ endpoint: 'tcp://0.0.0.0:*', ...quiet }), { name: 'InsecureBindError', code: 'EINSECURE', message: /insecure: true/ });
  t.throws(() => resolveOptions({}, { TASKFARM_BIND: 'tcp://*:5555' }), InsecureBindError, 'from the environment too');
  t.equal(resolveOptions({}, { TASKFARM_BIND: 'tcp://*:5555', TASKFARM_INSECURE: '1' }).insecure, true, 'TASKFARM_INSECURE=1 opts out');
  await t.rejects(Coordinator.start({ endpoint: 'tcp://10.255.255.1:*', ...quiet }), { code: 'EINSECURE' }, 'start() rejects');

  const lines: string[] = [];
  const log = (_fields: unknown, msg?: string) => void lines.push(String(msg));
  const logger = { debug: () => {}, info: () => {}, warn: log, error: log, child: () => logger } as unknown as NonNullable<NonNullable<ConstructorParameters<typeof Coordinator>[0]>['logger']>;
  const c = await start(t, { endpoint: 'tcp://*:*', insecure: true, logger, metricsPort: 0 });
  t.match(lines.join(''), /WITHOUT CURVE \(insecure\)/, 'insecure: true binds, with a warning');
  t.match(c.operations.statusServer!.url, /^http:\/\/127\.0\.0\.1:\d+$/, 'and its metrics server is still on loopback');
});

t.test('CURVE: an allowed key registers and gets work; an unknown key and a plaintext worker cannot; SIGHUP admits a newly listed key', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'taskfarm-curve-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const server = generateCurveKeyPair();
  const allowed = generateCurveKeyPair();
  const stranger = generateCurveKeyPair();
  writeFileSync(join(dir, 'coordinator.key'), formatSecretKeyFile(server, 'coordinator'), { mode: 0o600 });
  writeFileSync(join(dir, 'allowed.key'), formatSecretKeyFile(allowed, 'allowed'), { mode: 0o600 });
  writeFileSync(join(dir, 'coordinator.pub'), formatPublicKeyFile(server.publicKey, 'coordinator'));
  const allowList = join(dir, 'workers.allow');
  writeFileSync(allowList, `# workers of this farm\n${formatPublicKeyFile(allowed.publicKey, 'allowed')}\n# ${stranger.publicKey} not yet\n`);

  // Beyond loopback is fine with CURVE: no insecure needed.
  t.doesNotThrow(() => resolveOptions({ endpoint: 'tcp://0.0.0.0:5555', curveSecretKey: join(dir, 'coordinator.key'), curveAllowList: allowList }, {}));
  const c = await start(t, { curveSecretKey: join(dir, 'coordinator.key'), curveAllowList: allowList, metricsPort: 0 });
  t.equal(c.curvePublicKey, server.publicKey, 'the coordinator knows its public key');
  t.equal(c.allowList?.size, 1, 'one key allowed (the commented-out one is not)');
  const counts = eventCounter(c);

  // An allowed worker (its key file; the coordinator's key from its .pub file) joins and computes.
  await stillServes(t, c, 6, { curveServerKey: join(dir, 'coordinator.pub'), curveSecretKey: join(dir, 'allowed.key') });

  // An unknown key: refused by ZAP before any message; the worker keeps trying.
  const refused = nextEvent(c, 'auth:unknown-key');
  const late = new Square({ connect: c.endpoint, rank: 9, curveServerKey: server.publicKey, curveSecretKey: stranger.secretKey, ...quiet });
  const lateRun = late.run();
  await refused;
  t.equal(counts.get('auth:unknown-key'), 1, 'an unknown key is an authentication failure: unknown-key');
  t.equal(c.farm.worker(9), undefined, 'it did not register');

  // A bad line in the allow-list: the reload fails, the keys loaded before stay.
  writeFileSync(allowList, `${allowed.publicKey}\nnot a key\n`);
  const failed = nextEvent(c, 'allowList:error');
  process.kill(process.pid, 'SIGHUP');
  await failed;
  t.equal(c.allowList?.has(allowed.publicKey), true, 'a broken allow-list keeps the old one in force');

  // The stranger's key is added; SIGHUP; the waiting worker gets in at its next try and takes work.
  writeFileSync(allowList, `${allowed.publicKey} allowed\n${stranger.publicKey} late\n`);
  const reloaded = nextEvent(c, 'allowList:ok');
  process.kill(process.pid, 'SIGHUP');
  await reloaded;
  t.equal(c.allowList?.size, 2, 'SIGHUP reloads the allow-list');
  const master = new Master([9], { coordinator: c });
  t.equal(await new WorkQueue(master).submit(9), 81, 'the newly listed worker registers and gets work');
  t.ok((late.counters.handshakeFailures.auth ?? 0) >= 1, 'the worker counted its refusal');

  // A plaintext worker: refused at the handshake (mechanism mismatch), and told why.
  const mismatch = nextEvent(c, 'auth:mechanism-mismatch');
  const plain = new Square({ connect: c.endpoint, ...quiet });
  const plainRun = plain.run();
  await mismatch;
  t.pass('a plaintext worker is an authentication failure: mechanism-mismatch');

  // Raw strangers: neither a plaintext DEALER nor one with an unknown key gets a message through.
  // Their sends are not awaited: libzmq ends a connection whose handshake failed without trying
  // again, and the DEALER's pipe with it, so a send that finds no pipe waits for a peer that never
  // comes (a loaded full run timed out here once, the send still pending when the socket closed).
  const register = { t: 'register', rank: null, host: 'raw', pid: 1, instance: null } as const;
  const rawPlain = rogueOf(t, c.endpoint);
  const rawMismatch = nextEvent(c, 'auth:mechanism-mismatch');
  rawPlain.envelope(register).catch(() => {});
  await rawMismatch;
  const unknown = generateCurveKeyPair();
  const rawCurve = rogueOf(t, c.endpoint, { curveServerKey: server.publicKey, curvePublicKey: unknown.publicKey, curveSecretKey: unknown.secretKey });
  const rawRefused = nextEvent(c, 'auth:unknown-key');
  rawCurve.envelope(register).catch(() => {});
  await rawRefused;
  t.same([...c.farm.workers()].map((w) => w.rank), [9], 'no refused peer registered');
  t.notOk([...counts.keys()].some((k) => /^(protocol|dropped|rejected):/.test(k)), 'no message of theirs reached the coordinator');
  const metrics = await c.operations.metrics.exposition();
  t.match(metrics, /taskfarm_auth_failures_total\{reason="unknown-key"\} [2-9]/, 'counted in taskfarm_auth_failures_total');
  t.match(metrics, /taskfarm_auth_failures_total\{reason="mechanism-mismatch"\} [1-9]/);

  await master.terminateWorkers();
  await lateRun;
  plain.stop();
  await plainRun;
});

t.test('CURVE settings are checked before anything listens', async (t) => {
  const server = generateCurveKeyPair();
  t.throws(() => new Coordinator({ endpoint: 'tcp://127.0.0.1:*', curveSecretKey: server.secretKey, ...quiet }), { code: 'ECURVEKEY', message: /allow-list/ });
  t.throws(() => new Coordinator({ endpoint: 'tcp://127.0.0.1:*', curveSecretKey: '/nonexistent/key', curveAllowKeys: [server.publicKey], ...quiet }), { code: 'ECURVEKEY', message: /cannot read/ });
  t.throws(() => new Coordinator({ endpoint: 'tcp://127.0.0.1:*', curveSecretKey: server.secretKey, curveAllowList: '/nonexistent/list', ...quiet }), { code: 'ECURVEKEY' });
  t.throws(() => new Coordinator({ endpoint: 'tcp://127.0.0.1:*', curveAllowKeys: [server.publicKey], ...quiet }), { code: 'ECURVEKEY', message: /without a CURVE secret key/ });
  t.throws(() => new Square({ connect: 'tcp://127.0.0.1:1', curveServerKey: server.publicKey, ...quiet }), { code: 'ECURVEKEY', message: /own keypair/ });
  t.throws(() => new Square({ connect: 'tcp://127.0.0.1:1', curveServerKey: 'nope', curveSecretKey: server.secretKey, ...quiet }), { code: 'ECURVEKEY' });
  // Keys given directly (as taskfarm run gives its own workers') work without any file.
  const worker = generateCurveKeyPair();
  const c = await start(t, { curveSecretKey: server.secretKey, curveAllowKeys: [worker.publicKey] });
  await stillServes(t, c, 5, { curveServerKey: server.publicKey, curveSecretKey: worker.secretKey });
});
