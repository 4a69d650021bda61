import dgram from 'node:dgram';
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isListening, parseProcNetUdp } from './proc-net-udp.js';

// As a little-endian kernel prints them (copied from this machine).
const UDP = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops            
 2433: 0100007F:9E70 3500007F:0035 01 00000000:00000000 00:00000000 00000000     0        0 40522 2 000000002ab947ef 0         
 3978: 0100007F:E479 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 40519 2 000000002de93e60 0         
`;
const UDP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
12690: 0000000000000000FFFF00000100007F:C681 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 40520 2 0000000087473702 0
15261: 00000000000000000000000000000000:D08C 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 40521 2 00000000f230a5de 0
15262: 000080FE00000000FF2A4B020100E3FE:0222 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 40523 2 00000000f230a5de 0
`;

describe('parseProcNetUdp', () => {
  it('reads addresses, ports, state, uid and inode of IPv4 sockets', () => {
    expect(parseProcNetUdp(UDP, { littleEndian: true })).toEqual([
      { family: 4, local: { address: '127.0.0.1', port: 0x9e70 }, remote: { address: '127.0.0.53', port: 53 }, state: 1, uid: 0, inode: 40522 },
      { family: 4, local: { address: '127.0.0.1', port: 0xe479 }, remote: { address: '0.0.0.0', port: 0 }, state: 7, uid: 1000, inode: 40519 },
    ]);
  });

  it('reads IPv6 sockets: IPv4-mapped as a dotted quad, the wildcard as ::', () => {
    const entries = parseProcNetUdp(UDP6, { littleEndian: true });
    expect(entries.map((e) => [e.family, e.local.address, e.local.port])).toEqual([
      [6, '127.0.0.1', 0xc681],
      [6, '::', 0xd08c],
      [6, 'fe80:0:0:0:24b:2aff:fee3:1', 0x0222],
    ]);
    expect(entries.every(isListening)).toBe(true);
  });

  it('reads the words in the byte order of a big-endian kernel when told to', () => {
    const line = '  1: 7F000001:4269 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 99 2 0 0';
    expect(parseProcNetUdp(line, { littleEndian: false })[0]?.local).toEqual({ address: '127.0.0.1', port: 0x4269 });
  });

  it('skips the header, blank, truncated and malformed lines rather than guessing', () => {
    const text = [
      'sl local_address rem_address st',
      '',
      '  7: 0100007F:4269 00000000:0000 07 00000000:00000000',
      '  8: 0100007G:4269 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 5 2 0 0',
      '  9: 0100007F:4269 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 5 2 0 0',
      ' 10: 0100007F:4269 00000000:0000 07 00000000:00000000 00:00000000 00000000 x 0 5 2 0 0',
      ' 11: 0100007F:4269 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 6 2 0 0 extra fields',
    ].join('\n');
    expect(parseProcNetUdp(text, { littleEndian: true }).map((e) => e.inode)).toEqual([6]);
  });

  it.skipIf(!existsSync('/proc/net/udp'))('finds a socket this process has bound, unconnected and then connected', async () => {
    const socket = dgram.createSocket('udp4');
    try {
      await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
      const port = socket.address().port;
      const mine = () => parseProcNetUdp(readFileSync('/proc/net/udp', 'utf8')).find((e) => e.local.port === port && e.local.address === '127.0.0.1');
      expect(mine()).toMatchObject({ family: 4, state: 7, remote: { address: '0.0.0.0', port: 0 } });
      expect(isListening(mine()!)).toBe(true);
      await new Promise<void>((resolve) => socket.connect(9, '127.0.0.2', resolve));
      expect(mine()).toMatchObject({ state: 1, remote: { address: '127.0.0.2', port: 9 } });
      expect(isListening(mine()!)).toBe(false);
    } finally {
      socket.close();
    }
  });
});
