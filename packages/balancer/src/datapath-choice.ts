import { effectiveCapabilities, xdpCapabilityCheck } from './capabilities.js';
import type { DatapathMode } from './options.js';

/** `datapath: 'xdp'` was asked for and this machine cannot give it; `cause` holds the underlying error, if any. */
export class XdpUnavailableError extends Error {
  readonly code = 'ERR_FLOWLB_XDP_UNAVAILABLE';
  /** What stands in the way, without the "datapath 'xdp' cannot run" in front. */
  readonly reason: string;

  constructor(reason: string, options?: { cause?: unknown }) {
    super(`datapath 'xdp' cannot run: ${reason}`, options);
    this.name = 'XdpUnavailableError';
    this.reason = reason;
  }
}

export interface DatapathRequest<F> {
  mode: DatapathMode;
  interfaces: readonly string[];
  /** Another process (a worker) attaches the program whose maps this one shares: no interfaces are needed here. */
  attachedElsewhere?: boolean;
  /**
   * Loads the XDP program; called only once everything else says XDP can run. `detail` ends up in the reason,
   * e.g. "@flowlb/xdp-core loads (libbpf 1.1.0)".
   */
  load: () => Promise<{ forwarder: F; detail: string }>;
  /** Errors of `load` that must reach the caller as they are, even in 'auto' mode (a misconfiguration). */
  isFatal?: (error: unknown) => boolean;
  /** For tests: the platform and the effective capabilities; default this process's. */
  platform?: string;
  capabilities?: bigint | undefined;
}

export type DatapathDecision<F> =
  | { kind: 'userspace'; reason: string }
  | { kind: 'xdp'; reason: string; forwarder: F };

/**
 * The one place that decides between the XDP and the userspace datapath. 'userspace' is taken as asked; 'auto'
 * falls back to userspace with the reason when XDP cannot run here; 'xdp' throws an {@link XdpUnavailableError}
 * with that same reason instead.
 */
export async function chooseDatapath<F>(request: DatapathRequest<F>): Promise<DatapathDecision<F>> {
  const { mode, interfaces } = request;
  if (mode === 'userspace') return { kind: 'userspace', reason: "datapath 'userspace' was asked for" };
  const unable = (why: string, cause?: unknown): DatapathDecision<F> => {
    if (mode === 'xdp') throw new XdpUnavailableError(why, cause === undefined ? {} : { cause });
    return { kind: 'userspace', reason: `auto: ${why}` };
  };
  if (interfaces.length === 0 && !request.attachedElsewhere) return unable('no interfaces were given to attach XDP to');
  const platform = request.platform ?? process.platform;
  if (platform !== 'linux') return unable(`XDP needs Linux, this is ${platform}`);
  const caps = xdpCapabilityCheck('capabilities' in request ? request.capabilities : effectiveCapabilities());
  if (!caps.ok) return unable(caps.reason);
  let loaded: { forwarder: F; detail: string };
  try {
    loaded = await request.load();
  } catch (error) {
    if (request.isFatal?.(error)) throw error;
    return unable(`the XDP program cannot be loaded here: ${firstLine(error)}`, error);
  }
  const why = mode === 'xdp' ? "datapath 'xdp' was asked for" : `auto: ${caps.reason}`;
  const where = interfaces.length > 0 ? `interfaces ${interfaces.join(', ')}` : 'attached by another worker';
  return { kind: 'xdp', forwarder: loaded.forwarder, reason: `${why}, ${loaded.detail}, ${where}` };
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n')[0]!;
}
