export const RUN_STATUSES = [
  'pending_approval', 'queued', 'running', 'succeeded', 'failed',
  'rejected', 'expired', 'cancelled', 'suppressed', 'dry_run',
] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];
export const TERMINAL_STATUSES: readonly RunStatus[] = ['succeeded', 'failed', 'rejected', 'expired', 'cancelled', 'suppressed', 'dry_run'];

export interface AlertSnapshot {
  fingerprint: string;
  status: 'firing' | 'resolved';
  startsAt: string;
  endsAt?: string;
  generatorURL?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/** The action's gate settings, kept with the run. */
export interface RunGates {
  cooldownMs: number;
  limit: { max: number; perMs: number } | null;
  approvalTimeoutMs: number;
}

export interface RunEvent {
  at: string;
  type: string;
  detail: Record<string, unknown>;
}

export interface Run {
  id: string;
  rule: string;
  action: string;
  phase: 'firing' | 'resolved';
  remediation: string;
  target: string | null;
  params: Record<string, unknown>;
  status: RunStatus;
  reason: string | null;
  alert: AlertSnapshot;
  approval: {
    required: boolean;
    expiresAt: string | null;
    decidedBy: string | null;
    decidedAt: string | null;
    comment: string | null;
  };
  dryRun: boolean;
  gates: RunGates;
  attempts: number;
  /** While `running`: until when the worker that claimed it holds it. */
  leaseUntil?: string | null;
  plan: string | null;
  result: Record<string, unknown> | null;
  error: string | null;
  createdAt: string;
  updatedAt: string;
  events?: RunEvent[];
}

/** A run about to be stored, with the events that explain its first status. */
export interface NewRun {
  id: string;
  rule: string;
  action: string;
  phase: 'firing' | 'resolved';
  remediation: string;
  target: string | null;
  params: Record<string, unknown>;
  status: RunStatus;
  reason: string | null;
  alert: AlertSnapshot;
  approvalRequired: boolean;
  expiresAt: string | null;
  dryRun: boolean;
  gates: RunGates;
  plan: string | null;
  error: string | null;
  events: Array<{ type: string; detail?: Record<string, unknown> }>;
}
