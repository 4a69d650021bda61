/** An IPv4 address (dotted quad) and a UDP port. Structurally the same as mapper-api's `UdpEndpoint`. */
export interface Endpoint {
  address: string;
  port: number;
}

/**
 * The lookup key of the flow map: the packet's destination and source as they arrive. Field names follow
 * `struct flow_key`.
 */
export interface FlowKey {
  dstAddr: string;
  srcAddr: string;
  dstPort: number;
  srcPort: number;
}

/** What a matching packet's addresses and ports are rewritten to, plus bookkeeping (`struct flow_val`). */
export interface FlowValue {
  dstAddr: string;
  srcAddr: string;
  dstPort: number;
  srcPort: number;
  /** `FLOW_F_*` bits; `FLOW_F_REVERSE` marks the entry that carries replies back to the client. */
  flags: number;
  /**
   * Nanoseconds of CLOCK_MONOTONIC of the last hit: `process.hrtime.bigint()` from the control plane, the coarse clock
   * (`bpf_ktime_get_coarse_ns()`, up to a tick behind) from the XDP program.
   */
  lastUsed: bigint;
}

export type FlowEntry = [key: FlowKey, value: FlowValue];

/**
 * One balanced flow: client C talks to the VIP; the balancer relays to target T from `snat` (SNAT address and
 * the port P allocated to this flow). It is stored as two entries, forward and reverse (see pair.ts).
 */
export interface FlowPair {
  client: Endpoint;
  vip: Endpoint;
  snat: Endpoint;
  target: Endpoint;
}

/** Flags of BPF_MAP_UPDATE_ELEM: create or replace, create only, replace only. */
export type UpdateFlag = 'any' | 'noexist' | 'exist';
