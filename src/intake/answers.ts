import { hash, randomBytes } from 'node:crypto';
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

/**
 * Defaults: Alertmanager's retries and several Alertmanager replicas re-send within seconds to
 * minutes; the tables for 100,000 answers take 7.3 MB once used.
 */
export const DEFAULT_ANSWERS: AnswersOptions = { max: 100_000, ttlMs: 5 * 60_000 };

/** A slot: the key's 64-bit hash (2 words), the run id (4 words), and its status, labels and whether it is used. */
const WORDS = 7;
const USED = 0x8000_0000;
const GONE = 0x4000_0000;
const EMPTY = 0;

/** The 32 hex digits of a UUID as four words, and back. */
function idWords(id: string): [number, number, number, number] | undefined {
  const hex = id.replace(/-/g, '');
  if (!/^[0-9a-f]{32}$/i.test(hex)) return undefined;
  return [0, 8, 16, 24].map((i) => parseInt(hex.slice(i, i + 8), 16)) as [number, number, number, number];
}
const hex8 = (w: number) => w.toString(16).padStart(8, '0');
function idOf(slots: Uint32Array, at: number): string {
  const h = hex8(slots[at + 2]!) + hex8(slots[at + 3]!) + hex8(slots[at + 4]!) + hex8(slots[at + 5]!);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** An open-addressing table of answers in one typed array: no object per answer for the garbage collector to trace. */
class Generation {
  readonly slots: Uint32Array;
  private readonly mask: number;
  /** Used and gone slots: at most half the table, so that a probe always meets an empty one. */
  filled = 0;
  size = 0;

  constructor(readonly capacity: number) {
    this.slots = new Uint32Array(capacity * WORDS);
    this.mask = capacity - 1;
  }

  /** The slot holding the key, or -1. */
  find(hi: number, lo: number): number {
    for (let i = lo & this.mask; ; i = (i + 1) & this.mask) {
      const at = i * WORDS;
      const meta = this.slots[at + 6]!;
      if (meta === EMPTY) return -1;
      if (meta & USED && this.slots[at] === hi && this.slots[at + 1] === lo) return at;
    }
  }

  set(hi: number, lo: number, id: readonly number[], meta: number): void {
    let at = this.find(hi, lo);
    if (at < 0) {
      for (let i = lo & this.mask; ; i = (i + 1) & this.mask) {
        at = i * WORDS;
        const m = this.slots[at + 6]!;
        if (m === EMPTY) this.filled++;
        if (m === EMPTY || m & GONE) break;
      }
      this.size++;
    }
    this.slots.set([hi, lo, id[0]!, id[1]!, id[2]!, id[3]!, (meta | USED) >>> 0], at);
  }

  delete(hi: number, lo: number): void {
    const at = this.find(hi, lo);
    if (at < 0) return;
    this.slots[at + 6] = GONE;
    this.size--;
  }
}

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
 * ttlMs. An answer is 28 bytes in a typed array kept at most half full: a 64-bit hash of its key
 * (SHA-256 with a secret of this process, so keys that collide cannot be made on purpose), the run
 * id, its status, and its rule and remediation by number.
 */
export function createAnswers(opts: AnswersOptions = DEFAULT_ANSWERS) {
  const now = opts.now ?? Date.now;
  const half = Math.max(1, Math.ceil(opts.max / 2));
  let capacity = 2;
  while (capacity < 2 * half) capacity *= 2;
  const secret = randomBytes(16).toString('hex');
  /** Rule and remediation pairs by number, and back. */
  const labels: Array<{ rule: string; remediation: string }> = [];
  const labelNumbers = new Map<string, number>();
  let current = new Generation(capacity);
  let previous = new Generation(capacity);
  let since = now();
  let previousSince = since;

  function hashOf(key: string): [number, number] {
    // One-shot and hex: several times cheaper than a Hash object and a Buffer, for a key hashed twice per alert.
    const digest = hash('sha256', secret + key, 'hex');
    return [parseInt(digest.slice(0, 8), 16), parseInt(digest.slice(8, 16), 16)];
  }

  function labelOf(rule: string, remediation: string): number {
    const name = `${rule}\u0000${remediation}`;
    let n = labelNumbers.get(name);
    if (n === undefined) {
      // A matrix has a few hundred of them; after more (reloads that keep renaming rules), start over.
      if (labels.length >= 0x1_0000) {
        labels.length = 0;
        labelNumbers.clear();
        current = new Generation(capacity);
        previous = new Generation(capacity);
      }
      n = labels.length;
      labels.push({ rule, remediation });
      labelNumbers.set(name, n);
    }
    return n;
  }

  /** Starts a new generation when the current one is ttlMs / 2 old, or full when `adding`. */
  function turn(adding: boolean): void {
    const t = now();
    if (t - since >= opts.ttlMs / 2 || (adding && (current.size >= half || current.filled >= capacity / 2))) {
      previous = current;
      previousSince = since;
      current = new Generation(capacity);
      since = t;
    }
    // No answer older than ttlMs: the previous generation goes when its first answer would be.
    if (previous.size > 0 && t - previousSince >= opts.ttlMs) previous = new Generation(capacity);
  }

  function remember(key: string, run: Answer): void {
    turn(true);
    const [hi, lo] = hashOf(key);
    previous.delete(hi, lo);
    const id = idWords(run.id);
    if ((run.status !== 'queued' && !isTerminal(run.status)) || !id) {
      current.delete(hi, lo);
      return;
    }
    current.set(hi, lo, id, (labelOf(run.rule, run.remediation) << 4) | RUN_STATUSES.indexOf(run.status));
  }

  function recall(key: string): Answer | undefined {
    turn(false);
    const [hi, lo] = hashOf(key);
    for (const generation of [current, previous]) {
      const at = generation.find(hi, lo);
      if (at < 0) continue;
      const meta = generation.slots[at + 6]! & ~USED;
      const label = labels[meta >>> 4]!;
      return { id: idOf(generation.slots, at), rule: label.rule, remediation: label.remediation, status: RUN_STATUSES[meta & 0xf]! };
    }
    return undefined;
  }

  function forget(key: string): void {
    const [hi, lo] = hashOf(key);
    current.delete(hi, lo);
    previous.delete(hi, lo);
  }

  return { remember, recall, forget, size: () => current.size + previous.size };
}

export type Answers = ReturnType<typeof createAnswers>;
