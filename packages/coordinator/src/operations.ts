/**
 * Everything a coordinator offers operators, in one place the coordinator creates and closes:
 * metrics (always counted; cheap), the HTTP status server (with `metricsPort`) and progress reports
 * to `taskfarm run` (when it asks for them).
 */
import type { Logger } from 'pino';
import { FarmMetrics, type MetricsSource } from './metrics.ts';
import type { ResolvedOptions } from './options.ts';
import { ProgressReporter } from './progress-report.ts';
import { StatusServer } from './status-server.ts';

export interface OperationsHost extends MetricsSource {
  readonly options: ResolvedOptions;
  readonly log: Logger;
  readonly closed: boolean;
  /** Throws until the coordinator is bound. */
  readonly endpoint: string;
}

export class Operations {
  readonly metrics: FarmMetrics;
  /** Serves /metrics, /healthz and /status when `metricsPort` is set; its `url` once listening. */
  readonly statusServer: StatusServer | null;
  readonly #host: OperationsHost;
  readonly #progress: ProgressReporter | null;

  constructor(host: OperationsHost) {
    this.#host = host;
    this.metrics = new FarmMetrics(host);
    const { metricsPort, metricsHost } = host.options;
    if (metricsPort === null) {
      this.statusServer = null;
    } else {
      this.metrics.enableProcessMetrics();
      this.statusServer = new StatusServer(this.metrics, { host: metricsHost, port: metricsPort, health: () => this.#health() });
    }
    this.#progress = ProgressReporter.fromEnvironment(this.metrics);
    if (this.#progress) host.observers.add(this.#progress);
  }

  /** Starts the status server, if any; rejects when it cannot listen. */
  async listen(): Promise<void> {
    if (!this.statusServer) return;
    const url = await this.statusServer.listen();
    this.#host.log.info({ url: `${url}/metrics` }, 'metrics server listening');
  }

  async close(): Promise<void> {
    this.#progress?.flush();
    this.#progress?.stop();
    await this.statusServer?.close();
  }

  #health(): { ok: boolean; endpoint: string | null; detail: string } {
    let endpoint: string | null = null;
    try {
      endpoint = this.#host.endpoint;
    } catch {
      // not bound yet
    }
    if (this.#host.closed) return { ok: false, endpoint, detail: 'closed' };
    if (endpoint === null) return { ok: false, endpoint, detail: 'starting' };
    return { ok: true, endpoint, detail: 'ok' };
  }
}
