/**
 * Keeps a flood of identical warnings (a port scanner, a fuzzer, a worker in a crash loop, or an
 * impostor coordinator) from drowning a log: at most `burst` lines per key per window, then one line
 * saying how many were suppressed when the next window opens. Pure: the caller passes the time.
 */
export class RateLimiter {
  readonly #windowMs: number;
  readonly #burst: number;
  readonly #keys = new Map<string, { start: number; count: number; suppressed: number }>();

  constructor(windowMs: number, burst: number) {
    this.#windowMs = windowMs;
    this.#burst = burst;
  }

  /** false: stay quiet; otherwise log, mentioning the returned number of suppressed lines. */
  take(key: string, now: number): number | false {
    let k = this.#keys.get(key);
    if (!k || now - k.start >= this.#windowMs) {
      const suppressed = k?.suppressed ?? 0;
      k = { start: now, count: 1, suppressed: 0 };
      this.#keys.set(key, k);
      return suppressed;
    }
    if (k.count < this.#burst) {
      k.count++;
      return 0;
    }
    k.suppressed++;
    return false;
  }
}
