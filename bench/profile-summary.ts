/**
 * `node --import tsx bench/profile-summary.ts FILE.cpuprofile [top] [lastMs]`: the functions of a
 * V8 CPU profile (node --cpu-prof) by self and by inclusive time, the summary bench/RESULTS.md's
 * profile sections are made from. With lastMs, only the profile's last lastMs ms count: the run,
 * without the process's start-up (module loading, worker spawn). Functions are named with their file and line; tsx-compiled files are one
 * line long, so time inside a function is found by timing inside a real run, not here.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [file, topArg, lastArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: bench/profile-summary.ts FILE.cpuprofile [top] [lastMs]');
  process.exit(2);
}
const top = Number(topArg ?? 40);
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const name = (n: ProfileNode) => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').at(-1)}:${n.callFrame.lineNumber}`;

const self = new Map<string, number>();
const inclusive = new Map<string, number>();
let total = 0;
const span = profile.timeDeltas.reduce((a, b) => a + b, 0);
const from = lastArg === undefined ? -Infinity : span - Number(lastArg) * 1000;
let at = 0;
profile.samples.forEach((id, i) => {
  at += profile.timeDeltas[i] ?? 0;
  // A sample's time is the delta to the next sample.
  const dt = profile.timeDeltas[i + 1] ?? 0;
  if (at < from) return;
  total += dt;
  const leaf = byId.get(id)!;
  self.set(name(leaf), (self.get(name(leaf)) ?? 0) + dt);
  const seen = new Set<string>();
  for (let n: ProfileNode | undefined = leaf; n; n = byId.get(parent.get(n.id) ?? -1)) {
    const k = name(n);
    if (seen.has(k)) continue;
    seen.add(k);
    inclusive.set(k, (inclusive.get(k) ?? 0) + dt);
  }
});

const show = (title: string, m: Map<string, number>) => {
  console.log(`--- ${title}`);
  for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${(us / 1000).toFixed(1).padStart(9)} ms ${((100 * us) / total).toFixed(1).padStart(5)} %  ${k}`);
  }
};
console.log(`${(total / 1000).toFixed(0)} ms sampled`);
show('self', self);
show('inclusive', inclusive);
