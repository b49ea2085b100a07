/**
 * A worker that holds a window of tasks and sends results in batches, against a fake coordinator
 * (a real ROUTER socket speaking the wire protocol), so that no coordinator code is involved.
 */
import { BATCH_INLINE_BYTES, decodePayload, type WorkerMessage } from '@taskfarm/protocol';
import t, { type Test } from 'tap';
import { Worker, type TaskContext, type WorkerOptions } from '../src/index.ts';
import { resolveWorkerOptions } from '../src/options.ts';
import { FakeCoordinator, gate, work } from './fake-coordinator.ts';

type Handler = (data: any, ctx: TaskContext) => unknown;

class FnWorker extends Worker {
  readonly #fn: Handler;
  constructor(fn: Handler, options: WorkerOptions) {
    super(options);
    this.#fn = fn;
  }
  doWork(data: unknown, ctx: TaskContext): unknown {
    return this.#fn(data, ctx);
  }
}

/** A fake coordinator and a worker connected to it, past its register. */
async function start(t: Test, fn: Handler) {
  const fake = await FakeCoordinator.start();
  t.teardown(() => fake.close());
  // killGraceMs: the watchdog must not recycle the test process if it is slow under load.
  const worker = new FnWorker(fn, { connect: fake.endpoint, logLevel: 'silent', handleSignals: false, killGraceMs: 600_000 });
  const run = worker.run();
  const [register] = await fake.message();
  return { fake, worker, run, register: register! };
}

/** What the tests compare: each envelope's type and the tasks it answers. */
function summary(env: WorkerMessage): string {
  switch (env.t) {
    case 'results':
      return `results#${env.seq}:${env.results.map((r) => r.id).join(',')}`;
    case 'result':
      return `result:${env.id}`;
    case 'error':
      return `error:${env.id}:${env.error.code}`;
    default:
      return env.t;
  }
}

/** The tasks answered by these envelopes, in order. */
/** A worker whose task 1 runs until `release` opens (`first` opens once it started); `seen` lists the tasks its handler got. */
async function startBlockedOnFirst(t: Test) {
  const seen: number[] = [];
  const first = gate();
  const release = gate();
  const started = await start(t, async (n: number) => {
    seen.push(n);
    if (n === 1) {
      first.open();
      await release.promise;
    }
    return n;
  });
  return { ...started, seen, first, release };
}

function answered(envs: WorkerMessage[]): number[] {
  return envs.flatMap((e) => (e.t === 'results' ? e.results.map((r) => r.id) : e.t === 'result' || e.t === 'error' ? [e.id] : []));
}

/** Envelopes from the worker until every id in `ids` has its outcome. */
async function outcomes(fake: FakeCoordinator, ids: number[]): Promise<{ envs: WorkerMessage[]; messages: number }> {
  const waiting = new Set(ids);
  const envs: WorkerMessage[] = [];
  let messages = 0;
  while (waiting.size > 0) {
    const msg = await fake.message();
    messages++;
    for (const env of msg) {
      envs.push(env);
      if (env.t === 'results') for (const r of env.results) waiting.delete(r.id);
      if (env.t === 'result' || env.t === 'error') waiting.delete(env.id);
    }
  }
  return { envs, messages };
}

