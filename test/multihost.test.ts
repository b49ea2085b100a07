/**
 * Bare metal across hosts, as README "Deploy" > "Bare metal" says: the coordinator in one network
 * namespace, workers on two other "hosts" (namespaces) behind veth links with private test
 * addresses, each resolving `coord` to the coordinator. The commands are read from the README's
 * block and run exactly as written (the install line excepted: this checkout is installed already).
 * Root and iproute2 are needed: skipped where they cannot be had, a failure in CI.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { hostsUnavailable, makeHosts } from './helpers/hosts.ts';
import { cleanEnv, IN_CI, until } from './helpers/tools.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The bare-metal commands of the README, by what they start. */
export function bareMetalCommands(readme: string): { coordinator: string; worker: string; status: string } {
  const section = readme.slice(readme.indexOf('### Bare metal'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  const lines = block.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
  const find = (what: RegExp) => {
    const found = lines.filter((l) => what.test(l));
    if (found.length !== 1) throw new Error(`README bare-metal block: expected one command matching ${what}, found ${found.length}`);
    return found[0]!;
  };
  return { coordinator: find(/\btaskfarm run\b/), worker: find(/\btaskfarm worker\b/), status: find(/\btaskfarm status\b/) };
}

interface Proc {
  name: string;
  child: ChildProcess;
  out: string;
  exit: Promise<number | null>;
}

t.test('the bare-metal commands run a job across three hosts', async (t) => {
  const unavailable = hostsUnavailable();
  if (unavailable) {
    if (IN_CI) t.fail(`CI needs network namespaces for the multi-host test: ${unavailable}`);
    else t.plan(0, `network namespaces are not available: ${unavailable}`);
    return;
  }
  const cmd = bareMetalCommands(readFileSync(`${ROOT}README.md`, 'utf8'));
  t.match(cmd.coordinator, /--bind tcp:\/\/0\.0\.0\.0:5555 /);
  t.match(cmd.worker, /--connect tcp:\/\/coord:5555 /);
  const workers = Number(/JOB_WORKERS=(\d+)/.exec(cmd.coordinator)?.[1]);
  t.equal(workers, 4, 'the documented job waits for four workers: two on each worker host');

  const hosts = makeHosts(2);
  const procs: Proc[] = [];
  t.teardown(() => {
    for (const p of procs) if (p.child.exitCode === null && p.child.pid) killGroup(p.child.pid);
    hosts.destroy();
    if (!t.passing()) for (const p of procs) t.comment(`--- ${p.name}\n${p.out}`);
  });
  const start = (name: string, ns: string, command: string): Proc => {
    // Its own process group, so that teardown can stop pnpm, the launcher and the script together.
    const child = spawn('ip', ['netns', 'exec', ns, 'sh', '-c', command], { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const p: Proc = { name, child, out: '', exit: new Promise((resolve) => child.on('close', (code) => resolve(code))) };
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (p.out += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (p.out += c));
    procs.push(p);
    return p;
  };

  // Workers may start before the coordinator: host 2's do.
  const early = [start('w2a', hosts.workers[1]!, cmd.worker), start('w2b', hosts.workers[1]!, cmd.worker)];
  const coordinator = start('coordinator', hosts.coordinator, cmd.coordinator);
  await until(async () => (/JOB WAITING/.test(coordinator.out) && /metrics server listening/.test(coordinator.out) ? true : undefined), 60_000, 'the coordinator to listen');

  // The status command, from a worker host, through its link.
  const status = start('status', hosts.workers[0]!, cmd.status);
  t.equal(await status.exit, 0, 'taskfarm status reaches the coordinator from another host');
  t.match(status.out, /^coordinator tcp:\/\/0\.0\.0\.0:5555 on /m);
  t.match(status.out, /^workers: \d \(/m);

  const late = [start('w1a', hosts.workers[0]!, cmd.worker), start('w1b', hosts.workers[0]!, cmd.worker)];
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([coordinator.exit, new Promise<number>((resolve) => (timer = setTimeout(() => resolve(-1), 120_000)))]);
  clearTimeout(timer);
  t.equal(code, 0, 'the coordinator finished its job');
  const done = /JOB DONE (.*)/.exec(coordinator.out)?.[1] ?? '';
  t.match(done, /^tasks=100 failed=0 ranks=1,2,3,4 /, 'four workers with four distinct ranks, assigned by the coordinator');
  for (const w of [...early, ...late]) t.equal(await w.exit, 0, `${w.name} was terminated cleanly by the coordinator`);
  const joined = [...coordinator.out.matchAll(/worker joined/g)].length;
  t.equal(joined, 4);
});

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // gone already
  }
}
