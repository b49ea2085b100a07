/**
 * Fuzzing with real sockets (issue 4 §2): rogue DEALERs send over 100,000 random and mutated-valid
 * frames, in messages of one to several frames (and a few oversized ones), while honest workers run
 * a job. The coordinator must stay up and responsive (its /healthz answers, a worker that joins
 * during the storm registers and gets work), keep its memory bounded (heap after ≈ heap before, no
 * state per stranger left behind), and the job must complete with correct results.
 *
 * Deterministic input (a fixed seed) and bounded work: the rogues send a fixed number of frames; no
 * step waits for time. A failure prints the seed; FUZZ_SEED and FUZZ_FRAMES replay or scale it.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Packr } from 'msgpackr';
import t from 'tap';
import { Coordinator, Master, Worker, WorkQueue } from 'taskfarm';
import { decodeFromCoordinator, encode, encodePayload, MAX_HEADER_BYTES, toWireError, type Frame } from '../packages/protocol/src/index.ts';
import { Rogue } from './helpers/rogue.ts';
import { prng } from './helpers/prng.ts';

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed4);
const FRAMES = Number(process.env.FUZZ_FRAMES ?? 100_000);
const ROGUES = 8;
const TASKS = 600;
const MAX_MESSAGE_BYTES = 2 * 1024 * 1024;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;


const packr = new Packr({ useRecords: false });
const raw = (m: unknown): Frame => packr.pack(m);
const payload = encodePayload({ data: [1, 2.5, 'three', null, true, Buffer.from([4, 5])], nested: { k: 'v' } });
/** What a worker might send, valid or nearly so; and what only a coordinator sends. */
const TEMPLATES: Frame[][] = [
  encode({ t: 'register', rank: null, host: 'rogue', pid: 31337, instance: null }),
  encode({ t: 'register', rank: 3, host: 'rogue', pid: 1, instance: 'f00d' }),
  [raw({ v: 1, t: 'register', rank: 0, host: 'x', pid: 1 })],
  [raw({ v: 1, t: 'register', rank: 2, host: 'x'.repeat(1500), pid: -1 })],
  encode({ t: 'ready' }),
  encode({ t: 'result', id: 123_456_789, attempt: 2, payload }),
  encode({ t: 'error', id: 987_654_321, attempt: 1, error: toWireError(Object.assign(new Error('boom'), { code: 'EBOOM' })) }),
  encode({ t: 'heartbeat' }),
  encode({ t: 'bye' }),
  [...encode({ t: 'result', id: 5_000_000_001, attempt: 1, payload }), ...encode({ t: 'ready' })],
  encode({ t: 'welcome', rank: 4, settings: { heartbeatMs: 1000, livenessMs: 3000, maxMessageBytes: 65536 } }),
  encode({ t: 'work', id: 99, attempt: 1, type: 'kind', resource: 42, timeoutMs: null, payload }),
  [raw({ v: 2, t: 'ready' })],
  [raw({ v: '1', t: 'heartbeat' })],
  [raw({ v: { toString: 1 }, t: 'ready' })],
];
const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xca, 0xcb, 0xcf, 0xd3, 0xd4, 0xd9, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff];

