import { SERIES, type CannonResult } from '../common.js';
import { countRuns, newGroup, seriesLike, serviceEnv } from '../groups.js';
import { sampled } from '../proc-measurements.js';
import { runLoad, startChild } from '../processes.js';
import { CONNECTIONS, DURATION, log } from '../settings.js';
import { strip, type Scenarios } from './results.js';
import { cannonSpec } from './unique-alert-load.js';

/** Scenario 2 again with the worker in the same process (ROLE=all), executing while it takes alerts. */
export async function scenarioIntakeAll(into: Scenarios): Promise<void> {
  const group = newGroup('b');
  const svc = await startChild('svc-all', 'service.ts', serviceEnv(group, 'all'));
  try {
    log(`2b intake with the worker in the same process (ROLE=all), c=${CONNECTIONS}, ${DURATION} s`);
    const s = await sampled([svc], () => runLoad<CannonResult>(cannonSpec(svc.url, SERIES.intakeAll, SERIES.intakeAllWarmup)));
    into.intakeAll = {
      load: s.value,
      sampled: strip(s),
      runsStored: await countRuns(group, 'fingerprint LIKE $1', [seriesLike(SERIES.intakeAll)]),
      executedDuring: await countRuns(group, "status = 'succeeded'"),
    };
  } finally {
    await svc.stop();
  }
}
