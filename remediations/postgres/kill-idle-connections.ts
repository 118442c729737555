import { Type } from '@sinclair/typebox';
import { parseDuration } from '../../src/kernel/duration.js';
import { count } from '../summary.js';
import { defineRemediation, RemediationError, throwIfAborted, type RemediationResult } from '../types.js';
import { Duration, SqlIdentifier } from '../validation.js';
import { inTransaction, pgFailure } from './transaction.js';

const DEFAULT_IDLE_FOR = '5m';
// Below a second "idle" is just a pooled connection between two queries.
const MIN_IDLE_FOR_MS = 1000;
const IDENTIFIER = /^[a-z_][a-z0-9_]*$/;

const Params = Type.Object(
  {
    database: SqlIdentifier,
    idleFor: Type.Optional({ ...Duration, default: DEFAULT_IDLE_FOR }),
    max: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
  },
  { additionalProperties: false },
);

/*
 * One statement, so the idle check and the signal are as close together as PostgreSQL allows.
 * The LIMIT sits in a subquery because a volatile function in the outer target list must only
 * run for the rows that survive ORDER BY/LIMIT.
 * - `backend_type = 'client backend'`: logical replication walsenders also report `idle`.
 * - the same non-empty application_name as ours: the remediator's own pooled connections; an
 *   unexpected FATAL on an idle pooled client surfaces as a pool `error` event.
 * - superuser sessions when we are not superuser: pg_signal_backend may not signal them, and one
 *   permission error would abort the whole statement.
 */
const TERMINATE_SQL = `
SELECT c.pid, pg_terminate_backend(c.pid) AS terminated
FROM (
  SELECT a.pid, a.state_change
  FROM pg_stat_activity a
  WHERE a.datname = $1
    AND a.state = 'idle'
    AND a.state_change < now() - $2::interval
    AND a.pid <> pg_backend_pid()
    AND a.backend_type = 'client backend'
    AND NOT (a.application_name <> '' AND a.application_name = current_setting('application_name'))
    AND (current_setting('is_superuser')::boolean
         OR NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.oid = a.usesysid AND r.rolsuper))
  ORDER BY a.state_change
  LIMIT $3
) c
ORDER BY c.state_change`;

function describe(p: { database: string; idleFor?: string; max?: number }): string {
  const idleFor = p.idleFor ?? DEFAULT_IDLE_FOR;
  const limit = p.max === undefined ? '' : `, at most ${p.max}`;
  return (
    `Terminate (pg_terminate_backend) the client sessions of database "${p.database}" in state 'idle' ` +
    `for more than ${idleFor}, oldest first${limit}; never the remediator's own sessions.`
  );
}

export default defineRemediation({
  name: 'postgres.kill-idle-connections',
  summary: 'Terminates sessions of one database that have been idle for longer than a threshold.',
  runbookStep: 'Database Connection Issues / Kill Idle Connections',
  params: Params,
  requires: 'targetDatabase',
  target: (p) => `postgres/${p.database}`,
  plan: describe,
  async execute(p, ctx): Promise<RemediationResult> {
    const idleFor = p.idleFor ?? DEFAULT_IDLE_FOR;
    const idleMs = parseDuration(idleFor);
    if (!IDENTIFIER.test(p.database)) throw new RemediationError('invalid_params', `not a database name: ${JSON.stringify(p.database)}`);
    if (idleMs === undefined) throw new RemediationError('invalid_params', `not a duration: ${JSON.stringify(idleFor)}`);
    if (idleMs < MIN_IDLE_FOR_MS)
      throw new RemediationError('refused', `idleFor ${idleFor} is below 1s: that would cut live pooled connections`);
    const pool = ctx.targets.targetDatabase;
    if (!pool) throw new RemediationError('target_not_configured', 'TARGET_DATABASE_URL is not configured');
    throwIfAborted(ctx.signal);

    const { rows } = await inTransaction(pool, ctx.timeoutMs, (client) =>
      client.query<{ pid: number; terminated: boolean }>(TERMINATE_SQL, [p.database, `${idleMs} milliseconds`, p.max ?? null]),
    ).catch((err: unknown) => {
      throw pgFailure(err);
    });
    // `false` means the session ended on its own between the snapshot and the signal.
    const pids = rows.filter((r) => r.terminated).map((r) => r.pid);
    ctx.log.info({ database: p.database, idleFor, terminated: pids.length, pids }, 'terminated idle sessions');
    const capped = p.max !== undefined && rows.length >= p.max ? `, stopping at max ${p.max}` : '';
    const summary =
      pids.length === 0
        ? `Terminated no sessions of database "${p.database}": none had been idle for more than ${idleFor}`
        : `Terminated ${count(pids.length, 'session')} of database "${p.database}" idle for more than ${idleFor}${capped}`;
    return { terminated: pids.length, pids, summary };
  },
});
