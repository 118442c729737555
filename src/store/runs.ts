import type { Log } from '../kernel/log.js';
import type { Db } from './database.js';
import { createRetention } from './retention.js';
import { createRunRecords } from './run-records.js';
import { createRunTransitions } from './run-transitions.js';

export type { StoredRun, RunFilter, ReadyDependent, PredecessorOutcome, ForExecution } from './run-records.js';
export type { Guard, RunPatch } from './run-transitions.js';
export type { RetentionDeleted } from './retention.js';
export { isRunId } from './run-rows.js';

/**
 * The runs and their timelines in PostgreSQL: reads and inserts (`run-records.ts`), status changes
 * (`run-transitions.ts`), row mapping (`run-rows.ts`), deletion past RUN_RETENTION (`retention.ts`).
 */
export function createRunStore(db: Db, log?: Log) {
  return { ...createRunRecords(db), ...createRunTransitions(db, log), ...createRetention(db) };
}

export type RunStore = ReturnType<typeof createRunStore>;
