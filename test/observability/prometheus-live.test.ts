// Real Prometheus (Debian's) scraping real etcd members: the pod runner starts a 3-member store from
// its synthesized manifests; Prometheus scrapes them with the scrape configuration the Prometheus
// Operator would derive from the synthesized PodMonitor (test/support/prometheus-operator.ts says what is
// translated), every 1 s instead of the monitor's 30 s, and evaluates the synthesized PrometheusRule's
// groups every 1 s with every alert's `for` shortened to 5 s (the only change to the rules) so the test
// need not wait minutes. Killing one member must take the members-down alert to pending, then firing,
// through Prometheus' own rule evaluation (its /api/v1/alerts). Every dashboard panel's query must
// return data from this Prometheus, with Grafana's `$__rate_interval` replaced by 15s (Grafana would
// substitute at least four scrape intervals); the store has no backup, so the dashboard has no backup
// age panel (that kube-state-metrics query is checked with promtool in alert-rules.test.ts).
import { Construct } from 'constructs';
import { Engine, KVStore } from '../../lib';
import { renderMonitoring } from '../../lib/constructs/monitoring';
import { STORE_ALERTS } from '../../lib/constructs/store-alerts';
import { dashboardPanels } from '../../lib/constructs/store-dashboard';
import { agreedLeader, ETCD_VERSION, NAMESPACE, putKeys, startReady, waitFor } from '../support/etcd-cluster';
import { testChart } from '../support/manifests';
import { findObject, storeDefinition, synthMonitored } from '../support/monitoring-manifests';
import { podRunnerUnavailable } from '../support/pod-runner';
import { ActiveAlert, PrometheusServer, prometheusUnavailable } from '../support/prometheus';
import { podMonitorScrapeConfigs, ruleFile } from '../support/prometheus-operator';
import { describeWhere } from '../support/requires-etcd';
import { usePodRunner } from '../support/runner-fixture';

const describeLive = describeWhere('live Prometheus', prometheusUnavailable() ?? podRunnerUnavailable());
const run = usePodRunner();
const SELECTOR = `kvstore="orders",namespace="${NAMESPACE}"`;

