import { KEY_DOCS } from '../config/index.js';
import { EXIT_CODES_HELP } from './exit-codes.js';

export const PROGRAM_DESCRIPTION = `flowlb: a UDP load balancer with an XDP fast path.

A mapper decides where each new client goes (the DTLS SNI mapper with
--mappings, or your own FlowMapper module with --mapper); from then on the
flow's datagrams are forwarded in the kernel by an XDP program, and the
control plane only sees new clients.`;

export const PROGRAM_AFTER = `
Examples:
  $ flowlb demo                                             see it work on this machine
  $ flowlb check --config config.yaml                       can this machine run the XDP datapath?
  $ flowlb run --config config.yaml --mappings mappings.yaml
  $ flowlb run --config config.yaml --mapper ./my-mapper.mjs
  $ flowlb flows --instance 192.0.2.1:4433                  flows of a running balancer
  $ flowlb stats --watch                                    its counters every 2 seconds
  $ flowlb backends                                         its targets and their health
  $ flowlb detach --instance 192.0.2.1:4433                 detach what a stopped run left attached

${EXIT_CODES_HELP}

Environment:
  FLOWLB_PIN_ROOT  where instances pin their maps by default (/sys/fs/bpf/flowlb)
  FLOWLB_RUN_DIR   where a running instance says where its metrics are, and where the
                   sysctls it changed are recorded for \`flowlb detach\` (/run/flowlb)

Run \`flowlb <command> --help\` for a command's options;
\`flowlb run --help\` lists the config keys.`;

function wrap(text: string, width: number, indent: string): string {
  const words = text.split(/\s+/);
  const lines: string[] = [];
  let line = '';
  for (const w of words) {
    if (line && line.length + 1 + w.length > width) {
      lines.push(line);
      line = w;
    } else {
      line = line ? `${line} ${w}` : w;
    }
  }
  if (line) lines.push(line);
  return lines.map((l) => indent + l).join('\n');
}

function configKeysHelp(): string {
  const entries = KEY_DOCS.map(
    (d) => `  ${d.key}${d.seed ? ' [original]' : ''}  (default: ${d.default})\n${wrap(d.doc, 72, '      ')}`,
  );
  return `Config keys (YAML; [original] marks the keys of the original flowlb, read unchanged):
${entries.join('\n')}
  Unknown keys are errors, reported with the key that was probably meant. Every problem
  is reported at once, as file:line:column: key: what was expected, and what was found.`;
}

export const RUN_DESCRIPTION = `Run the balancer in the foreground.

Reads the config, loads the mapper, attaches the XDP program (mode xdp, or
auto when the machine can and an interface is set; otherwise the userspace
datapath runs), and logs JSON lines to stdout. The flows, stats and per-target
maps, the program and its links are pinned under pin_path: when the process ends, even
killed, the program stays attached and forwards the established flows, and the
next run on the same pin_path takes the program, the flows and their SNAT ports
over without losing a datagram. --detach-on-exit (or \`flowlb detach\` later)
removes it all. Where no bpffs holds pin_path (inside \`ip netns exec\`,
/sys/fs/bpf is a plain folder), a bpffs is mounted for it, in the mount
namespace of the run.`;

export const RUN_AFTER = (): string => `
Mapper (exactly one):
  --mappings FILE   the DTLS SNI mapper: routes each client by the server name in its
                    ClientHello (sniMappings: [{fqdn, ipv4, port}, …], optional default)
  --mapper MODULE   an ES module whose default export is a FlowMapper
                    ({ findFlow(client, packets) }), or a function (sync or async) or a
                    class that makes one; it is given { vip, snatAddress, configFile, log }.
                    An optional reload() is called on SIGHUP, close() on stop.

Signals:
  SIGINT, SIGTERM   stop the control plane, close the sockets, exit 0 (a second signal
                    while stopping exits at once with 1). With pin_path on bpffs the XDP
                    program stays attached and keeps forwarding the established flows
                    (new clients get no answer) until the next run takes over; with
                    --detach-on-exit it is detached and every pin removed
  SIGHUP            reload the mappings; invalid new ones are logged and the old ones stay

Endpoints (with metrics_addr):
  /metrics   Prometheus: balancer and XDP counters, flows active, SNAT ports in use,
             classification latency, process metrics
  /healthz   200 when the VIP socket is bound and the XDP program attached, else 503;
             also lists forwarding, accept_local and strict rp_filter problems
  /stats     the balancer's counters as JSON (read by \`flowlb stats\`)
  /backends  with --mappings: the targets and their health as JSON (read by
             \`flowlb backends\`)
  /flows     the most recently used flows as JSON, ?limit=n of them (1000 unless
             asked, at most 10000; read by \`flowlb flows\` when no map is pinned)

${configKeysHelp()}

Examples:
  $ flowlb run --config config.yaml --mappings mappings.yaml
  $ flowlb run -c config.yaml --mapper ./round-robin.mjs --detach-on-exit

${EXIT_CODES_HELP}`;

export const FLOWS_DESCRIPTION = `List the flows of a running balancer, read from its pinned flows map: client,
target, SNAT address and port, and how long the flow has been idle. When it pins
no map that can be read from here (the userspace datapath, or a bpffs in another
mount namespace), the running process is asked at /flows of its metrics server.`;

