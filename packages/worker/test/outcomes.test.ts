/** When a batch of results leaves (Outcomes.due): pure, with explicit clock readings. */
import { BATCH_INLINE_BYTES, BATCH_MAX_TASKS, decodePayload, encodePayload, type Result, type Results } from '@taskfarm/protocol';
import t from 'tap';
import { Outcomes } from '../src/outcomes.ts';

function outcomes() {
  const sent: Results[] = [];
  const o = new Outcomes((env) => sent.push(env as Results));
  let id = 0;
  const add = (now: number, n = 1) => {
    for (let i = 0; i < n; i++) o.add({ t: 'result', id: ++id, attempt: 1, payload: encodePayload(id) }, 10, now, Infinity);
  };
  t.teardown(() => o.dispose());
  return { o, add, sent };
}

t.test('as many results as tasks left to run: the batch leaves, so the refill comes before the queue runs dry', async (t) => {
  const { o, add } = outcomes();
  add(0, 3);
  t.notOk(o.due(5, 4), '3 results, 4 tasks queued: wait');
  t.ok(o.due(5, 3), '3 results, 3 tasks queued: leave');
  t.ok(o.due(5, 0), 'nothing queued: leave');
});

t.test('tasks far shorter than a round trip: results wait for a full batch, not for the credit rule', async (t) => {
  const { o, add } = outcomes();
  add(0, 100);
  t.notOk(o.due(0.5, 10), 'the oldest has waited under 1 ms: more results are coming fast');
  t.ok(o.due(1, 10), 'after 1 ms the credit rule applies');
  const full = outcomes();
  full.add(0, BATCH_MAX_TASKS);
  t.ok(full.o.due(0, 10_000), `a full batch (${BATCH_MAX_TASKS}) leaves whatever is queued`);
});

t.test('a result waits at most 20 ms for others, however much is queued', async (t) => {
  const { o, add } = outcomes();
  add(100);
  add(110);
  t.notOk(o.due(119.9, 50));
  t.ok(o.due(120, 50), 'the oldest result counts, not the newest');
});

t.test('an empty batch is never due, and a flushed one starts its wait again', async (t) => {
  const { o, add, sent } = outcomes();
  t.notOk(o.due(1000, 0));
  add(0, 2);
  o.flush();
  t.equal(sent.length, 1);
  t.same(sent[0]!.results.map((r) => r.id), [1, 2]);
  add(50);
  t.notOk(o.due(69, 5), 'waited 19 ms since the new batch began, not 69');
});

t.test('resend: raw results go again as msgpack to a coordinator that does not read raw ones', async (t) => {
  const sent: Array<Result | Results> = [];
  const o = new Outcomes((env) => sent.push(env as Result));
  t.teardown(() => o.dispose());
  const bytes = Buffer.alloc(BATCH_INLINE_BYTES + 1, 7);
  o.sendAlone({ t: 'result', id: 1, attempt: 1, payload: bytes, raw: true, us: 5 });
  o.resend(8, true);
  t.match(sent.at(-1), { id: 1, raw: true }, 'to one that does: as it was');
  t.equal((sent.at(-1) as Result).payload, bytes, 'the same buffer');
  o.resend(8, false);
  const again = sent.at(-1) as Result;
  t.notOk(again.raw);
  t.equal(again.us, 5);
  t.same(decodePayload(again.payload), bytes, 'the same bytes, as msgpack bin');
});
