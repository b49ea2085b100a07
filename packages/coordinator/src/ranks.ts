/**
 * Rank allocation as in MPI: the coordinator is rank 0, workers hold 1 and up. A worker may ask for a
 * rank; otherwise it gets the lowest free one at or above `firstFree` (ranks below it are reserved for
 * the workers `taskfarm run -n N` starts, which ask for theirs).
 */
export class RankTable {
  readonly #taken = new Set<number>();
  /** Freed ranks below `#next`, smallest first. */
  readonly #freed: number[] = [];
  /** The lowest rank handed out unasked; ranks below it are reserved for workers that ask for them. */
  readonly #floor: number;
  #next: number;

  constructor(firstFree = 1) {
    this.#floor = Math.max(1, Math.floor(firstFree));
    this.#next = this.#floor;
  }

  has(rank: number): boolean {
    return this.#taken.has(rank);
  }

  get size(): number {
    return this.#taken.size;
  }

  /** Takes `rank` if it is free; returns false when it is held. */
  claim(rank: number): boolean {
    if (this.#taken.has(rank)) return false;
    this.#taken.add(rank);
    return true;
  }

  /** Takes and returns the lowest free rank. */
  allocate(): number {
    while (this.#freed.length > 0) {
      const rank = heapPop(this.#freed);
      if (!this.#taken.has(rank)) {
        this.#taken.add(rank);
        return rank;
      }
    }
    while (this.#taken.has(this.#next)) this.#next++;
    this.#taken.add(this.#next);
    return this.#next++;
  }

  release(rank: number): void {
    if (!this.#taken.delete(rank)) return;
    if (rank >= this.#floor && rank < this.#next) heapPush(this.#freed, rank);
  }
}

function heapPush(h: number[], v: number): void {
  h.push(v);
  let i = h.length - 1;
  while (i > 0) {
    const p = (i - 1) >> 1;
    if (h[p]! <= v) break;
    h[i] = h[p]!;
    i = p;
  }
  h[i] = v;
}

function heapPop(h: number[]): number {
  const top = h[0]!;
  const last = h.pop()!;
  if (h.length > 0) {
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const c = l + 1 < h.length && h[l + 1]! < h[l]! ? l + 1 : l;
      if (h[c]! >= last) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = last;
  }
  return top;
}
