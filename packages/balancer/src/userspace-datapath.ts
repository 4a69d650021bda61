import type dgram from 'node:dgram';
import {
  forwardEntry,
  MemoryFlowTable,
  reverseEntry,
  type Endpoint,
  type FlowKey,
  type FlowPair,
  type FlowTable,
} from '@flowlb/flow-table';
import { endpointKey } from '@flowlb/mapper-api';
import { countSends, type Datapath, type DatapathContext } from './datapath.js';
import { PortClaims } from './port-claims.js';
import { assertUnbound, bindUdp, closeQuietly, connectUdp, sendAll } from './udp-socket.js';

interface UserspaceFlow {
  pair: FlowPair;
  socket: dgram.Socket;
  forwardKey: FlowKey;
  reverseKey: FlowKey;
  clientKey: string;
  /** The target has sent something back. */
  replied: boolean;
}

/** What a connected socket's error says when an ICMP destination unreachable came back for what it sent. */
const UNREACHABLE: ReadonlySet<string> = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EACCES']);

/**
 * Pure Node forwarding, for machines without XDP (no root, no native build, loopback): one socket per flow, bound
 * to SNAT:P and connected to the target. Client datagrams that reach the VIP socket for an installed flow go out
 * through that socket; the target's replies come in on it and go back to the client from the VIP socket. Flows sit
 * in a MemoryFlowTable whose last_used is touched on every datagram, so the same cleaner expires them by the same
 * rule as in the kernel's map.
 */
export class UserspaceDatapath implements Datapath {
  readonly kind = 'userspace' as const;
  readonly table: MemoryFlowTable;
  /** By reverse key id (SNAT:P and target): one per socket. */
  readonly #flows = new Map<string, UserspaceFlow>();
  /** By client `ip:port`: the flow that client's datagrams take. */
  readonly #byClient = new Map<string, UserspaceFlow>();
  /** The SNAT endpoints flow sockets are bound to. */
  readonly #claims = new PortClaims();
  #ctx: DatapathContext | undefined;
  #stopped = false;

  constructor(options: { maxFlows: number }) {
    this.table = new MemoryFlowTable({ maxEntries: options.maxFlows * 2 });
  }

  /** Flow sockets open. */
  get sockets(): number {
    return this.#flows.size;
  }

  async start(ctx: DatapathContext): Promise<void> {
    this.#ctx = ctx;
  }

  async install(pair: FlowPair, take: () => Buffer[]): Promise<void> {
    const ctx = this.#ready();
    // One pool per target means one port may carry flows to several targets: their sockets share the port with
    // SO_REUSEADDR. That would also share it, unseen, with another program's socket that set SO_REUSEADDR too (a
    // backend listening there, say), so the first flow on a port checks that nothing at all is bound to it; a bind
    // that fails with EADDRINUSE sets the port aside.
    await this.#claims.claim(pair.snat, assertUnbound);
    let socket: dgram.Socket;
    try {
      socket = await bindUdp(
        pair.snat,
        (error) => {
          const code = (error as { code?: unknown }).code;
          if (typeof code === 'string' && UNREACHABLE.has(code)) {
            ctx.emit({ type: 'target-unreachable', target: { ...pair.target }, count: 1, detail: `ICMP destination unreachable (${code})` });
          } else {
            ctx.emit({ type: 'error', where: `flow socket ${describe(pair)}`, error });
          }
        },
        { shareWithConnected: true },
      );
    } catch (error) {
      this.#claims.release(pair.snat);
      throw error;
    }
    try {
      await connectUdp(socket, pair.target);
      if (this.#stopped) throw new Error('the datapath has stopped');
      (this.table as FlowTable).installPair(pair, process.hrtime.bigint());
    } catch (error) {
      closeQuietly(socket);
      this.#claims.release(pair.snat);
      throw error;
    }
    const flow: UserspaceFlow = {
      pair,
      socket,
      forwardKey: forwardEntry(pair)[0],
      reverseKey: reverseEntry(pair)[0],
      clientKey: endpointKey(pair.client),
      replied: false,
    };
    this.#flows.set(flowId(pair), flow);
    this.#byClient.set(flow.clientKey, flow);
    socket.on('message', (msg) => this.#reply(flow, msg));
    this.#send(ctx, flow, take(), 'forwardedNew');
  }

  forwardInstalled(client: Endpoint, datagram: Buffer): boolean {
    const ctx = this.#ready();
    const flow = this.#byClient.get(endpointKey(client));
    // A flow whose entry is gone has expired; its socket closes as the cleaner reports it.
    if (!flow || !this.table.touch(flow.forwardKey, process.hrtime.bigint())) return false;
    this.#send(ctx, flow, [datagram], 'userspaceForward');
    return true;
  }

  replied(pair: FlowPair): boolean | undefined {
    const flow = this.#flows.get(flowId(pair));
    return flow && sameClient(flow.pair, pair) ? flow.replied : undefined;
  }

  flowRemoved(pair: FlowPair): void {
    const id = flowId(pair);
    const flow = this.#flows.get(id);
    if (!flow || !sameClient(flow.pair, pair)) return;
    this.#flows.delete(id);
    if (this.#byClient.get(flow.clientKey) === flow) this.#byClient.delete(flow.clientKey);
    closeQuietly(flow.socket);
    this.#claims.release(flow.pair.snat);
  }

  counters(): Record<string, number> {
    return { flowSockets: this.#flows.size };
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const flow of this.#flows.values()) closeQuietly(flow.socket);
    this.#flows.clear();
    this.#byClient.clear();
    this.#claims.clear();
    this.table.clear();
  }

  #send(ctx: DatapathContext, flow: UserspaceFlow, datagrams: Buffer[], field: 'forwardedNew' | 'userspaceForward'): void {
    // Connected: the kernel fills in the target.
    sendAll(flow.socket, datagrams, undefined, (outcome) => countSends(ctx, outcome, field));
  }

  #reply(flow: UserspaceFlow, msg: Buffer): void {
    const ctx = this.#ctx;
    if (!ctx) return;
    if (!this.table.touch(flow.reverseKey, process.hrtime.bigint())) {
      ctx.counters.drop('reply-no-flow');
      return;
    }
    flow.replied = true;
    const { client } = flow.pair;
    try {
      ctx.vipSocket.send(msg, client.port, client.address, (error) => {
        if (error) {
          ctx.counters.drop('reply-send-failed');
          ctx.emit({ type: 'error', where: `reply to ${client.address}:${client.port}`, error });
        } else {
          ctx.counters.userspaceReverse++;
        }
      });
    } catch (error) {
      ctx.counters.drop('reply-send-failed');
      ctx.emit({ type: 'error', where: `reply to ${client.address}:${client.port}`, error });
    }
  }

  #ready(): DatapathContext {
    if (!this.#ctx) throw new Error('UserspaceDatapath: not started');
    return this.#ctx;
  }
}

function flowId(pair: FlowPair): string {
  return `${pair.snat.address}:${pair.snat.port}>${pair.target.address}:${pair.target.port}`;
}

function sameClient(a: FlowPair, b: FlowPair): boolean {
  return a.client.address === b.client.address && a.client.port === b.client.port;
}

function describe(pair: FlowPair): string {
  return `${pair.snat.address}:${pair.snat.port} -> ${pair.target.address}:${pair.target.port}`;
}
