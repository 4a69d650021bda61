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

export function mappingsYaml(targets: readonly { address: string; port: number }[]): string {
  const [a, b] = targets;
  return `# flowlb demo: route DTLS clients by the server name in their ClientHello
sniMappings:
  - fqdn: "alpha.example"
    ipv4: "${a!.address}"
    port: ${a!.port}
  - fqdn: "beta.example"
    ipv4: "${b!.address}"
    port: ${b!.port}
  - fqdn: "*.gamma.example"
    ipv4: "${a!.address}"
    port: ${a!.port}
default: drop
`;
}
