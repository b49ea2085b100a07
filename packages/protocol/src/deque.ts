/**
 * A FIFO with O(1) push, shift and unshift. The seed pops from the front of a Python list, which
 * costs O(queue length) per task; a ring buffer keeps a million queued tasks as cheap as ten. Both
 * sides use it (the coordinator's queues and send queue, a worker's held tasks), so it lives in the
 * package they share.
 */
export class Deque<T> {
  #buf: (T | undefined)[];
  #head = 0;
  #size = 0;

  constructor(capacity = 16) {
    this.#buf = new Array(capacity);
  }

  get length(): number {
    return this.#size;
  }

  push(item: T): void {
    if (this.#size === this.#buf.length) this.#grow();
    this.#buf[(this.#head + this.#size) % this.#buf.length] = item;
    this.#size++;
  }

  /** Puts an item at the head: requeued work goes before work that never ran. */
  unshift(item: T): void {
    if (this.#size === this.#buf.length) this.#grow();
    this.#head = (this.#head - 1 + this.#buf.length) % this.#buf.length;
    this.#buf[this.#head] = item;
    this.#size++;
  }

  /**
   * Puts an item before the first one for which `after` is true (at the end if none is): O(items
   * passed). For requeued work, which belongs near the head.
   */
  insertBefore(item: T, after: (other: T) => boolean): void {
    this.unshift(item);
    const n = this.#buf.length;
    for (let i = 0; i < this.#size - 1; i++) {
      const here = (this.#head + i) % n;
      const next = (this.#head + i + 1) % n;
      if (after(this.#buf[next] as T)) return;
      this.#buf[here] = this.#buf[next];
      this.#buf[next] = item;
    }
  }

  shift(): T | undefined {
    if (this.#size === 0) return undefined;
    const item = this.#buf[this.#head];
    this.#buf[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#buf.length;
    this.#size--;
    return item;
  }

  /** Removes and returns the first item matching `pred`; O(length), for rare operations such as cancel. */
  removeFirst(pred: (item: T) => boolean): T | undefined {
    for (let i = 0; i < this.#size; i++) {
      const at = (this.#head + i) % this.#buf.length;
      const item = this.#buf[at] as T;
      if (!pred(item)) continue;
      for (let j = i; j < this.#size - 1; j++) {
        this.#buf[(this.#head + j) % this.#buf.length] = this.#buf[(this.#head + j + 1) % this.#buf.length];
      }
      this.#buf[(this.#head + this.#size - 1) % this.#buf.length] = undefined;
      this.#size--;
      return item;
    }
    return undefined;
  }

  clear(): void {
    this.#buf.fill(undefined);
    this.#head = 0;
    this.#size = 0;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this.#size; i++) yield this.#buf[(this.#head + i) % this.#buf.length] as T;
  }

  #grow(): void {
    const next = new Array<T | undefined>(Math.max(16, this.#buf.length * 2));
    for (let i = 0; i < this.#size; i++) next[i] = this.#buf[(this.#head + i) % this.#buf.length];
    this.#buf = next;
    this.#head = 0;
  }
}
