import { SERIES, type CannonResult, type StormResult } from '../common.js';
import { countRuns, newGroup, poolOf, scanned, seriesLike, serviceEnv } from '../groups.js';
import { procStatus, sampled, type Sampled } from '../proc-measurements.js';
import { runLoad, startChild } from '../processes.js';
import { profiled } from '../profiling.js';
import { counted } from '../round-trips.js';
import {
  BIG_MESSAGE_ALERTS,
  CONNECTIONS,
  DUPLICATES,
  DURATION,
  STORM_ALERTS,
  STORM_MESSAGES,
  WARMUP_SEC,
  log,
  startsAt,
  tag,
} from '../settings.js';
import { strip, type MemReport, type Scenarios } from './results.js';
import { cannonSpec } from './unique-alert-load.js';

/** Scenarios 2, 3, 3b, 4 and 6 on one ROLE=api service process (no worker competing). */
export async function scenariosIntake(into: Scenarios): Promise<void> {
  const group = newGroup('a');
  // No worker drains this group's queue by design; a 1 h REQUEUE_AFTER keeps the sweeper from
  // re-adding the still-queued runs of scenario 2 during scenarios 3-4 (an artifact of the set-up).
  const svc = await startChild('svc-api', 'service.ts', serviceEnv(group, 'api', { REQUEUE_AFTER: '1h' }));
  const perScenario: Record<string, number> = {};
  let peakSampled = 0;
  const track = (name: string, s: Sampled<unknown>) => {
    perScenario[name] = s.peakRss[svc.name] ?? 0;
    peakSampled = Math.max(peakSampled, perScenario[name]!);
  };
  try {
    log(
      `2 intake: unique single-alert messages, ROLE=api, c=${CONNECTIONS}, ${DURATION} s (+${WARMUP_SEC} s warm-up); ${String(svc.info['rules'])} rules`,
    );
    const {
      value: { value: s2, sent: sent2 },
      scans: scans2,
    } = await scanned(group, () =>
      counted(svc, () =>
        sampled([svc], () => profiled(svc, 'intake', () => runLoad<CannonResult>(cannonSpec(svc.url, SERIES.intake, SERIES.intakeWarmup)))),
      ),
    );
    track('intake', s2);
    into.intake = {
      load: s2.value,
      sampled: strip(s2),
      sent: sent2,
      scans: scans2,
      alertsSent: await countRuns(group, 'fingerprint LIKE $1 OR fingerprint LIKE $2', [
        seriesLike(SERIES.intake),
        seriesLike(SERIES.intakeWarmup),
      ]),
      runsStored: await countRuns(group, 'fingerprint LIKE $1', [seriesLike(SERIES.intake)]),
    };

    log(`3 storm: ${STORM_MESSAGES} sequential messages of ${STORM_ALERTS} unique alerts`);
    const {
      value: { value: s3, sent: sent3 },
      scans: scans3,
    } = await scanned(group, () =>
      counted(svc, () =>
        sampled([svc], () =>
          profiled(svc, 'storm', () =>
            runLoad<StormResult>({
              mode: 'storm',
              url: svc.url,
              messages: STORM_MESSAGES,
              alertsPerMessage: STORM_ALERTS,
              tag,
              series: SERIES.storm,
              startsAt,
            }),
          ),
        ),
      ),
    );
    track('storm', s3);
    into.storm = {
      load: s3.value,
      sampled: strip(s3),
      sent: sent3,
      scans: scans3,
      alertsSent: STORM_MESSAGES * STORM_ALERTS,
      runsStored: await countRuns(group, 'fingerprint LIKE $1', [seriesLike(SERIES.storm)]),
    };

    log(`3b big message: one message of ${BIG_MESSAGE_ALERTS} unique alerts`);
    const {
      value: { value: s3b, sent: sent3b },
      scans: scans3b,
    } = await scanned(group, () =>
      counted(svc, () =>
        sampled([svc], () =>
          profiled(svc, 'big-message', () =>
            runLoad<StormResult>({
              mode: 'storm',
              url: svc.url,
              messages: 1,
              alertsPerMessage: BIG_MESSAGE_ALERTS,
              tag,
              series: SERIES.bigMessage,
              startsAt,
            }),
          ),
        ),
      ),
    );
    track('bigMessage', s3b);
    into.bigMessage = {
      load: s3b.value,
      sampled: strip(s3b),
      sent: sent3b,
      scans: scans3b,
      alertsSent: BIG_MESSAGE_ALERTS,
      runsStored: await countRuns(group, 'fingerprint LIKE $1', [seriesLike(SERIES.bigMessage)]),
    };

    const { rows } = await poolOf(group).query<{ fingerprint: string }>(
      'SELECT fingerprint FROM runs WHERE fingerprint LIKE $1 ORDER BY seq LIMIT $2',
      [seriesLike(SERIES.intake), 2 * DUPLICATES],
    );
    const known = rows.slice(0, DUPLICATES).map((r) => r.fingerprint);
    // The warm-up re-delivers other alerts of scenario 2 (the same ones when it stored no more).
    const warmupKnown = rows.length > DUPLICATES ? rows.slice(DUPLICATES).map((r) => r.fingerprint) : known;
    if (known.length === 0) throw new Error('scenario 2 stored no runs; nothing to re-deliver');
    log(`4 duplicate flood: ${DUPLICATES} re-deliveries of ${known.length} known alerts, c=${CONNECTIONS}`);
    const runsBefore = await countRuns(group);
    const {
      value: { value: s4, sent: sent4 },
      scans: scans4,
    } = await scanned(group, () =>
      counted(svc, () =>
        sampled([svc], () =>
          profiled(svc, 'duplicates', () =>
            runLoad<CannonResult>({
              mode: 'cannon',
              url: svc.url,
              connections: CONNECTIONS,
              amount: DUPLICATES,
              source: { kind: 'list', fingerprints: known, startsAt },
              warmup: { durationSec: WARMUP_SEC, source: { kind: 'list', fingerprints: warmupKnown, startsAt } },
            }),
          ),
        ),
      ),
    );
    track('duplicates', s4);
    const runsAfter = await countRuns(group);
    into.duplicates = {
      load: s4.value,
      sampled: strip(s4),
      sent: sent4,
      scans: scans4,
      alertsSent: s4.value.sent,
      knownAlerts: known.length,
      runsBefore,
      runsAfter,
    };
    const vmHwm = procStatus(svc.pid, 'VmHWM') ?? peakSampled;
    const reported = svc.waitLine('MEM-REPORT ', 10_000);
    svc.send('mem');
    const memReport = JSON.parse((await reported).slice('MEM-REPORT '.length)) as MemReport;
    into.memory = { vmHwm, peakSampled, perScenario, process: memReport };
  } finally {
    await svc.stop();
  }
}
