/**
 * What the launcher passes on for security: the CURVE keys of each rank and the plaintext opt-out,
 * as the environment the coordinator and the workers read (see their options).
 *
 * `taskfarm run` with a coordinator key gives the workers it starts on this machine a keypair of
 * their own, made for this run and admitted by rank 0 besides its allow-list, so that only remote
 * workers need keys from `taskfarm keygen`.
 */
import { isLocalEndpoint, loadSecretKey } from '@taskfarm/coordinator';
import { generateCurveKeyPair, type CurveKeyPair } from '@taskfarm/protocol';
import { LauncherError } from './launcher-error.ts';

export interface RunSecurity {
  /** Rank 0's secret key: a key file or the Z85 key (`--curve-secret-key`, `$TASKFARM_CURVE_SECRET_KEY`). */
  curveSecretKey?: string | undefined;
  /** The allow-list of remote workers' keys (`--curve-allow-list`, `$TASKFARM_CURVE_ALLOW_LIST`). */
  curveAllowList?: string | undefined;
  /** Plaintext beyond loopback allowed (`--insecure`, `$TASKFARM_INSECURE`). */
  insecure?: boolean | undefined;
}

export interface WorkerSecurity {
  /** The coordinator's public key, or its file (`--curve-server-key`, `$TASKFARM_CURVE_SERVER_KEY`). */
  curveServerKey?: string | undefined;
  /** This worker's key file or Z85 secret key (`--curve-secret-key`, `$TASKFARM_CURVE_SECRET_KEY`). */
  curveSecretKey?: string | undefined;
}

/** The environment of CURVE, per rank, for one `taskfarm run`. */
export interface CurvePlan {
  coordinator: Record<string, string>;
  workers: Record<string, string>;
  /** Rank 0 re-reads its allow-list on SIGHUP: the launcher passes the signal on. */
  forwardHangup: boolean;
}

export function planRunSecurity(o: RunSecurity & { bind: string }, env: NodeJS.ProcessEnv): CurvePlan {
  const secret = o.curveSecretKey ?? (env.TASKFARM_CURVE_SECRET_KEY || undefined);
  const allowList = o.curveAllowList ?? (env.TASKFARM_CURVE_ALLOW_LIST || undefined);
  const insecure = o.insecure === true || /^(1|true|yes)$/i.test(env.TASKFARM_INSECURE ?? '');
  if (secret === undefined) {
    if (allowList !== undefined) throw new LauncherError('EUSAGE', '--curve-allow-list needs --curve-secret-key, the coordinator\'s own key', 'run');
    if (!insecure && !isLocalEndpoint(o.bind)) {
      throw new LauncherError(
        'EINSECURE',
        `--bind ${o.bind} listens beyond this machine, and without CURVE anyone who reaches it could join the farm, read its ` +
          'tasks and forge results. Give the coordinator a key and an allow-list (taskfarm keygen; --curve-secret-key FILE ' +
          '--curve-allow-list FILE), or accept the risk on a trusted network with --insecure',
        'run',
      );
    }
    return { coordinator: insecure ? { TASKFARM_INSECURE: '1' } : {}, workers: {}, forwardHangup: false };
  }
  let server: CurveKeyPair;
  try {
    server = loadSecretKey(secret, '--curve-secret-key');
  } catch (err) {
    throw new LauncherError('ECURVEKEY', (err as Error).message, 'run');
  }
  const local = generateCurveKeyPair();
  const extra = (env.TASKFARM_CURVE_ALLOW_KEYS ?? '').split(/[\s,]+/).filter(Boolean);
  return {
    coordinator: {
      TASKFARM_CURVE_SECRET_KEY: secret,
      ...(allowList !== undefined ? { TASKFARM_CURVE_ALLOW_LIST: allowList } : {}),
      TASKFARM_CURVE_ALLOW_KEYS: [...extra, local.publicKey].join(','),
    },
    workers: { TASKFARM_CURVE_SERVER_KEY: server.publicKey, TASKFARM_CURVE_SECRET_KEY: local.secretKey },
    forwardHangup: allowList !== undefined,
  };
}

/** The environment of CURVE for `taskfarm worker`: flags over the environment it was started with. */
export function workerSecurityEnv(o: WorkerSecurity, env: NodeJS.ProcessEnv): Record<string, string> {
  const server = o.curveServerKey ?? (env.TASKFARM_CURVE_SERVER_KEY || undefined);
  const secret = o.curveSecretKey ?? (env.TASKFARM_CURVE_SECRET_KEY || undefined);
  if (o.curveSecretKey !== undefined && server === undefined) {
    throw new LauncherError('EUSAGE', '--curve-secret-key needs --curve-server-key, the coordinator\'s public key', 'worker');
  }
  if (server !== undefined && secret === undefined) {
    throw new LauncherError('EUSAGE', '--curve-server-key needs --curve-secret-key, this worker\'s own key file (taskfarm keygen)', 'worker');
  }
  return server === undefined ? {} : { TASKFARM_CURVE_SERVER_KEY: server, TASKFARM_CURVE_SECRET_KEY: secret! };
}
