import type { StatName } from '@flowlb/xdp-core';

/** What each XDP counter counts (enum flowlb_stat in bpf/include/flowlb.h); every packet lands in exactly one. */
export const STAT_DOCS: Record<StatName, string> = {
  fwdHit: 'client to backend, forwarded in the kernel',
  revHit: 'backend to client, forwarded in the kernel',
  miss: 'no flow yet: passed to the balancer (slow path)',
  fragment: 'IPv4 fragments of no known flow (or ahead of their first fragment): passed to the kernel',
  ttl: 'known flow with TTL <= 1: answered with ICMP time exceeded (beyond 1,000/s per CPU, to a broadcast or from an address that cannot be answered, or a later fragment: passed untouched)',
  fibNoNeigh: 'known flow, next hop not resolved yet: passed rewritten to the kernel',
  fibUnreachable: 'known flow, no route (blackhole/unreachable/prohibit): passed untouched',
  fibNotFwded: 'known flow the kernel would not forward (local destination, forwarding off): passed',
  fibFragNeeded: 'known flow larger than the egress MTU: answered with ICMP fragmentation needed (DF), else passed rewritten for the kernel to fragment',
  fibOther: 'known flow, other route lookup result: passed untouched',
  malformed: 'truncated headers or inconsistent lengths: passed untouched',
  notIpv4Udp: 'not IPv4/UDP (ARP, IPv6, VLAN, TCP, ...): passed untouched',
  rateLimited: "a new client's datagram to the VIP beyond the rate_limit of its address or /24: dropped",
  helloVerify: 'a DTLS ClientHello to the VIP without a valid cookie: answered with a HelloVerifyRequest in the kernel',
  fragmentFwd: 'IPv4 fragments of a known flow (both directions): forwarded in the kernel',
  egressNoXdp: 'known flow routed out of an interface the program cannot send to: passed rewritten to the kernel',
};
