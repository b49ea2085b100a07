import t from 'tap';
import { RankTable } from '../src/ranks.ts';

t.test('lowest free rank, reuse after release', async (t) => {
  const r = new RankTable();
  t.same([r.allocate(), r.allocate(), r.allocate()], [1, 2, 3]);
  r.release(2);
  t.equal(r.allocate(), 2);
  t.equal(r.allocate(), 4);
});

t.test('requested ranks; holes below them are handed out in order', async (t) => {
  const r = new RankTable();
  t.ok(r.claim(5));
  t.notOk(r.claim(5), 'a held rank cannot be claimed again');
  t.same([r.allocate(), r.allocate(), r.allocate(), r.allocate(), r.allocate()], [1, 2, 3, 4, 6]);
  r.release(5);
  t.equal(r.allocate(), 5);
});

t.test('ranks below the job size are reserved for workers that ask for them', async (t) => {
  const r = new RankTable(4);
  t.equal(r.allocate(), 4);
  t.ok(r.claim(2));
  r.release(2);
  t.equal(r.allocate(), 5, 'a released reserved rank is not handed out unasked');
  t.ok(r.claim(2));
});
