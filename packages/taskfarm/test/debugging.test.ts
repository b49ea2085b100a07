/** The README's debugging and profiling recipes: --cpu-prof writes a profile per rank; --inspect pauses one rank under the inspector. */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { launch, run } from './run-cli.ts';

t.test('--cpu-prof writes one CPU profile per rank', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'taskfarm-prof-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { code } = await run(['run', '-n', '3', '--cpu-prof-dir', dir, 'apps/throwing.ts']);
  t.equal(code, 0);
  const files = readdirSync(dir).sort();
  t.same(files, ['rank-0.cpuprofile', 'rank-1.cpuprofile', 'rank-2.cpuprofile']);
  for (const f of files) t.ok(Array.isArray((JSON.parse(readFileSync(join(dir, f), 'utf8')) as { nodes: unknown }).nodes), `${f} is a V8 profile`);
});

t.test('--inspect RANK starts that rank paused under the inspector; Ctrl-C still stops the job', async (t) => {
  const port = 9400 + (process.pid % 400);
  const job = launch(['run', '-n', '3', '--inspect', '2', '--inspect-port', String(port), 'apps/throwing.ts']);
  let stderr = '';
  await new Promise<void>((resolve) => {
    job.child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes('Debugger listening')) resolve();
    });
  });
  t.match(stderr, new RegExp(`^\\[2\\] Debugger listening on ws://127\\.0\\.0\\.1:${port}/`, 'm'), 'rank 2 waits for a debugger');
  const list = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as Array<{ url: string }>;
  t.match(list[0]?.url, /throwing\.ts$/, 'the inspector serves the script');
  job.child.kill('SIGINT');
  const { code } = await job.done;
  t.equal(code, 130);
});
