/** The ring-buffer Deque against an array doing the same operations (fast-check, seeded). */
import fc from 'fast-check';
import t from 'tap';
import { Deque } from '../src/index.ts';

type Op = { op: 'push' | 'unshift' | 'insertBefore'; v: number } | { op: 'shift' } | { op: 'removeFirst'; v: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constantFrom('push' as const, 'unshift' as const, 'insertBefore' as const), v: fc.integer({ min: 0, max: 50 }) }),
  fc.record({ op: fc.constant('shift' as const) }),
  fc.record({ op: fc.constant('removeFirst' as const), v: fc.integer({ min: 0, max: 50 }) }),
);

t.test('push, unshift, shift, removeFirst and insertBefore do what an array does, across growth and wrap-around', async (t) => {
  fc.assert(
    fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
      const d = new Deque<number>(4);
      const a: number[] = [];
      for (const o of ops) {
        if (o.op === 'push') (d.push(o.v), a.push(o.v));
        else if (o.op === 'unshift') (d.unshift(o.v), a.unshift(o.v));
        else if (o.op === 'shift') {
          if (d.shift() !== a.shift()) return false;
        } else if (o.op === 'removeFirst') {
          const i = a.indexOf(o.v);
          const removed = d.removeFirst((x) => x === o.v);
          if (removed !== (i < 0 ? undefined : a.splice(i, 1)[0])) return false;
        } else {
          // Before the first larger value: an array kept sorted at its head stays sorted there.
          const i = a.findIndex((x) => x > o.v);
          d.insertBefore(o.v, (x) => x > o.v);
          a.splice(i < 0 ? a.length : i, 0, o.v);
        }
        if (d.length !== a.length) return false;
      }
      return [...d].every((x, i) => x === a[i]);
    }),
    { seed: 0xdec, numRuns: 500 },
  );
  t.pass('500 random sequences agree with the array');
});
