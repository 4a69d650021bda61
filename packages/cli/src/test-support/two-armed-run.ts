import type { TwoArmed } from '@flowlb/testkit';

/** A `--mapper` module that forwards every client to `target`. */
export function forwardAllMapper(target: { address: string; port: number }): string {
  return `export default { findFlow: () => ({ action: 'forward', flow: { dstAddr: { address: '${target.address}', port: ${target.port} } } }) };\n`;
}

/**
 * The config lines of a balancer in the middle of a two-armed topology: the VIP on its front address, the program
 * on both arms in native mode, SNAT from the back address. Tests add their own keys after these.
 */
export function twoArmedConfigLines(net: TwoArmed, port: number): string[] {
  return [`port: ${port}`, `addr: ${net.lb.front.addr}`, 'interface: front', 'interfaces: [back]', `snat_addr: ${net.lb.back.addr}`, 'xdp_mode: native'];
}
