/*
 * Byte layout of `struct flow_key` and `struct flow_val` in bpf/include/flowlb.h. layout.test.ts checks every number
 * here against that header, both by reading it and by compiling it.
 */

export const FLOW_KEY_SIZE = 16;
export const FLOW_VALUE_SIZE = 24;

export const FLOW_KEY_OFFSETS = Object.freeze({
  dstAddr: 0,
  srcAddr: 4,
  dstPort: 8,
  srcPort: 10,
  pad: 12,
} as const);

export const FLOW_VALUE_OFFSETS = Object.freeze({
  dstAddr: 0,
  srcAddr: 4,
  dstPort: 8,
  srcPort: 10,
  flags: 12,
  lastUsed: 16,
} as const);

/** `FLOWLB_F_REVERSE`: the entry rewrites a backend's reply back to the client. */
export const FLOW_F_REVERSE = 0x1;

/** `FLOWLB_F_CONFIRMED`: set by the XDP program on a forward entry once the client has spoken after the install. */
export const FLOW_F_CONFIRMED = 0x2;

/** `FLOWLB_F_REPLIED`: set by the XDP program on a reverse entry once the backend has sent a packet on the flow. */
export const FLOW_F_REPLIED = 0x4;

/** `FLOWLB_F_TARGET_SHIFT`: where the target slot starts in `flags`. */
export const FLOW_F_TARGET_SHIFT = 16;

/**
 * `FLOWLB_F_TARGET_MASK`: the bits of `flags` that hold the slot of the entry's backend in the XDP program's
 * per-target counters; slot 0 means the flow is not counted per target.
 */
export const FLOW_F_TARGET_MASK = 0xfff << FLOW_F_TARGET_SHIFT;

/** `FLOWLB_TARGETS_MAX`: the highest target slot (slots are 1..MAX_TARGET_SLOT). */
export const MAX_TARGET_SLOT = 4095;

/** The target slot in an entry's flags; 0 when it has none. */
export function targetSlotOf(flags: number): number {
  return (flags & FLOW_F_TARGET_MASK) >>> FLOW_F_TARGET_SHIFT;
}

/** `flags` with its target slot replaced by `slot` (0 clears it); every other bit is kept. */
export function withTargetSlot(flags: number, slot: number): number {
  if (typeof slot !== 'number' || !Number.isInteger(slot) || slot < 0 || slot > MAX_TARGET_SLOT) {
    throw new RangeError(`target slot ${String(slot)} is not an integer in 0..${MAX_TARGET_SLOT}`);
  }
  return ((flags & ~FLOW_F_TARGET_MASK) | (slot << FLOW_F_TARGET_SHIFT)) >>> 0;
}

/** `FLOWLB_RATE_MAX`: the highest rate and burst of new clients the XDP program's token arithmetic counts. */
export const NEW_CLIENT_RATE_MAX = 1_000_000;

/** A token bucket: `rate` datagrams a second with room for `burst` at once (default twice the rate). */
export interface RateLimit {
  rate: number;
  burst?: number;
}

/**
 * Limits on the datagrams of new clients (no flow yet) to the VIPs, enforced in the XDP program before anything
 * reaches the control plane (`struct flowlb_limits`); the excess is dropped and counted as `rateLimited`.
 */
export interface NewClientLimits {
  /** Per source address. */
  perSource?: RateLimit;
  /** Per source /24, which a flood from many addresses of one network shares. */
  perNet24?: RateLimit;
}

/** `FLOWLB_FLOWS_MAX_DEFAULT`: the flow map's size when the loader does not set one. */
export const FLOWS_MAX_DEFAULT = 262144;

/** `flags` and `last_used` are in the byte order of the machine that runs the XDP program, which is this one. */
export const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
