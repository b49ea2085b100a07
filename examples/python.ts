/**
 * The few pieces of Python's standard library the seed's examples use (range, random.randint),
 * so that the ports read like the originals. random is seeded (EXAMPLE_SEED picks the seed) so that
 * runs can be repeated.
 */

/** Python's range(from, to): from, from + 1, ..., to - 1. */
export function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
}

/** mulberry32: a tiny seeded PRNG returning floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Python's random.randint: an integer in [lo, hi], both included. */
export function randint(random: () => number, lo: number, hi: number): number {
  return lo + Math.floor(random() * (hi - lo + 1));
}
