// The raw addon, typed for this package only; the public API wraps it.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeProgram {
  readonly fd: number;
  readonly name: string;
  readonly id: number;
  readonly type: number;
  attachXdp(ifindex: number, mode: string): NativeLink;
  testRun(data: Uint8Array, ingressIfindex: number, repeat: number, dataSizeOut: number): {
    retval: number;
    data: Buffer;
    durationNs: number;
  };
  runLive(data: Uint8Array, ingressIfindex: number, repeat: number, batchSize: number): { durationNs: number };
  pin(path: string): void;
  close(): void;
}

export interface NativeLink {
  readonly fd: number;
  readonly description: string;
  pin(path: string): void;
  detach(): void;
  update(progFd: number): void;
  info(): { id: number; progId: number; type: number; ifindex?: number };
  close(): void;
}

export interface NativeMapInfo {
  name: string;
  id: number;
  type: number;
  keySize: number;
  valueSize: number;
  valueBufferSize: number;
  maxEntries: number;
  flags: number;
  perCpu: boolean;
  possibleCpus: number;
}

export interface NativeMap {
  readonly fd: number;
  readonly info: NativeMapInfo;
  lookup(key: Uint8Array): Buffer | undefined;
  update(key: Uint8Array, value: Uint8Array, flags: number): void;
  delete(key: Uint8Array): boolean;
  nextKey(key: Uint8Array | undefined): Buffer | undefined;
  lookupBatch(count: number, cursor: Uint8Array | undefined): {
    count: number;
    keys: Buffer;
    values: Buffer;
    cursor?: Buffer;
  };
  updateBatch(keys: Uint8Array, values: Uint8Array, count: number, flags: number): number;
  deleteBatch(keys: Uint8Array, count: number): number;
  pin(path: string): void;
  close(): void;
}

export interface NativeObject {
  readonly loaded: boolean;
  mapNames(): string[];
  programNames(): string[];
  setMaxEntries(map: string, n: number): void;
  setPinPath(map: string, path: string | undefined): void;
  load(): Promise<void>;
  program(name: string): NativeProgram;
  map(name: string): NativeMap;
  close(): void;
}

export interface NativeUdpSocket {
  send(address: string, port: number, datagrams: readonly Uint8Array[]): number;
  startReceiving(callback: (data: Buffer, meta: Buffer, count: number) => void): void;
  receiveBuffer(): number;
  close(): void;
}

export interface NativeRouteWatch {
  close(): void;
  ref(): void;
  unref(): void;
}

export interface NativeAddon {
  BpfObject: new (path: string) => NativeObject;
  UdpSocket: new (address: string, port: number, flags: number, receiveBufferBytes: number) => NativeUdpSocket;
  /** The callback gets the kinds seen since the last call, in the order link, neigh, addr, route, overrun. */
  RouteWatch: new (callback: (kinds: string[]) => void) => NativeRouteWatch;
  openPinnedMap(path: string): NativeMap;
  openPinnedProgram(path: string): NativeProgram;
  openPinnedLink(path: string): NativeLink;
  ifNameToIndex(name: string): number;
  ifIndexToName(index: number): string;
  xdpQuery(ifindex: number): { progId: number; driverProgId: number; genericProgId: number; mode: string };
  netnsEnter(path: string): number;
  netnsRestore(fd: number): void;
  mountBpffs(path: string): void;
  possibleCpus(): number;
  libbpfVersion: string;
}

const here = dirname(fileURLToPath(import.meta.url));

/** The package root: `dist/` when running built code, `src/` when running the sources under test. */
export const packageRoot = join(here, '..');

let addon: NativeAddon | undefined;

export function native(): NativeAddon {
  if (addon) return addon;
  const candidates = [
    join(packageRoot, 'build', 'Release', 'flowlb_xdp_core.node'),
    join(packageRoot, 'build', 'Debug', 'flowlb_xdp_core.node'),
  ];
  const file = candidates.find((c) => existsSync(c));
  if (!file) {
    const err = new Error(
      `the @flowlb/xdp-core native addon is not built (looked for ${candidates[0]}); build it with ` +
        '`npx node-gyp rebuild --nodedir=/usr` in the package folder (needs libbpf-dev, libelf-dev, g++ and make)',
    ) as NodeJS.ErrnoException;
    err.code = 'ERR_FLOWLB_NATIVE_NOT_BUILT';
    throw err;
  }
  addon = createRequire(import.meta.url)(file) as NativeAddon;
  return addon;
}
