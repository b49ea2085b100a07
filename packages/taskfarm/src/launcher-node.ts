import path from 'node:path';

/** Variables of the launcher/library contract; stale values inherited from a shell are never passed on. */
const CONTRACT_VARIABLES = [
  'TASKFARM_RANK',
  'TASKFARM_SIZE',
  'TASKFARM_ROLE',
  'TASKFARM_LAUNCHER',
  'TASKFARM_BIND',
  'TASKFARM_CONNECT',
  'TASKFARM_PROGRESS',
  'TASKFARM_RESTARTS',
  // Set per rank from the launcher's own options and environment (launcher-curve.ts).
  'TASKFARM_CURVE_SECRET_KEY',
  'TASKFARM_CURVE_SERVER_KEY',
  'TASKFARM_CURVE_ALLOW_LIST',
  'TASKFARM_CURVE_ALLOW_KEYS',
  'TASKFARM_INSECURE',
] as const;

export type ContractVariable = (typeof CONTRACT_VARIABLES)[number];

export interface NodeFlags {
  /** Start with --inspect-brk on 127.0.0.1 at this port. */
  inspectPort?: number;
  /** Write a V8 CPU profile into `dir` under `name` (Node's default name when undefined). */
  cpuProfile?: { dir: string; name: string | undefined };
}

/**
 * Resolved from this package rather than the user's cwd, so SCRIPT runs through our tsx wherever
 * it lives and whether or not its own project depends on tsx.
 */
export function tsxLoaderUrl(): string {
  return import.meta.resolve('tsx');
}

/** The argv after process.execPath that runs `script` under tsx with `flags`. */
export function nodeArgs(script: string, scriptArgs: readonly string[], flags: NodeFlags): string[] {
  const args: string[] = [];
  if (flags.inspectPort !== undefined) args.push(`--inspect-brk=127.0.0.1:${flags.inspectPort}`);
  if (flags.cpuProfile) {
    args.push('--cpu-prof', `--cpu-prof-dir=${path.resolve(flags.cpuProfile.dir)}`);
    if (flags.cpuProfile.name !== undefined) args.push(`--cpu-prof-name=${flags.cpuProfile.name}`);
  }
  args.push('--import', tsxLoaderUrl(), script, ...scriptArgs);
  return args;
}

/** `base` without any contract variable, plus `vars`. */
export function childEnv(
  base: NodeJS.ProcessEnv,
  vars: Partial<Record<ContractVariable, string>>,
): NodeJS.ProcessEnv {
  const env = { ...base };
  for (const name of CONTRACT_VARIABLES) delete env[name];
  // Children write to pipes; when we are on a terminal their logs should read as if they were too.
  if (process.stderr.isTTY && env.TASKFARM_LOG_PRETTY === undefined) env.TASKFARM_LOG_PRETTY = '1';
  return { ...env, ...vars };
}

/**
 * The endpoint a worker on this machine should dial for a coordinator bound at `endpoint`:
 * a wildcard host (bound on all interfaces) is reached through loopback.
 */
export function localConnectEndpoint(endpoint: string): string {
  return endpoint
    .replace(/^tcp:\/\/(?:\*|0\.0\.0\.0)(?=:)/, 'tcp://127.0.0.1')
    .replace(/^tcp:\/\/\[::\](?=:)/, 'tcp://[::1]');
}
