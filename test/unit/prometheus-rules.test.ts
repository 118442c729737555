import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

describe('shipped Prometheus and Alertmanager configuration', () => {
  it('alert rules pass promtool check and their unit tests', { skip: has('promtool') ? false : 'promtool not installed' }, () => {
    const check = spawnSync('promtool', ['check', 'rules', 'config/prometheus/alert-rules.yml'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(check.status, 0, check.stdout + check.stderr);
    const unit = spawnSync('promtool', ['test', 'rules', 'alert-rules.test.yml'], {
      cwd: 'config/prometheus',
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(unit.status, 0, unit.stdout + unit.stderr);
    assert.match(unit.stdout, /SUCCESS/);
  });

  it(
    'the Alertmanager config is valid and routes ConduitProviderDown to the remediator',
    { skip: has('amtool') ? false : 'amtool not installed' },
    () => {
      const check = spawnSync('amtool', ['check-config', 'config/alertmanager/alertmanager.yml'], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(check.status, 0, check.stdout + check.stderr);
      const route = spawnSync(
        'amtool',
        [
          'config',
          'routes',
          'test',
          '--config.file=config/alertmanager/alertmanager.yml',
          'alertname=ConduitProviderDown',
          'provider=openai',
          'severity=critical',
        ],
        { encoding: 'utf8', timeout: 60_000 },
      );
      assert.equal(route.status, 0, route.stdout + route.stderr);
      assert.match(route.stdout, /remediator/);
    },
  );
});
