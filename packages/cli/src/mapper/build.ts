import type { Decision, FlowMapper, UdpEndpoint } from '@flowlb/mapper-api';
import { byProtocol, endpointKey } from '@flowlb/mapper-api';
import { DtlsSniMapper, MappingsError } from '@flowlb/mapper-dtls-sni';
import { QuicSniMapper, type QuicRoutes } from '@flowlb/mapper-quic-sni';
import { CliError, EXIT } from '../cli/exit-codes.js';
import type { FlowlbConfig } from '../config/index.js';
import type { Logger } from '../run/logger.js';
import { loadMapperModule, type LoadedMapper } from './load-module.js';
import { BackendHealth, type BackendHealthOptions } from './backend-health.js';

export interface ReloadOutcome {
  ok: boolean;
  /** What was reloaded, or why not. */
  detail: string;
}

export interface BuiltMapper {
  mapper: FlowMapper;
  /** For logs: `dtls-sni mappings.yaml` or `module ./my-mapper.mjs`. */
  description: string;
  /** Re-reads the mappings; a failure leaves the mapper as it was. */
  reload(): Promise<ReloadOutcome>;
  /**
   * The health of the DTLS mapper's targets: their report for /backends, `flowlb backends` and the metrics, the
   * balancer's `replyTimeoutMs`, and the passive signals it takes from the balancer's events.
   */
  health?: BackendHealth;
  /** The DTLS mapper's keys for the XDP program's own HelloVerifyRequests (see LoadBalancer's xdp.helloVerify). */
  kernelHelloVerify?: DtlsSniMapper['kernelHelloVerify'];
  close(): Promise<void>;
}

export interface MapperChoice {
  mappings?: string;
  mapper?: string;
  /**
   * The secret of the DTLS mapper's cookies. Worker 0 makes one and gives it to the other workers, so that a
   * cookie made by one of them or by the XDP program is good in all. Default: random.
   */
  cookieSecret?: string;
  /** How the health checks of this process take part among workers (worker 0 leads; default: alone, leading). */
  health?: Pick<BackendHealthOptions, 'role' | 'onShared' | 'onPassive'>;
}

function describeDecision(d: Decision): Record<string, unknown> {
  if (d.action === 'forward') {
    return { action: 'forward', target: `${d.flow.dstAddr.address}:${d.flow.dstAddr.port}` };
  }
  if (d.action === 'reply') return { action: 'reply', reason: d.reason, datagrams: d.datagrams.length };
  return d.action === 'drop' ? { action: 'drop', reason: d.reason } : { action: 'wait' };
}

/** Logs every answer of the mapper at debug level; synchronous mappers stay synchronous. */
export function traceDecisions(inner: FlowMapper, log: Logger): FlowMapper {
  const logged = (client: UdpEndpoint, packets: number, d: unknown): void => {
    const fields = d && typeof d === 'object' && 'action' in d ? describeDecision(d as Decision) : { action: 'invalid' };
    log.debug({ client: `${client.address}:${client.port}`, datagrams: packets, ...fields }, 'mapper decision');
  };
  return {
    findFlow(client, packets) {
      const r = inner.findFlow(client, packets);
      if (r && typeof (r as Promise<Decision>).then === 'function') {
        return (r as Promise<Decision>).then((d) => {
          logged(client, packets.length, d);
          return d;
        });
      }
      logged(client, packets.length, r);
      return r;
    },
    release(client) {
      inner.release?.(client);
    },
  };
}

async function dtlsSni(file: string, choice: MapperChoice, config: FlowlbConfig, log: Logger): Promise<BuiltMapper> {
  const { cookieSecret } = choice;
  let m: DtlsSniMapper;
  // Probes leave from the SNAT address, as the flows' datagrams do, so that they take the same route to the targets.
  const health = new BackendHealth({ ...choice.health, bindAddress: config.snatAddr, log });
  try {
    m = await DtlsSniMapper.fromFile(file, {
      ...(cookieSecret === undefined ? {} : { cookieSecret }),
      isUsable: (target) => health.isUsable(target),
    });
  } catch (error) {
    health.stop();
    if (error instanceof MappingsError) throw new CliError(error.message, EXIT.USAGE, { cause: error });
    throw error;
  }
  health.sync(m.mappings);
  const rules = (): string => {
    const t = m.mappings;
    return `${t.rules.length} name${t.rules.length === 1 ? '' : 's'}${t.defaultTargets ? ', with a default' : ''}`;
  };
  // QUIC clients are routed by the same table, read anew on every reload through the DTLS mapper.
  const routes: QuicRoutes = {
    resolve(hello, client) {
      const r = m.mappings.resolve(hello.serverName, endpointKey(client), (t) => health.isUsable(t), { protocol: 'quic', alpn: hello.alpn });
      return r.kind === 'target' ? { kind: 'target', target: r.target } : { kind: 'none', reason: r.why };
    },
  };
  const quic = new QuicSniMapper({ routes });
  return {
    mapper: byProtocol({ dtls: m, quic }),
    description: `sni ${file}, DTLS and QUIC (${rules()})`,
    async reload() {
      const r = await m.reload();
      if (!r.ok) return { ok: false, detail: r.error.message };
      health.sync(m.mappings);
      return { ok: true, detail: `${file}: ${rules()}` };
    },
    close: async () => health.stop(),
    health,
    kernelHelloVerify: () => m.kernelHelloVerify(),
  };
}

function fromModule(spec: string, loaded: LoadedMapper): BuiltMapper {
  return {
    mapper: loaded,
    description: `module ${spec}`,
    async reload() {
      if (typeof loaded.reload !== 'function') {
        return { ok: false, detail: `the mapper from ${spec} has no reload() method, so there is nothing to reload` };
      }
      try {
        await loaded.reload();
        return { ok: true, detail: `${spec} reloaded` };
      } catch (error) {
        return { ok: false, detail: `${spec}: reload() failed: ${(error as Error).message ?? String(error)}` };
      }
    },
    async close() {
      if (typeof loaded.close === 'function') await loaded.close();
    },
  };
}

/** The mapper `run` uses: the DTLS SNI mapper over --mappings, or the user's --mapper module. */
export async function buildMapper(choice: MapperChoice, config: FlowlbConfig, log: Logger): Promise<BuiltMapper> {
  if (choice.mappings && choice.mapper) {
    throw new CliError('give either --mappings (the DTLS SNI mapper) or --mapper (your own module), not both', EXIT.USAGE);
  }
  let built: BuiltMapper;
  if (choice.mappings) {
    built = await dtlsSni(choice.mappings, choice, config, log);
  } else if (choice.mapper) {
    const loaded = await loadMapperModule(choice.mapper, {
      vip: { ...config.vip },
      snatAddress: config.snatAddr,
      configFile: config.file,
      log: log.child({ mapper: choice.mapper }),
    });
    built = fromModule(choice.mapper, loaded);
  } else {
    throw new CliError('run needs a mapper: --mappings FILE (route DTLS by SNI) or --mapper MODULE (your own FlowMapper)', EXIT.USAGE);
  }
  return config.debug ? { ...built, mapper: traceDecisions(built.mapper, log) } : built;
}
