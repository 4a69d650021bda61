/** What the demo routes, and what each client should therefore reach. */
export const BACKENDS = ['backend-a', 'backend-b'] as const;

export interface DemoClient {
  name: string;
  /** CN of the backend that must answer; undefined when the name has no mapping and the client must be dropped. */
  expect: (typeof BACKENDS)[number] | undefined;
  timeoutMs: number;
}

export const CLIENTS: readonly DemoClient[] = [
  { name: 'alpha.example', expect: 'backend-a', timeoutMs: 10_000 },
  { name: 'beta.example', expect: 'backend-b', timeoutMs: 10_000 },
  { name: 'www.gamma.example', expect: 'backend-a', timeoutMs: 10_000 },
  { name: 'beta.example', expect: 'backend-b', timeoutMs: 10_000 },
  // No mapping and no default: the balancer drops it, so the client gets no answer.
  { name: 'delta.example', expect: undefined, timeoutMs: 3000 },
];

/** Which backend (index into the targets) each name of the mappings goes to. */
const ROUTES: ReadonlyArray<readonly [fqdn: string, backend: number]> = [
  ['alpha.example', 0],
  ['beta.example', 1],
  ['*.gamma.example', 0],
];

export const ROUTES_SUMMARY = 'alpha.example -> a, beta.example -> b, *.gamma.example -> a, anything else dropped';

type Target = { address: string; port: number };

function entry(fqdn: string, t: Target, extra: readonly string[]): string {
  return [`  - fqdn: "${fqdn}"`, `    ipv4: "${t.address}"`, `    port: ${t.port}`, ...extra.map((l) => `    ${l}`)].join('\n');
}

/**
 * Without `quic`, one entry per name for any protocol. With it, a backend's DTLS and QUIC servers listen on
 * different ports, so each name has an entry per protocol: the QUIC one also asks for HTTP/3.
 */
export function mappingsYaml(dtls: readonly Target[], quic?: readonly Target[]): string {
  const entries = ROUTES.flatMap(([fqdn, i]) =>
    quic
      ? [entry(fqdn, dtls[i]!, ['protocols: [dtls]']), entry(fqdn, quic[i]!, ['protocols: [quic]', 'alpn: [h3]'])]
      : [entry(fqdn, dtls[i]!, [])],
  );
  return `# flowlb demo: route ${quic ? 'DTLS and QUIC' : 'DTLS'} clients by the server name in their ClientHello
sniMappings:
${entries.join('\n')}
default: drop
`;
}
