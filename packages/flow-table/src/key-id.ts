import { checkKey } from './codec.js';
import type { FlowKey } from './types.js';

/**
 * A short string that identifies a key by value: two keys have the same id exactly when they encode to the same
 * bytes. Use it wherever a key must index a Map or Set (object identity would make every lookup miss). Throws on
 * an invalid key, like `encodeKey`.
 */
export function flowKeyId(key: FlowKey): string {
  const [dst, src] = checkKey(key);
  // The twelve significant bytes of the encoding as a one-byte string: a Map finds such a key faster than a
  // Buffer, a bigint or a string of wider characters.
  return String.fromCharCode(
    dst >>> 24,
    (dst >>> 16) & 255,
    (dst >>> 8) & 255,
    dst & 255,
    src >>> 24,
    (src >>> 16) & 255,
    (src >>> 8) & 255,
    src & 255,
    key.dstPort >>> 8,
    key.dstPort & 255,
    key.srcPort >>> 8,
    key.srcPort & 255,
  );
}

/** Compares keys as accepted by the codec (whose addresses have one spelling only). */
export function sameKey(a: FlowKey, b: FlowKey): boolean {
  return a.dstAddr === b.dstAddr && a.srcAddr === b.srcAddr && a.dstPort === b.dstPort && a.srcPort === b.srcPort;
}

/** `src -> dst` of a key, for messages and logs. */
export function describeKey(key: FlowKey): string {
  return `${key.srcAddr}:${key.srcPort} -> ${key.dstAddr}:${key.dstPort}`;
}
