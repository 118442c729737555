import type { Action } from '../matrix/types.js';

/**
 * Dry run: `DRY_RUN=true` for the whole service, or `dryRun: true` on an action. The run passes
 * every gate, records its plan and ends `dry_run` at execution; nothing reaches a target.
 */
export const isDryRun = (serviceDryRun: boolean, action: Pick<Action, 'dryRun'>): boolean => serviceDryRun || action.dryRun;
