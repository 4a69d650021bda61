import { writeFile } from 'node:fs/promises';

export interface Backend {
  /** The certificate's CN and the name in the server's echo replies. */
  name: string;
  address: string;
  port: number;
}

/**
 * The mappings both end-to-end suites route by, in the original project's file format (plain `fqdn`/`ipv4`/`port`
 * entries) plus a wildcard and the default:
 *
 * - `alpha.example` goes to alpha, `beta.example` and any name under it to beta;
 * - any other name, and a hello without one, go to alpha when `withDefault`, and are dropped otherwise.
 */
export function mappingsYaml(alpha: Backend, beta: Backend, withDefault: boolean): string {
  return [
    'sniMappings:',
    '  - fqdn: "alpha.example"',
    `    ipv4: "${alpha.address}"`,
    `    port: ${alpha.port}`,
    '  - fqdn: "beta.example"',
    `    ipv4: "${beta.address}"`,
    `    port: ${beta.port}`,
    '  - fqdn: "*.beta.example"',
    `    ipv4: "${beta.address}"`,
    `    port: ${beta.port}`,
    withDefault ? `default: { ipv4: "${alpha.address}", port: ${alpha.port} }` : 'default: drop',
    '',
  ].join('\n');
}

export async function writeMappings(file: string, alpha: Backend, beta: Backend, withDefault: boolean): Promise<void> {
  await writeFile(file, mappingsYaml(alpha, beta, withDefault));
}

/** Names the suites use, and where each one must land. */
export const NAMES = {
  exact: 'alpha.example',
  exactBeta: 'beta.example',
  // Mixed case and long enough that a 256-byte MTU splits the hello: the wildcard match ignores case.
  fragmented: 'Node-7.Some-Rather-Long-Label.For-Fragmentation.Beta.Example',
  unmapped: 'stranger.example',
} as const;
