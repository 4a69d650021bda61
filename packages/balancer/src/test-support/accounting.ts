import type { BalancerStats } from '../stats.js';

/** Drops of replies travelling back to clients; every other drop is of a datagram that arrived on the VIP. */
const REPLY_DROPS = new Set(['reply-no-flow', 'reply-send-failed']);

/**
 * Datagrams that arrived on the VIP and have been dealt with (sent on, dropped, or still waiting). Equal to
 * `datagrams.slowPathIn` whenever no send is in progress: every datagram is accounted for exactly once.
 */
export function accountedVipDatagrams(s: BalancerStats): number {
  let dropped = 0;
  for (const [reason, n] of Object.entries(s.drops)) if (!REPLY_DROPS.has(reason)) dropped += n;
  return (
    s.datagrams.forwardedNew + s.datagrams.forwardedLate + s.datagrams.userspaceForward + dropped + s.pending.datagrams
  );
}
