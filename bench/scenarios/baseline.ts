import { SERIES, type CannonResult } from '../common.js';
import { sampled } from '../proc-measurements.js';
import { runLoad, startChild } from '../processes.js';
import { CONNECTIONS, DURATION, WARMUP_SEC, log } from '../settings.js';
import { strip, type Scenarios } from './results.js';
import { cannonSpec } from './unique-alert-load.js';

export async function scenarioBaseline(into: Scenarios): Promise<void> {
  const base = await startChild('baseline', 'baseline.ts', { PORT: '0', HOST: '127.0.0.1' });
  try {
    log(`1 baseline: bare Fastify route, c=${CONNECTIONS}, ${DURATION} s (+${WARMUP_SEC} s warm-up)`);
    const s = await sampled([base], () => runLoad<CannonResult>(cannonSpec(base.url, SERIES.baseline, SERIES.baselineWarmup)));
    into.baseline = { load: s.value, sampled: strip(s) };
  } finally {
    await base.stop();
  }
}
