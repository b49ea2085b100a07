/** The coordinator refused this worker (`code` is the reject code, e.g. ERANKTAKEN), or it could not register. */
export class RegistrationError extends Error {
  override name = 'RegistrationError';
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}
