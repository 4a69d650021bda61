import { afterAll, beforeAll } from 'vitest';
import type { XdpForwarder } from '@flowlb/xdp-core';
import type { UdpEndpoint } from '@flowlb/mapper-api';
import { EchoBackend, type TestClient } from './udp-peers.js';

export interface LoopbackForwarderBed {
  readonly forwarder: XdpForwarder;
  readonly echo: EchoBackend;
  /** Clients the test opens; closed after the suite. */
  readonly clients: TestClient[];
}

/**
 * For the describe block it is called in: an XDP forwarder loaded in this process and attached nowhere (passed to
 * balancers as `xdp.forwarder`), and an echo backend on loopback at `target`. Nothing forwards in the kernel on
 * loopback, so every datagram reaches the balancer's sockets, while flows live in the real kernel map.
 */
export function useLoopbackForwarder(target: UdpEndpoint): LoopbackForwarderBed {
  let forwarder: XdpForwarder | undefined;
  let echo: EchoBackend | undefined;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    const { XdpForwarder } = await import('@flowlb/xdp-core');
    forwarder = await XdpForwarder.load({ flowsMaxEntries: 1024 });
    echo = await EchoBackend.start('t', target.address, target.port);
  });

  afterAll(() => {
    for (const c of clients) c.close();
    echo?.close();
    forwarder?.close();
  });

  return {
    get forwarder() {
      if (!forwarder) throw new Error('the forwarder is loaded in beforeAll');
      return forwarder;
    },
    get echo() {
      if (!echo) throw new Error('the echo backend starts in beforeAll');
      return echo;
    },
    clients,
  };
}
