/**
 * A worker-only service process with the test remediations, for tests that kill a worker mid-run.
 * Configured entirely from the environment, like the real server.
 */
import pino from 'pino';
import { createCatalogue, remediations } from '../../remediations/catalogue.js';
import { loadConfig } from '../../src/config.js';
import { createServices } from '../../src/services.js';
import { testRemediations } from './test-remediations.js';

const { config } = loadConfig({ ...process.env, ROLE: 'worker' });
const services = await createServices(config, {
  log: pino({ level: 'silent' }),
  catalogue: createCatalogue([...remediations, ...testRemediations]),
});
process.stdout.write('worker ready\n');
process.on('SIGTERM', () => {
  void services.close().then(() => process.exit(0));
});
