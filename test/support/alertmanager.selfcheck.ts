/**
 * Round trip through a real Alertmanager, without the service:
 *
 *   node --import tsx test/support/alertmanager.selfcheck.ts
 *
 * Starts a webhook receiver and an Alertmanager on 127.0.0.1, posts a firing
 * alert and then the same alert resolved, and checks that both notifications
 * arrive with the bearer token. Prints each delivery. Exit code 0 on success.
 */
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { startAlertmanager, type RunningAlertmanager } from './alertmanager.js';

interface Delivery {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: { status?: string; alerts?: Array<{ status?: string; fingerprint?: string; startsAt?: string; endsAt?: string }> } & Record<
    string,
    unknown
  >;
}

const token = 'selfcheck-token-0123456789';
const deliveries: Delivery[] = [];

const receiver = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    deliveries.push({
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Delivery['body'],
    });
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});
receiver.listen(0, '127.0.0.1');
await once(receiver, 'listening');
const webhookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/webhooks/alertmanager`;

async function waitFor(status: string, timeoutMs = 15_000): Promise<Delivery> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const hit = deliveries.find((d) => d.body.status === status);
    if (hit) return hit;
    await sleep(50);
  }
  throw new Error(`no ${status} delivery within ${timeoutMs} ms`);
}

function check(condition: unknown, message: string): void {
  if (!condition) throw new Error(`check failed: ${message}`);
}

function show(d: Delivery): void {
  const { authorization, ...rest } = d.headers;
  const masked = typeof authorization === 'string' ? authorization.replace(/(Bearer )(.{4}).*/, '$1$2…') : authorization;
  console.log(`${d.method} ${d.url}`);
  console.log(JSON.stringify({ authorization: masked, ...rest }, null, 2));
  console.log(JSON.stringify(d.body, null, 2));
}

let am: RunningAlertmanager | undefined;
let failed = false;
try {
  am = await startAlertmanager({ webhookUrl, token });
  console.log(`Alertmanager ready at ${am.url}`);
  const alert = {
    labels: { alertname: 'ConduitProviderDown', provider: 'openai', severity: 'critical' },
    annotations: { summary: 'Provider openai down' },
    generatorURL: 'http://prometheus:9090/graph?g0.expr=x',
  };

  const t0 = Date.now();
  await am.postAlerts([alert]);
  const firing = await waitFor('firing');
  console.log(`\n--- firing delivery after ${Date.now() - t0} ms ---`);
  show(firing);
  check(firing.method === 'POST' && firing.url === '/webhooks/alertmanager', 'POST to the webhook path');
  check(firing.headers.authorization === `Bearer ${token}`, 'Authorization: Bearer <token>');
  check(/^Alertmanager\//.test(firing.headers['user-agent'] ?? ''), 'User-Agent Alertmanager/<version>');
  check(firing.body.version === '4', 'webhook message version 4');
  check(firing.body.alerts?.[0]?.endsAt === '0001-01-01T00:00:00Z', 'firing alert has the zero endsAt');

  const t1 = Date.now();
  await am.resolveAlerts([alert]);
  const resolved = await waitFor('resolved');
  console.log(`\n--- resolved delivery after ${Date.now() - t1} ms ---`);
  show(resolved);
  check(resolved.headers.authorization === `Bearer ${token}`, 'resolved: Authorization: Bearer <token>');
  check(resolved.body.alerts?.[0]?.status === 'resolved', 'resolved alert status');
  check(resolved.body.alerts?.[0]?.fingerprint === firing.body.alerts?.[0]?.fingerprint, 'same fingerprint when resolved');
  check(resolved.body.alerts?.[0]?.startsAt === firing.body.alerts?.[0]?.startsAt, 'same startsAt when resolved');
  console.log('\nOK: firing and resolved deliveries received with the bearer token');
} catch (err) {
  failed = true;
  console.error(err);
  if (am) console.error(`--- Alertmanager output ---\n${am.logs()}`);
} finally {
  await am?.close();
  receiver.close();
}
process.exit(failed ? 1 : 0);
