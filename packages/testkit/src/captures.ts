import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Where the DTLS captures live. Resolved from this module, which sits one level below the package root both as
 * source (`src/`) and bundled (`dist/`), so tests, benches and bundled child scripts find the same folder.
 */
export const DTLS_CAPTURES_DIR = fileURLToPath(new URL('../captures/dtls/', import.meta.url));

/** Datagrams of a capture file: one hex-encoded UDP payload per line, blank lines ignored. */
export function readHexDatagrams(path: string): Uint8Array[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0)
    .map((l) => new Uint8Array(Buffer.from(l, 'hex')));
}

/** The datagrams one real DTLS client sent, by capture name (`ossl_foo`, `gnutls_bar`, …; see captures/dtls/README.md). */
export function dtlsCapture(name: string): Uint8Array[] {
  return readHexDatagrams(`${DTLS_CAPTURES_DIR}${name}.hex`);
}

/** Names of every DTLS capture, sorted. */
export function dtlsCaptureNames(): string[] {
  return readdirSync(DTLS_CAPTURES_DIR)
    .filter((f) => f.endsWith('.hex'))
    .map((f) => f.slice(0, -'.hex'.length))
    .sort();
}
