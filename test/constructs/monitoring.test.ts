// The monitoring builder: the metrics port, the PodMonitor or ServiceMonitor, the PrometheusRule, the
// dashboard ConfigMap and the scrape NetworkPolicy, their names and fields; every refusal of bad options;
// the same bytes from the same input. (promtool and a live Prometheus prove the rules in test/observability.)
import { Construct } from 'constructs';
import { BackupOptions, Engine, KVStore, KVStoreProps, SpecError } from '../../lib';
import { longestCronGapSeconds } from '../../lib/constructs/cron-schedule';
import { MetricsOptions, MonitorKind, renderMonitoring } from '../../lib/constructs/monitoring';
import { backupAgeLimitSeconds, STORE_ALERTS } from '../../lib/constructs/store-alerts';
import { storeDashboard } from '../../lib/constructs/store-dashboard';
import { container, Manifest, synth, testChart } from '../support/manifests';
import { findObject, monitoredStore, storeDefinition } from '../support/monitoring-manifests';

const BACKUP: BackupOptions = { schedule: '0 */6 * * *', storage: '150Gi' };
const monitoringObjects = (objects: Manifest[]) =>
  objects.filter((o) => o.apiVersion === 'monitoring.coreos.com/v1' || o.metadata.name.endsWith('-dashboard') || o.metadata.name.endsWith('-metrics'));
const rules = (objects: Manifest[]): any[] => findObject(objects, 'PrometheusRule').spec.groups.flatMap((g: any) => g.rules);
const rule = (objects: Manifest[], alert: string): any => {
  const found = rules(objects).find((r) => r.alert === alert);
  if (!found) throw new Error(`no alert ${alert}`);
  return found;
};

describe('the metrics listener (etcd)', () => {
  test('always on without TLS: the flag, the container port and the headless Service port, all named metrics', () => {
    const { objects } = monitoredStore('orders');
    const c = container(objects);
    expect(c.args).toContain('--listen-metrics-urls=http://$(POD_IP):2381');
    expect(c.ports).toContainEqual({ name: 'metrics', containerPort: 2381, protocol: 'TCP' });
    expect(findObject(objects, 'Service', 'orders-peers').spec.ports).toContainEqual({ name: 'metrics', port: 2381, targetPort: 'metrics' });
    // The client Service stays client-only.
    expect(findObject(objects, 'Service', 'orders').spec.ports).toEqual([{ name: 'client', port: 2379, targetPort: 'client' }]);
  });

  test('the probes without TLS stay on the client port (3.4 keeps /version for liveness)', () => {
    const c = container(monitoredStore('orders', { engine: Engine.etcd({ version: '3.4.23' }) }).objects);
    expect([c.livenessProbe.httpGet, c.readinessProbe.httpGet]).toEqual([{ path: '/version', port: 'client' }, { path: '/health', port: 'client' }]);
  });
});

