import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

/**
 * JSON lines on stderr, or pino-pretty when stderr is a terminal (or `taskfarm run` on a terminal
 * says so with TASKFARM_LOG_PRETTY=1); stdout stays the application's.
 */
export function createLogger(level: string): Logger {
  const tty = process.stderr.isTTY || process.env.TASKFARM_LOG_PRETTY === '1';
  const dest = tty ? pretty({ destination: 2, sync: true }) : pino.destination({ dest: 2, sync: true });
  return pino({ name: 'taskfarm-coordinator', level }, dest);
}
