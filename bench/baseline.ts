/**
 * The baseline: a bare Fastify 5 server in a process like the service's, with one route that parses
 * and validates the same Alertmanager v4 body against the same schema and ajv options, serializes the
 * same response schema, and does nothing else. Its requests/s is the ceiling of any intake here.
 * Same stdout/stdin protocol as service.ts (`READY {json}`; stops on `stop`, SIGTERM or stdin close).
 */
import { createInterface } from 'node:readline';
import Fastify from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { WebhookMessage, WebhookResponse } from '../src/schemas/alertmanager.js';
import { WEBHOOK_PATH } from './common.js';

const app = Fastify({
  logger: false,
  bodyLimit: 5 * 1024 * 1024,
  ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
}).withTypeProvider<TypeBoxTypeProvider>();

app.post(WEBHOOK_PATH, { schema: { body: WebhookMessage, response: { 200: WebhookResponse } } }, async (req) => ({
  received: req.body.alerts.length,
  runs: [],
}));

await app.listen({ port: Number(process.env['PORT'] ?? 0), host: process.env['HOST'] ?? '127.0.0.1' });
const address = app.server.address();
const port = typeof address === 'object' && address ? address.port : 0;
process.stdout.write(`READY ${JSON.stringify({ pid: process.pid, port, role: 'baseline' })}\n`);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  setTimeout(() => process.exit(1), 5000).unref();
  void app.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
const commands = createInterface({ input: process.stdin });
commands.on('line', (line) => {
  if (line.trim() === 'stop') stop();
});
commands.on('close', stop);
