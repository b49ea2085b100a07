/**
 * PROTOCOL.md §9's Python worker, taken from the document itself and run with Debian's Python,
 * pyzmq and msgpack against a real coordinator: the protocol is enough to write a worker in another
 * language, and the coordinator's encoders and decoders (the hand-written hot headers included)
 * speak with a msgpack library other than msgpackr. Two such workers run a WorkQueue: results
 * come back doubled, a task their handler cannot run fails as a TaskError with the Python
 * exception's name, and terminate ends both processes cleanly.
 *
 * Needs /usr/bin/python3 with python3-zmq and python3-msgpack (.ci/run installs them): skipped
 * without them, except in CI, where their absence fails.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { Coordinator, Master, TaskError, WorkQueue } from 'taskfarm';
import { IN_CI } from './helpers/tools.ts';

const PYTHON = '/usr/bin/python3';
const PROTOCOL = fileURLToPath(new URL('../packages/protocol/PROTOCOL.md', import.meta.url));

/** The ```python block of PROTOCOL.md's §9. */
function pythonWorker(): string {
  const doc = readFileSync(PROTOCOL, 'utf8');
  const section = doc.slice(doc.indexOf('## 9.'), doc.indexOf('## 10.'));
  const code = /```python\n([\s\S]*?)```/.exec(section)?.[1];
  if (!code) throw new Error('PROTOCOL.md §9 has no python block');
  return code;
}

function pythonReady(): string | null {
  const r = spawnSync(PYTHON, ['-c', 'import zmq, msgpack'], { encoding: 'utf8' });
  return r.status === 0 ? null : `${PYTHON} with pyzmq and msgpack is not available (${(r.stderr || String(r.error)).trim()})`;
}

t.test("PROTOCOL.md's Python worker runs a WorkQueue against the coordinator", async (t) => {
  const missing = pythonReady();
  if (missing) {
    if (IN_CI) t.fail(`the Python worker test must run in CI: ${missing}`);
    else t.plan(0, missing);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'taskfarm-py-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'worker.py');
  writeFileSync(file, pythonWorker());
  const coordinator = await Coordinator.start({ endpoint: 'tcp://127.0.0.1:*', logLevel: 'silent' });
  t.teardown(() => coordinator.close());
  const kids = [0, 1].map(() => {
    const kid = spawn(PYTHON, [file], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, TASKFARM_CONNECT: coordinator.endpoint, TASKFARM_RANK: '' } });
    let stderr = '';
    kid.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exit = new Promise<{ code: number | null; stderr: string }>((resolve) => kid.on('exit', (code) => resolve({ code, stderr })));
    t.teardown(() => {
      if (kid.exitCode === null) kid.kill('SIGKILL');
    });
    return exit;
  });
  const master = new Master(undefined, { coordinator });
  await master.waitForWorkers(2);
  const queue = new WorkQueue(master);
  const numbers = Array.from({ length: 40 }, (_, i) => i * 1000);
  t.same(await queue.map(numbers), numbers.map((n) => ({ doubled: n * 2 })), 'every result, doubled by Python, in order');
  t.same(await queue.map(['ab', [1, 2]]), [{ doubled: 'abab' }, { doubled: [1, 2, 1, 2] }], 'strings and lists survive both msgpack libraries');
  const failed = await queue.submit(null).then(
    () => null,
    (err: unknown) => err,
  );
  t.ok(failed instanceof TaskError, 'None * 2 fails in Python: a TaskError here');
  t.equal((failed as TaskError).remote.name, 'TypeError', 'named after the Python exception');
  await master.terminateWorkers();
  for (const { code, stderr } of await Promise.all(kids)) t.equal(code, 0, `a Python worker exited cleanly${stderr ? `: ${stderr}` : ''}`);
});
