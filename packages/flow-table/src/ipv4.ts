const DOTTED_QUAD = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/**
 * Parses a dotted-quad IPv4 address into its 32-bit value (first octet most significant). Only the canonical
 * form is accepted: a leading zero ("010") reads as octal to some tools and as decimal to others, and two spellings
 * of one address would be two different table keys.
 */
export function parseIPv4(address: string, field = 'address'): number {
  const value = typeof address === 'string' ? scanIPv4(address) : -1;
  return value >= 0 ? value : explainInvalid(address, field);
}

/** The value of a canonical dotted quad, or -1. Runs on every table lookup, hence no regex and no allocation. */
function scanIPv4(s: string): number {
  const n = s.length;
  if (n < 7 || n > 15) return -1;
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return -1;
      octet = octet * 10 + (c - 48);
      digits++;
      if (octet > 255) return -1;
    } else {
      return -1;
    }
  }
  return dots === 3 && digits > 0 ? value * 256 + octet : -1;
}

function explainInvalid(address: unknown, field: string): never {
  if (typeof address !== 'string') {
    throw new TypeError(`${field}: expected an IPv4 address string, got ${typeof address}`);
  }
  const m = DOTTED_QUAD.exec(address);
  if (!m) {
    const hint = address.includes(':') ? ' (the flow map holds IPv4 only)' : '';
    throw new TypeError(`${field}: ${JSON.stringify(address)} is not a dotted-quad IPv4 address${hint}`);
  }
  const octet = m.slice(1).find((o) => Number(o) > 255 || (o.length > 1 && o[0] === '0')) ?? '';
  throw new TypeError(`${field}: ${JSON.stringify(address)} has an invalid octet "${octet}"`);
}

export function formatIPv4(value: number): string {
  return `${(value >>> 24) & 255}.${(value >>> 16) & 255}.${(value >>> 8) & 255}.${value & 255}`;
}

export function assertPort(port: number, field = 'port'): void {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 0xffff) {
    throw new RangeError(`${field}: ${String(port)} is not a port (an integer in 0..65535)`);
  }
}