export const INSTANCE_HELP = `
Which instance:
  --pin-path P     read the maps pinned in folder P
  --instance I     an instance under the pin root, by its VIP: 192.0.2.1:4433
                   (its folder is 192_0_2_1-4433: bpffs allows no '.' in names)
  --config F       the pin_path of that config
  (none)           the only instance under the pin root (/sys/fs/bpf/flowlb, or FLOWLB_PIN_ROOT),
                   or else the only \`flowlb run\` running (its run file in FLOWLB_RUN_DIR)`;

export const FLOWS_AFTER = `${INSTANCE_HELP}

Examples:
  $ flowlb flows
  $ flowlb flows --instance 192.0.2.1:4433 --json | jq '.flows[].target'

${EXIT_CODES_HELP}`;

export const STATS_DESCRIPTION = `Show the counters of a running balancer: the XDP program's (per-CPU values
summed), read from its pinned stats map, and the balancer's own, fetched from
its metrics server when it has one. When it pins no map that can be read from
here (the userspace datapath, or a bpffs in another mount namespace), every
counter comes from /stats of its metrics server.`;

export const STATS_AFTER = `${INSTANCE_HELP}

Examples:
  $ flowlb stats
  $ flowlb stats --watch 1          every second, with rates, until Ctrl-C
  $ flowlb stats --json --watch 5   one JSON object per line

${EXIT_CODES_HELP}`;

export const BACKENDS_DESCRIPTION = `Show the targets of a running balancer: with \`flowlb run --mappings\`, each
target of the mappings with its state (healthy, unhealthy, unknown before its
first probes, unchecked when no entry probes it, draining), since when, the kind
and round trip of its last probe, probes and failures, weight, the names that
list it and why its last probe failed; with any mapper, each target's flows
(active, created, refused for want of SNAT ports) and, on the XDP datapath, the
datagrams and bytes forwarded to it and back. A target removed from the mappings
shows as draining while it still holds flows. Read from /backends of its metrics
server.`;

export const BACKENDS_AFTER = `${INSTANCE_HELP}

Examples:
  $ flowlb backends
  $ flowlb backends --watch 1         every second, until Ctrl-C
  $ flowlb backends --json | jq '.[] | select(.state == "unhealthy")'

${EXIT_CODES_HELP}`;

export const DETACH_DESCRIPTION = `Detach the XDP program that a stopped \`flowlb run\` left attached, and remove
its pins: links, program, the flows, stats and per-target maps (the flows are
forgotten) and the pin folder. The clean stop of an instance that ran without --detach-on-exit.
Nothing pinned there is not an error.`;

export const DETACH_AFTER = `${INSTANCE_HELP}

Refused while a \`flowlb run\` on the same pin path is running (stop it first),
unless --force.

Examples:
  $ flowlb detach --instance 192.0.2.1:4433
  $ flowlb detach --config config.yaml --json

${EXIT_CODES_HELP}`;

export const CHECK_DESCRIPTION = `Tell whether this machine can run the XDP datapath, and what to do about each
problem: kernel, BTF, privileges, loading the program, bpffs, the VIP address,
the interfaces and their sysctls (forwarding, accept_local, rp_filter), VLAN
devices on an interface that strips VLAN tags in hardware, veth peers without
an XDP program, checksum offload on veth, and the SNAT ports against the
kernel's ephemeral range. With mode: userspace in the config, what only the XDP datapath needs is
reported as not needed.`;

export const CHECK_AFTER = `
Each line is ok, WARN (works, with a caveat), FAIL (the XDP datapath cannot work as
configured) or skip (does not apply). Without --config, the checks that need one
(addresses, interfaces and their sysctls) are skipped. Under a problem, fix:
says what to do and, where a command does it, run: gives the command (for a veth
peer without an XDP program: attaching the XDP_PASS object @flowlb/xdp-core ships).

Examples:
  $ flowlb check
  $ sudo ip netns exec lb flowlb check --config config.yaml --json

Exit codes:
  0  no check failed (warnings allowed)
  2  the config is invalid
  3  at least one check failed`;

export const DEMO_DESCRIPTION = `Route real DTLS and QUIC clients by SNI through a throw-away topology, and
show what happened.

As root it builds network namespaces (the client, the balancer, the backends)
joined by veth pairs, runs \`flowlb run --mappings\` with the XDP datapath,
starts two backends, each an \`openssl s_server -dtls1_2\` and an HTTP/3
\`gtlsserver\` (ngtcp2) on another port, and connects
\`openssl s_client -dtls1_2 -servername …\` and \`gtlsclient\` clients. It
prints which backend answered each name, the flows, and how many packets took
the fast path, then removes everything. Without gtlsserver and gtlsclient it
leaves QUIC out. Without root (or network namespaces) it runs the DTLS part on
loopback with the userspace datapath: gtlsclient sends the host it connects to
as SNI, and only a namespace of its own can point the demo's names at the
balancer.`;

export const DEMO_AFTER = `
Needs openssl on the PATH; as root also ip (iproute2) and ethtool, and for
the QUIC clients gtlsserver and gtlsclient (apt-get install ngtcp2-client
ngtcp2-server).

Examples:
  $ sudo flowlb demo
  $ flowlb demo --userspace        force the loopback variant

${EXIT_CODES_HELP}`;
