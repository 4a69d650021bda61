/** Where pinned maps of all instances live unless a config says otherwise. */
export const PIN_ROOT = '/sys/fs/bpf/flowlb';

/**
 * An instance is named after its VIP: two balancers on one host cannot share a VIP, so the name is unique and an
 * operator can derive it from the config. bpffs refuses '.' in names (EPERM), hence `192_0_2_1-4433`.
 */
export function instanceName(vip: { address: string; port: number }): string {
  return `${vip.address.replace(/\./g, '_')}-${vip.port}`;
}

export function defaultPinPath(vip: { address: string; port: number }, root = PIN_ROOT): string {
  return `${root}/${instanceName(vip)}`;
}

/** Accepts `192.0.2.1:4433`, `192.0.2.1-4433`, `192_0_2_1-4433` or any other folder name under the pin root. */
export function instanceFromArg(arg: string): string {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})[:-](\d{1,5})$/.exec(arg);
  return m ? instanceName({ address: m[1]!, port: Number(m[2]) }) : arg;
}
