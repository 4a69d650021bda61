/**
 * The mapper `flowlb run --mapper` loads in the forwarding benchmark: rendezvous hashing of the client endpoint over
 * the backends listed in backends.json beside the config.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { hashMapper, type FlowMapper, type UdpEndpoint } from '@flowlb/mapper-api';

export default function makeMapper(ctx: { configFile: string }): FlowMapper {
  const backends = JSON.parse(readFileSync(join(dirname(ctx.configFile), 'backends.json'), 'utf8')) as UdpEndpoint[];
  return hashMapper(backends);
}
