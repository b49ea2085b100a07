/**
 * "Hosts" for the multi-host and partition tests: network namespaces on this machine, a coordinator
 * host joined to each worker host by a veth link, with private test addresses (10.77.x.y) that
 * exist only inside these namespaces (the root namespace is not touched). Each worker host resolves
 * the name `coord` to the coordinator's end of its link (/etc/netns/NAME/hosts, which `ip netns
 * exec` mounts over /etc/hosts). A link is cut by taking its worker-host end down, and mended by
 * bringing it up. Needs root and iproute2. Names are unique per run; destroy() (also run on exit)
 * kills what runs inside and deletes the namespaces (and so the links).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';

const PREFIX = 'tfhost';
const NAME = new RegExp(`^${PREFIX}-(\\d+)-[0-9a-f]+-\\w+$`);
/** Each worker host's end of its link (interface names need only be unique inside a namespace). */
const WORKER_END = 'tfw0';

function ip(...args: string[]): string {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`ip ${args.join(' ')}: ${(e.stderr ?? '').trim() || e.message}`);
  }
}

/** Why namespaces cannot be made here, or null when they can (checked by making one). */
export function hostsUnavailable(): string | null {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  try {
    ip('-V');
  } catch {
    return 'the ip command (iproute2) is not installed';
  }
  const probe = `${PREFIX}-${process.pid}-${randomBytes(3).toString('hex')}-probe`;
  try {
    ip('netns', 'add', probe);
  } catch (err) {
    return `cannot create a network namespace: ${(err as Error).message}`;
  }
  ip('netns', 'del', probe);
  return null;
}

export interface Hosts {
  /** The coordinator's namespace. */
  coordinator: string;
  /** The worker hosts' namespaces, each with `coord` in its /etc/hosts. */
  workers: string[];
  /** The coordinator's address on each worker host's link, in order. */
  coordAddresses: string[];
  /** Cuts worker host i's link (its end goes down: it loses its route to the coordinator, which loses carrier). */
  cut(i: number): void;
  /** Mends it. */
  mend(i: number): void;
  /** Kills what still runs inside, deletes the namespaces. Idempotent. */
  destroy(): void;
}

export function makeHosts(workerHosts: number): Hosts {
  sweepStale();
  const id = `${PREFIX}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const coordinator = `${id}-c`;
  const workers = Array.from({ length: workerHosts }, (_, i) => `${id}-w${i + 1}`);
  const base = 1 + (randomBytes(1)[0]! % 200);
  const coordAddresses = workers.map((_, i) => `10.77.${base + i}.1`);
  let destroyed = false;
  const destroy = () => {
    if (destroyed) return;
    destroyed = true;
    for (const ns of [coordinator, ...workers]) {
      try {
        for (const pid of ip('netns', 'pids', ns).split(/\s+/).filter(Boolean)) kill(Number(pid));
      } catch {
        // no such namespace
      }
      try {
        ip('netns', 'del', ns);
      } catch {
        // never made, or gone
      }
      rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    }
    process.off('exit', destroy);
  };
  process.on('exit', destroy);
  try {
    for (const ns of [coordinator, ...workers]) {
      ip('netns', 'add', ns);
      ip('-n', ns, 'link', 'set', 'lo', 'up');
    }
    workers.forEach((ns, i) => {
      const here = `tfc${i + 1}`;
      const there = WORKER_END;
      const subnet = `10.77.${base + i}`;
      ip('-n', coordinator, 'link', 'add', here, 'type', 'veth', 'peer', 'name', there, 'netns', ns);
      ip('-n', coordinator, 'addr', 'add', `${subnet}.1/24`, 'dev', here);
      ip('-n', ns, 'addr', 'add', `${subnet}.2/24`, 'dev', there);
      ip('-n', coordinator, 'link', 'set', here, 'up');
      ip('-n', ns, 'link', 'set', there, 'up');
      mkdirSync(`/etc/netns/${ns}`, { recursive: true });
      writeFileSync(`/etc/netns/${ns}/hosts`, `127.0.0.1 localhost\n${subnet}.1 coord\n${subnet}.2 ${ns}\n`);
    });
  } catch (err) {
    destroy();
    throw err;
  }
  const link = (i: number, state: 'up' | 'down') => void ip('-n', workers[i]!, 'link', 'set', WORKER_END, state);
  return { coordinator, workers, coordAddresses, cut: (i) => link(i, 'down'), mend: (i) => link(i, 'up'), destroy };
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone already
  }
}

/** Deletes namespaces a run left behind when it died before its cleanup (its pid is gone). */
function sweepStale(): void {
  let list = '';
  try {
    list = ip('netns', 'list');
  } catch {
    return;
  }
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = NAME.exec(name);
    if (!m || alive(Number(m[1]))) continue;
    try {
      for (const pid of ip('netns', 'pids', name).split(/\s+/).filter(Boolean)) kill(Number(pid));
      ip('netns', 'del', name);
    } catch {
      // raced with someone else's cleanup
    }
    rmSync(`/etc/netns/${name}`, { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
