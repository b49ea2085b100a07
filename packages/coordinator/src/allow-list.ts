/**
 * The worker public keys a CURVE coordinator admits: an allow-list file (one Z85 key per line, see
 * @taskfarm/protocol's parseAllowList), re-read on SIGHUP, plus keys given directly (`taskfarm run`
 * adds the key of the workers it starts itself). A reload that fails keeps the keys already loaded:
 * a typo in the file must not lock every worker out, nor let anyone in.
 */
import { readFileSync } from 'node:fs';
import { CurveKeyError, parseAllowList } from '@taskfarm/protocol';

export class AllowList {
  /** The file, or null when only `keys` are allowed. */
  readonly path: string | null;
  readonly #extra: readonly string[];
  /** Z85 public key → its label in the file (often a host name; '' when none). */
  #keys = new Map<string, string>();

  /** Loads the file at once; throws CurveKeyError when it cannot be read or parsed. */
  constructor(path: string | null, keys: readonly string[] = []) {
    this.path = path;
    this.#extra = keys;
    this.reload();
  }

  /** Reads the file again and returns how many keys are allowed now; throws (keeping the old keys) on error. */
  reload(): number {
    const next = new Map<string, string>();
    for (const key of this.#extra) next.set(key, '');
    if (this.path !== null) {
      let text: string;
      try {
        text = readFileSync(this.path, 'utf8');
      } catch (err) {
        throw new CurveKeyError(`cannot read the allow-list ${this.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      for (const { key, label } of parseAllowList(text, `allow-list ${this.path}`)) next.set(key, label);
    }
    this.#keys = next;
    return next.size;
  }

  has(key: string): boolean {
    return this.#keys.has(key);
  }

  /** The label written after `key` in the file, if any. */
  label(key: string): string | undefined {
    return this.#keys.get(key);
  }

  get size(): number {
    return this.#keys.size;
  }
}
