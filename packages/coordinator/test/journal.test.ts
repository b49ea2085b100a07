/** The journal on a real file: what a restarted coordinator finds, and a record torn by a crash. */
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { TaskError } from '../src/errors.ts';
import { FileJournal } from '../src/journal.ts';
import { Master } from '../src/master.ts';
import { WorkQueue } from '../src/work-queue.ts';
import { InMemoryHost } from './in-memory-host.ts';

function jobOn(path: string) {
  const host = new InMemoryHost();
  host.journal = new FileJournal(path, { sync: 'always' });
  const queue = new WorkQueue(new Master([1], { coordinator: host }), { name: 'jobs' });
  for (let i = 0; i < 4; i++) queue.addWork(i);
  host.join('p1', 1);
  return { host, queue };
}

/** A journal file in a fresh directory removed after the test. */
function journalPath(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'taskfarm-journal-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'j');
}

t.test('a restarted job skips what was delivered, delivers what had completed, runs the rest', async (t) => {
  const path = journalPath(t);

  const first = jobOn(path);
  first.queue.doWork();
  first.host.complete('p1', 'r0');
  t.same(first.queue.getCompletedWork(), ['r0'], 'task 0 delivered');
  first.queue.done(); // the application comes back to the queue: task 0 counts as delivered
  first.queue.doWork();
  const w = first.host.workOf('p1');
  first.host.deliver('p1', { t: 'error', id: w.id, attempt: 1, error: { name: 'Error', message: 'bad', code: 'EBAD' } });
  // Crash: the process dies here, nothing closed. Task 1's failure reached the coordinator, which
  // journaled it on arrival even though the application never collected it.

  const second = jobOn(path);
  t.equal(second.queue.counts.resumed, 2, 'two tasks known to the journal');
  second.queue.doWork();
  t.match(second.host.workOf('p1'), { attempt: 1, id: 3 }, 'task 2 (the first not journaled) runs');
  const after = second.queue.getCompletedWork();
  t.notOk(after.includes('r0'), 'task 0 is not delivered again');
  t.match(after, [{ code: 'EBAD' }], "task 1's failure is delivered from the journal, without running again");
  second.host.journal!.close();
});

t.test('a completed but untaken result is delivered after the restart without running again', async (t) => {
  const path = journalPath(t);
  const journal = new FileJournal(path, { sync: 'always' });
  journal.completed('jobs', 2, { ok: true, payload: Buffer.from([0xa3, 0x74, 0x77, 0x6f]) });
  journal.completed('jobs', 3, { ok: false, error: { name: 'Error', message: 'bad', code: 'EBAD' } });
  journal.delivered('jobs', 0);
  journal.close();
  // A crash in the middle of the next record leaves a torn tail.
  appendFileSync(path, Buffer.from([0, 0, 0, 40, 0x93]));

  const { host, queue } = jobOn(path);
  t.same((host.journal as FileJournal).recovered, { completed: 2, delivered: 1, tornBytes: 5 });
  const results = queue.getCompletedWork();
  t.equal(results.length, 2, 'tasks 2 and 3 come straight from the journal');
  t.ok(results.includes('two'));
  t.ok(results.some((r) => r instanceof TaskError && r.code === 'EBAD'));
  queue.doWork();
  host.complete('p1', 'r1');
  t.same(queue.getCompletedWork(), ['r1'], 'only task 1 ran');
  t.ok(queue.done());
  host.journal!.close();
  t.equal(new FileJournal(path).recovered.completed, 3, 'records appended after the torn tail are whole');
});

t.test('a batch still in the application’s hands when the coordinator dies is delivered again', async (t) => {
  const path = journalPath(t);
  const first = jobOn(path);
  first.queue.doWork();
  first.host.complete('p1', 'r0');
  t.same(first.queue.getCompletedWork(), ['r0']);
  // Crash before the application came back for more.
  const second = jobOn(path);
  t.same(second.queue.getCompletedWork(), ['r0'], 'r0 comes again, from the journal, without running');
  second.host.journal!.close();
});

t.test('a raw result (binary data over 8 KiB) comes back from the journal as its bytes', async (t) => {
  const path = journalPath(t);
  const journal = new FileJournal(path, { sync: 'always' });
  const bytes = Buffer.alloc(10_000, 0xc1); // not msgpack: read as msgpack it would fail
  journal.completed('jobs', 1, { ok: true, payload: bytes, raw: true });
  journal.completed('jobs', 2, { ok: true, payload: Buffer.from([0xa3, 0x74, 0x77, 0x6f]) });
  journal.close();
  const { queue, host } = jobOn(path);
  const results = queue.getCompletedWork();
  t.equal(results.length, 2);
  t.ok(results.some((r) => Buffer.isBuffer(r) && r.equals(bytes)), 'the raw result, byte for byte');
  t.ok(results.includes('two'), 'a msgpack result beside it');
  host.journal!.close();
});
