import {
  parseCommandLine,
  parseEndpoint,
  parseInteger,
  parseSeconds,
  requireScript,
  usage,
  type OptionSpec,
} from './cli-args.ts';
import { KEYGEN_HELP, RUN_HELP, STATUS_HELP, TOP_HELP, WORKER_HELP } from './cli-help.ts';
import { DEFAULT_KEY_NAME, keygen, keygenReport, type KeygenOptions } from './keygen.ts';
import { printStatus, statusUrl, type StatusOptions } from './status.ts';
import { LauncherError } from './launcher-error.ts';
import {
  DEFAULT_BIND,
  DEFAULT_CPU_PROF_DIR,
  DEFAULT_GRACE_MS,
  DEFAULT_INSPECT_PORT,
  DEFAULT_RESTARTS,
  runFarm,
  runWorker,
  type RunOptions,
  type WorkerOptions,
} from './launcher.ts';

const PROFILING_OPTIONS = {
  'inspect-port': { type: 'string' },
  'cpu-prof': { type: 'boolean' },
  'cpu-prof-dir': { type: 'string' },
  restarts: { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpec;

const RUN_OPTIONS = {
  ...PROFILING_OPTIONS,
  np: { type: 'string', short: 'n' },
  bind: { type: 'string' },
  inspect: { type: 'string' },
  grace: { type: 'string' },
  'metrics-port': { type: 'string' },
  'metrics-host': { type: 'string' },
  'no-progress': { type: 'boolean' },
  'curve-secret-key': { type: 'string' },
  'curve-allow-list': { type: 'string' },
  insecure: { type: 'boolean' },
} as const satisfies OptionSpec;

const WORKER_OPTIONS = {
  ...PROFILING_OPTIONS,
  connect: { type: 'string' },
  rank: { type: 'string' },
  inspect: { type: 'boolean' },
  'curve-server-key': { type: 'string' },
  'curve-secret-key': { type: 'string' },
} as const satisfies OptionSpec;

const KEYGEN_OPTIONS = {
  out: { type: 'string' },
  name: { type: 'string' },
  force: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpec;

const STATUS_OPTIONS = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpec;

type Help = { help: true };

/** pino's levels; `silent` turns logging off. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

function logLevel(command: string, raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  if (!(LOG_LEVELS as readonly string[]).includes(raw)) throw usage(command, `--log-level must be one of ${LOG_LEVELS.join(', ')}, got '${raw}'`);
  return raw;
}

function inspectPort(command: string, raw: string | undefined): number {
  return raw === undefined ? DEFAULT_INSPECT_PORT : parseInteger(command, '--inspect-port', raw, 0, 65535);
}

function restarts(command: string, raw: string | undefined): number {
  return raw === undefined ? DEFAULT_RESTARTS : parseInteger(command, '--restarts', raw, 0);
}

function cpuProfDir(values: { 'cpu-prof'?: boolean; 'cpu-prof-dir'?: string }): string | undefined {
  if (values['cpu-prof-dir'] !== undefined) return values['cpu-prof-dir'];
  return values['cpu-prof'] ? DEFAULT_CPU_PROF_DIR : undefined;
}

export function parseRunArgs(argv: string[]): RunOptions | Help {
  const line = parseCommandLine('run', argv, RUN_OPTIONS);
  if (line.help) return line;
  const { values } = line;
  if (values.np === undefined) throw usage('run', 'missing -n N, the number of processes');
  const size = parseInteger('run', '-n', values.np, 1);
  return {
    size,
    bind: values.bind === undefined ? DEFAULT_BIND : parseEndpoint('run', '--bind', values.bind),
    inspect:
      values.inspect === undefined
        ? undefined
        : {
            rank: parseInteger('run', '--inspect RANK', values.inspect, 0, size - 1),
            port: inspectPort('run', values['inspect-port']),
          },
    cpuProfDir: cpuProfDir(values),
    graceMs: values.grace === undefined ? DEFAULT_GRACE_MS : parseSeconds('run', '--grace', values.grace) * 1000,
    metricsPort: values['metrics-port'] === undefined ? undefined : parseInteger('run', '--metrics-port', values['metrics-port'], 0, 65535),
    metricsHost: values['metrics-host'],
    logLevel: logLevel('run', values['log-level']),
    progress: !values['no-progress'],
    restarts: restarts('run', values.restarts),
    curveSecretKey: nonEmpty('run', '--curve-secret-key', values['curve-secret-key']),
    curveAllowList: nonEmpty('run', '--curve-allow-list', values['curve-allow-list']),
    insecure: values.insecure === true,
    script: requireScript('run', line.script),
    scriptArgs: line.scriptArgs,
  };
}

export function parseWorkerArgs(argv: string[], env: NodeJS.ProcessEnv): WorkerOptions | Help {
  const line = parseCommandLine('worker', argv, WORKER_OPTIONS);
  if (line.help) return line;
  const { values } = line;
  const connect = values.connect ?? env.TASKFARM_CONNECT;
  if (connect === undefined || connect === '')
    throw usage('worker', 'missing --connect ENDPOINT (or TASKFARM_CONNECT in the environment)');
  const rank = values.rank === undefined ? undefined : parseInteger('worker', '--rank', values.rank, 1);
  return {
    connect: parseEndpoint('worker', values.connect === undefined ? 'TASKFARM_CONNECT' : '--connect', connect),
    rank,
    inspectPort: values.inspect ? inspectPort('worker', values['inspect-port']) : undefined,
    cpuProfDir: cpuProfDir(values),
    restarts: restarts('worker', values.restarts),
    logLevel: logLevel('worker', values['log-level']),
    curveServerKey: nonEmpty('worker', '--curve-server-key', values['curve-server-key']),
    curveSecretKey: nonEmpty('worker', '--curve-secret-key', values['curve-secret-key']),
    script: requireScript('worker', line.script),
    scriptArgs: line.scriptArgs,
  };
}

function nonEmpty(command: string, what: string, raw: string | undefined): string | undefined {
  if (raw === '') throw usage(command, `${what} must not be empty`);
  return raw;
}

export function parseKeygenArgs(argv: string[]): KeygenOptions | Help {
  const line = parseCommandLine('keygen', argv, KEYGEN_OPTIONS);
  if (line.help) return line;
  if (line.script !== undefined) throw usage('keygen', `unexpected argument '${line.script}'`);
  return {
    out: nonEmpty('keygen', '--out', line.values.out) ?? '.',
    name: nonEmpty('keygen', '--name', line.values.name) ?? DEFAULT_KEY_NAME(),
    force: line.values.force === true,
  };
}

export function parseStatusArgs(argv: string[]): StatusOptions | Help {
  const line = parseCommandLine('status', argv, STATUS_OPTIONS);
  if (line.help) return line;
  if (line.script === undefined) throw usage('status', 'missing URL of the coordinator\'s metrics server, e.g. http://127.0.0.1:9464');
  if (line.scriptArgs.length > 0) throw usage('status', `unexpected argument '${line.scriptArgs[0]}'`);
  const url = statusUrl(line.script);
  if (url === null) throw usage('status', `URL must look like http://HOST:PORT, got '${line.script}'`);
  return { url, json: line.values.json === true };
}

/** The taskfarm command; resolves with the exit status. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case '-h':
      case '--help':
        process.stdout.write(TOP_HELP);
        return 0;
      case 'run': {
        const options = parseRunArgs(rest);
        if ('help' in options) process.stdout.write(RUN_HELP);
        return 'help' in options ? 0 : await runFarm(options);
      }
      case 'worker': {
        const options = parseWorkerArgs(rest, process.env);
        if ('help' in options) process.stdout.write(WORKER_HELP);
        return 'help' in options ? 0 : await runWorker(options);
      }
      case 'keygen': {
        const options = parseKeygenArgs(rest);
        if ('help' in options) {
          process.stdout.write(KEYGEN_HELP);
          return 0;
        }
        process.stdout.write(keygenReport(keygen(options), options.name));
        return 0;
      }
      case 'status': {
        const options = parseStatusArgs(rest);
        if ('help' in options) process.stdout.write(STATUS_HELP);
        return 'help' in options ? 0 : await printStatus(options);
      }
      case undefined:
        throw usage(undefined, 'missing command: run, worker, keygen or status');
      default:
        throw usage(undefined, `${command.startsWith('-') ? 'unknown option' : 'unknown command'} '${command}'`);
    }
  } catch (error) {
    if (!(error instanceof LauncherError)) throw error;
    const name = error.command === undefined ? 'taskfarm' : `taskfarm ${error.command}`;
    process.stderr.write(`${name}: ${error.message}\nsee ${name} --help\n`);
    return 2;
  }
}
