import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { descriptorLimit, type BenchTopology } from '../topology.js';
import { passToStack } from './kernel-path.js';
import { waitForOutput, type RunningSystem, type StartOptions, type SystemUnderTest } from './system.js';

export const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

/**
 * nginx's UDP proxy as one would deploy it for this job: one worker (the balancer gets one CPU, like the others),
 * sessions kept per client for as long as flowlb keeps a flow, the backend chosen by a hash of the client.
 */
export function nginxConfig(t: BenchTopology, opts: StartOptions, dir: string): string {
  // Each session holds its upstream socket, and the listening side needs a few more.
  const connections = Math.min(Math.max(4096, opts.maxFlows + 1024), descriptorLimit() - 64);
  const servers = t.backends.map((b) => `      server ${b.address}:${b.port};`).join('\n');
  return `
load_module ${NGINX_STREAM_MODULE};
daemon off;
master_process on;
worker_processes 1;
worker_cpu_affinity ${(1 << opts.cpu).toString(2)};
worker_rlimit_nofile ${descriptorLimit()};
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} error;
events {
  worker_connections ${connections};
}
stream {
  upstream backends {
    hash $remote_addr$remote_port consistent;
${servers}
  }
  server {
    listen ${t.vip.address}:${t.vip.port} udp;
    proxy_pass backends;
    proxy_timeout 1h;
  }
}
`;
}

export const nginx: SystemUnderTest = {
  name: 'nginx',
  warmupPps: 20_000,
  runsIn: 'process',
  socketPerFlow: true,
  async start(t: BenchTopology, opts: StartOptions): Promise<RunningSystem> {
    if (!existsSync(NGINX_STREAM_MODULE)) throw new Error(`nginx's stream module is missing (${NGINX_STREAM_MODULE})`);
    const dir = mkdtempSync(join(tmpdir(), 'nginx-bench-'));
    const undoPass = await passToStack(t);
    try {
      const conf = join(dir, 'nginx.conf');
      writeFileSync(conf, nginxConfig(t, opts, dir));
      await t.topo.exec(t.lbNs, 'nginx', ['-t', '-q', '-c', conf, '-p', dir, '-e', join(dir, 'error.log')]);
      const proc = t.topo.spawn(t.lbNs, 'nginx', ['-c', conf, '-p', dir, '-e', join(dir, 'error.log')]);
      try {
        // Ready when the worker exists: the master opens the listening socket before it forks.
        await waitForOutput(
          () => ({ stdout: existsSync(join(dir, 'nginx.pid')) ? 'up' : '', stderr: proc.output().stderr }),
          proc.exited,
          (out) => out === 'up',
          'nginx',
        );
        await new Promise((r) => setTimeout(r, 300));
      } catch (err) {
        await proc.stop(3000);
        throw err;
      }
      return {
        target: t.vip,
        stop: async () => {
          await proc.stop(5000);
          undoPass();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    } catch (err) {
      undoPass();
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  },
};
