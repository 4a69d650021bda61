// Builds the addon with node-gyp. Uses the headers of the running Node when they are installed next to it
// (Debian's nodejs, the official tarballs), so no header download is needed. With --if-needed it does nothing
// when the addon is newer than its sources, so installs and builds that follow each other stay quick.
// With --optional (the install script) a failed build warns instead of failing the install: users of the userspace
// datapath need no compiler, and the XDP API says what is missing when it is first used.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');
const addon = join(pkg, 'build', 'Release', 'flowlb_xdp_core.node');

if (process.argv.includes('--if-needed') && existsSync(addon)) {
  const sources = [join(pkg, 'binding.gyp'), ...readdirSync(join(pkg, 'native')).map((f) => join(pkg, 'native', f))];
  const built = statSync(addon).mtimeMs;
  if (sources.every((s) => statSync(s).mtimeMs <= built)) process.exit(0);
}

const prefix = dirname(dirname(process.execPath));
const args = ['rebuild'];
if (existsSync(join(prefix, 'include', 'node', 'node.h'))) args.push(`--nodedir=${prefix}`);

let command = process.execPath;
let argv;
try {
  argv = [createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js'), ...args];
} catch {
  // Installed from the registry without dev dependencies: npm and pnpm put their own node-gyp on PATH.
  command = 'node-gyp';
  argv = args;
}
const optional = process.argv.includes('--optional');
const r = spawnSync(command, argv, { stdio: 'inherit', cwd: pkg });
let failure;
if (r.error) failure = `cannot run node-gyp (${r.error.message}); install it with npm i -g node-gyp`;
else if (r.status !== 0) failure = 'node-gyp failed (see above); it needs libbpf-dev, libelf-dev, zlib1g-dev, g++, make and python3';
if (failure) {
  console.error(`@flowlb/xdp-core: the native addon was not built: ${failure}.`);
  if (optional) {
    console.error('@flowlb/xdp-core: the XDP datapath is unavailable until it is; the userspace datapath works without it.');
    process.exit(0);
  }
  process.exit(1);
}