describe('renderMonitoring defaults', () => {
  test('snapshot', () => {
    expect(monitoringObjects(monitoredStore('orders').objects)).toMatchSnapshot();
  });

  test('a PodMonitor, a PrometheusRule and the scrape NetworkPolicy named after the store; no dashboard', () => {
    const { objects } = monitoredStore('orders');
    expect(monitoringObjects(objects).map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(['PodMonitor/orders', 'PrometheusRule/orders', 'NetworkPolicy/orders-metrics']);
  });

  test('the PodMonitor selects the members, scrapes port metrics every 30s and labels every series with the store', () => {
    const pm = findObject(monitoredStore('orders').objects, 'PodMonitor');
    expect(pm.metadata.namespace).toBe('shop');
    expect(pm.spec).toEqual({
      selector: { matchLabels: { 'app.kubernetes.io/name': 'kvstore', 'app.kubernetes.io/instance': 'orders' } },
      podMetricsEndpoints: [{
        port: 'metrics', path: '/metrics', scheme: 'http', interval: '30s',
        relabelings: [{ action: 'replace', targetLabel: 'kvstore', replacement: 'orders' }],
      }],
    });
  });

  test('labels: the monitor and the rule carry the ones Prometheus selects on, beside the store\'s', () => {
    const { objects } = monitoredStore('orders', {}, { labels: { release: 'kube-prometheus-stack' } });
    for (const kind of ['PodMonitor', 'PrometheusRule']) {
      expect(findObject(objects, kind).metadata.labels).toMatchObject({ 'release': 'kube-prometheus-stack', 'app.kubernetes.io/instance': 'orders' });
    }
  });

  test('interval', () => {
    expect(findObject(monitoredStore('orders', {}, { interval: '15s' }).objects, 'PodMonitor').spec.podMetricsEndpoints[0].interval).toBe('15s');
  });

  test('the alerts of a store without backup or reconciler: one group, each alert naming the store, with its runbook anchor', () => {
    const { objects } = monitoredStore('orders');
    const groups = findObject(objects, 'PrometheusRule').spec.groups;
    expect(groups.map((g: any) => g.name)).toEqual(['kvstore.shop.orders.members']);
    expect(rules(objects).map((r) => [r.alert, r.labels, r.annotations.runbook_url])).toEqual([
      ['KVStoreMembersDown', 'warning'], ['KVStoreQuorumLost', 'critical'], ['KVStoreNoLeader', 'critical'],
      ['KVStoreFrequentLeaderChanges', 'warning'], ['KVStoreProposalsFailing', 'warning'], ['KVStoreDatabaseNearQuota', 'warning'],
      ['KVStoreSlowWalFsync', 'warning'], ['KVStoreSlowBackendCommit', 'warning'], ['KVStoreMemberNotPromoted', 'warning'],
    ].map(([alert, severity]) => [alert, { severity, kvstore: 'orders', namespace: 'shop' }, `https://github.com/cdk8s-kvstore/cdk8s-kvstore#alert-${alert.toLowerCase()}`]));
  });

  test('members down and quorum lost count this store\'s members', () => {
    const { objects } = monitoredStore('orders', { size: 5 });
    expect(rule(objects, 'KVStoreMembersDown').expr).toBe('(sum(up{kvstore="orders",namespace="shop"}) or vector(0)) < 5');
    expect(rule(objects, 'KVStoreQuorumLost').expr).toBe('(sum(up{kvstore="orders",namespace="shop"}) or vector(0)) < 3');
  });

  test('database near quota: against the quota this store was given (the default, half the volume; or the one set)', () => {
    expect(rule(monitoredStore('orders').objects, 'KVStoreDatabaseNearQuota').expr)
      .toBe('etcd_mvcc_db_total_size_in_bytes{kvstore="orders",namespace="shop"} / 5368709120 > 0.8');
    expect(rule(monitoredStore('orders', { engine: Engine.etcd({ quotaBackendBytes: 2 ** 30 }) }).objects, 'KVStoreDatabaseNearQuota').expr)
      .toBe('etcd_mvcc_db_total_size_in_bytes{kvstore="orders",namespace="shop"} / 1073741824 > 0.8');
  });

  test('with backup: a second group; the backup age limit follows the schedule (every 6h: 6h plus an hour)', () => {
    const { objects } = monitoredStore('orders', { backup: BACKUP });
    expect(findObject(objects, 'PrometheusRule').spec.groups.map((g: any) => g.name)).toEqual(['kvstore.shop.orders.members', 'kvstore.shop.orders.jobs']);
    const r = rule(objects, 'KVStoreBackupTooOld');
    expect(r.expr).toBe('(time() - kube_cronjob_status_last_successful_time{namespace="shop",cronjob="orders-backup"} > 25200)'
      + ' or (time() - kube_cronjob_created{namespace="shop",cronjob="orders-backup"} > 25200 unless on (namespace, cronjob) kube_cronjob_status_last_successful_time{namespace="shop",cronjob="orders-backup"})');
    expect(r.annotations.description).toContain('older than 7h (its schedule "0 */6 * * *" runs at least every 6h)');
  });

  test('with reconciler Jobs (GitOps mode): failed and stuck, on the Jobs named after the spec hash', () => {
    const { objects } = monitoredStore('orders', {}, {}, { reconcilerJobs: true });
    const j = 'namespace="shop",job_name=~"orders-reconcile-[0-9a-f]{10}"';
    // Only the newest reconciler Job (Jobs are kept: an older spec's failed one stays Failed).
    expect(rule(objects, 'KVStoreReconcileFailed').expr).toBe(`kube_job_failed{${j},condition="true"} == 1`
      + ` and on (namespace, job_name) (kube_job_created{${j}} == on (namespace) group_left () max by (namespace) (kube_job_created{${j}}))`);
    // Half of a 3-member store's deadline, (3 × 3 + 4) × 600 s.
    expect(rule(objects, 'KVStoreReconcileStuck').expr).toBe('time() - kube_job_status_start_time{namespace="shop",job_name=~"orders-reconcile-[0-9a-f]{10}"} > 3900'
      + ' and on (namespace, job_name) kube_job_status_active{namespace="shop",job_name=~"orders-reconcile-[0-9a-f]{10}"} > 0');
    // A long store name drops "reconcile-" from its Job names, as reconcileJobName() does.
    const long = 'a'.repeat(45);
    expect(rule(monitoredStore(long, {}, {}, { reconcilerJobs: true }).objects, 'KVStoreReconcileFailed').expr).toContain(`job_name=~"${long}-[0-9a-f]{10}"`);
  });

  test('every alert the builder knows is rendered for a store with backup and reconciler Jobs', () => {
    const { objects } = monitoredStore('orders', { backup: BACKUP }, {}, { reconcilerJobs: true });
    expect(rules(objects).map((r) => r.alert)).toEqual([...STORE_ALERTS]);
  });

  test('alertLabels and runbookBaseUrl', () => {
    const r = rule(monitoredStore('orders', {}, { alertLabels: { team: 'payments' }, runbookBaseUrl: 'https://wiki.example.com/kvstore' }).objects, 'KVStoreNoLeader');
    expect(r.labels).toEqual({ severity: 'critical', team: 'payments', kvstore: 'orders', namespace: 'shop' });
    expect(r.annotations.runbook_url).toBe('https://wiki.example.com/kvstore#alert-kvstorenoleader');
  });

  test('alerts: false renders no PrometheusRule', () => {
    expect(monitoredStore('orders', {}, { alerts: false }).objects.some((o) => o.kind === 'PrometheusRule')).toBe(false);
  });

  test('ServiceMonitor: the headless Service\'s metrics port', () => {
    const { objects } = monitoredStore('orders', {}, { monitor: MonitorKind.SERVICE_MONITOR });
    expect(objects.some((o) => o.kind === 'PodMonitor')).toBe(false);
    const sm = findObject(objects, 'ServiceMonitor', 'orders');
    expect(sm.spec.endpoints).toEqual([{ port: 'metrics', path: '/metrics', scheme: 'http', interval: '30s', relabelings: [{ action: 'replace', targetLabel: 'kvstore', replacement: 'orders' }] }]);
    // Of the Services its selector matches, only the headless one has that port.
    const services = objects.filter((o) => o.kind === 'Service' && Object.entries(sm.spec.selector.matchLabels).every(([k, v]) => o.metadata.labels?.[k] === v));
    expect(services.filter((s) => s.spec.ports.some((p: any) => p.name === 'metrics')).map((s) => s.metadata.name)).toEqual(['orders-peers']);
  });
});

describe('dashboard', () => {
  test('a ConfigMap labelled for Grafana\'s sidecar, holding the dashboard JSON', () => {
    const cm = findObject(monitoredStore('orders', {}, { dashboard: true }).objects, 'ConfigMap', 'orders-dashboard');
    expect(cm.metadata.labels).toMatchObject({ 'grafana_dashboard': '1', 'app.kubernetes.io/instance': 'orders' });
    expect(Object.keys(cm.data)).toEqual(['kvstore-shop-orders.json']);
    const dashboard = JSON.parse(cm.data['kvstore-shop-orders.json']);
    expect(dashboard.title).toBe('KVStore shop/orders');
    expect(dashboard.uid).toMatch(/^kvstore-[0-9a-f]{16}$/);
    expect(dashboard.panels.map((p: any) => p.title)).toEqual([
      'Members up', 'Leader', 'Leader changes (1h)', 'Proposals', 'Database size against quota', 'WAL fsync and backend commit (p99)', 'Client traffic (gRPC)',
    ]);
    for (const p of dashboard.panels) {
      expect(p.targets.length).toBeGreaterThan(0);
      for (const t of p.targets) expect(t.expr).toMatch(/kvstore="orders",namespace="shop"|namespace="shop",cronjob="orders-backup"/);
    }
  });

  test('with backup: the newest backup\'s age', () => {
    const panels = storeDashboard(storeDefinition('orders', { backup: BACKUP })).panels as any[];
    expect(panels[panels.length - 1]).toMatchObject({ title: 'Newest backup age', targets: [{ expr: 'time() - kube_cronjob_status_last_successful_time{namespace="shop",cronjob="orders-backup"}' }] });
  });

  test('dashboardLabels replace the default label', () => {
    const cm = findObject(monitoredStore('orders', {}, { dashboard: true, dashboardLabels: { grafana: 'dashboards' } }).objects, 'ConfigMap', 'orders-dashboard');
    expect(cm.metadata.labels?.grafana).toBe('dashboards');
    expect(cm.metadata.labels?.grafana_dashboard).toBeUndefined();
  });

  test('the uid is the store\'s: another namespace or name, another uid', () => {
    const uid = (name: string, ns: string) => storeDashboard(storeDefinition(name, {}, ns)).uid;
    expect(new Set([uid('orders', 'shop'), uid('orders', 'billing'), uid('carts', 'shop')]).size).toBe(3);
    expect(uid('orders', 'shop')).toBe(uid('orders', 'shop'));
  });
});

describe('scrape NetworkPolicy', () => {
  test('admits the Prometheus Operator\'s Prometheus pods, from any namespace, to the metrics port only', () => {
    expect(findObject(monitoredStore('orders').objects, 'NetworkPolicy', 'orders-metrics').spec).toEqual({
      podSelector: { matchLabels: { 'app.kubernetes.io/name': 'kvstore', 'app.kubernetes.io/instance': 'orders' } },
      policyTypes: ['Ingress'],
      ingress: [{ from: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } }, namespaceSelector: {} }], ports: [{ protocol: 'TCP', port: 2381 }] }],
    });
  });

  test('prometheusPodLabels and prometheusNamespaceLabels', () => {
    const np = findObject(monitoredStore('orders', {}, { prometheusPodLabels: { app: 'prom' }, prometheusNamespaceLabels: { 'kubernetes.io/metadata.name': 'monitoring' } }).objects, 'NetworkPolicy', 'orders-metrics');
    expect(np.spec.ingress[0].from).toEqual([{ podSelector: { matchLabels: { app: 'prom' } }, namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }]);
  });

  test('none without the store\'s NetworkPolicy', () => {
    expect(monitoredStore('orders', { networkPolicy: false }).objects.some((o) => o.kind === 'NetworkPolicy')).toBe(false);
  });
});

