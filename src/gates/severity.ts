/**
 * The order of rule severities, lowest first: what `limits.global.reserve` counts by. A rule's
 * `severity` (the matrix's, never an alert label, which whoever fires the alert chooses) is compared
 * case-insensitively; a rule without one, or with a name not listed here, ranks below all of them.
 */
export const SEVERITIES = ['info', 'low', 'warning', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** 0 for `info` up to 5 for `critical`; -1 for no severity or an unknown one. */
export function severityRank(severity: string | undefined): number {
  if (severity === undefined) return -1;
  return (SEVERITIES as readonly string[]).indexOf(severity.toLowerCase());
}

export const isSeverity = (name: string): name is Severity => (SEVERITIES as readonly string[]).includes(name);

/**
 * How much of the global budget's `max` a run of `severity` may fill: `max` less every reserve kept
 * for severities above it. With `max: 30, reserve: { critical: 10, high: 5 }`: critical 30, high 20,
 * anything lower 15.
 */
export function budgetFor(max: number, reserve: Readonly<Record<string, number>> | undefined, severity: string | undefined): number {
  if (!reserve) return max;
  const rank = severityRank(severity);
  let usable = max;
  for (const [name, n] of Object.entries(reserve)) if (severityRank(name) > rank) usable -= n;
  return Math.max(0, usable);
}
