/**
 * Recycles the worker process when a task overruns its timeout and its handler ignores the abort
 * signal. A handler stuck in synchronous code blocks the event loop, so no timer on it can fire: the
 * watchdog is a separate thread that shares a deadline with the main thread through shared memory
 * and kills the process (SIGKILL: a JavaScript signal handler could not run either) when the
 * deadline passes while still armed. The coordinator then sees the connection drop after the
 * task's timeout, fails the task with ETIMEDOUT (retried or reported per policy), and the launcher
 * or service manager starts a fresh worker.
 */
import { Worker as Thread } from 'node:worker_threads';

// The thread's body, as source: it must not depend on a loader (tsx) or on our modules.
const WATCHDOG_SOURCE = `
const { workerData } = require('node:worker_threads');
const { writeSync } = require('node:fs');
const generation = new Int32Array(workerData, 0, 1);
const deadline = new Float64Array(workerData, 8, 1);
for (;;) {
  const g = Atomics.load(generation, 0);
  const d = deadline[0];
  if (d === 0) { Atomics.wait(generation, 0, g); continue; }
  const left = d - Date.now();
  if (left > 0) { Atomics.wait(generation, 0, g, left); continue; }
  if (Atomics.load(generation, 0) !== g) continue;
  writeSync(2, 'taskfarm worker: a task overran its timeout and its handler ignored the abort signal; recycling this process\\n');
  process.kill(process.pid, 'SIGKILL');
}
`;

export class Watchdog {
  readonly #shared = new SharedArrayBuffer(16);
  readonly #generation = new Int32Array(this.#shared, 0, 1);
  readonly #deadline = new Float64Array(this.#shared, 8, 1);
  #thread: Thread | null = null;

  /** Kill this process at `deadline` (ms since the epoch) unless disarmed first. */
  arm(deadline: number): void {
    this.#thread ??= this.#start();
    this.#deadline[0] = deadline;
    this.#bump();
  }

  disarm(): void {
    if (this.#deadline[0] === 0) return;
    this.#deadline[0] = 0;
    this.#bump();
  }

  async stop(): Promise<void> {
    const t = this.#thread;
    this.#thread = null;
    if (t) await t.terminate();
  }

  #bump(): void {
    Atomics.add(this.#generation, 0, 1);
    Atomics.notify(this.#generation, 0);
  }

  #start(): Thread {
    const t = new Thread(WATCHDOG_SOURCE, { eval: true, workerData: this.#shared });
    // It must never keep the process alive, and its own failure must not take the worker down.
    t.unref();
    t.on('error', () => {});
    return t;
  }
}
