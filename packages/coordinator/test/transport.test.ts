/** The socket loop's life cycle: what a closed coordinator leaves behind. */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const ROUNDS = fileURLToPath(new URL('./fixtures/curve-rounds.ts', import.meta.url));

t.test('closed CURVE coordinators leave nothing that keeps their process alive', { timeout: 60_000 }, async (t) => {
  // Their private ZeroMQ contexts used to be collected (and shut down) before their observers
  // ended, and the process then never exited; the fixture collects garbage after every close.
  const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
    const child = execFile(process.execPath, ['--expose-gc', '--import', 'tsx', ROUNDS, '5'], (err, stdout) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout }));
    child.stdin?.end();
  });
  t.equal(stdout.trim(), 'rounds done', 'five coordinators started and closed');
  t.equal(code, 0, 'and the process exited on its own');
});
