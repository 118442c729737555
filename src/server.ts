import closeWithGrace from 'close-with-grace';
import { buildApp } from './app.js';
import { loadConfig, type GeneratedSecrets } from './config.js';
import { ConfigError } from './errors.js';
import { createLogger } from './logger.js';
import { createServices } from './services.js';

/** Secrets generated at start go to the terminal once, never through the logger. */
function printGenerated(generated: GeneratedSecrets): void {
  if (generated.webhookToken) process.stdout.write(`WEBHOOK_TOKEN was not set; generated for this run: ${generated.webhookToken}\n`);
  if (generated.apiToken) process.stdout.write(`API_TOKENS was not set; generated admin token for this run: ${generated.apiToken}\n`);
}

async function main(): Promise<void> {
  let loaded;
  try {
    loaded = loadConfig(process.env);
  } catch (err) {
    process.stderr.write(`conduit-remediator: bad configuration: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const { config, generated, warnings } = loaded;
  const logger = createLogger(config.logLevel);

  for (const warning of warnings) logger.warn(warning);
  let services;
  try {
    services = await createServices(config, { log: logger });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`conduit-remediator: bad configuration: ${err.message}\n`);
      process.exit(2);
    }
    logger.fatal({ err: (err as Error).message }, 'could not start');
    process.exit(1);
  }
  const missing = [...new Set([...services.catalogue.values()].map((r) => r.requires))].filter((k) => !services.targets.configured.has(k));
  if (missing.length > 0) {
    const names = [...services.catalogue.values()].filter((r) => missing.includes(r.requires)).map((r) => r.name);
    logger.warn(
      { targets: missing, remediations: names },
      'targets not configured: runs of these remediations fail with target_not_configured',
    );
  }

  const queried = services.matrix.current.rules.flatMap((r) =>
    [...r.actions, ...r.onResolved].filter((a) => a.conditionQuery || a.verify).map((a) => `${r.name}/${a.id ?? a.key}`),
  );
  if (queried.length > 0 && !config.prometheusUrl) {
    logger.warn(
      { actions: queried },
      'PROMETHEUS_URL is not set: these actions execute without their check.query, and their verify ends unverified',
    );
  }

  const app = await buildApp(services, { logger });
  // SIGHUP re-reads the matrix, as it does for Prometheus and Alertmanager; it does not stop the service.
  process.on('SIGHUP', () => services.matrix.reload('SIGHUP'));
  closeWithGrace({ delay: config.shutdownTimeoutMs + 5000, skip: ['SIGHUP'] }, async ({ signal, err }) => {
    if (err) logger.error({ err: err.message }, 'shutting down after an error');
    else logger.info({ signal }, 'shutting down');
    await app.close();
    await services.close();
  });
  // A worker answers health checks and metrics only; the API routes are not registered there.
  await app.listen({ port: config.port, host: config.host });
  printGenerated(generated);
  logger.info(
    {
      role: config.role,
      port: config.port,
      rules: services.matrix.current.rules.length,
      dryRun: config.dryRun,
      queuePrefix: config.queuePrefix,
    },
    'conduit-remediator started',
  );
}

void main();
