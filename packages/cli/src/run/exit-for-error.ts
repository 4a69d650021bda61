import { CliError, EXIT, type ExitCode } from '../cli/exit-codes.js';

/** Codes that say the machine or the user's rights are the problem rather than flowlb. */
const UNABLE_CODES = new Set([
  'EPERM',
  'EACCES',
  'ENODEV',
  'EADDRNOTAVAIL',
  'EBUSY',
  'EOPNOTSUPP',
  'ERR_FLOWLB_NOT_BPFFS',
  'ERR_FLOWLB_NATIVE_NOT_BUILT',
  'ERR_FLOWLB_XDP_CORE_UNAVAILABLE',
  'ERR_FLOWLB_SNAT_EPHEMERAL_OVERLAP',
]);

function codes(error: unknown): string[] {
  const out: string[] = [];
  for (let e = error, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') out.push(code);
  }
  return out;
}

/** The exit code for an error that stopped `run`. */
export function exitCodeFor(error: unknown): ExitCode {
  if (error instanceof CliError) return error.exitCode;
  if (codes(error).some((c) => UNABLE_CODES.has(c))) return EXIT.UNABLE;
  return EXIT.FAILURE;
}
