/**
 * A preload that says which ZeroMQ sockets keep a process from exiting. zeromq.js's pending
 * receives hold the event loop from native code, so process._getActiveHandles() shows nothing;
 * this records every socket as it connects or binds, and every observer as it is iterated, and
 * once the process has lived OPEN_SOCKETS_AFTER_MS (default 30,000) prints those not closed, with
 * where they were made, then exits with 99. For a test file that passes but does not exit:
 *
 *   node --import tsx --import ./scripts/open-sockets.mjs test/security.test.ts
 *
 * (several at once, in a loop, to load the machine as CI does: such hangs are rare and timing-bound).
 */
import { createRequire } from 'node:module';

const zmq = createRequire(import.meta.url)('zeromq');
const afterMs = Number(process.env.OPEN_SOCKETS_AFTER_MS ?? 30_000);
const seen = [];
const where = () => new Error().stack.split('\n').slice(3, 8).map((l) => l.trim().replace(/^at /, '')).join(' < ');

for (const method of ['connect', 'bind']) {
  for (const Type of [zmq.Dealer, zmq.Router, zmq.Reply]) {
    const native = zmq.Socket.prototype[method];
    // The native methods are read-only on the base prototype; the subclasses can shadow them.
    Object.defineProperty(Type.prototype, method, {
      configurable: true,
      writable: true,
      value(...args) {
        seen.push({ object: this, what: `${Type.name}.${method}(${args[0]})`, where: where() });
        return native.apply(this, args);
      },
    });
  }
}
const iterate = zmq.Observer.prototype[Symbol.asyncIterator];
zmq.Observer.prototype[Symbol.asyncIterator] = function () {
  seen.push({ object: this, what: 'Observer', where: where() });
  return iterate.call(this);
};

setTimeout(() => {
  const open = seen.filter((s) => !s.object.closed);
  console.error(`open-sockets: still running after ${afterMs} ms; ${open.length} ZeroMQ socket(s)/observer(s) open`);
  for (const s of open) console.error(`  #${seen.findIndex((x) => x.object === s.object)} ${s.what}  at ${s.where}`);
  process.exit(99);
}, afterMs).unref();
