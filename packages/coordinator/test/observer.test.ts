/** ObserverList: the fan-out every coordinator event goes through (logs, metrics, progress, users). */
import t from 'tap';
import { ObserverList, type CoordinatorObserver } from '../src/observer.ts';
import type { Task, WorkerRecord } from '../src/farm.ts';

t.test('each callback reaches the observers that have it, with its arguments and its observer as this', (t) => {
  const list = new ObserverList();
  const calls: string[] = [];
  const counter = {
    n: 0,
    finished(this: { n: number }, _w: WorkerRecord, task: Task, ok: boolean, now: number) {
      this.n++;
      calls.push(`finished ${task.id} ${ok} ${now}`);
    },
  };
  const logger: CoordinatorObserver = { left: (w, reason, lost, waiting) => calls.push(`left ${w.rank} ${reason} ${lost?.id ?? null} ${waiting.length}`) };
  const removeCounter = list.add(counter as CoordinatorObserver);
  list.add(logger);
  const w = { rank: 3 } as WorkerRecord;
  list.finished(w, { id: 7 } as Task, true, 12.5);
  list.left(w, 'silent', { id: 8 } as Task, [{ id: 9 } as Task]);
  list.dispatched(w, { id: 10 } as Task, 'direct'); // nobody has it: nothing happens
  t.same(calls, ['finished 7 true 12.5', 'left 3 silent 8 1']);
  t.equal(counter.n, 1, 'called on its observer');
  removeCounter();
  removeCounter(); // a second removal changes nothing
  list.finished(w, { id: 11 } as Task, false, 13);
  list.left(w, 'bye', null, []);
  t.same(calls.slice(2), ['left 3 bye null 0'], 'a removed observer hears nothing more; the others still do');
  t.end();
});

t.test('observers are called in the order they were added, the same observer added twice twice', (t) => {
  const list = new ObserverList();
  const order: string[] = [];
  const a: CoordinatorObserver = { queued: () => order.push('a') };
  const b: CoordinatorObserver = { queued: () => order.push('b') };
  list.add(a);
  const removeB = list.add(b);
  list.add(a);
  list.queued({} as Task);
  removeB();
  list.queued({} as Task);
  t.same(order, ['a', 'b', 'a', 'a', 'a']);
  t.end();
});
