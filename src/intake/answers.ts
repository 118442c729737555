import { isTerminal, type RunStatus } from '../schemas/runs.js';

/** What a delivery's answer says of a run. */
export interface Answer {
  id: string;
  rule: string;
  remediation: string;
  status: RunStatus;
}

interface Entry extends Answer {
  until: number;
}

export interface AnswersOptions {
  /** Dedup keys remembered at most; the oldest answer goes first. */
  max: number;
  /** How long an answer is remembered. */
  ttlMs: number;
  now?: () => number;
}

/** Defaults: Alertmanager's retries and several Alertmanager replicas re-send within seconds to minutes. */
export const DEFAULT_ANSWERS: AnswersOptions = { max: 50_000, ttlMs: 5 * 60_000 };

/**
 * The runs this process answered recently, by dedup key, so that a re-delivery of a known alert
 * skips the PostgreSQL lookup. Only answers that cannot go stale unnoticed are kept: a final status
 * never changes, and a `queued` run is still queued as long as its job waits untaken in Redis (every
 * move out of `queued` starts with a worker taking the job), which the intake checks for the whole
 * batch in one Redis call before it trusts the answer. Anything else (waiting for approval or a
 * predecessor, running) is looked up every time.
 */
export function createAnswers(opts: AnswersOptions = DEFAULT_ANSWERS) {
  const now = opts.now ?? Date.now;
  const entries = new Map<string, Entry>();

  function remember(key: string, run: Answer): void {
    entries.delete(key);
    if (run.status !== 'queued' && !isTerminal(run.status)) return;
    entries.set(key, { id: run.id, rule: run.rule, remediation: run.remediation, status: run.status, until: now() + opts.ttlMs });
    // Map order is insertion order: the first key is the oldest answer.
    if (entries.size > opts.max) entries.delete(entries.keys().next().value!);
  }

  function recall(key: string): Answer | undefined {
    const entry = entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.until <= now()) {
      entries.delete(key);
      return undefined;
    }
    return entry;
  }

  return { remember, recall, forget: (key: string) => void entries.delete(key), size: () => entries.size };
}

export type Answers = ReturnType<typeof createAnswers>;
