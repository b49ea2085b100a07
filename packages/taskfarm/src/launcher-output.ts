import { StringDecoder } from 'node:string_decoder';
import type { Readable } from 'node:stream';

/** Where relayed output goes: process.stdout/stderr, or the progress line's writer above it. */
export interface Sink {
  write(chunk: string): unknown;
}

/** Splits a byte stream into lines; a multi-byte character cut across chunks stays whole. */
export class LineSplitter {
  readonly #decoder = new StringDecoder('utf8');
  #pending = '';

  /** The lines completed by `chunk`, without their newlines. */
  push(chunk: Buffer): string[] {
    const lines = (this.#pending + this.#decoder.write(chunk)).split('\n');
    this.#pending = lines.pop() ?? '';
    return lines;
  }

  /** Whatever followed the last newline, if anything. */
  end(): string | undefined {
    const rest = this.#pending + this.#decoder.end();
    this.#pending = '';
    return rest === '' ? undefined : rest;
  }
}

/**
 * Copies `source` to `dest` with `prefix` before every line. Whole lines are written at once so
 * ranks writing concurrently never interleave mid-line; an unterminated last line is completed.
 * No backpressure handling: process.stdout/stderr write synchronously to files, pipes and TTYs on Linux.
 */
export function pipePrefixed(source: Readable, dest: Sink, prefix: string): void {
  const splitter = new LineSplitter();
  const write = (lines: string[]): void => {
    if (lines.length > 0) dest.write(lines.map((line) => `${prefix}${line}\n`).join(''));
  };
  source.on('data', (chunk: Buffer) => write(splitter.push(chunk)));
  source.on('end', () => {
    const rest = splitter.end();
    if (rest !== undefined) write([rest]);
  });
}
