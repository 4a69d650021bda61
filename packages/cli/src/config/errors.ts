/** One problem in a config file, located as precisely as the YAML document allows. */
export interface ConfigIssue {
  file: string;
  /** 1-based; absent when the problem has no place in the text (a missing top-level key). */
  line?: number;
  col?: number;
  /** Dotted key path, e.g. `pending.max_clients`; empty for the document itself. */
  key: string;
  /** What is wrong, usually `expected …, got …`. */
  message: string;
}

export function formatIssue(issue: ConfigIssue): string {
  let where = issue.file;
  if (issue.line !== undefined) where += `:${issue.line}`;
  if (issue.line !== undefined && issue.col !== undefined) where += `:${issue.col}`;
  return issue.key ? `${where}: ${issue.key}: ${issue.message}` : `${where}: ${issue.message}`;
}

/** A config that cannot be used. Lists every problem found, in document order. */
export class ConfigError extends Error {
  readonly code = 'ERR_FLOWLB_CONFIG';
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    const lines = issues.map(formatIssue);
    super(lines.length === 1 ? lines[0]! : `${lines.length} problems in the config:\n  ${lines.join('\n  ')}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}
