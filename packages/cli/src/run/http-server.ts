import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { MetricsRegistry } from './metrics.js';
import { formatHostPort, type HostPort } from '../config/index.js';
import type { FlowsPage } from '../maps/flows.js';
import type { HealthReport } from './health.js';

export interface MetricsServer {
  /** Base URL, with the port actually bound. */
  readonly url: string;
  close(): Promise<void>;
}

export interface MetricsRoutes {
  registry: MetricsRegistry;
  health(): HealthReport;
  stats(): unknown;
  /** The `limit` most recently used flows; undefined while the balancer is not running. */
  flows?(limit: number): Promise<FlowsPage | undefined>;
  /** The targets with their health, flows and traffic. */
  backends?(): unknown;
}

/** How many flows /flows lists unless asked for another number, and the most it ever lists in one answer. */
export const FLOWS_DEFAULT_LIMIT = 1000;
export const FLOWS_MAX_LIMIT = 10_000;

function flowsLimit(query: string | undefined): number | string {
  const raw = new URLSearchParams(query ?? '').get('limit');
  if (raw === null) return FLOWS_DEFAULT_LIMIT;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > FLOWS_MAX_LIMIT) return `limit: expected an integer from 1 to ${FLOWS_MAX_LIMIT}, got ${JSON.stringify(raw)}`;
  return n;
}

/**
 * /metrics (Prometheus text), /healthz (JSON, 503 when unhealthy), /stats (the balancer's counters as JSON),
 * /flows (the most recently used flows as JSON, `?limit=` of them) and /backends (the targets with their health,
 * flows and traffic as JSON).
 */
export async function startMetricsServer(addr: HostPort, routes: MetricsRoutes): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const [path, query] = (req.url ?? '/').split('?', 2);
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
    } else if (path === '/backends' && routes.backends) {
      json(200, routes.backends());
    } else if (path === '/flows' && routes.flows) {
      const limit = flowsLimit(query);
      if (typeof limit === 'string') {
        json(400, { error: limit });
        return;
      }
      routes.flows(limit).then(
        (page) => (page ? json(200, page) : json(503, { error: 'the balancer is not running' })),
        (error: unknown) => json(500, { error: (error as Error).message }),
      );
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      const paths = ['/metrics', '/healthz', '/stats', ...(routes.flows ? ['/flows'] : []), ...(routes.backends ? ['/backends'] : [])];
      res.end(`not found: try ${paths.slice(0, -1).join(', ')} or ${paths.at(-1)!}\n`);
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