async function terminate(fake: FakeCoordinator, run: Promise<void>): Promise<void> {
  await fake.send({ t: 'terminate' });
  for (;;) if ((await fake.message()).some((e) => e.t === 'bye')) break;
  await run;
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

t.test('window option: 1024 by default, TASKFARM_WINDOW, 1 to 65535', async (t) => {
  t.equal(resolveWorkerOptions({}, {}).window, 1024);
  t.equal(resolveWorkerOptions({}, { TASKFARM_WINDOW: '8' }).window, 8);
  t.equal(resolveWorkerOptions({ window: 3 }, { TASKFARM_WINDOW: '8' }).window, 3, 'the option wins over the environment');
  for (const window of [0, -1, 1.5, 65_536, Number.NaN]) t.throws(() => resolveWorkerOptions({ window }, {}), RangeError, `window ${window}`);
  t.throws(() => resolveWorkerOptions({}, { TASKFARM_WINDOW: 'lots' }), { name: 'RangeError', message: /TASKFARM_WINDOW="lots"/ });
});

t.test('a batch of tasks runs in order and its results come back batched, complete, with handler time', async (t) => {
  const seen: number[] = [];
  const { fake, run, register } = await start(t, (n: number) => {
    seen.push(n);
    return n * 2;
  });
  t.match(register, { t: 'register', window: 1024 }, 'every register offers the window');
  await fake.welcome({ window: 8 });
  t.match(await fake.message(), [{ t: 'ready' }]);
  await fake.send({ t: 'tasks', tasks: range(1, 8).map((i) => work(i, i)) });
  const { envs, messages } = await outcomes(fake, range(1, 8));
  t.same(seen, range(1, 8), 'run one at a time, in the order sent');
  t.ok(
    envs.every((e) => e.t === 'results'),
    'small results travel in `results` envelopes',
  );
  const values = envs.flatMap((e) => (e.t === 'results' ? e.results.map((r) => [r.id, decodePayload(r.payload)]) : []));
  t.same(values, range(1, 8).map((i) => [i, i * 2]), 'every result, once, in order');
  t.ok(messages < 8, `fewer messages than tasks (${messages} for 8)`);
  for (const e of envs) if (e.t === 'results') t.ok(Number.isSafeInteger(e.us) && e.us >= 0, 'results.us: the handlers\' time in µs');
  await terminate(fake, run);
});

t.test('the result of a task with a timeout leaves at once, not with the next task\'s', async (t) => {
  // Batched with a later task's result, it could wait for that task to end while the coordinator,
  // not having heard, judged it overdue.
  const { fake, run } = await start(t, (n: number) => n);
  await fake.welcome({ window: 8 });
  t.match(await fake.message(), [{ t: 'ready' }]);
  await fake.send({ t: 'tasks', tasks: [work(1, 1, { timeoutMs: 60_000 }), work(2, 2, { timeoutMs: 60_000 }), work(3, 3)] });
  const { envs, messages } = await outcomes(fake, [1, 2, 3]);
  t.same(envs.map(summary).slice(0, 2), ['results#1:1', 'results#2:2'], 'each timed task\'s result in a message of its own');
  t.equal(messages, 3);
  await terminate(fake, run);
});

t.test('a batch\'s payload frame stays within the coordinator\'s maxMessageBytes', async (t) => {
  const { fake, run } = await start(t, (n: number) => 'x'.repeat(6000 + n));
  await fake.welcome({ window: 8, maxMessageBytes: 10_000 });
  await fake.message(); // ready
  await fake.send({ t: 'tasks', tasks: range(1, 4).map((i) => work(i, i)) });
  const { envs } = await outcomes(fake, range(1, 4));
  t.same(answered(envs), range(1, 4));
  for (const e of envs) {
    const bytes = e.t === 'results' ? e.results.reduce((sum, r) => sum + r.payload.length, 0) : 0;
    t.ok(bytes <= 10_000, `${summary(e)}: ${bytes} bytes of payload`);
  }
  await terminate(fake, run);
});

t.test('results are kept until their receipt or ack, and only those go again after a re-registration', async (t) => {
  const { fake, run } = await start(t, (task: { id: number; kind: 'small' | 'big' | 'fail' }) => {
    if (task.kind === 'fail') throw Object.assign(new Error(`task ${task.id} fails`), { code: 'EBROKEN' });
    return task.kind === 'big' ? 'x'.repeat(BATCH_INLINE_BYTES + 1) : task.id;
  });
  const send = (...tasks: Array<[number, 'small' | 'big' | 'fail']>) => fake.send({ t: 'tasks', tasks: tasks.map(([id, kind]) => work(id, { id, kind })) });
  // Heartbeats every 10 ms and liveness 20 ms: the worker soon registers again when told to.
  await fake.welcome({ window: 8, heartbeatMs: 10, livenessMs: 20 });
  await fake.message(); // ready

  await send([1, 'small'], [2, 'small']);
  for (const e of (await outcomes(fake, [1, 2])).envs) if (e.t === 'results') await fake.send({ t: 'receipt', seq: e.seq });

  await send([3, 'big']);
  const [big] = (await outcomes(fake, [3])).envs;
  t.match(big, { t: 'result', id: 3, attempt: 1 }, `a result over BATCH_INLINE_BYTES comes as a single \`result\``);
  if (big?.t === 'result') {
    t.equal(decodePayload(big.payload), 'x'.repeat(BATCH_INLINE_BYTES + 1));
    t.ok(Number.isSafeInteger(big.us), 'with its handler time');
  }
  await fake.send({ t: 'ack', id: 3, attempt: 1 });

  await send([4, 'small'], [5, 'small'], [6, 'fail'], [7, 'big']);
  const unanswered = (await outcomes(fake, [4, 5, 6, 7])).envs.map(summary);
  t.match(unanswered.slice(-2), ['error:6:EBROKEN', 'result:7'], 'a failure and a large result go alone, after the batch before them');
  t.match(unanswered.slice(0, -2), [/^results#\d+:4,5$/], 'the small ones in one batch');

  t.match(await fake.reregister(), { t: 'register', rank: 1, window: 1024 }, 'asks for its rank again');
  await fake.welcome({ window: 8, heartbeatMs: 10, livenessMs: 20 });
  const resent: string[] = [];
  for (let msg = await fake.message(); msg[0]!.t !== 'ready'; msg = await fake.message()) resent.push(...msg.map(summary));
  t.same(resent, unanswered, 'what was not receipted or acked goes again, as it was, before ready');

  t.match(await fake.reregister(), { t: 'register' });
  await fake.welcome({ heartbeatMs: 10, livenessMs: 20 });
  const singles: string[] = [];
  for (let msg = await fake.message(); msg[0]!.t !== 'ready'; msg = await fake.message()) singles.push(...msg.map(summary));
  t.same(singles, ['result:4', 'result:5', 'error:6:EBROKEN', 'result:7'], 'to a coordinator without a window, one by one');
  await terminate(fake, run);
});

t.test('a cancel for a task still queued answers ECANCELLED at once, and it never runs', async (t) => {
  const { fake, worker, run, seen, first, release } = await startBlockedOnFirst(t);
  await fake.welcome({ window: 8 });
  await fake.message(); // ready
  await fake.send({ t: 'tasks', tasks: [work(1, 1), work(2, 2), work(3, 3)] });
  await first.promise;
  await fake.send({ t: 'cancel', id: 2, attempt: 1 }, { t: 'cancel', id: 99, attempt: 1 });
  t.match(await fake.message(), [{ t: 'error', id: 2, attempt: 1, error: { name: 'CancelledError', code: 'ECANCELLED' } }], 'answered while task 1 still runs');
  release.open();
  const { envs } = await outcomes(fake, [1, 3]);
  t.same(answered(envs), [1, 3]);
  t.same(seen, [1, 3], 'the handler never saw task 2');
  t.equal(worker.counters.dropped['stale-cancel'], 1, 'a cancel for a task it does not hold is counted');
  await terminate(fake, run);
});

t.test('the cancels of one message are answered in one message, before what its handling sends next', async (t) => {
  const { fake, run, seen, first, release } = await startBlockedOnFirst(t);
  await fake.welcome({ window: 80 });
  await fake.message(); // ready
  await fake.send({ t: 'tasks', tasks: range(1, 70).map((i) => work(i, i)) });
  await first.promise;
  // 68 cancels: more than one message may carry (64 frames), so two messages, in order.
  await fake.send(...range(2, 69).map((id) => ({ t: 'cancel' as const, id, attempt: 1 })));
  const a = await fake.message();
  const b = await fake.message();
  t.same([a.length, b.length], [64, 4], 'as few messages as the frame limit allows');
  t.same([...a, ...b].map((e) => (e.t === 'error' ? `${e.id} ${e.error.code}` : e.t)), range(2, 69).map((id) => `${id} ECANCELLED`), 'every cancel answered, in order');
  // Cancels and a terminate in one message: the answers leave before the bye that ends the run.
  await fake.send({ t: 'cancel', id: 70, attempt: 1 }, { t: 'terminate' });
  const c = await fake.message();
  t.match(c, [{ t: 'error', id: 70, error: { code: 'ECANCELLED' } }], 'the answer first');
  release.open();
  const rest: string[] = [];
  for (;;) {
    const msg = await fake.message();
    rest.push(...msg.map((e) => e.t));
    if (msg.some((e) => e.t === 'bye')) break;
  }
  t.same(rest.at(-1), 'bye');
  await run;
  t.same(seen, [1], 'no cancelled task ran');
});

t.test('results already batched leave while a later handler awaits, not when it ends', async (t) => {
  const second = gate();
  const { fake, run } = await start(t, async (n: number) => {
    if (n === 2) await second.promise;
    return n;
  });
  await fake.welcome({ window: 8 });
  await fake.message(); // ready
  await fake.send({ t: 'tasks', tasks: [work(1, 1), work(2, 2)] });
  t.match(await fake.message(), [{ t: 'results', results: [{ id: 1 }] }], 'task 1\'s result came while task 2 runs');
  second.open();
  t.match(await fake.message(), [{ t: 'results', results: [{ id: 2 }] }]);
  await terminate(fake, run);
});

t.test('stop() with tasks queued: the results so far, then bye; the queued tasks never run', async (t) => {
  const seen: number[] = [];
  const second = gate();
  const release = gate();
  const { fake, worker, run } = await start(t, async (n: number) => {
    seen.push(n);
    if (n === 2) {
      second.open();
      await release.promise;
    }
    return n;
  });
  await fake.welcome({ window: 8 });
  await fake.message(); // ready
  await fake.send({ t: 'tasks', tasks: range(1, 5).map((i) => work(i, i)) });
  await second.promise;
  worker.stop();
  release.open();
  const said: WorkerMessage[] = [];
  for (;;) {
    const msg = await fake.message();
    said.push(...msg);
    if (msg.some((e) => e.t === 'bye')) break;
  }
  await run;
  t.equal(said.at(-1)?.t, 'bye');
  t.same(answered(said), [1, 2], 'the results of tasks 1 and 2 before the bye, nothing for the others');
  t.same(seen, [1, 2], 'tasks 3 to 5 never started: the bye hands them back');
});

t.test('a welcome without a window (a coordinator of the old kind): one task at a time, EWORKERBUSY for a second', async (t) => {
  const { fake, run, first, release } = await startBlockedOnFirst(t);
  await fake.welcome();
  t.match(await fake.message(), [{ t: 'ready' }]);
  await fake.send(work(1, 1));
  await first.promise;
  await fake.send(work(2, 2));
  t.match(await fake.message(), [{ t: 'error', id: 2, attempt: 1, error: { name: 'WorkerBusyError', code: 'EWORKERBUSY' } }]);
  release.open();
  t.match(await fake.message(), [{ t: 'result', id: 1, attempt: 1 }], 'a single result, not a batch');
  await fake.send({ t: 'ack', id: 1, attempt: 1 }, work(3, 3));
  const [third] = await fake.message();
  t.match(third, { t: 'result', id: 3 });
  if (third?.t === 'result') t.equal(decodePayload(third.payload), 3);
  await terminate(fake, run);
});

t.test('a task\'s timeout runs from its start: waiting behind a slow task does not count', async (t) => {
  const first = gate();
  const release = gate();
  let abortedAtStart: boolean | null = null;
  const { fake, run } = await start(t, async (n: number, ctx: TaskContext) => {
    if (n === 1) {
      first.open();
      await release.promise;
      return n;
    }
    abortedAtStart = ctx.signal.aborted;
    if (ctx.signal.aborted) throw ctx.signal.reason;
    // Never ends on its own: only its timeout can end it.
    await new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)));
  });
  await fake.welcome({ window: 8, heartbeatMs: 10 });
  await fake.message(); // ready
  await fake.send({ t: 'tasks', tasks: [work(1, 1), work(2, 2, { timeoutMs: 5 })] });
  await first.promise;
  // Heartbeats come every 10 ms: after three, task 2 has waited far longer than its 5 ms timeout.
  await fake.heartbeatsAfter(3);
  release.open();
  const { envs } = await outcomes(fake, [1, 2]);
  t.equal(abortedAtStart, false, 'task 2 started with its signal not aborted');
  t.match(envs.map(summary).slice(-1), ['error:2:ETIMEDOUT'], 'and then timed out');
  await terminate(fake, run);
});

