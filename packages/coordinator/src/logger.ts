import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

/** JSON lines on stderr, or pino-pretty when stderr is a terminal; stdout stays the application's. */
export function createLogger(level: string): Logger {
  const dest = process.stderr.isTTY ? pretty({ destination: 2, sync: true }) : pino.destination({ dest: 2, sync: true });
  return pino({ name: 'taskfarm-coordinator', level }, dest);
}
