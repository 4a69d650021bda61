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
}

export interface CheckReport {
  /** False when any check failed. */
  ok: boolean;
  config: string | undefined;
  checks: CheckResult[];
}
