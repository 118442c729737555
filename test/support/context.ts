import type { ExecutionContext, Targets } from '../../remediations/types.js';
import type { Log } from '../../src/kernel/log.js';

/** A log that keeps what it was given, so tests can assert nothing secret was logged. */
export function memoryLog(): Log & { lines: Array<{ level: string; obj: object; msg?: string }> } {
  const lines: Array<{ level: string; obj: object; msg?: string }> = [];
  const at = (level: string) => (obj: object, msg?: string) => {
    lines.push({ level, obj, ...(msg === undefined ? {} : { msg }) });
  };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** An execution context for calling a remediation's `execute` directly. */
export function executionContext(
  targets: Partial<Targets>,
  opts: { signal?: AbortSignal; timeoutMs?: number; now?: () => Date } = {},
): ExecutionContext {
  return {
    runId: '00000000-0000-4000-8000-000000000000',
    signal: opts.signal ?? new AbortController().signal,
    timeoutMs: opts.timeoutMs ?? 5000,
    targets: { settings: { archiveTables: ['request_logs'], queuePrefix: 'remediator' }, ...targets },
    log: memoryLog(),
    now: opts.now ?? (() => new Date()),
  };
}
