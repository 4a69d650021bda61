/** Exit codes of every command; `--help` and the README list them. */
export const EXIT = {
  OK: 0,
  /** Something failed while running: the balancer stopped on an error, a map could not be read. */
  FAILURE: 1,
  /** Bad command line, invalid config or mappings, unusable mapper module. */
  USAGE: 2,
  /** This machine or this user cannot do it: privileges, bpffs, a missing interface, a failed check. */
  UNABLE: 3,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export const EXIT_CODES_HELP = `Exit codes:
  0  success
  1  runtime failure (the balancer stopped on an error, a pinned map could not be read)
  2  usage or configuration error (unknown option, invalid config or mappings,
     unusable --mapper module)
  3  the machine cannot do it: missing privilege (root, or CAP_BPF and CAP_NET_ADMIN),
     no bpffs, a configured interface or address that does not exist, a failed check`;

/** An error that ends a command with a given exit code; its message is printed as is. */
export class CliError extends Error {
  readonly exitCode: ExitCode;

  constructor(message: string, exitCode: ExitCode, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}