t.test('raw payloads: binary data over 8 KiB comes and goes as its bytes, when the coordinator reads them', async (t) => {
  const received: unknown[] = [];
  const { fake, run, register } = await start(t, (data: unknown) => {
    received.push(data);
    return Buffer.alloc(BATCH_INLINE_BYTES + 1, 4);
  });
  t.match(register, { t: 'register', raw: true }, 'the worker says it reads raw payloads');
  await fake.welcome({ window: 8, raw: true });
  t.match(await fake.message(), [{ t: 'ready' }]);
  const bytes = Buffer.alloc(20_000, 0xc1); // 0xc1 is never valid msgpack: only a raw read gets these bytes
  await fake.send({ ...work(1, null), payload: bytes, raw: true });
  const [result] = (await outcomes(fake, [1])).envs;
  t.ok(Buffer.isBuffer(received[0]));
  t.same(received[0], bytes, 'the handler gets the bytes');
  t.match(result, { t: 'result', id: 1, raw: true }, 'a binary result over 8 KiB goes raw');
  t.same((result as { payload: Uint8Array }).payload, Buffer.alloc(BATCH_INLINE_BYTES + 1, 4));
  await terminate(fake, run);
});

t.test('raw payloads: to a coordinator whose welcome does not say raw, results go as msgpack', async (t) => {
  const { fake, run } = await start(t, () => Buffer.alloc(BATCH_INLINE_BYTES + 1, 4));
  await fake.welcome({ window: 8 });
  t.match(await fake.message(), [{ t: 'ready' }]);
  await fake.send(work(1, 'x'));
  const [result] = (await outcomes(fake, [1])).envs as Array<{ t: string; raw?: boolean; payload: Uint8Array }>;
  t.notOk(result!.raw);
  t.same(decodePayload(result!.payload), Buffer.alloc(BATCH_INLINE_BYTES + 1, 4));
  await terminate(fake, run);
});

