import { parseDashedPortRange } from '@flowlb/balancer';
import { NEW_CLIENT_RATE_MAX } from '@flowlb/flow-table';
import { z } from 'zod';
import { MAX_FLOW_TABLE_SIZE, MAX_WORKERS } from './keys.js';
import { isIfName, isIPv4, parseHostPort } from './values.js';

/** YAML 1.2 reads `yes` as a string; the Go original (YAML 1.1) read it as true, so both spellings are accepted. */
const YAML11_BOOLEANS: Record<string, boolean> = { yes: true, on: true, true: true, y: true, no: false, off: false, false: false, n: false };

const bool = z.preprocess((v) => (typeof v === 'string' ? (YAML11_BOOLEANS[v.toLowerCase()] ?? v) : v), z.boolean());
const port = z.number().int().min(1).max(65535);
const positiveInt = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);
const ipv4 = z.string().refine(isIPv4);
const vipAddr = ipv4.refine((v) => v !== '0.0.0.0');
const ifName = z.string().refine(isIfName);

export const pendingSchema = z.strictObject({
  max_clients: positiveInt.optional(),
  max_datagrams: positiveInt.optional(),
  max_bytes_per_client: positiveInt.optional(),
  max_total_bytes: positiveInt.optional(),
  max_per_source: positiveInt.optional(),
  timeout_ms: positiveInt.optional(),
});

const rate = z.number().int().min(1).max(NEW_CLIENT_RATE_MAX);

export const rateLimitSchema = z.strictObject({
  per_source: rate.optional(),
  per_24: rate.optional(),
});

/** The file as written: each key checked on its own; rules between keys are in resolve.ts. */
export const configSchema = z.strictObject({
  port,
  addr: vipAddr,
  interface: ifName.optional(),
  debug: bool.optional(),
  conn_ttl_sec: z.number().positive().finite().optional(),
  unconfirmed_ttl_sec: z.number().positive().finite().optional(),
  mode: z.enum(['auto', 'xdp', 'userspace']).optional(),
  xdp_mode: z.enum(['native', 'generic', 'auto']).optional(),
  interfaces: z.array(ifName).optional(),
  snat_addr: vipAddr.optional(),
  snat_port_min: port.optional(),
  snat_port_max: port.optional(),
  snat_ports: z.string().refine((v) => parseDashedPortRange(v) !== undefined).optional(),
  reserve_snat_ports: bool.optional(),
  flow_table_size: z.number().int().min(1).max(MAX_FLOW_TABLE_SIZE).optional(),
  workers: z.number().int().min(1).max(MAX_WORKERS).optional(),
  pending: pendingSchema.optional(),
  rate_limit: rateLimitSchema.optional(),
  metrics_addr: z.string().refine((v) => parseHostPort(v) !== undefined).optional(),
  sysctls: bool.optional(),
  pin_path: z
    .string()
    .refine((v) => v.startsWith('/') && !v.includes('\0') && v.length < 4096)
    .optional(),
});

export type RawConfig = z.infer<typeof configSchema>;
