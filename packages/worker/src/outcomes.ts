/**
 * Task outcomes on their way to the coordinator: small results gathered into a `results` batch
 * (window above 1: one header and one payload frame for many results instead of a message each),
 * and everything sent kept until the coordinator answers for it (`ack`, `receipt`), to be sent again
 * after a re-registration.
 */
import { BATCH_MAX_BYTES, BATCH_MAX_TASKS, encodePayload, type Result, type Results, type TaskFailed } from '@taskfarm/protocol';

/** How long the oldest result may wait while a handler awaits (I/O, of unknown length), in ms. */
const BATCH_WAIT_MS = 1;
/**
 * How long the oldest result waits at least before it leaves with tasks still queued here, in ms:
 * results of tasks far shorter than a round trip wait for a full batch instead, or for the queue to
 * run dry.
 */
const MIN_HOLD_MS = 1;
/**
 * How long the oldest result may wait for others while tasks queued here run, in ms. Only a bound:
 * the coordinator sizes windows to some tens of ms of work and a batch leaves once it holds as many
 * results as there are tasks left to run (due()), so it rarely waits this long.
 */
const MAX_HOLD_MS = 20;

type Outcome = Result | TaskFailed | Results;

export class Outcomes {
  readonly #send: (env: Outcome) => void;
  #batch: Result[] = [];
  #bytes = 0;
  #us = 0;
  /** When the batch's first result was ready (performance.now()). */
  #since = 0;
  #seq = 0;
  #timer: NodeJS.Timeout | null = null;
  /** Sent and not answered for, in the order sent; batches keyed by seq, the others by "id:attempt". */
  readonly #unanswered = new Map<number | string, Outcome>();
  readonly #sendTogether: (envs: readonly Outcome[]) => void;

  /** `send` sends one envelope; `sendTogether` several in as few messages as they fit in (default: one by one). */
  constructor(send: (env: Outcome) => void, sendTogether?: (envs: readonly Outcome[]) => void) {
    this.#send = send;
    this.#sendTogether = sendTogether ?? ((envs) => envs.forEach(send));
  }

  /** Results in the batch, not sent yet. */
  get batched(): number {
    return this.#batch.length;
  }

  /**
   * Adds a result whose handler ran `us` µs and ended at `now`. A batch's payload frame must stay
   * within `maxFrameBytes` (what the coordinator accepts): one that cannot take the result leaves first.
   */
  add(result: Result, us: number, now: number, maxFrameBytes: number): void {
    if (this.#bytes + result.payload.length > maxFrameBytes) this.flush();
    if (this.#batch.length === 0) this.#since = now;
    this.#batch.push(result);
    this.#bytes += result.payload.length;
    this.#us += us;
  }

  /**
   * Whether the batch should leave now, with `queued` tasks left to run here: when it is full, when
   * its oldest result has waited MAX_HOLD_MS, or when it holds as many results as there are tasks
   * left and its oldest has waited MIN_HOLD_MS. That rule is credit-based flow control: the
   * coordinator refills this worker's window as results come back, so a batch sent while half the
   * window is still queued brings the next tasks before the queue runs dry (hiding the round trip),
   * and costs one message per half window rather than one per task or two. Without the minimum
   * wait, tasks of a few µs would leave in ever smaller batches, each refill as small as the batch
   * that asked for it.
   */
  due(now: number, queued: number): boolean {
    const n = this.#batch.length;
    if (n === 0) return false;
    if (n >= BATCH_MAX_TASKS || this.#bytes >= BATCH_MAX_BYTES) return true;
    const waited = now - this.#since;
    return waited >= MAX_HOLD_MS || (n >= queued && waited >= MIN_HOLD_MS);
  }

  /** Sends the batch, if it holds anything, and keeps it until its receipt. */
  flush(): void {
    if (this.#batch.length === 0) return;
    const env: Results = { t: 'results', seq: ++this.#seq, us: this.#us, results: this.#batch };
    this.#batch = [];
    this.#bytes = 0;
    this.#us = 0;
    this.#unanswered.set(env.seq, env);
    this.#send(env);
  }

  /**
   * While a handler awaits, which may take long (I/O), the results already batched leave after
   * BATCH_WAIT_MS rather than wait for it. One timer, re-armed, not one per task.
   */
  flushSoon(): void {
    if (this.#batch.length === 0) return;
    if (this.#timer) this.#timer.refresh();
    else this.#timer = setTimeout(() => this.flush(), BATCH_WAIT_MS).unref();
  }

  /** Sends one result or error on its own, after the batch so that order is kept, and keeps it until its ack. */
  sendAlone(env: Result | TaskFailed): void {
    this.flush();
    this.#unanswered.set(outcomeKey(env.id, env.attempt), env);
    this.#send(env);
  }

  /**
   * Like sendAlone() for several failures (the answers to the cancels of one message), which leave
   * together: a coordinator taking back a worker's waiting tasks hears of them in one message, not
   * one each.
   */
  sendAllAlone(envs: readonly TaskFailed[]): void {
    this.flush();
    for (const env of envs) this.#unanswered.set(outcomeKey(env.id, env.attempt), env);
    this.#sendTogether(envs);
  }

  /** Whether the outcome of (id, attempt) is batched or sent and not answered for yet. */
  holds(id: number, attempt: number): boolean {
    const match = (r: Result) => r.id === id && r.attempt === attempt;
    if (this.#batch.some(match) || this.#unanswered.has(outcomeKey(id, attempt))) return true;
    for (const env of this.#unanswered.values()) if (env.t === 'results' && env.results.some(match)) return true;
    return false;
  }

  acked(id: number, attempt: number): void {
    this.#unanswered.delete(outcomeKey(id, attempt));
  }

  receipted(seq: number): void {
    this.#unanswered.delete(seq);
  }

  /**
   * Sends again all that was not answered for, to a coordinator that agreed on `window` and reads
   * raw results if `raw`; it drops what is stale.
   */
  resend(window: number, raw: boolean): void {
    if (!raw) {
      // A coordinator of another kind than the one that took them: raw results go as msgpack.
      for (const [key, env] of this.#unanswered) {
        if (env.t === 'result' && env.raw) this.#unanswered.set(key, { t: 'result', id: env.id, attempt: env.attempt, payload: encodePayload(env.payload), ...(env.us === undefined ? {} : { us: env.us }) });
      }
    }
    if (window === 1) {
      this.flush();
      // A coordinator that agreed on no window may be of a kind that cannot read `results`: each
      // result of a batch goes on its own, in the order sent.
      const sent = [...this.#unanswered];
      this.#unanswered.clear();
      for (const [key, env] of sent) {
        if (env.t !== 'results') this.#unanswered.set(key, env);
        else for (const r of env.results) this.#unanswered.set(outcomeKey(r.id, r.attempt), r);
      }
    }
    for (const env of this.#unanswered.values()) this.#send(env);
  }

  dispose(): void {
    if (this.#timer) clearTimeout(this.#timer);
  }
}

function outcomeKey(id: number, attempt: number): string {
  return `${id}:${attempt}`;
}
