// What is wrong with a spec, in the user's vocabulary: the store, the field, the value and what is allowed.

/** One thing wrong with a spec, in the user's vocabulary. */
export interface SpecIssue {
  /** The field, as the user wrote it (`volumeClaimTemplates[1].storage`). */
  readonly field: string;
  /** The value received. */
  readonly value: unknown;
  /** What is allowed, phrased to follow "must be". */
  readonly allowed: string;
  /** Optional why, appended after the value. */
  readonly reason?: string;
}

/** Formats a value the way the user wrote it: strings quoted, numbers as numbers (NaN stays NaN). */
export function showValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'number') return String(value);
  return JSON.stringify(value);
}

export function formatIssue(storeName: string, issue: SpecIssue): string {
  const reason = issue.reason ? ` (${issue.reason})` : '';
  return `KVStore '${storeName}': ${issue.field} must be ${issue.allowed}, got ${showValue(issue.value)}${reason}`;
}

/** The error a bad spec raises: every issue on its own line. */
export class SpecError extends Error {
  constructor(
    /** The store the spec is of. */
    readonly storeName: string,
    /** Everything wrong with it. */
    readonly issues: readonly SpecIssue[],
  ) {
    super(issues.map((i) => formatIssue(storeName, i)).join('\n'));
    this.name = 'SpecError';
  }
}
