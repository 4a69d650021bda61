import type { XdpAttachmentInfo } from '@flowlb/balancer';
import type { XdpForwarder } from '@flowlb/xdp-core';
import type { Logger } from './logger.js';

/**
 * Ends the pinned links of interfaces that are no longer configured or no longer exist, once the balancer has
 * attached (and so taken over the links of those that are).
 */
export function prunePinnedLinks(fwd: XdpForwarder, log: Logger): void {
  for (const gone of fwd.prunePins()) {
    log.warn(
      { iface: gone.iface, pinPath: gone.path, progId: gone.progId },
      gone.ifindex === 0
        ? 'removed the pinned XDP link of an interface that no longer exists'
        : 'detached the pinned XDP link of an interface that is no longer configured',
    );
  }
}

/** The links this run made itself: the ones a failed start takes down again (taken-over ones keep forwarding). */
export function createdHere(attachments: readonly XdpAttachmentInfo[]): string[] {
  return attachments.filter((a) => a.how !== 'updated').map((a) => a.iface);
}