t.test('after re-registering, tasks sent again (resent) run only if they never arrived; each is answered once', async (t) => {
  const ran: number[] = [];
  const first = gate();
  const { fake, run } = await start(t, async (n: number) => {
    ran.push(n);
    if (n === 1) await first.promise;
    return n;
  });
  await fake.welcome({ window: 8 });
  t.match(await fake.message(), [{ t: 'ready' }]);
  await fake.send({ t: 'tasks', tasks: [work(1, 1), work(2, 2)] });
  while (ran.length === 0) await fake.heartbeatsAfter(1);
  // The coordinator took our reconnect for a takeover: welcome again, then everything it had in
  // flight here (task 3 was lost on the old connection), each marked resent, and a new task 4.
  await fake.send(
    { t: 'welcome', rank: 1, settings: { heartbeatMs: 1000, livenessMs: 3000, maxMessageBytes: 64 << 20, window: 8 } },
    { ...work(1, 1), resent: true },
    { ...work(2, 2), resent: true },
    { ...work(3, 3), resent: true },
    work(4, 4),
  );
  first.open();
  const { envs } = await outcomes(fake, [1, 2, 3, 4]);
  t.same(ran, [1, 2, 3, 4], 'tasks 1 and 2 ran once (held, or answered and kept for resending); 3, which never arrived before, and 4 ran');
  // A batch answered before the welcome was read is sent again after it (unreceipted): same seq.
  const distinct = [...new Map(envs.filter((e) => e.t === 'results').map((e) => [e.seq, e])).values()];
  t.same(answered(distinct).sort(), [1, 2, 3, 4], `one outcome each: ${envs.map(summary).join(' ')}`);
  await terminate(fake, run);
});
