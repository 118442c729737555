/// <reference lib="dom" />
/**
 * The service's HTTP API as the console calls it: same origin, the bearer token in a header (never in
 * a URL), no cookies. The token lives in sessionStorage: gone when the tab closes.
 */

import type { Run, RunListItem, RunStatus } from '../../schemas/runs.js';

export type { Run, RunStatus };
export type RunEvent = NonNullable<Run['events']>[number];
export interface Me {
  name: string;
  role: 'viewer' | 'approver' | 'admin';
  can: { decide: boolean; control: boolean };
}
export interface Control {
  paused: boolean;
  dryRun: boolean;
  reason: string | null;
  changedBy: string | null;
  changedAt: string | null;
}
/** A run as GET /api/runs lists it: no timeline, and a summary of its alert (the run's page has the whole alert). */
export type ListedRun = RunListItem;
export interface RunList {
  runs: ListedRun[];
  nextCursor: string | null;
}

const KEY = 'conduit-remediator.token';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const session = {
  get token(): string | null {
    return sessionStorage.getItem(KEY);
  },
  set(token: string): void {
    sessionStorage.setItem(KEY, token);
  },
  clear(): void {
    sessionStorage.removeItem(KEY);
  },
};

/** Called when the service stops accepting the token (401): the console signs out. */
let onUnauthorized: (message: string) => void = () => undefined;
export const whenUnauthorized = (f: (message: string) => void) => {
  onUnauthorized = f;
};

export async function call<T>(path: string, opts: { method?: 'GET' | 'POST'; body?: object; token?: string } = {}): Promise<T> {
  const token = opts.token ?? session.token;
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token) headers['authorization'] = `Bearer ${token}`;
  if (opts.body) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, {
      method: opts.method ?? 'GET',
      headers,
      body: opts.body ? JSON.stringify(opts.body) : null,
      cache: 'no-store',
      credentials: 'omit',
      redirect: 'error',
    });
  } catch {
    throw new ApiError(0, 'NETWORK', 'the service did not answer (network error)');
  }
  const text = await res.text();
  let data: unknown;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = undefined;
  }
  if (!res.ok) {
    const body = (data ?? {}) as { code?: string; message?: string };
    const err = new ApiError(res.status, body.code ?? `HTTP_${res.status}`, body.message ?? `${res.status} ${res.statusText}`);
    if (res.status === 401 && !opts.token) onUnauthorized('The service no longer accepts this token. Sign in again.');
    throw err;
  }
  return data as T;
}

export const api = {
  whoami: (token?: string) => call<Me>('/api/whoami', token ? { token } : {}),
  control: () => call<Control>('/api/control'),
  pause: (reason: string) => call<Control>('/api/control/pause', { method: 'POST', body: reason ? { reason } : {} }),
  resume: () => call<Control>('/api/control/resume', { method: 'POST' }),
  runs: (query: Record<string, string>) => call<RunList>(`/api/runs?${new URLSearchParams(query).toString()}`),
  run: (id: string) => call<Run>(`/api/runs/${encodeURIComponent(id)}`),
  approve: (id: string, comment: string) =>
    call<Run>(`/api/runs/${encodeURIComponent(id)}/approve`, { method: 'POST', body: comment ? { comment } : {} }),
  reject: (id: string, reason: string) =>
    call<Run>(`/api/runs/${encodeURIComponent(id)}/reject`, { method: 'POST', body: reason ? { reason } : {} }),
  revert: (id: string) => call<Run>(`/api/runs/${encodeURIComponent(id)}/revert`, { method: 'POST', body: {} }),
};
