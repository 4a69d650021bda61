import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { formatHostPort, type HostPort } from '../config/index.js';
import type { HealthReport } from './health.js';

export interface MetricsServer {
  /** Base URL, with the port actually bound. */
  readonly url: string;
  close(): Promise<void>;
}

export interface MetricsRoutes {
  registry: Registry;
  health(): HealthReport;
  stats(): unknown;
}

/** /metrics (Prometheus text), /healthz (JSON, 503 when unhealthy) and /stats (the balancer's counters as JSON). */
export async function startMetricsServer(addr: HostPort, routes: MetricsRoutes): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(body, null, 2)}\n`);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      routes.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': routes.registry.contentType });
          res.end(text);
        },
        (error: unknown) => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`${(error as Error).message}\n`);
        },
      );
    } else if (path === '/healthz') {
      const h = routes.health();
      json(h.status === 'ok' ? 200 : 503, h);
    } else if (path === '/stats') {
      json(200, routes.stats());
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found: try /metrics, /healthz or /stats\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(addr.port, addr.host, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  const host = addr.host === '0.0.0.0' ? '127.0.0.1' : addr.host === '::' ? '::1' : addr.host;
  return {
    url: `http://${formatHostPort({ host, port: bound.port })}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
