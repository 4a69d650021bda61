import type { Attachment, XdpForwarder } from '@flowlb/xdp-core';
import type { FlowlbConfig } from '../config/index.js';
import type { Logger } from './logger.js';

/**
 * Attaches the program to the configured interfaces, taking over the links a previous run pinned (their program is
 * swapped without a gap, so the flows they forward never notice), and ends pinned links of interfaces that are no
 * longer configured or no longer exist.
 */
export function attachInterfaces(fwd: XdpForwarder, config: FlowlbConfig, log: Logger): Attachment[] {
  let added: Attachment[];
  try {
    added = fwd.attach(config.interfaces, { mode: config.xdpMode });
  } catch (error) {
    throw new Error(
      `cannot attach the XDP program to ${config.interfaces.join(', ')} (${config.xdpMode} mode): ${(error as Error).message}`,
      { cause: error },
    );
  }
  for (const a of added) {
    const fields = { iface: a.iface, pinPath: a.pinPath ?? null, progId: fwd.program.id };
    if (a.how === 'updated') {
      log.info({ ...fields, previousProgId: a.previousProgId }, 'took over the pinned XDP link: program swapped in place, no packet missed');
    } else if (a.how === 'replaced') {
      log.warn({ ...fields, reason: a.replaced }, 'pinned XDP link replaced by a new one');
    } else {
      log.info(fields, 'XDP program attached');
    }
  }
  for (const gone of fwd.prunePins()) {
    log.warn(
      { iface: gone.iface, pinPath: gone.path, progId: gone.progId },
      gone.ifindex === 0
        ? 'removed the pinned XDP link of an interface that no longer exists'
        : 'detached the pinned XDP link of an interface that is no longer configured',
    );
  }
  return added;
}

/** The links this run made itself: the ones a failed start takes down again (taken-over ones keep forwarding). */
export function createdHere(attachments: readonly Attachment[]): string[] {
  return attachments.filter((a) => a.how !== 'updated').map((a) => a.iface);
}
