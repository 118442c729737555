/**
 * Writes deploy/kubernetes/base/prometheusrule.yaml: the groups of config/prometheus/alert-rules.yml
 * (the alerts that drive the response matrix) and config/prometheus/remediator-alerts.yml (the
 * service's own) as two Prometheus Operator PrometheusRule objects. Kustomize cannot read files
 * outside its directory, so the manifest holds a copy, and test/deploy/kubernetes.test.ts fails
 * while the copy differs from the rule files. After changing either rule file:
 *
 *   node --import tsx test/deploy/prometheus-rule.ts
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const PROMETHEUS_RULE_FILE = 'deploy/kubernetes/base/prometheusrule.yaml';

/** Each PrometheusRule of the manifest, with the rule file its groups come from. */
export const RULE_SOURCES = [
  { name: 'conduit-alerts', file: 'config/prometheus/alert-rules.yml', about: "Conduit's alerts, the ones the response matrix acts on" },
  { name: 'conduit-remediator-alerts', file: 'config/prometheus/remediator-alerts.yml', about: 'the alerts on the remediator itself' },
] as const;

export function ruleGroups(file: string): unknown[] {
  const doc = parse(readFileSync(`${ROOT}${file}`, 'utf8')) as { groups?: unknown[] };
  if (!Array.isArray(doc.groups)) throw new Error(`${file} has no groups`);
  return doc.groups;
}

export function renderPrometheusRules(): string {
  const header = [
    '# Generated from the rule files named below by `node --import tsx test/deploy/prometheus-rule.ts`.',
    '# Do not edit: change config/prometheus/*.yml and run it again (test/deploy/kubernetes.test.ts fails',
    "# while this file differs from them). Add the labels your Prometheus' ruleSelector requires",
    '# (kube-prometheus-stack: `release: <its release>`) in an overlay.',
  ];
  const docs = RULE_SOURCES.map((source) =>
    [
      `# ${source.file}: ${source.about}.`,
      stringify(
        {
          apiVersion: 'monitoring.coreos.com/v1',
          kind: 'PrometheusRule',
          metadata: {
            name: source.name,
            namespace: 'conduit-remediator',
            labels: { 'app.kubernetes.io/name': 'conduit-remediator', 'app.kubernetes.io/part-of': 'conduit' },
          },
          spec: { groups: ruleGroups(source.file) },
        },
        { lineWidth: 0 },
      ),
    ].join('\n'),
  );
  return `${header.join('\n')}\n${docs.join('---\n')}`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(`${ROOT}${PROMETHEUS_RULE_FILE}`, renderPrometheusRules());
  process.stdout.write(`wrote ${PROMETHEUS_RULE_FILE}\n`);
}
