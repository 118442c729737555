import type { Remediation } from '../../remediations/types.js';
import type { Log } from '../kernel/log.js';
import type { Metrics } from '../metrics.js';
import { loadMatrix } from './load.js';
import type { Matrix } from './types.js';

/** The matrix new runs are decided with; `current` changes only when a reload succeeds. */
export interface MatrixSource {
  readonly current: Matrix;
}

export type ReloadOutcome =
  | { ok: true; path: string; rules: number; actions: number; loadedAt: string }
  | { ok: false; path: string; error: string; loadedAt: string };

const actionCount = (m: Matrix) => m.rules.reduce((n, r) => n + r.actions.length + r.onResolved.length, 0);

/**
 * The matrix in use, re-read from its file on `reload` (SIGHUP, `POST /-/reload`). Loading and
 * validating happen before anything changes: a valid file replaces the matrix in one assignment, so
 * a delivery sees either the old matrix or the new one, never a mix; an invalid one is refused with
 * its `file:line:col` error and the old one stays. Runs already created keep the gate settings they
 * were created with. `remediator_config_last_reload_successful` tells which way the last attempt went.
 */
export function createMatrixSource(
  initial: Matrix,
  opts: {
    path: string;
    catalogue: ReadonlyMap<string, Remediation>;
    metrics: Metrics;
    log: Log;
    now: () => Date;
    /** Called with each matrix that replaces the one in use (for warnings about what it needs). */
    loaded?: (matrix: Matrix) => void;
  },
) {
  let matrix = initial;
  let loadedAt = opts.now();
  opts.metrics.reloadSuccessful.set(1);
  opts.metrics.reloadSuccessTime.set(loadedAt.getTime() / 1000);

  return {
    get current(): Matrix {
      return matrix;
    },
    reload(trigger: string): ReloadOutcome {
      let next: Matrix;
      try {
        next = loadMatrix(opts.path, opts.catalogue);
      } catch (err) {
        const error = (err as Error).message;
        opts.metrics.reloadSuccessful.set(0);
        opts.log.error({ trigger, path: opts.path, err: error }, 'matrix reload refused; the previous matrix stays in use');
        return { ok: false, path: opts.path, error, loadedAt: loadedAt.toISOString() };
      }
      matrix = next;
      loadedAt = opts.now();
      opts.metrics.reloadSuccessful.set(1);
      opts.metrics.reloadSuccessTime.set(loadedAt.getTime() / 1000);
      const answer = {
        ok: true as const,
        path: opts.path,
        rules: next.rules.length,
        actions: actionCount(next),
        loadedAt: loadedAt.toISOString(),
      };
      opts.log.info({ trigger, path: opts.path, rules: answer.rules, actions: answer.actions }, 'matrix reloaded');
      opts.loaded?.(next);
      return answer;
    },
  };
}

export type MatrixSourceHandle = ReturnType<typeof createMatrixSource>;
