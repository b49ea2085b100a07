/**
 * The coordinator's HTTP endpoints for operators: `/metrics` (Prometheus text format), `/healthz`
 * (200 while the coordinator is up) and `/status` (JSON: the worker table, queues, totals). Plain
 * node:http, read-only, loopback by default (`metricsHost`).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FarmMetrics } from './metrics.ts';

export interface StatusServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** The coordinator's ZeroMQ endpoint once bound (shown in /status), and whether it is up. */
  health(): { ok: boolean; endpoint: string | null; detail: string };
}

export class StatusServer {
  readonly #metrics: FarmMetrics;
  readonly #options: StatusServerOptions;
  readonly #server: Server;
  #url: string | null = null;
  #closing: Promise<void> | null = null;

  constructor(metrics: FarmMetrics, options: StatusServerOptions) {
    this.#metrics = metrics;
    this.#options = options;
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', `internal error: ${(err as Error).message}\n`);
        else res.destroy();
      });
    });
    // A scraper's keep-alive connection must not hold the process open once the coordinator closes.
    this.#server.keepAliveTimeout = 5000;
  }

  /** Resolves with the server's base URL (e.g. http://127.0.0.1:9464) once it listens. */
  listen(): Promise<string> {
    const { host, port } = this.#options;
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(new Error(`metrics server cannot listen on ${hostPort(host, port)}: ${err.code ?? err.message}`, { cause: err }));
      };
      this.#server.once('error', onError);
      this.#server.listen(port, host, () => {
        this.#server.off('error', onError);
        const addr = this.#server.address() as AddressInfo;
        this.#url = `http://${hostPort(host, addr.port)}`;
        resolve(this.#url);
      });
    });
  }

  /** The base URL; null until listen() resolved. */
  get url(): string | null {
    return this.#url;
  }

  /** Stops listening and ends open connections (a scraper's keep-alive included). */
  close(): Promise<void> {
    this.#closing ??= new Promise((resolve) => {
      if (!this.#server.listening) return resolve();
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
    return this.#closing;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
    }
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    switch (path) {
      case '/metrics':
        return send(res, 200, this.#metrics.contentType, await this.#metrics.exposition());
      case '/healthz': {
        const h = this.#options.health();
        return send(res, h.ok ? 200 : 503, 'text/plain; charset=utf-8', `${h.detail}\n`);
      }
      case '/status':
        return send(res, 200, 'application/json; charset=utf-8', `${JSON.stringify(this.#metrics.snapshot(this.#options.health().endpoint), null, 2)}\n`);
      case '/':
        return send(res, 200, 'text/plain; charset=utf-8', 'taskfarm coordinator\n  /metrics  Prometheus metrics\n  /healthz  200 while the coordinator is up\n  /status   workers, queues and totals as JSON\n');
      default:
        return send(res, 404, 'text/plain; charset=utf-8', 'not found: try /metrics, /healthz or /status\n');
    }
  }
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
