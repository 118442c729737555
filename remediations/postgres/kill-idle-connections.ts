import { Type } from '@sinclair/typebox';
import { parseDuration } from '../../src/kernel/duration.js';
import { count } from '../summary.js';
import { defineRemediation, RemediationError, throwIfAborted, type RemediationResult } from '../types.js';
import { DatabaseName, Duration, isDatabaseName, MAX_IDENTIFIER_BYTES } from '../validation.js';
import { quoteIdentifier, refuseOwnDatabase } from './own-database.js';
import { inTransaction, pgFailure } from './transaction.js';

const DEFAULT_IDLE_FOR = '5m';
// Below a second "idle" is just a pooled connection between two queries.
const MIN_IDLE_FOR_MS = 1000;

const Params = Type.Object(
  {
    database: DatabaseName,
    idleFor: Type.Optional({ ...Duration, default: DEFAULT_IDLE_FOR }),
    max: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
  },
  { additionalProperties: false },
);

/*
 * One statement, so the idle check and the signal are as close together as PostgreSQL allows.
 * The LIMIT sits in a subquery because a volatile function in the outer target list must only
 * run for the rows that survive ORDER BY/LIMIT. `datname = $1` compares the name as a bound
 * value: any name PostgreSQL allows (`conduit-prod`) is just data here. Never terminated:
 * - the session running this statement (`pg_backend_pid()`);
 * - the service's sessions, whatever the matrix asks: those whose non-empty application_name is
 *   the service's (`$4`, PG_APPLICATION_NAME: its own pools and its target pool) or the one this
 *   session runs under (a TARGET_DATABASE_URL that names another); an unexpected FATAL on an idle
 *   pooled client would surface as a pool `error` event;
 * - `backend_type <> 'client backend'`: logical replication walsenders also report `idle`;
 * - superuser sessions when we are not superuser: pg_signal_backend may not signal them, and one
 *   permission error would abort the whole statement.
 * The service's own database is refused before this runs (`refuseOwnDatabase`).
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
    AND NOT (a.application_name <> ''
             AND (a.application_name = current_setting('application_name') OR a.application_name = ANY($4::text[])))
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
    `Terminate (pg_terminate_backend) the client sessions of database ${quoteIdentifier(p.database)} in state 'idle' ` +
    `for more than ${idleFor}, oldest first${limit}; never the remediator's own sessions, nor any of its own database.`
  );
}

export default defineRemediation({
  name: 'postgres.kill-idle-connections',
  summary: 'Terminates sessions of one database that have been idle for longer than a threshold.',
  runbookStep: 'Database Connection Issues / Kill Idle Connections',
  params: Params,
  requires: 'targetDatabase',
  // Encoded, so a name with a `/` or `:` (PostgreSQL allows both) shares no cooldown key with another target.
  target: (p) => `postgres/${encodeURIComponent(p.database)}`,
  plan: describe,
  async execute(p, ctx): Promise<RemediationResult> {
    const idleFor = p.idleFor ?? DEFAULT_IDLE_FOR;
    const idleMs = parseDuration(idleFor);
    if (!isDatabaseName(p.database)) {
      throw new RemediationError(
        'invalid_params',
        `not a database name (1 to ${MAX_IDENTIFIER_BYTES} bytes, no control characters): ${JSON.stringify(p.database)}`,
      );
    }
    if (idleMs === undefined) throw new RemediationError('invalid_params', `not a duration: ${JSON.stringify(idleFor)}`);
    if (idleMs < MIN_IDLE_FOR_MS)
      throw new RemediationError('refused', `idleFor ${idleFor} is below 1s: that would cut live pooled connections`);
    const { settings } = ctx.targets;
    refuseOwnDatabase(p.database, settings, 'postgres.kill-idle-connections');
    const pool = ctx.targets.targetDatabase;
    if (!pool) throw new RemediationError('target_not_configured', 'TARGET_DATABASE_URL is not configured');
    throwIfAborted(ctx.signal);

    const ownNames = settings.applicationName ? [settings.applicationName] : [];
    const { rows } = await inTransaction(pool, ctx.timeoutMs, (client) =>
      client.query<{ pid: number; terminated: boolean }>(TERMINATE_SQL, [p.database, `${idleMs} milliseconds`, p.max ?? null, ownNames]),
    ).catch((err: unknown) => {
      throw pgFailure(err);
    });
    // `false` means the session ended on its own between the snapshot and the signal.
    const pids = rows.filter((r) => r.terminated).map((r) => r.pid);
    ctx.log.info({ database: p.database, idleFor, terminated: pids.length, pids }, 'terminated idle sessions');
    const capped = p.max !== undefined && rows.length >= p.max ? `, stopping at max ${p.max}` : '';
    const summary =
      pids.length === 0
        ? `Terminated no sessions of database ${quoteIdentifier(p.database)}: none had been idle for more than ${idleFor}`
        : `Terminated ${count(pids.length, 'session')} of database ${quoteIdentifier(p.database)} idle for more than ${idleFor}${capped}`;
    return { terminated: pids.length, pids, summary };
  },
});
