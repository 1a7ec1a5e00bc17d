// The Grafana dashboard of one etcd store: the panels an operator opens first, on the store's own
// series (the `kvstore` and `namespace` labels the monitor's relabeling gives them). Pure data, built
// the same way every time (no timestamps, ids in panel order, a uid derived from the store), so a
// synth that changes nothing changes no byte of it.
import { createHash } from 'crypto';
import { backupCronJobSelector, storeSelector } from './store-alerts';
import type { StoreDefinition } from './store-definition';

/** One query of a panel, in Grafana's Prometheus target fields. */
export interface DashboardTarget {
  readonly refId: string;
  readonly expr: string;
  readonly legendFormat: string;
}

export interface DashboardPanel {
  readonly title: string;
  readonly unit: string;
  readonly targets: readonly DashboardTarget[];
}

/** The data source variable every panel reads from: the user picks their Prometheus. */
const DATASOURCE = { type: 'prometheus', uid: '${datasource}' } as const;

/** The panels of a store's dashboard, before layout. `$__rate_interval` is Grafana's. */
export function dashboardPanels(store: StoreDefinition): DashboardPanel[] {
  const sel = storeSelector(store);
  const rate = (metric: string, extra = '') => `rate(${metric}{${sel}${extra}}[$__rate_interval])`;
  const p99 = (metric: string) => `histogram_quantile(0.99, sum by (pod, le) (${rate(metric)}))`;
  const targets = (...list: Array<[string, string]>): DashboardTarget[] =>
    list.map(([expr, legendFormat], i) => ({ refId: String.fromCharCode(65 + i), expr, legendFormat }));
  return [
    { title: 'Members up', unit: 'none', targets: targets([`sum(up{${sel}})`, 'up'], [`sum(etcd_server_is_learner{${sel}})`, 'learners']) },
    { title: 'Leader', unit: 'none', targets: targets([`max by (pod) (etcd_server_is_leader{${sel}})`, 'leader {{pod}}'], [`min(etcd_server_has_leader{${sel}})`, 'every member has a leader']) },
    { title: 'Leader changes (1h)', unit: 'none', targets: targets([`max(increase(etcd_server_leader_changes_seen_total{${sel}}[1h]))`, 'changes']) },
    {
      title: 'Proposals',
      unit: 'ops',
      targets: targets(
        [`sum(${rate('etcd_server_proposals_committed_total')})`, 'committed'],
        [`sum(${rate('etcd_server_proposals_applied_total')})`, 'applied'],
        [`sum(${rate('etcd_server_proposals_failed_total')})`, 'failed'],
        [`sum(etcd_server_proposals_pending{${sel}})`, 'pending'],
      ),
    },
    {
      title: 'Database size against quota',
      unit: 'bytes',
      targets: targets(
        [`etcd_mvcc_db_total_size_in_bytes{${sel}}`, 'size {{pod}}'],
        [`etcd_mvcc_db_total_size_in_use_in_bytes{${sel}}`, 'in use {{pod}}'],
        [`max(etcd_server_quota_backend_bytes{${sel}})`, 'quota'],
      ),
    },
    {
      title: 'WAL fsync and backend commit (p99)',
      unit: 's',
      targets: targets(
        [p99('etcd_disk_wal_fsync_duration_seconds_bucket'), 'WAL fsync {{pod}}'],
        [p99('etcd_disk_backend_commit_duration_seconds_bucket'), 'backend commit {{pod}}'],
      ),
    },
    {
      title: 'Client traffic (gRPC)',
      unit: 'reqps',
      targets: targets(
        [`sum by (grpc_method) (${rate('grpc_server_started_total', ',grpc_type="unary"')})`, '{{grpc_method}}'],
        [`sum by (grpc_code) (${rate('grpc_server_handled_total', ',grpc_code!="OK"')})`, 'errors {{grpc_code}}'],
      ),
    },
    ...(store.spec.backup ? [{
      title: 'Newest backup age',
      unit: 's',
      targets: targets([`time() - kube_cronjob_status_last_successful_time{${backupCronJobSelector(store)}}`, 'age']),
    }] : []),
  ];
}

/** The dashboard's uid: stable per namespace and store, within Grafana's 40 characters. */
export function dashboardUid(store: StoreDefinition): string {
  return `kvstore-${createHash('sha256').update(`${store.namespace}/${store.spec.name}`).digest('hex').slice(0, 16)}`;
}

/** The dashboard JSON model (Grafana 10+ schema), two panels a row. */
export function storeDashboard(store: StoreDefinition): Record<string, unknown> {
  const panels = dashboardPanels(store).map((p, i) => ({
    id: i + 1,
    type: 'timeseries',
    title: p.title,
    datasource: DATASOURCE,
    gridPos: { h: 8, w: 12, x: (i % 2) * 12, y: Math.floor(i / 2) * 8 },
    fieldConfig: { defaults: { unit: p.unit }, overrides: [] },
    options: { legend: { displayMode: 'list', placement: 'bottom', showLegend: true }, tooltip: { mode: 'multi', sort: 'none' } },
    targets: p.targets.map((t) => ({ datasource: DATASOURCE, refId: t.refId, expr: t.expr, legendFormat: t.legendFormat })),
  }));
  return {
    annotations: { list: [] },
    editable: false,
    graphTooltip: 1,
    panels,
    refresh: '30s',
    schemaVersion: 39,
    tags: ['kvstore', 'etcd'],
    templating: {
      list: [{ name: 'datasource', label: 'Prometheus', type: 'datasource', query: 'prometheus', hide: 0, current: {} }],
    },
    time: { from: 'now-6h', to: 'now' },
    timezone: '',
    title: `KVStore ${store.namespace}/${store.spec.name}`,
    uid: dashboardUid(store),
    version: 1,
  };
}
