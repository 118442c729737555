import type { Remediation } from '../../remediations/types.js';
import type { Matcher } from './matchers.js';
import type { ParamsRenderer } from './template.js';

export interface Limit {
  max: number;
  perMs: number;
}

/** One action of a rule, compiled: what to run, with which params and under which gates. */
export interface Action {
  rule: string;
  /** Stable within the rule: `firing:0`, `resolved:1`. Part of the dedup key. */
  key: string;
  phase: 'firing' | 'resolved';
  remediation: Remediation;
  renderParams: ParamsRenderer;
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
  globalLimit: Limit | undefined;
}
