/** The anchors' scenarios (../shared/anchors/README.md), shared by taskfarm's and the raw loop's workers. */
export type Scenario = 'a' | 'b' | 'c' | 'd';

export const PAYLOAD_BYTES = 100 * 1024;

/** 1 ms of this process's CPU time, as the anchors spin (process.cpuUsage). */
export function spinCpu(ms: number): void {
  const start = process.cpuUsage();
  for (;;) {
    const u = process.cpuUsage(start);
    if (u.user + u.system >= ms * 1000) return;
  }
}

export function doTask(scenario: Scenario, data: unknown): unknown {
  if (scenario === 'b') spinCpu(1);
  return data;
}

/** Deterministic pseudo-random bytes. */
export function payload(): Buffer {
  const b = Buffer.allocUnsafe(PAYLOAD_BYTES);
  let x = 12345;
  for (let i = 0; i < PAYLOAD_BYTES; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

/** Example 3's resources (d): `n` ids from 1 to 3, from the anchors' seeded generator. */
export function exampleThreeResources(n = 300): number[] {
  let x = 42;
  return Array.from({ length: n }, () => ((x = (x * 1103515245 + 12345) >>> 0), 1 + (x % 3)));
}
