/** Why the launcher refused to start. All map to exit status 2, like other CLI usage errors. */
export type LauncherErrorCode =
  | 'EUSAGE' // unknown option, bad option value, missing argument
  | 'ENOSCRIPT' // the SCRIPT argument names no file
  | 'EINSECURE' // a plaintext coordinator on a non-loopback endpoint without --insecure
  | 'ECURVEKEY' // a CURVE key file that cannot be read or used
  | 'EEXIST'; // keygen would overwrite a key file

export class LauncherError extends Error {
  override readonly name = 'LauncherError';
  readonly code: LauncherErrorCode;
  /** The subcommand whose --help the user should read; undefined for the top level. */
  readonly command: string | undefined;

  constructor(code: LauncherErrorCode, message: string, command?: string) {
    super(message);
    this.code = code;
    this.command = command;
  }
}
