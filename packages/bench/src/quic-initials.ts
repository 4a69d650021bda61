/**
 * QUIC v1 client Initials for the bench: real ClientHellos in protected Initial packets, made by the test-support
 * builders of @flowlb/mapper-quic-sni. Those are built to its dist-testing/, which the package does not export, so
 * they are loaded from beside its package.json.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { QUIC_V1 } from '@flowlb/mapper-quic-sni';

/** The part of dist-testing/testing.js the bench uses. */
interface QuicTesting {
  tlsClientHello(options: { sni?: string | null; alpn?: readonly string[] | null; keyShareLength?: number; seed?: number }): Uint8Array;
  buildClientInitial(message: Uint8Array, options: { version?: number; dcid?: Uint8Array; scid?: Uint8Array }): Uint8Array[];
}

let testing: Promise<QuicTesting> | undefined;

function loadTesting(): Promise<QuicTesting> {
  testing ??= (async () => {
    const pkg = createRequire(import.meta.url).resolve('@flowlb/mapper-quic-sni/package.json');
    const file = join(dirname(pkg), 'dist-testing', 'testing.js');
    try {
      return (await import(pathToFileURL(file).href)) as QuicTesting;
    } catch (error) {
      throw new Error(`QUIC Initial builders not loadable from ${file} (pnpm --filter @flowlb/mapper-quic-sni build): ${(error as Error).message}`);
    }
  })();
  return testing;
}

/** Bytes of the X25519MLKEM768 key share that makes a ClientHello too large for one 1,200-byte datagram. */
export const POST_QUANTUM_KEY_SHARE = 1216;

/** An 8-byte connection ID that differs for every `index` and `tag`: "flow" or "clnt", then the index. */
export function connectionId(index: number, tag: 'flow' | 'clnt' = 'flow'): Uint8Array {
  const id = new Uint8Array(8);
  id.set(Buffer.from(tag, 'latin1'));
  new DataView(id.buffer).setUint32(4, index >>> 0);
  return id;
}

export interface QuicHelloSpec {
  sni: string;
  /** A post-quantum key share, which spreads the ClientHello over two datagrams. */
  postQuantum?: boolean;
  /** Picks the connection IDs and the hello's random, so that every spec with its own index is a client of its own. */
  index?: number;
}

/** The datagrams of a QUIC v1 client's first flight for `spec`: one, or two for a post-quantum hello. */
export async function quicClientInitial(spec: QuicHelloSpec): Promise<Uint8Array[]> {
  const t = await loadTesting();
  const index = spec.index ?? 0;
  const hello = t.tlsClientHello({
    sni: spec.sni,
    alpn: ['h3'],
    seed: index + 1,
    ...(spec.postQuantum ? { keyShareLength: POST_QUANTUM_KEY_SHARE } : {}),
  });
  return t.buildClientInitial(hello, { version: QUIC_V1, dcid: connectionId(index), scid: connectionId(index, 'clnt') });
}

/**
 * `count` one-datagram client Initials, each with its own connection IDs, naming `names` in turn: first datagrams
 * for the generator, which changes only addresses and ports (outside the packet's protection).
 */
export async function quicFirstDatagrams(names: readonly string[], count: number): Promise<Uint8Array[]> {
  if (names.length === 0) throw new RangeError('quicFirstDatagrams needs at least one name');
  const out: Uint8Array[] = [];
  for (let index = 0; index < count; index++) {
    const datagrams = await quicClientInitial({ sni: names[index % names.length]!, index });
    if (datagrams.length !== 1) throw new Error(`the Initial for ${names[index % names.length]} took ${datagrams.length} datagrams`);
    out.push(datagrams[0]!);
  }
  return out;
}
