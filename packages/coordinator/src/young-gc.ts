/**
 * Young-generation collections paced by the bytes the coordinator receives.
 *
 * zeromq.js hands every received frame over 128 bytes to JavaScript without a copy, as a Buffer over
 * libzmq's memory, and reports that memory to V8 (AdjustExternalMemory) on top of V8's own
 * accounting of the Buffer. V8 frees such buffers in a young-generation collection if one runs
 * while they are young, but young collections run when young objects fill their space, and a
 * coordinator moving large payloads allocates few objects: the reported memory grows first, and V8
 * answers it with full mark-compacts of the whole heap. With 100 KiB results that was 25 or so
 * mark-compacts per 6,000 tasks and a fifth of the coordinator's time (bench/RESULTS.md, scenario c).
 * A scavenge every few MiB received frees the same buffers while they are young, for a fraction
 * of the cost, and leaves the payloads uncopied.
 *
 * Only the coordinator does this: workers keep their tasks' buffers until the results are
 * acknowledged, so a young collection would mostly promote them (measured: no gain there).
 */
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';

/** Frames up to this size are copied into the V8 heap by zeromq.js (its zero-copy threshold). */
export const ZERO_COPY_MIN_BYTES = 129;

export type Collect = () => void;

export class YoungCollector {
  #since = 0;
  #collect: Collect | null | undefined;

  /**
   * @param everyBytes bytes of zero-copy frames between two collections; 0 never collects.
   * @param collect runs one young-generation collection; default: V8's, found on first need.
   */
  constructor(
    readonly everyBytes: number,
    collect?: Collect,
  ) {
    this.#collect = collect;
  }

  /** A frame of `bytes` arrived. */
  received(bytes: number): void {
    if (bytes < ZERO_COPY_MIN_BYTES || this.everyBytes === 0) return;
    this.#since += bytes;
    if (this.#since < this.everyBytes) return;
    this.#since = 0;
    if (this.#collect === undefined) this.#collect = v8YoungCollection();
    this.#collect?.();
  }
}

/**
 * V8's young-generation collection, or null where it cannot be had. Without `node --expose-gc` it
 * is reached by setting that flag now, which V8 reads when it creates a context: the function then
 * lives only in a context of our own, and the application's global scope is left as it was.
 */
export function v8YoungCollection(): Collect | null {
  let gc = (globalThis as { gc?: unknown }).gc;
  if (typeof gc !== 'function') {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc');
  }
  if (typeof gc !== 'function') return null;
  const collect = gc as (options: { type: 'minor' }) => void;
  return () => collect({ type: 'minor' });
}
