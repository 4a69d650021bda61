// Just enough of the npm registry protocol for `npm publish` and for installing what was published: a package
// document (packument) per name and the tarballs it points to, kept in memory.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

interface Manifest {
  name: string;
  version: string;
  dist: { tarball: string; integrity?: string; shasum?: string };
  [field: string]: unknown;
}

/** The document `npm publish` PUTs: a packument holding the new version, with its tarball attached. */
interface PublishBody {
  name: string;
  'dist-tags'?: Record<string, string>;
  versions: Record<string, Manifest>;
  _attachments: Record<string, { data: string }>;
}

interface Packument {
  name: string;
  'dist-tags': Record<string, string>;
  versions: Record<string, Manifest>;
}

export interface LocalRegistry {
  /** With a trailing slash, as .npmrc scope lines write it. */
  url: string;
  /** Every request as "METHOD /path status", to explain a failed install. */
  log: string[];
  packument(name: string): Packument | undefined;
  close(): Promise<void>;
}

/** Starts the registry on 127.0.0.1 and a free port. Publishing needs `Authorization: Bearer <token>`. */
export async function startRegistry(token: string): Promise<LocalRegistry> {
  const packuments = new Map<string, Packument>();
  const tarballs = new Map<string, Buffer>();
  const log: string[] = [];
  let base = '';

  function publish(body: PublishBody): [number, object] {
    const doc = packuments.get(body.name) ?? { name: body.name, 'dist-tags': {}, versions: {} };
    for (const [version, manifest] of Object.entries(body.versions)) {
      if (doc.versions[version]) return [403, { error: `${body.name}@${version} is already published` }];
      const file = `${body.name.split('/').pop()}-${version}.tgz`;
      const attachment = Object.entries(body._attachments).find(([key]) => key.endsWith(file))?.[1];
      if (!attachment) return [400, { error: `no attachment ${file}` }];
      const bytes = Buffer.from(attachment.data, 'base64');
      const [algorithm, digest] = (manifest.dist.integrity ?? '').split('-', 2);
      if (!algorithm || !digest || createHash(algorithm).update(bytes).digest('base64') !== digest) {
        return [400, { error: `${file} does not match dist.integrity` }];
      }
      // Served from wherever this registry runs, whatever URL the client computed.
      const path = `/${body.name}/-/${file}`;
      tarballs.set(path, bytes);
      doc.versions[version] = { ...manifest, dist: { ...manifest.dist, tarball: `${base}${path}` } };
    }
    Object.assign(doc['dist-tags'], body['dist-tags']);
    packuments.set(body.name, doc);
    return [201, { ok: true }];
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<number> {
    // npm asks for scoped names with the slash escaped (/@scope%2fname); other clients do not.
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const send = (status: number, body: object | Buffer): number => {
      const isTarball = Buffer.isBuffer(body);
      res.writeHead(status, { 'content-type': isTarball ? 'application/octet-stream' : 'application/json' });
      res.end(isTarball ? body : JSON.stringify(body));
      return status;
    };

    if (req.method === 'PUT') {
      if (req.headers.authorization !== `Bearer ${token}`) return send(401, { error: 'bad or missing token' });
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as PublishBody;
      if (`/${body.name}` !== path) return send(400, { error: `document for ${body.name} sent to ${path}` });
      return send(...publish(body));
    }
    if (req.method === 'GET' || req.method === 'HEAD') {
      const tarball = tarballs.get(path);
      if (tarball) return send(200, tarball);
      const doc = packuments.get(path.slice(1));
      if (doc) return send(200, doc);
    }
    return send(404, { error: 'not found' });
  }

  const server = createServer((req, res) => {
    handle(req, res).then(
      (status) => log.push(`${req.method} ${req.url} ${status}`),
      (err: unknown) => {
        log.push(`${req.method} ${req.url} 500 ${String(err)}`);
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: String(err) }));
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: `${base}/`,
    log,
    packument: (name) => packuments.get(name),
    close: () =>
      new Promise<void>((resolve) => {
        // npm keeps its connections alive; close() alone would wait for them to time out.
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
