/**
 * The live progress line `taskfarm run` draws at the bottom of its terminal from rank 0's progress
 * reports (done/total, rate, ETA, workers busy/idle). Output of the ranks is written above it: the
 * line is cleared, the output written, the line drawn again. Only ever used on a terminal.
 */
import { isProgressMessage, type ProgressMessage } from '@taskfarm/coordinator';
import { duration } from './status.ts';

/** Rate is measured over this window, so that it follows changes in speed. */
export const RATE_WINDOW_MS = 10_000;
/** Redraw this often even without reports, so that elapsed time and ETA keep moving. */
export const REDRAW_MS = 1000;

const CLEAR = '\r\x1b[2K';

export interface Sink {
  write(chunk: string): unknown;
}

export interface TerminalLike extends Sink {
  columns?: number;
}

interface Sample {
  at: number;
  done: number;
}

/** The text of the line (without escapes); `rate` in tasks per second, null when unknown yet. */
export function formatProgress(p: ProgressMessage, rate: number | null, elapsedMs: number): string {
  const parts = [`taskfarm ${p.done}/${p.total} done`];
  if (p.failed > 0) parts[0] += ` (${p.failed} failed)`;
  if (rate !== null) {
    parts.push(`${rate >= 10 ? rate.toFixed(0) : rate.toFixed(1)}/s`);
    const left = p.total - p.done;
    if (left > 0 && rate > 0) parts.push(`ETA ${duration(left / rate)}`);
  }
  parts.push(`elapsed ${duration(elapsedMs / 1000)}`);
  let workers = `workers ${p.busy} busy, ${p.idle} idle`;
  if (p.joining > 0) workers += `, ${p.joining} joining`;
  parts.push(workers);
  if (p.queued > 0) parts.push(`${p.queued} queued`);
  return parts.join(' | ');
}

export class ProgressLine {
  readonly #term: TerminalLike;
  readonly #clock: () => number;
  readonly #startedAt: number;
  readonly #samples: Sample[] = [];
  #last: ProgressMessage | null = null;
  #shown = false;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;

  /** `term` is the terminal the line is drawn on (stderr); `clock` in ms. */
  constructor(term: TerminalLike, clock: () => number = () => performance.now()) {
    this.#term = term;
    this.#clock = clock;
    this.#startedAt = clock();
  }

  /** A new report from rank 0. */
  update(p: ProgressMessage): void {
    if (this.#stopped) return;
    const at = this.#clock();
    this.#last = p;
    this.#samples.push({ at, done: p.done });
    while (this.#samples.length > 2 && at - this.#samples[0]!.at > RATE_WINDOW_MS) this.#samples.shift();
    this.#draw();
    if (!this.#timer) {
      this.#timer = setInterval(() => this.#draw(), REDRAW_MS);
      this.#timer.unref();
    }
  }

  /** Tasks per second over the window; null until there are two reports a little apart. */
  rate(): number | null {
    const first = this.#samples[0];
    const last = this.#samples[this.#samples.length - 1];
    if (!first || !last || last.at - first.at < 250) return null;
    return (last.done - first.done) / ((last.at - first.at) / 1000);
  }

  /** The line as it would be drawn now, or null before the first report. */
  text(): string | null {
    if (!this.#last) return null;
    const line = formatProgress(this.#last, this.rate(), this.#clock() - this.#startedAt);
    const width = this.#term.columns;
    return width && line.length > width - 1 ? line.slice(0, Math.max(0, width - 1)) : line;
  }

  /** A sink that writes `dest`'s output above the line. */
  above(dest: Sink): Sink {
    return { write: (chunk: string) => this.#writeAbove(dest, chunk) };
  }

  /** Clears the line for good and prints the last state as a plain line, if there was one. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    const text = this.text();
    if (this.#shown) this.#term.write(CLEAR);
    this.#shown = false;
    if (text !== null) this.#term.write(`${text}\n`);
  }

  #writeAbove(dest: Sink, chunk: string): void {
    if (this.#shown) {
      this.#term.write(CLEAR);
      this.#shown = false;
    }
    dest.write(chunk);
    this.#draw();
  }

  #draw(): void {
    if (this.#stopped) return;
    const text = this.text();
    if (text === null) return;
    this.#term.write(CLEAR + text);
    this.#shown = true;
  }
}

// --- the launcher's one progress line ---------------------------------------------------------------

let current: ProgressLine | null = null;

/** Starts the progress line of this `taskfarm run` when asked for and stderr is a terminal; returns whether it did. */
export function startProgress(wanted: boolean, term: NodeJS.WriteStream = process.stderr): boolean {
  if (!wanted || !term.isTTY || current) return false;
  current = new ProgressLine(term);
  return true;
}

/** Where a rank's output goes: above the progress line when there is one. */
export function outputSinks(): { stdout: Sink; stderr: Sink } {
  return current ? { stdout: current.above(process.stdout), stderr: current.above(process.stderr) } : { stdout: process.stdout, stderr: process.stderr };
}

/** Feeds rank 0's progress reports (IPC messages) to the line. */
export function followProgress(child: { on(event: 'message', listener: (message: unknown) => void): unknown }): void {
  const line = current;
  if (!line) return;
  child.on('message', (message: unknown) => {
    if (isProgressMessage(message)) line.update(message);
  });
}

/** Leaves the last state as a plain line and stops drawing. */
export function stopProgress(): void {
  current?.stop();
  current = null;
}

/** Whether this launcher draws a progress line (rank 0 then reports progress). */
export function progressShown(): boolean {
  return current !== null;
}
