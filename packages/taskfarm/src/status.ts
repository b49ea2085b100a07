/**
 * `taskfarm status http://HOST:PORT`: the worker table of a running coordinator, read from the
 * JSON `/status` its metrics server serves (`--metrics-port`).
 */
import type { FarmStatus } from '@taskfarm/coordinator';

export interface StatusOptions {
  /** The `/status` URL. */
  url: string;
  /** Print the JSON document as served. */
  json: boolean;
}

/** `http://h:p`, `h:p`, or either with a path ending in /status or /metrics: the /status URL, or null. */
export function statusUrl(raw: string): string | null {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    return null;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
  if (u.hostname === '') return null;
  u.pathname = u.pathname.replace(/\/(status|metrics|healthz)?\/?$/, '') + '/status';
  u.search = '';
  u.hash = '';
  return u.toString();
}

export async function fetchStatus(url: string, timeoutMs = 5000): Promise<FarmStatus> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' } });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    throw new StatusError(`cannot reach ${url}: ${cause}`);
  }
  if (!res.ok) throw new StatusError(`${url} answered ${res.status} ${res.statusText}`);
  try {
    return (await res.json()) as FarmStatus;
  } catch {
    throw new StatusError(`${url} did not answer with JSON; is it a taskfarm coordinator's metrics port?`);
  }
}

export class StatusError extends Error {
  override readonly name = 'StatusError';
}

/** Prints the status; resolves with the exit code (1 when the coordinator cannot be read). */
export async function printStatus(o: StatusOptions, out: (s: string) => void = (s) => process.stdout.write(s)): Promise<number> {
  let status: FarmStatus;
  try {
    status = await fetchStatus(o.url);
  } catch (err) {
    if (!(err instanceof StatusError)) throw err;
    process.stderr.write(`taskfarm status: ${err.message}\n`);
    return 1;
  }
  out(o.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
  return 0;
}

/** The human-readable report: a summary, the worker table and the task types. */
export function formatStatus(s: FarmStatus): string {
  const t = s.totals;
  const c = s.coordinator;
  const lines = [
    `coordinator ${c.endpoint ?? '(not bound)'} on ${c.host} (pid ${c.pid}), up ${duration(c.uptimeSeconds)}`,
    `workers: ${t.workers} (${t.busy} busy, ${t.idle} idle, ${t.joining} joining, ${t.terminating} terminating); lost so far: ${t.lost}`,
    `tasks: ${t.submitted} submitted, ${t.done} done (${t.completed} completed, ${Math.max(0, t.failed - t.retried)} failed` +
      `${t.abandoned ? `, ${t.abandoned} abandoned` : ''}), ` +
      `${t.inFlight} in flight, ${t.queued} queued; ${t.retried} retried, ${t.requeued} requeued`,
    '',
  ];
  if (s.workers.length === 0) lines.push('no workers connected');
  else
    lines.push(
      ...table(
        ['RANK', 'HOST', 'PID', 'STATE', 'TASK', 'TYPE', 'RUNNING', 'BUSY', 'UTIL'],
        s.workers.map((w) => [
          String(w.rank),
          w.host,
          String(w.pid),
          w.state,
          w.task ? `${w.task.id}${w.task.attempt > 1 ? ` (attempt ${w.task.attempt})` : ''}` : '-',
          w.task ? w.task.type : '-',
          w.task ? duration(w.task.runningSeconds) : '-',
          duration(w.busySeconds),
          w.connectedSeconds > 0 ? `${Math.round((100 * w.busySeconds) / w.connectedSeconds)}%` : '-',
        ]),
        [true, false, true, false, false, false, true, true, true],
      ),
    );
  if (s.taskTypes.length > 0) {
    lines.push('');
    lines.push(
      ...table(
        ['TASK TYPE', 'QUEUED', 'IN FLIGHT', 'COMPLETED', 'FAILED', 'RETRIED', 'REQUEUED'],
        s.taskTypes.map((q) => [q.taskType, q.queued, q.inFlight, q.completed, q.failed, q.retried, q.requeued].map(String)),
        [false, true, true, true, true, true, true],
      ),
    );
  }
  return `${lines.join('\n')}\n`;
}

function table(header: string[], rows: string[][], right: boolean[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (right[i] ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

/** 0.4s, 12.3s, 5m 02s, 3h 04m. */
export function duration(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const s = Math.floor(seconds);
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