/** A message of random and mutated-valid frames; `frames` counts what it holds. */
function generator(rnd: () => number) {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const bytes = (n: number): Frame => {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = Math.floor(rnd() * 256);
    if (n > 0 && rnd() < 0.6) b[0] = pick([0x80, 0x81, 0x82, 0x83, 0x8f, 0x90, 0x92, 0xde, 0xdf, 0xdc, 0xdd, 0xc4, 0xd4, 0xd6, 0xc7, 0xa1]);
    return b;
  };
  const mutate = (src: Frame): Frame => {
    const b = Buffer.from(src);
    const pos = Math.floor(rnd() * Math.max(1, b.length));
    switch (Math.floor(rnd() * 6)) {
      case 0:
        if (b.length) b[pos] = b[pos]! ^ (1 << Math.floor(rnd() * 8));
        return b;
      case 1:
        if (b.length) b[pos] = rnd() < 0.5 ? Math.floor(rnd() * 256) : pick(INTERESTING);
        return b;
      case 2:
        return b.subarray(0, pos);
      case 3:
        return Buffer.concat([b.subarray(0, pos), b.subarray(pos + 1)]);
      case 4:
        return Buffer.concat([b.subarray(0, pos), Buffer.from([pick(INTERESTING)]), b.subarray(pos)]);
      default:
        return Buffer.concat([b, b.subarray(pos, pos + 1 + Math.floor(rnd() * 8))]);
    }
  };
  return (): Frame[] => {
    const r = rnd();
    if (r < 0.3) {
      // Mutated valid: 1-3 mutations of a template, sometimes with a frame dropped or added.
      let frames: Frame[] = pick(TEMPLATES).map((f) => Buffer.from(f));
      for (let k = 1 + Math.floor(rnd() * 3); k > 0; k--) {
        const i = Math.floor(rnd() * frames.length);
        frames[i] = mutate(frames[i]!);
      }
      if (rnd() < 0.1) frames = frames.slice(0, -1);
      if (rnd() < 0.1) frames.push(...pick(TEMPLATES));
      return frames.length > 0 ? frames : [Buffer.alloc(0)];
    }
    if (r < 0.45) return pick(TEMPLATES).map((f) => Buffer.from(f)); // valid as it is (for a stranger: mostly not)
    if (r < 0.85) {
      // Random: one to five frames of up to 64 bytes, now and then 4 KiB.
      const n = 1 + Math.floor(rnd() * 5);
      return Array.from({ length: n }, () => bytes(rnd() < 0.02 ? Math.floor(rnd() * 4096) : Math.floor(rnd() ** 2 * 64)));
    }
    if (r < 0.95) {
      // Several envelopes in one message, valid and not.
      const n = 2 + Math.floor(rnd() * 4);
      return Array.from({ length: n }, () => (rnd() < 0.5 ? pick(TEMPLATES)[0]! : mutate(pick(TEMPLATES)[0]!)));
    }
    if (r < 0.99) return [Buffer.alloc(0)]; // what a connect/disconnect notification looks like
    if (r < 0.9994) return Array.from({ length: 65 + Math.floor(rnd() * 40) }, () => encode({ t: 'heartbeat' })[0]!); // too many frames
    // Huge: a header over the header limit (a frame over the socket's limit makes libzmq drop the
    // connection, and a DEALER cut off mid-stream can stall for good: security.test.ts sends one alone).
    return [Buffer.alloc(MAX_HEADER_BYTES + 1, 0x91)];
  };
}

class Square extends Worker<{ n: number }, number> {
  async doWork({ n }: { n: number }): Promise<number> {
    await new Promise((r) => setImmediate(r)); // let the storm through between tasks
    return n * n;
  }
}