describeLive(`Prometheus scraping etcd ${ETCD_VERSION} members through the synthesized PodMonitor and rules`, () => {
  let prometheus: PrometheusServer | undefined;
  afterEach(async () => {
    await prometheus?.stop();
    prometheus = undefined;
  });

  test('healthy: no alert, every dashboard query answers; a member killed: KVStoreMembersDown goes pending, then firing', async () => {
    // GIVEN a 3-member store with its monitoring, running
    const props = { engine: Engine.etcd({ version: ETCD_VERSION }) };
    const chart = testChart(NAMESPACE);
    new KVStore(chart, 'orders', props);
    const store = storeDefinition('orders', props, NAMESPACE);
    renderMonitoring(new Construct(chart, 'orders-monitoring'), store, { dashboard: true });
    const objects = synthMonitored(chart);
    const r = run(objects);
    const pods = await startReady(r, 'orders');

    const config = {
      global: { scrape_interval: '1s', evaluation_interval: '1s' },
      scrape_configs: podMonitorScrapeConfigs(findObject(objects, 'PodMonitor'), objects, r, { interval: '1s' }),
    };
    const rules = ruleFile(findObject(objects, 'PrometheusRule'), Object.fromEntries(STORE_ALERTS.map((a) => [a, '5s'])));
    const p = (prometheus = await PrometheusServer.start(config, rules));
    const storeAlerts = async (): Promise<ActiveAlert[]> => (await p.alerts()).filter((a) => a.labels.kvstore === 'orders');

    // THEN every member is a target, up, with the labels the alerts select on
    await waitFor('3 members up in Prometheus', async () => (await p.query(`sum(up{${SELECTOR}})`))[0]?.value[1] === '3', 30_000, 250);
    expect((await p.query(`up{${SELECTOR}}`)).map((s) => s.metric).sort((a, b) => a.pod.localeCompare(b.pod))).toEqual(pods.map((pod) => ({
      __name__: 'up', kvstore: 'orders', namespace: NAMESPACE, pod, container: 'etcd', endpoint: 'metrics', job: `${NAMESPACE}/orders`, instance: `${r.ip(pod)}:2381`,
    })));
    // Alerts pending from before the first scrapes resolve; then none stays.
    await waitFor('no active alert on a healthy store', async () => (await storeAlerts()).length === 0, 15_000, 250);

    // AND every dashboard query answers (after some client traffic)
    await putKeys(r, pods[0], 'm/', 50);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const panels = dashboardPanels(store);
    expect(panels.map((panel) => panel.title)).not.toContain('Newest backup age');
    const empty: string[] = [];
    for (const panel of panels) {
      for (const target of panel.targets) {
        const expr = target.expr.replace(/\$__rate_interval/g, '15s');
        expect(expr).not.toContain('$');
        if ((await p.query(expr)).length === 0) empty.push(`${panel.title} / ${target.legendFormat}: ${expr}`);
      }
    }
    expect(empty).toEqual([]);
    // Every metric the members' alerts read exists in this etcd version.
    const metrics = [...new Set<string>(rules.groups[0].rules.flatMap((x: any) => [...(x.expr as string).matchAll(/\b(etcd_[a-z_]+|up)\{/g)].map((m) => m[1])))];
    expect(metrics.length).toBeGreaterThan(5);
    const missing: string[] = [];
    for (const m of metrics) if ((await p.query(`${m}{${SELECTOR}}`)).length === 0) missing.push(m);
    expect(missing).toEqual([]);
    // The quota etcd reports is the one the alert measures against (the spec's, through the bootstrap ConfigMap).
    const quota = (await p.query(`max(etcd_server_quota_backend_bytes{${SELECTOR}})`))[0].value[1];
    expect(rules.groups[0].rules.find((x: any) => x.alert === 'KVStoreDatabaseNearQuota').expr).toContain(` / ${quota} > 0.8`);
    expect(await storeAlerts()).toEqual([]);

    // WHEN one member is killed: a follower, so that no election adds alerts of its own
    const leader = await agreedLeader(r, pods);
    const victim = pods.filter((pod) => pod !== leader).pop()!;
    await r.kill(victim);

    // THEN Prometheus' rule evaluation takes KVStoreMembersDown to pending, then firing
    const seen: string[] = [];
    const firing = await waitFor('KVStoreMembersDown firing', async () => {
      const alert = (await storeAlerts()).find((a) => a.labels.alertname === 'KVStoreMembersDown');
      if (alert && seen[seen.length - 1] !== alert.state) seen.push(alert.state);
      return alert?.state === 'firing' ? alert : undefined;
    }, 30_000, 200);
    expect(seen).toEqual(['pending', 'firing']);
    expect(firing.labels).toEqual({ alertname: 'KVStoreMembersDown', severity: 'warning', kvstore: 'orders', namespace: NAMESPACE });
    expect(firing.annotations).toEqual({
      summary: `KVStore ${NAMESPACE}/orders: members down`,
      description: `Only 2 of the 3 members of KVStore ${NAMESPACE}/orders answer Prometheus' scrapes.`,
      runbook_url: 'https://github.com/cdk8s-kvstore/cdk8s-kvstore#alert-kvstoremembersdown',
    });
    expect(await p.targetHealth()).toEqual(Object.fromEntries(pods.map((pod) => [pod, pod === victim ? 'down' : 'up'])));
    // Two of three still make a quorum, with a leader.
    expect((await storeAlerts()).map((a) => a.labels.alertname)).toEqual(['KVStoreMembersDown']);
    expect((await p.query(`sum(up{${SELECTOR}})`))[0].value[1]).toBe('2');
  });
});