describe('determinism', () => {
  test('the same store and options give the same bytes, dashboard included', () => {
    const build = () => JSON.stringify(monitoringObjects(monitoredStore('orders', { backup: BACKUP }, { dashboard: true, labels: { release: 'prom' } }, { reconcilerJobs: true }).objects));
    const first = build();
    expect(build()).toBe(first);
    expect(JSON.stringify(storeDashboard(storeDefinition('orders')))).toBe(JSON.stringify(storeDashboard(storeDefinition('orders'))));
  });
});

describe('refusals: metricsIssues, raised by renderMonitoring as a SpecError', () => {
  // null: a chart without a namespace.
  const render = (metrics: MetricsOptions, props = {}, namespace: string | null = 'shop') => () =>
    renderMonitoring(new Construct(testChart(namespace ?? undefined), 'm'), storeDefinition('orders', props, namespace), metrics);
  const custom = { engine: Engine.custom({ clientPort: 6379 }), containerImage: 'redis:7.2' };

  test.each<[string, MetricsOptions, object, string | null, RegExp]>([
    ['a ServiceMonitor with no metrics port on the headless Service', { monitor: MonitorKind.SERVICE_MONITOR }, custom, 'shop',
      /^KVStore 'orders': metrics\.monitor must be left out \(no metrics\) with the custom engine, got "ServiceMonitor" \(a ServiceMonitor scrapes the port named metrics of the headless Service orders-peers, which has only client\)$/],
    ['a PodMonitor with no metrics container port', {}, custom, 'shop',
      /metrics\.monitor must be left out \(no metrics\) with the custom engine, got "PodMonitor" \(a PodMonitor scrapes the container port named metrics, and the custom engine's container has only client\)/],
    ['an unknown monitor kind', { monitor: 'Probe' as MonitorKind }, {}, 'shop', /metrics\.monitor must be PodMonitor or ServiceMonitor, got "Probe"/],
    ['no namespace', {}, {}, null, /metrics must be used in a chart with a namespace, got \{\} \(the alerts and the dashboard select the store's series by their namespace label\)/],
    ['a label key that is not one', { labels: { 'bad key': 'x' } }, {}, 'shop', /metrics\.labels\["bad key"\] must be a label key .*, got "bad key"/],
    ['a label value that is not one', { labels: { release: 'kube prometheus' } }, {}, 'shop', /metrics\.labels\["release"\] must be a label value .*, got "kube prometheus"/],
    ['a dashboard label value that is not one', { dashboard: true, dashboardLabels: { grafana_dashboard: '-1-' } }, {}, 'shop', /metrics\.dashboardLabels\["grafana_dashboard"\] must be a label value/],
    ['dashboardLabels without a dashboard', { dashboardLabels: { grafana_dashboard: '1' } }, {}, 'shop', /metrics\.dashboardLabels must be left out unless dashboard is true, got \{"grafana_dashboard":"1"\} \(there is no dashboard ConfigMap to label\)/],
    ['no dashboard label at all', { dashboard: true, dashboardLabels: {} }, {}, 'shop', /metrics\.dashboardLabels must be at least one label, got \{\} \(Grafana's sidecar finds dashboards by label\)/],
    ['a Prometheus pod label that is not one', { prometheusPodLabels: { 'app.kubernetes.io/name': 'prometheus/' } }, {}, 'shop', /metrics\.prometheusPodLabels\["app\.kubernetes\.io\/name"\] must be a label value/],
    ['a namespace label key that is not one', { prometheusNamespaceLabels: { '-x': 'y' } }, {}, 'shop', /metrics\.prometheusNamespaceLabels\["-x"\] must be a label key/],
    ['an interval without a unit', { interval: '30' }, {}, 'shop', /metrics\.interval must be a Prometheus duration other than zero, such as 30s, 1m or 1m30s, got "30"/],
    ['a zero interval', { interval: '0s' }, {}, 'shop', /metrics\.interval must be a Prometheus duration other than zero.*got "0s"/],
    ['an alert label the alerts set themselves', { alertLabels: { severity: 'page' } }, {}, 'shop', /metrics\.alertLabels\["severity"\] must be a label other than kvstore, namespace, severity, got "severity" \(the alerts set those themselves/],
    ['an alert label name Prometheus refuses', { alertLabels: { 'team-name': 'x' } }, {}, 'shop', /metrics\.alertLabels\["team-name"\] must be a Prometheus label name/],
    ['an empty alert label value', { alertLabels: { team: '' } }, {}, 'shop', /metrics\.alertLabels\["team"\] must be a non-empty string, got ""/],
    ['a runbook base that is not http(s)', { runbookBaseUrl: 'ftp://docs' }, {}, 'shop', /metrics\.runbookBaseUrl must be an http\(s\) URL without spaces or "#"/],
    ['a runbook base with its own anchor', { runbookBaseUrl: 'https://docs.example.com/#runbooks' }, {}, 'shop', /metrics\.runbookBaseUrl must be an http\(s\) URL/],
    ['a backup schedule that (almost) never runs, with alerts', {}, { backup: { schedule: '0 0 30 2 *', storage: '1Gi' } }, 'shop',
      /backup\.schedule must be a schedule that runs at least twice within two years with metrics alerts, got "0 0 30 2 \*"/],
  ])('%s', (_what, metrics, props, namespace, message) => {
    expect(render(metrics, props, namespace)).toThrow(SpecError);
    expect(render(metrics, props, namespace)).toThrow(message);
  });

  test('every issue at once, one line each', () => {
    expect(render({ interval: 'soon', labels: { 'a b': 'c' }, runbookBaseUrl: 'x' })).toThrow(
      /^KVStore 'orders': metrics\.labels\["a b"\] must be .*\nKVStore 'orders': metrics\.interval must be .*\nKVStore 'orders': metrics\.runbookBaseUrl must be .*$/);
  });

  test('the backup schedule is fine without alerts', () => {
    expect(render({ alerts: false }, { backup: { schedule: '0 0 30 2 *', storage: '1Gi' } })).not.toThrow();
  });
});

describe('backup schedule arithmetic', () => {
  test.each([
    ['@hourly', 3600], ['@daily', 86400], ['@weekly', 7 * 86400], ['*/5 * * * *', 300], ['0 */6 * * *', 6 * 3600],
    // Weekdays only: Friday to Monday.
    ['30 2 * * 1-5', 3 * 86400],
    // The 31st: August to October.
    ['0 0 31 * *', 61 * 86400],
    // Day of month and day of week both set: either runs (robfig/cron, as Kubernetes reads it).
    ['0 0 1,15 * 1', 7 * 86400],
  ])('%s runs at least every %i s', (schedule, seconds) => {
    expect(longestCronGapSeconds(schedule)).toBe(seconds);
  });

  test.each(['0 0 30 2 *', '0 0 * * 7', '61 * * * *', 'soon'])('%s: no interval', (schedule) => {
    expect(longestCronGapSeconds(schedule)).toBeUndefined();
  });

  test('the age limit: the longest wait plus the wait again, at least 15 minutes, at most an hour', () => {
    expect(backupAgeLimitSeconds('*/5 * * * *')).toBe(300 + 900);
    expect(backupAgeLimitSeconds('*/30 * * * *')).toBe(1800 + 1800);
    expect(backupAgeLimitSeconds('@daily')).toBe(86400 + 3600);
  });
});

describe('KVStore metrics prop', () => {
  const kinds = (objects: Manifest[]) => objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
  const withMetrics = (props: KVStoreProps, namespace = 'shop') => {
    const chart = testChart(namespace);
    new KVStore(chart, 'orders', props);
    return synth(chart);
  };

  test('direct mode: the store\'s objects plus its monitor, rule, dashboard and scrape policy, the same as the builder renders', () => {
    const objects = withMetrics({ metrics: { dashboard: true, labels: { release: 'kps' } } });
    expect(kinds(objects)).toEqual(expect.arrayContaining(['ConfigMap/orders-dashboard', 'NetworkPolicy/orders-metrics', 'PodMonitor/orders', 'PrometheusRule/orders', 'StatefulSet/orders']));
    const built = monitoredStore('orders', {}, { dashboard: true, labels: { release: 'kps' } }).objects;
    expect(findObject(objects, 'PrometheusRule')).toEqual(findObject(built, 'PrometheusRule'));
    expect(findObject(objects, 'PodMonitor').metadata.labels?.release).toBe('kps');
  });

  test('GitOps mode: in the chart beside the reconciler bundle, with the reconciler alerts', () => {
    const objects = withMetrics({ reconciler: {}, metrics: {} });
    expect(kinds(objects)).toEqual(expect.arrayContaining(['PodMonitor/orders', 'PrometheusRule/orders', 'NetworkPolicy/orders-metrics']));
    expect(kinds(objects)).not.toContain('StatefulSet/orders');
    expect(rules(objects).map((r) => r.alert)).toEqual(expect.arrayContaining(['KVStoreReconcileFailed', 'KVStoreReconcileStuck']));
  });

  test('without metrics nothing of it is rendered', () => {
    expect(withMetrics({}).filter((o) => o.apiVersion === 'monitoring.coreos.com/v1' || o.metadata.name === 'orders-metrics')).toEqual([]);
  });

  test('bad options fail at the KVStore, naming the store, the field and the value', () => {
    expect(() => withMetrics({ metrics: { labels: { 'bad key!': 'x' } } })).toThrow(/KVStore 'orders': metrics\.labels\["bad key!"\] must be a label key .*got "bad key!"/);
    expect(() => withMetrics({ metrics: { interval: '0s' } })).toThrow(/KVStore 'orders': metrics\.interval must be a Prometheus duration other than zero/);
  });

  test('a store whose object another store\'s monitoring creates fails at the second, naming both', () => {
    const chart = testChart('shop');
    new KVStore(chart, 'orders', { metrics: {} });
    // The store orders-metrics has its own NetworkPolicy orders-metrics: orders' scrape policy.
    expect(() => new KVStore(chart, 'orders-metrics', {})).toThrow(/KVStore 'orders' \(test\/orders\) and KVStore 'orders-metrics' \(test\/orders-metrics\) both synthesize NetworkPolicy shop\/orders-metrics/);
  });
});