t.test(`fuzz: ${FRAMES} hostile frames from ${ROGUES} rogues while a job runs (seed ${SEED})`, { timeout: 120_000 }, async (t) => {
  // Refusals are logged rate-limited; joins and departures (rogues that registered by chance) are not.
  const warnings: string[] = [];
  const sink = (_fields: unknown, msg?: string) => void (/^worker (joined|left|lost)$/.test(String(msg)) || warnings.push(String(msg)));
  const logger = { debug: () => {}, info: () => {}, warn: sink, error: sink, child: () => logger } as unknown as NonNullable<NonNullable<ConstructorParameters<typeof Coordinator>[0]>['logger']>;
  const c = await Coordinator.start({ endpoint: 'tcp://127.0.0.1:*', maxMessageBytes: MAX_MESSAGE_BYTES, metricsPort: 0, logger });
  t.teardown(() => c.close());
  const counts = new Map<string, number>();
  const bump = (k: string) => counts.set(k, (counts.get(k) ?? 0) + 1);
  c.observers.add({ protocolError: (_p, _r, code) => bump(`protocol:${code}`), dropped: (_p, reason) => bump(`dropped:${reason}`), rejected: (_p, code) => bump(`rejected:${code}`), joined: () => bump('joined') });

  // Honest workers 1 and 2 run the job; rank 1000 joins in the middle of the storm. Nobody adopts
  // workers, so a rogue whose frames happen to register it never gets a task.
  const quiet = { logLevel: 'silent', handleSignals: false } as const;
  const honest = [1, 2].map((rank) => new Square({ connect: c.endpoint, rank, ...quiet }));
  const runs = honest.map((w) => w.run());
  const master = new Master([1, 2], { coordinator: c });
  const queue = new WorkQueue(master);
  await master.waitForWorkers();

  // The storm: each rogue sends its share, draining (and answering) what comes back.
  const rnd = prng(SEED);
  const rogues: Rogue[] = [];
  let sent = 0;
  let messages = 0;
  let welcomed = 0;
  const storm = async (share: number, next: () => Frame[]): Promise<void> => {
    const rogue = new Rogue(c.endpoint, { sendHighWaterMark: 1000, reconnectInterval: 20 });
    rogues.push(rogue);
    void (async () => {
      try {
        for await (const frames of rogue.sock) {
          let msgs;
          try {
            msgs = decodeFromCoordinator(frames);
          } catch {
            continue;
          }
          // Registered by accident: leave at once (and hand back anything given).
          if (msgs.some((m) => m.t === 'welcome' || m.t === 'work')) {
            welcomed++;
            void rogue.envelope({ t: 'bye' }).catch(() => {});
          }
        }
      } catch {
        // closed
      }
    })();
    for (let mine = 0; mine < share; ) {
      const frames = next();
      mine += frames.length;
      sent += frames.length;
      messages++;
      await rogue.send(frames);
    }
  };
  const generators = Array.from({ length: ROGUES }, () => generator(prng(Math.floor(rnd() * 2 ** 32))));

  // Warm-up, then the baseline: a first 5% of the storm, so that caches and code are warm.
  await Promise.all(generators.map((g) => storm(Math.ceil((FRAMES * 0.05) / ROGUES), g)));
  for (const r of rogues.splice(0)) r.close();
  gc();
  const before = process.memoryUsage();

  let half!: () => void;
  const halfway = new Promise<void>((r) => (half = r));
  const fullStorm = Promise.all(
    generators.map((g, i) =>
      storm(Math.ceil(FRAMES / ROGUES), () => {
        if (i === 0 && sent >= FRAMES / 2) half();
        return g();
      }),
    ),
  );
  const job = queue.map(Array.from({ length: TASKS }, (_, n) => ({ n })));

  // Halfway through: the coordinator answers its health check, and a new worker joins and gets work.
  await halfway;
  const health = await fetch(`${c.operations.statusServer!.url}/healthz`);
  t.equal(health.status, 200, `/healthz answers 200 in the middle of the storm (${sent} frames sent)`);
  const late = new Square({ connect: c.endpoint, rank: 1000, ...quiet });
  const lateRun = late.run();
  const lateMaster = new Master([1000], { coordinator: c });
  t.equal(await new WorkQueue(lateMaster).submit({ n: 12 }), 144, 'a worker that joins during the storm registers and gets work');

  const results = await job;
  t.same(results, Array.from({ length: TASKS }, (_, n) => n * n), `the job's ${TASKS} results are all there and correct`);
  await fullStorm;
  t.ok(sent >= FRAMES, `${sent} frames sent in ${messages} messages`);

  // Every rogue leaves; what the coordinator kept for strangers must go with them.
  const settled = new Promise<void>((resolve) => {
    const check = () => {
      if (c.farm.workerCount === 3) {
        off();
        resolve();
      }
    };
    const off = c.onChange(check);
    queueMicrotask(check);
  });
  for (const r of rogues) r.close();
  await settled;
  t.same([...c.farm.workers()].map((w) => w.rank).sort((a, b) => a - b), [1, 2, 1000], 'only the honest workers are left');
  t.notOk(c.closed, 'the coordinator is still up');
  t.equal(await new WorkQueue(lateMaster).submit({ n: 3 }), 9, 'and still serves');

  gc();
  const after = process.memoryUsage();
  const mib = (n: number) => Math.round(n / 2 ** 20);
  t.comment(`heap ${mib(before.heapUsed)} → ${mib(after.heapUsed)} MiB, rss ${mib(before.rss)} → ${mib(after.rss)} MiB; ${welcomed} accidental registrations`);
  t.ok(after.heapUsed - before.heapUsed < 48 * 2 ** 20, 'the heap did not grow by more than 48 MiB');
  t.ok(after.rss - before.rss < 512 * 2 ** 20, 'nor the resident size by more than 512 MiB');

  t.comment(JSON.stringify(Object.fromEntries([...counts].sort())));
  for (const key of ['protocol:EMSGPACK', 'protocol:ENOTMAP', 'protocol:EVERSION', 'protocol:ETYPE', 'protocol:EFIELD', 'protocol:EFRAMES', 'protocol:ETOOBIG', 'dropped:unregistered']) {
    t.ok((counts.get(key) ?? 0) > 0, `some frames were refused as ${key}`);
  }
  t.ok(warnings.length < 300, `its warnings about refused input were rate-limited (${warnings.length} lines)`);

  await master.terminateWorkers();
  await lateMaster.terminateWorkers();
  await Promise.all([...runs, lateRun]);
});
