/**
 * `taskfarm keygen`: a CURVE keypair for a coordinator or a worker, as two files: NAME.key (both
 * keys, readable by the owner only) and NAME.pub (the public key and the name, one line: the line to
 * add to a coordinator's allow-list).
 */
import { chmodSync, mkdirSync, openSync, closeSync, writeSync, unlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { formatPublicKeyFile, formatSecretKeyFile, generateCurveKeyPair, type CurveKeyPair } from '@taskfarm/protocol';
import { LauncherError } from './launcher-error.ts';

export interface KeygenOptions {
  /** Directory to write into (created, mode 0700, if missing). Default: the current directory. */
  out: string;
  /** Base name of the files. Default: this host's name. */
  name: string;
  /** Replace existing files. */
  force: boolean;
}

export interface KeygenResult extends CurveKeyPair {
  secretFile: string;
  publicFile: string;
}

export const DEFAULT_KEY_NAME = (): string => hostname().split('.')[0] || 'taskfarm';

/** Writes NAME.key (0600) and NAME.pub (0644) into `out`; never overwrites without `force`. */
export function keygen(o: KeygenOptions): KeygenResult {
  if (!/^[\w.@-]+$/.test(o.name) || o.name.startsWith('.')) {
    throw new LauncherError('EUSAGE', `--name must be a plain file name (letters, digits, . _ - @), got '${o.name}'`, 'keygen');
  }
  mkdirSync(o.out, { recursive: true, mode: 0o700 });
  const pair = generateCurveKeyPair();
  const secretFile = path.join(o.out, `${o.name}.key`);
  const publicFile = path.join(o.out, `${o.name}.pub`);
  writeNew(secretFile, formatSecretKeyFile(pair, o.name), 0o600, o.force);
  writeNew(publicFile, formatPublicKeyFile(pair.publicKey, o.name), 0o644, o.force);
  return { ...pair, secretFile, publicFile };
}

/** Creates `file` with `mode` from the start (a secret is never readable by others, not even briefly). */
function writeNew(file: string, text: string, mode: number, force: boolean): void {
  if (force) {
    try {
      unlinkSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  let fd: number;
  try {
    fd = openSync(file, 'wx', mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new LauncherError('EEXIST', `${file} exists already; keep it, or pass --force to replace it (a replaced key locks out whoever uses the old one)`, 'keygen');
    }
    throw err;
  }
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
  chmodSync(file, mode); // the umask may have taken bits away from 0644; never added any to 0600
}

/** What keygen prints: where the files are, and what to do with them. */
export function keygenReport(r: KeygenResult, name: string): string {
  return (
    `wrote ${r.secretFile} (secret, mode 0600) and ${r.publicFile}\n` +
    `public key: ${r.publicKey}\n` +
    `\n` +
    `for a coordinator: taskfarm run --curve-secret-key ${r.secretFile} --curve-allow-list workers.allow ...\n` +
    `                   and give ${r.publicFile} to the workers (--curve-server-key)\n` +
    `for a worker:      add the line of ${r.publicFile} to the coordinator's allow-list (cat ${name}.pub >> workers.allow; kill -HUP it),\n` +
    `                   then taskfarm worker --curve-server-key coordinator.pub --curve-secret-key ${r.secretFile} ...\n`
  );
}
