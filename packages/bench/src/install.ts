import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { NGINX_STREAM_MODULE } from './systems/nginx.js';

function have(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** What the comparisons need that the project's own setup does not install: nginx with its stream module, nft. */
export function missingPackages(): string[] {
  const missing: string[] = [];
  if (!have('nginx')) missing.push('nginx');
  if (!existsSync(NGINX_STREAM_MODULE)) missing.push('libnginx-mod-stream');
  if (!have('nft')) missing.push('nftables');
  if (!have('taskset')) missing.push('util-linux');
  return missing;
}

/**
 * Installs them with apt. Debian's nginx package starts a server where an init system runs; the benchmark starts
 * its own inside a network namespace, so one the install started is stopped again.
 */
export function installComparisons(log: (line: string) => void): void {
  const missing = missingPackages();
  if (missing.length === 0) return;
  if (!have('apt-get')) throw new Error(`missing ${missing.join(', ')} and no apt-get to install them with`);
  log(`installing ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const nginxWasRunning = have('pgrep') && pgrep('nginx');
  try {
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env, stdio: 'pipe' });
  } catch {
    execFileSync('apt-get', ['update', '-qq'], { env, stdio: 'pipe' });
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env, stdio: 'pipe' });
  }
  if (!nginxWasRunning && pgrep('nginx')) {
    try {
      execFileSync('nginx', ['-s', 'stop'], { stdio: 'ignore' });
    } catch {
      // not ours to insist on
    }
  }
  const still = missingPackages();
  if (still.length > 0) throw new Error(`still missing after apt-get install: ${still.join(', ')}`);
}

function pgrep(name: string): boolean {
  try {
    execFileSync('pgrep', ['-x', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
