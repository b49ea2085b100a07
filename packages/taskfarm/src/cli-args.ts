import { existsSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { LauncherError } from './launcher-error.ts';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

type Values<O extends OptionSpec> = ReturnType<typeof parseArgs<{ options: O; strict: true }>>['values'];

export type CommandLine<O extends OptionSpec> =
  | { help: true }
  | {
      help: false;
      /** The options that came before SCRIPT. */
      values: Values<O>;
      script: string | undefined;
      scriptArgs: string[];
    };

/**
 * Parses `argv` as `[options] SCRIPT [ARGS...]`. Options stop at SCRIPT (or `--`) so the
 * script's own flags, even ones named like ours, reach the script untouched.
 */
export function parseCommandLine<O extends OptionSpec>(
  command: string,
  argv: string[],
  options: O,
): CommandLine<O> {
  const { tokens } = parseArgs({ args: argv, options, strict: false, allowPositionals: true, tokens: true });
  const scriptToken = tokens.find((t) => t.kind === 'positional');
  const terminator = tokens.find((t) => t.kind === 'option-terminator');
  const end = Math.min(terminator?.index ?? argv.length, scriptToken?.index ?? argv.length);
  // --help wins over a typo elsewhere on the line: the user is asking how to fix it.
  if (tokens.some((t) => t.kind === 'option' && t.index < end && t.name === 'help')) return { help: true };
  try {
    const { values } = parseArgs({ args: argv.slice(0, end), options, strict: true, allowPositionals: false });
    return {
      help: false,
      values,
      script: scriptToken && argv[scriptToken.index],
      scriptArgs: scriptToken ? argv.slice(scriptToken.index + 1) : [],
    };
  } catch (error) {
    throw usageError(command, error);
  }
}

/** Node's parseArgs messages run to several sentences; keep the first, which names the problem. */
function usageError(command: string, error: unknown): LauncherError {
  const message = error instanceof Error ? error.message : String(error);
  const unknown = /^Unknown option '([^']+)'/.exec(message);
  const text = unknown ? `unknown option '${unknown[1]}'` : (message.split(/\.\s/)[0] ?? message);
  return new LauncherError('EUSAGE', text.charAt(0).toLowerCase() + text.slice(1), command);
}

export function usage(command: string | undefined, message: string): LauncherError {
  return new LauncherError('EUSAGE', message, command);
}

/** `raw` as an integer within [min, max]; `what` names it in the error. */
export function parseInteger(command: string, what: string, raw: string, min: number, max = Infinity): number {
  const value = /^[0-9]+$/.test(raw) ? Number(raw) : NaN;
  if (!(value >= min && value <= max)) {
    const range = max === Infinity ? `>= ${min}` : `from ${min} to ${max}`;
    throw usage(command, `${what} must be an integer ${range}, got '${raw}'`);
  }
  return value;
}

export function parseSeconds(command: string, what: string, raw: string): number {
  if (!/^[0-9]+(\.[0-9]+)?$/.test(raw)) throw usage(command, `${what} must be a number of seconds, got '${raw}'`);
  return Number(raw);
}

/** ZeroMQ endpoints are transport://address; catching a bare host:port here beats a hang later. */
export function parseEndpoint(command: string, what: string, raw: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\/\S+$/.test(raw))
    throw usage(command, `${what} must be an endpoint such as tcp://127.0.0.1:5555, got '${raw}'`);
  return raw;
}

export function requireScript(command: string, script: string | undefined): string {
  if (script === undefined) throw usage(command, 'missing SCRIPT to run');
  if (!existsSync(script)) throw new LauncherError('ENOSCRIPT', `script not found: ${script}`, command);
  return script;
}
