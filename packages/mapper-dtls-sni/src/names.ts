import { MAX_HOST_NAME_LENGTH } from './extensions.js';

const MAX_LABEL_LENGTH = 63;

/**
 * The form names are compared in: ASCII lower case, without one trailing dot. DNS names are case-insensitive and
 * "example.com." is the same name as "example.com"; clients are not supposed to send the dot, but some do.
 */
export function normalizeHostName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** An exact name, or `*.suffix`, which matches any name with at least one more label in front of `suffix`. */
export type NamePattern = { wildcard: false; name: string } | { wildcard: true; suffix: string };

function labelError(label: string, name: string): string | undefined {
  if (label.length === 0) return `"${name}" has an empty label`;
  if (label.length > MAX_LABEL_LENGTH) return `a label of "${name}" is longer than ${MAX_LABEL_LENGTH} characters`;
  for (let i = 0; i < label.length; i++) {
    const c = label.charCodeAt(i);
    const ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f;
    if (!ok) {
      if (c === 0x2a) return `"*" is only allowed as the whole first label, as in "*.example.com"`;
      return `"${name}" contains ${JSON.stringify(label[i])}; only letters, digits, "-", "_" and "." are allowed`;
    }
  }
  return undefined;
}

/**
 * Parses a name from a mappings file. Names must be ASCII, because that is what a ClientHello carries:
 * internationalised names are written as A-labels ("xn--..."), exactly as clients send them.
 */
export function parseNamePattern(fqdn: string): NamePattern | { error: string } {
  if (fqdn.length === 0) return { error: 'is empty' };
  if (fqdn.trim() !== fqdn) return { error: 'has leading or trailing white space' };
  for (let i = 0; i < fqdn.length; i++) {
    if (fqdn.charCodeAt(i) > 0x7f) {
      return { error: `"${fqdn}" is not ASCII; write internationalised names as A-labels ("xn--...")` };
    }
  }
  const name = normalizeHostName(fqdn);
  if (name === '*') return { error: `"${fqdn}" names nothing; use "default" for a catch-all target` };
  const wildcard = name.startsWith('*.');
  const rest = wildcard ? name.slice(2) : name;
  if (rest.length === 0) return { error: `"${fqdn}" names nothing; use "default" for a catch-all target` };
  if (rest.length > MAX_HOST_NAME_LENGTH) return { error: `"${fqdn}" is longer than ${MAX_HOST_NAME_LENGTH} characters` };
  for (const label of rest.split('.')) {
    const error = labelError(label, fqdn);
    if (error !== undefined) return { error };
  }
  return wildcard ? { wildcard: true, suffix: rest } : { wildcard: false, name: rest };
}
