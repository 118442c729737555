import { isTerminal, RUN_STATUSES, type RunStatus } from '../schemas/runs.js';

/** What a delivery's answer says of a run. */
export interface Answer {
  id: string;
  rule: string;
  remediation: string;
  status: RunStatus;
}

export interface AnswersOptions {
  /** Dedup keys remembered at most. */
  max: number;
  /** How long an answer is remembered at most. */
  ttlMs: number;
  now?: () => number;
}

/** Defaults: Alertmanager's retries and several Alertmanager replicas re-send within seconds to minutes. */
export const DEFAULT_ANSWERS: AnswersOptions = { max: 50_000, ttlMs: 5 * 60_000 };

const SEP = '\u0000';
/**
 * A copy of `s` in one piece. Strings built by concatenation (`randomUUID()`'s ids among them) are
 * trees of their parts, about 500 bytes for an id; kept by the thousand, that adds up.
 */
const flat = (s: string): string => Buffer.from(s, 'utf8').toString('utf8');

/**
 * The runs this process answered recently, by dedup key, so that a re-delivery of a known alert
 * skips the PostgreSQL lookup. Only answers that cannot go stale unnoticed are kept: a final status
 * never changes, and a `queued` run is still queued as long as its job waits untaken in Redis (every
 * move out of `queued` starts with a worker taking the job), which the intake checks for the whole
 * batch in one Redis call before it trusts the answer. Anything else (waiting for approval or a
 * predecessor, running) is looked up every time.
 *
 * Two generations of answers: new ones go to the current one, which becomes the previous one (and
 * the previous one is dropped) every ttlMs / 2 or when it holds max / 2, and no generation outlives
 * ttlMs. Each answer is one string, about 200 bytes with its key.
 */
export function createAnswers(opts: AnswersOptions = DEFAULT_ANSWERS) {
  const now = opts.now ?? Date.now;
  const half = Math.max(1, Math.floor(opts.max / 2));
  let current = new Map<string, string>();
  let previous = new Map<string, string>();
  let since = now();

  let previousSince = since;

  /** Starts a new generation when the current one is ttlMs / 2 old, or full when `adding`. */
  function turn(adding: boolean): void {
    const t = now();
    if (t - since >= opts.ttlMs / 2 || (adding && current.size >= half)) {
      previous = current;
      previousSince = since;
      current = new Map();
      since = t;
    }
    // No answer older than ttlMs: the previous generation goes when its first answer would be.
    if (previous.size > 0 && t - previousSince >= opts.ttlMs) previous = new Map();
  }

  function remember(key: string, run: Answer): void {
    turn(true);
    previous.delete(key);
    if (run.status !== 'queued' && !isTerminal(run.status)) {
      current.delete(key);
      return;
    }
    current.set(key, flat(`${RUN_STATUSES.indexOf(run.status)}${SEP}${run.id}${SEP}${run.rule}${SEP}${run.remediation}`));
  }

  function recall(key: string): Answer | undefined {
    turn(false);
    const packed = current.get(key) ?? previous.get(key);
    if (packed === undefined) return undefined;
    const [status, id, rule, remediation] = packed.split(SEP) as [string, string, string, string];
    return { id, rule, remediation, status: RUN_STATUSES[Number(status)]! };
  }

  function forget(key: string): void {
    current.delete(key);
    previous.delete(key);
  }

  return { remember, recall, forget, size: () => current.size + previous.size };
}

export type Answers = ReturnType<typeof createAnswers>;
