export type Verdict = 'ok' | 'warn' | 'fail' | 'skip';

/** One line of `flowlb check`. */
export interface CheckResult {
  /** Stable identifier, e.g. `kernel`, `accept_local:eth0`. */
  id: string;
  /** Short label for the text output. */
  title: string;
  verdict: Verdict;
  /** What was found. */
  detail: string;
  /** What to do about a warn or fail. */
  fix?: string;
  /** A shell command that does what `fix` says, as it can be pasted into a shell where the check ran. */
  command?: string;
}

export interface CheckReport {
  /** False when any check failed. */
  ok: boolean;
  /** The datapath the checks were made for: `userspace` when the config says `mode: userspace`. */
  datapath: 'xdp' | 'userspace';
  config: string | undefined;
  checks: CheckResult[];
}
