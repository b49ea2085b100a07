/**
 * An append-only journal of task outcomes, so that a coordinator killed outright (SIGKILL, power
 * loss) and started again with the same file resumes its job instead of redoing it: a task whose
 * result the application already took is not run or delivered again, and a task whose result had
 * arrived but was not yet taken is delivered from the journal without running again.
 *
 * The application runs again from the top and adds its tasks again; the journal recognises each by
 * its queue's name and its key (addWork's `key` option, or the order of addWork() calls in that
 * queue), so tasks must be added under the same keys on every run.
 *
 * Format: records of [u32 big-endian length][msgpack array]; a record cut short by a crash is
 * dropped (and the file truncated to the last whole record) when the journal is opened again.
 * Durability: every record is written with write(2) as it happens, so it survives the process dying;
 * `fdatasync` runs every `syncIntervalMs` (default 1000) or after every record with `sync: 'always'`,
 * so a machine crash loses at most the last interval: tasks completed in it run again (execution is
 * at least once), results taken in it may be delivered again.
 */
import { closeSync, fdatasyncSync, ftruncateSync, openSync, readFileSync, writeSync, existsSync } from 'node:fs';
import { decodePayload, encodePayload, type Key, type WireError } from '@taskfarm/protocol';
import type { Outcome } from './farm.ts';

/** What the queues need from a journal. */
export interface Journal {
  /** What the journal holds of (queue, key): `delivered`, the outcome of a completed task, or undefined. */
  lookup(queue: string, key: Key): 'delivered' | Outcome | undefined;
  completed(queue: string, key: Key, outcome: Outcome): void;
  delivered(queue: string, key: Key): void;
  close(): void;
}

export interface JournalOptions {
  /** `interval` (default): fdatasync every syncIntervalMs; `always`: after every record. */
  sync?: 'interval' | 'always';
  syncIntervalMs?: number;
}

// The sixth field (raw, Outcome.raw) is absent from records written before raw payloads existed.
type RecordC = ['c', string, Key, true, Uint8Array, boolean?] | ['c', string, Key, false, WireError];
type RecordD = ['d', string, Key];

export class FileJournal implements Journal {
  readonly path: string;
  /** Outcomes and deliveries found in the file when it was opened, then kept up to date. */
  readonly #state = new Map<string, Map<Key, 'delivered' | Outcome>>();
  readonly #fd: number;
  readonly #always: boolean;
  #dirty = false;
  #timer: NodeJS.Timeout | null = null;
  /** Records found when opening (for logs). */
  readonly recovered: { completed: number; delivered: number; tornBytes: number };

  constructor(path: string, options: JournalOptions = {}) {
    this.path = path;
    this.recovered = { completed: 0, delivered: 0, tornBytes: 0 };
    const existing = existsSync(path) ? readFileSync(path) : Buffer.alloc(0);
    const good = this.#load(existing);
    this.#fd = openSync(path, 'a');
    if (good < existing.length) {
      // A record cut short by a crash: drop it, so that new records follow whole ones.
      ftruncateSync(this.#fd, good);
      this.recovered.tornBytes = existing.length - good;
    }
    this.#always = options.sync === 'always';
    if (!this.#always) {
      this.#timer = setInterval(() => this.#sync(), options.syncIntervalMs ?? 1000);
      this.#timer.unref();
    }
  }

  lookup(queue: string, key: Key): 'delivered' | Outcome | undefined {
    return this.#state.get(queue)?.get(key);
  }

  completed(queue: string, key: Key, outcome: Outcome): void {
    this.#set(queue, key, outcome);
    this.#append(outcome.ok ? ['c', queue, key, true, outcome.payload, outcome.raw === true] : ['c', queue, key, false, outcome.error]);
  }

  delivered(queue: string, key: Key): void {
    this.#set(queue, key, 'delivered');
    this.#append(['d', queue, key]);
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#sync();
    closeSync(this.#fd);
  }

  #set(queue: string, key: Key, v: 'delivered' | Outcome): void {
    let q = this.#state.get(queue);
    if (!q) this.#state.set(queue, (q = new Map()));
    q.set(key, v);
  }

  #append(record: RecordC | RecordD): void {
    const body = encodePayload(record);
    const head = Buffer.allocUnsafe(4);
    head.writeUInt32BE(body.length);
    writeSync(this.#fd, Buffer.concat([head, body]));
    if (this.#always) fdatasyncSync(this.#fd);
    else this.#dirty = true;
  }

  #sync(): void {
    if (!this.#dirty) return;
    this.#dirty = false;
    fdatasyncSync(this.#fd);
  }

  /** Replays the file; returns the length of its whole records. */
  #load(buf: Buffer): number {
    let at = 0;
    while (at + 4 <= buf.length) {
      const len = buf.readUInt32BE(at);
      if (at + 4 + len > buf.length) break;
      let rec: RecordC | RecordD;
      try {
        rec = decodePayload(buf.subarray(at + 4, at + 4 + len)) as RecordC | RecordD;
      } catch {
        break;
      }
      if (rec[0] === 'c') {
        this.#set(rec[1], rec[2], rec[3] ? { ok: true, payload: Buffer.from(rec[4] as Uint8Array), raw: rec[5] === true } : { ok: false, error: rec[4] as WireError });
        this.recovered.completed++;
      } else {
        this.#set(rec[1], rec[2], 'delivered');
        this.recovered.delivered++;
      }
      at += 4 + len;
    }
    return at;
  }
}
