import type { Remediation } from '../../remediations/types.js';
import type { Matcher } from './matchers.js';
import type { ParamsRenderer, TemplateScope } from './template.js';

export interface Limit {
  max: number;
  perMs: number;
}

/**
 * `limits.global`: the budget over every executed run, with `reserve`: per severity (of the rule),
 * how many of the last slots of `max` only runs of that severity or higher may take.
 */
export interface GlobalLimit extends Limit {
  reserve?: Readonly<Record<string, number>>;
}

/**
 * Which outcomes of its predecessor let a dependent action go on: `succeeded` (and `dry_run`),
 * `failed`, any final status (`finished`), or the predecessor's verification (`verified`, `unverified`).
 */
export type When = 'succeeded' | 'failed' | 'finished' | 'verified' | 'unverified';
export const WHEN_VALUES: readonly When[] = ['succeeded', 'failed', 'finished', 'verified', 'unverified'];

/** A PromQL query template: label values are escaped for the string literals they sit in. */
export interface QueryTemplate {
  text: string;
  render(scope: TemplateScope): string;
}

/** After success, the query that proves the remediation helped, evaluated every `everyMs` for `withinMs`. */
export interface Verify {
  query: QueryTemplate;
  withinMs: number;
  everyMs: number;
}

/** The action a dependent waits for: an earlier one of its phase, or a firing-phase one from `onResolved`. */
export interface Predecessor {
  /** The predecessor's action key (`firing:0`): with the rule and the alert episode, it names the predecessor run. */
  key: string;
  /** As written in the matrix: `disable`, `firing.disable`. */
  ref: string;
  when: When;
}

/** One action of a rule, compiled: what to run, with which params and under which gates. */
export interface Action {
  rule: string;
  /** Stable within the rule: `firing:0`, `resolved:1`. Part of the dedup key. */
  key: string;
  /** The matrix's `id`, naming the action within its phase. */
  id: string | undefined;
  /** `revert`: the action a revert run is decided with, made from the run it undoes. */
  phase: 'firing' | 'resolved' | 'revert';
  after: Predecessor | undefined;
  /** Whether Alertmanager is asked that the alert still fires before the run executes (`check.alertFiring`). */
  checkAlertFiring: boolean;
  /** What a run does when Alertmanager or Prometheus cannot answer its checks in time. */
  onCheckError: 'proceed' | 'skip';
  /** `check.query`: asked of Prometheus right before executing; an empty result means the condition cleared. */
  conditionQuery: QueryTemplate | undefined;
  verify: Verify | undefined;
  /** What an unverified run leads to (with `verify`). */
  onUnverified: 'revert' | 'escalate' | 'none';
  /** Undo a succeeded run this long after, verified or not. */
  revertAfterMs: number | undefined;
  /** Whether a revert needs approval; undefined: as the action itself. */
  revertApproval: 'auto' | 'required' | undefined;
  /** `silence`: while its run works, the alert is silenced in Alertmanager this long (expired early if it does not fix it). */
  silenceMs?: number;
  remediation: Remediation;
  renderParams: ParamsRenderer;
  /**
   * `allow`: per param, the anchored pattern (`^(?:...)$`) its rendered value must match, or the run
   * fails `out_of_scope` before any I/O. Absent: any value the remediation's schema accepts.
   */
  allow?: Readonly<Record<string, string>>;
  /** The rule's `severity`, which `limits.global.reserve` is counted by; absent: the lowest. */
  severity?: string;
  approval: 'auto' | 'required';
  cooldownMs: number;
  limit: Limit | undefined;
  dryRun: boolean;
  approvalTimeoutMs: number;
}

export interface Rule {
  name: string;
  matchers: Matcher[];
  severity: string | undefined;
  responseTimeMs: number | undefined;
  actions: Action[];
  onResolved: Action[];
}

export interface Matrix {
  path: string;
  rules: Rule[];
  globalLimit: GlobalLimit | undefined;
}
