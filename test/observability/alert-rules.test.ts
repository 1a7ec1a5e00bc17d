// The synthesized alerting rules, checked by Prometheus' own tools (Debian's promtool): every rule group
// of several stores passes `promtool check rules`, and each alert of a store with backup and reconciler
// Jobs has two `promtool test rules` unit tests generated from the synthesized PrometheusRule: input
// series under which it fires (with its exact labels and rendered annotations) and series under which
// it stays quiet. The rule file is the PrometheusRule's groups byte for byte: nothing is overridden.
// The dashboard's kube-state-metrics query (backup age) is checked here too, with promtool's
// promql_expr_test, since no kube-state-metrics runs in the live test.
import { BackupOptions, Engine } from '../../lib';
import { MonitorKind } from '../../lib/constructs/monitoring';
import { STORE_ALERTS, StoreAlert } from '../../lib/constructs/store-alerts';
import { dashboardPanels } from '../../lib/constructs/store-dashboard';
import { Manifest } from '../support/manifests';
import { findObject, monitoredStore, storeDefinition } from '../support/monitoring-manifests';
import { describeWithPromtool, promtool } from '../support/prometheus';

const BACKUP: BackupOptions = { schedule: '0 */6 * * *', storage: '150Gi' };
/** 1 GiB: a quota whose fractions are easy to write as series values. */
const QUOTA = 2 ** 30;

const ruleFile = (objects: Manifest[]) => ({ groups: findObject(objects, 'PrometheusRule').spec.groups });

describeWithPromtool('promtool check rules', () => {
  const variants: Array<[string, Manifest[]]> = [
    ['defaults', monitoredStore('orders').objects],
    ['backup and reconciler Jobs', monitoredStore('orders', { backup: BACKUP }, {}, { reconcilerJobs: true }).objects],
    ['5 members, a quota, a daily backup, alert labels', monitoredStore('orders', { size: 5, engine: Engine.etcd({ quotaBackendBytes: QUOTA }), backup: { schedule: '@daily', storage: '30Gi' } }, { alertLabels: { team: 'payments' } }).objects],
    ['a ServiceMonitor and a long name', monitoredStore('a'.repeat(45), {}, { monitor: MonitorKind.SERVICE_MONITOR }, { reconcilerJobs: true }).objects],
  ];

  test.each(variants)('%s: every group passes', (_name, objects) => {
    const file = ruleFile(objects);
    const count = file.groups.reduce((n: number, g: any) => n + g.rules.length, 0);
    const r = promtool((dir) => ['check', 'rules', `${dir}/rules.yml`], { 'rules.yml': file });
    expect(r).toEqual({ status: 0, output: expect.stringContaining(`SUCCESS: ${count} rules found`) });
  });

  test('the check can fail: a broken expression is refused', () => {
    const file = JSON.parse(JSON.stringify(ruleFile(variants[0][1])));
    file.groups[0].rules[0] = { ...file.groups[0].rules[0], expr: 'sum(up{' };
    const r = promtool((dir) => ['check', 'rules', `${dir}/rules.yml`], { 'rules.yml': file });
    expect(r.status).not.toBe(0);
    expect(r.output).toMatch(/FAILED/);
  });
});

/** The store every unit test runs against. */
const { objects } = monitoredStore('orders', { engine: Engine.etcd({ quotaBackendBytes: QUOTA }), backup: BACKUP }, {}, { reconcilerJobs: true });
const RULES = ruleFile(objects);
const ALERTS: any[] = RULES.groups.flatMap((g: any) => g.rules);
const STORE = { kvstore: 'orders', namespace: 'shop' };
const sel = (extra: Record<string, string> = {}) => `{${Object.entries({ ...STORE, ...extra }).map(([k, v]) => `${k}="${v}"`).join(',')}}`;
const pods = ['orders-0', 'orders-1', 'orders-2'];

interface Series { readonly series: string; readonly values: string }
/** Input series, when to evaluate, and for the firing case the alerts expected (labels besides the rule's). */
interface Case {
  readonly interval?: string;
  readonly series: Series[];
  readonly evalTime: string;
  readonly alerts?: Array<Record<string, string>>;
  /** How Prometheus renders `{{ $value ... }}` in this case's annotations, when they use it. */
  readonly valueText?: string;
}

const each = (metric: string, values: (pod: string) => string, extra: (pod: string) => Record<string, string> = () => ({})): Series[] =>
  pods.map((pod) => ({ series: `${metric}${sel({ pod, ...extra(pod) })}`, values: values(pod) }));
/** A histogram whose observations all fall at or under `le` (and in no bucket below it), one pod slow when `slowPod`. */
const histogram = (metric: string, bounds: string[], fastLe: string, slowLe: string, slowPod?: string): Series[] =>
  pods.flatMap((pod) => [...bounds, '+Inf'].map((le) => {
    const limit = pod === slowPod ? slowLe : fastLe;
    const counted = le === '+Inf' || Number(le) >= Number(limit);
    return { series: `${metric}${sel({ pod, le })}`, values: counted ? '0+10x30' : '0x30' };
  }));

const cron = { namespace: 'shop', cronjob: 'orders-backup' };
const ksm = (metric: string, labels: Record<string, string>, values: string): Series =>
  ({ series: `${metric}{${Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(',')}}`, values });
const job = { namespace: 'shop', job_name: 'orders-reconcile-0123456789' };

/** For each alert: when it must fire, and when it must not. */
const CASES: Record<StoreAlert, { fires: Case; quiet: Case; firesToo?: Case }> = {
  KVStoreMembersDown: {
    fires: { series: each('up', (p) => (p === 'orders-2' ? '1 1 0x18' : '1x20')), evalTime: '10m', alerts: [{}], valueText: '2' },
    // A member not scraped at all (its pod is gone from discovery) counts as down too.
    firesToo: { series: each('up', () => '1x20').slice(0, 2), evalTime: '10m', alerts: [{}], valueText: '2' },
    quiet: { series: each('up', () => '1x20'), evalTime: '10m' },
  },
  KVStoreQuorumLost: {
    fires: { series: each('up', (p) => (p === 'orders-0' ? '1x10' : '0x10')), evalTime: '5m', alerts: [{}] },
    quiet: { series: each('up', (p) => (p === 'orders-0' ? '0x10' : '1x10')), evalTime: '5m' },
  },
  KVStoreNoLeader: {
    fires: { series: each('etcd_server_has_leader', (p) => (p === 'orders-0' ? '0x10' : '1x10')), evalTime: '5m', alerts: [{ pod: 'orders-0' }] },
    quiet: { series: each('etcd_server_has_leader', () => '1x10'), evalTime: '5m' },
  },
  KVStoreFrequentLeaderChanges: {
    fires: { series: each('etcd_server_leader_changes_seen_total', () => '0+1x30'), evalTime: '25m', alerts: [{}] },
    // One election, long ago.
    quiet: { series: each('etcd_server_leader_changes_seen_total', () => '0 1x30'), evalTime: '25m' },
  },
  KVStoreProposalsFailing: {
    fires: { series: each('etcd_server_proposals_failed_total', (p) => (p === 'orders-1' ? '0+1x40' : '0x40')), evalTime: '30m', alerts: [{}] },
    // A few failures around an election, then none.
    quiet: { series: each('etcd_server_proposals_failed_total', (p) => (p === 'orders-1' ? '0 1 2 3x40' : '0x40')), evalTime: '30m' },
  },
  KVStoreDatabaseNearQuota: {
    fires: { series: each('etcd_mvcc_db_total_size_in_bytes', (p) => `${p === 'orders-1' ? Math.ceil(QUOTA * 0.9) : QUOTA / 2}x30`), evalTime: '15m', alerts: [{ pod: 'orders-1' }], valueText: '90%' },
    quiet: { series: each('etcd_mvcc_db_total_size_in_bytes', () => `${Math.floor(QUOTA * 0.79)}x30`), evalTime: '15m' },
  },
  KVStoreSlowWalFsync: {
    fires: { series: histogram('etcd_disk_wal_fsync_duration_seconds_bucket', ['0.008', '0.5', '1'], '0.008', '1', 'orders-0'), evalTime: '20m', alerts: [{ pod: 'orders-0' }] },
    quiet: { series: histogram('etcd_disk_wal_fsync_duration_seconds_bucket', ['0.008', '0.5', '1'], '0.008', '0.5'), evalTime: '20m' },
  },
  KVStoreSlowBackendCommit: {
    fires: { series: histogram('etcd_disk_backend_commit_duration_seconds_bucket', ['0.008', '0.25', '0.5'], '0.008', '0.5', 'orders-2'), evalTime: '20m', alerts: [{ pod: 'orders-2' }] },
    quiet: { series: histogram('etcd_disk_backend_commit_duration_seconds_bucket', ['0.008', '0.25', '0.5'], '0.008', '0.25'), evalTime: '20m' },
  },
  KVStoreMemberNotPromoted: {
    fires: { series: each('etcd_server_is_learner', (p) => (p === 'orders-2' ? '1x30' : '0x30')), evalTime: '20m', alerts: [{ pod: 'orders-2' }] },
    // Promoted after 3 minutes, as the reconciler does once it caught up.
    quiet: { series: each('etcd_server_is_learner', (p) => (p === 'orders-2' ? '1 1 1 0x27' : '0x30')), evalTime: '20m' },
  },
  KVStoreBackupTooOld: {
    // The CronJob (created at 0) last succeeded at 0; the 6h run failed: at 8h the newest backup is 8h old (limit 7h).
    fires: { series: [ksm('kube_cronjob_status_last_successful_time', cron, '0x500'), ksm('kube_cronjob_created', cron, '0x500')], evalTime: '8h', alerts: [{ cronjob: 'orders-backup' }] },
    // Never succeeded in 8 hours.
    firesToo: { series: [ksm('kube_cronjob_created', cron, '0x500')], evalTime: '8h', alerts: [{ cronjob: 'orders-backup' }] },
    // The 6h run succeeded: at 8h the newest backup is 2h old. (Another store's stale backup is not this one's.)
    quiet: {
      series: [
        ksm('kube_cronjob_status_last_successful_time', cron, '0x360 21600x140'), ksm('kube_cronjob_created', cron, '0x500'),
        ksm('kube_cronjob_status_last_successful_time', { ...cron, cronjob: 'carts-backup' }, '0x500'),
      ],
      evalTime: '8h',
    },
  },
  KVStoreReconcileFailed: {
    // The newest reconciler Job failed (an older one succeeded).
    fires: {
      series: [
        ksm('kube_job_failed', { ...job, condition: 'true' }, '1x10'), ksm('kube_job_created', job, '100x10'),
        ksm('kube_job_failed', { ...job, job_name: 'orders-reconcile-aaaaaaaaaa', condition: 'true' }, '0x10'), ksm('kube_job_created', { ...job, job_name: 'orders-reconcile-aaaaaaaaaa' }, '50x10'),
      ],
      evalTime: '5m',
      alerts: [{ job_name: job.job_name, condition: 'true' }],
    },
    // An older spec's Job failed and the newer one did not; another store's reconciler and this
    // store's backup Job failed: none is this store's newest reconciler Job.
    quiet: {
      series: [
        ksm('kube_job_failed', { ...job, job_name: 'orders-reconcile-aaaaaaaaaa', condition: 'true' }, '1x10'), ksm('kube_job_created', { ...job, job_name: 'orders-reconcile-aaaaaaaaaa' }, '50x10'),
        ksm('kube_job_failed', { ...job, condition: 'true' }, '0x10'), ksm('kube_job_created', job, '100x10'),
        ksm('kube_job_failed', { ...job, job_name: 'carts-reconcile-0123456789', condition: 'true' }, '1x10'), ksm('kube_job_created', { ...job, job_name: 'carts-reconcile-0123456789' }, '100x10'),
        ksm('kube_job_failed', { ...job, job_name: 'orders-backup-29000000', condition: 'true' }, '1x10'), ksm('kube_job_created', { ...job, job_name: 'orders-backup-29000000' }, '100x10'),
      ],
      evalTime: '5m',
    },
  },
  KVStoreReconcileStuck: {
    // Started at 0 and still running at 80m: past 65m, half its 130-minute deadline.
    fires: { series: [ksm('kube_job_status_start_time', job, '0x100'), ksm('kube_job_status_active', job, '1x100')], evalTime: '80m', alerts: [{ job_name: job.job_name }] },
    // Finished after 30 minutes.
    quiet: { series: [ksm('kube_job_status_start_time', job, '0x100'), ksm('kube_job_status_active', job, '1x30 0x70')], evalTime: '80m' },
  },
};

/** An alert's annotations as Prometheus renders them for these labels: `$labels.x` from the labels, `$value` as the case says. */
function rendered(annotations: Record<string, string>, labels: Record<string, string>, c: Case, alert: string): Record<string, string> {
  return Object.fromEntries(Object.entries(annotations).map(([k, v]) => [k, v
    .replace(/\{\{ \$labels\.([a-z_]+) \}\}/g, (_m, name) => {
      if (!(name in labels)) throw new Error(`${alert}: annotation ${k} uses $labels.${name}, which the case's alert does not have`);
      return labels[name];
    })
    .replace(/\{\{ \$value[^}]*\}\}/g, () => {
      if (c.valueText === undefined) throw new Error(`${alert}: annotation ${k} uses $value: give the case a valueText`);
      return c.valueText;
    })]));
}

function unitTest(alert: any, c: Case) {
  return {
    rule_files: ['rules.yml'],
    evaluation_interval: '1m',
    tests: [{
      interval: c.interval ?? '1m',
      input_series: c.series,
      alert_rule_test: [{
        eval_time: c.evalTime,
        alertname: alert.alert,
        exp_alerts: (c.alerts ?? []).map((extra) => {
          const labels = { ...extra, ...alert.labels };
          return { exp_labels: labels, exp_annotations: rendered(alert.annotations, labels, c, alert.alert) };
        }),
      }],
    }],
  };
}

describeWithPromtool('promtool test rules: each alert fires when it should and stays quiet otherwise', () => {
  test('every alert of the store has cases, and every case an alert', () => {
    expect(ALERTS.map((a) => a.alert)).toEqual([...STORE_ALERTS]);
    expect(Object.keys(CASES).sort()).toEqual([...STORE_ALERTS].sort());
  });

  const cases = ALERTS.flatMap((alert) => {
    const c = CASES[alert.alert as StoreAlert];
    return [
      [alert.alert, 'fires', alert, c.fires] as const,
      ...(c.firesToo ? [[alert.alert, 'fires (second way)', alert, c.firesToo] as const] : []),
      [alert.alert, 'stays quiet', alert, c.quiet] as const,
    ];
  });

  test.each(cases)('%s %s', (_name, _kind, alert, c) => {
    const r = promtool((dir) => ['test', 'rules', `${dir}/test.yml`], { 'rules.yml': RULES, 'test.yml': unitTest(alert, c) });
    expect(r).toEqual({ status: 0, output: expect.stringContaining('SUCCESS') });
  });

  test('the unit tests can fail: a quiet case expected to fire is reported', () => {
    const alert = ALERTS.find((a) => a.alert === 'KVStoreMembersDown');
    const r = promtool((dir) => ['test', 'rules', `${dir}/test.yml`], { 'rules.yml': RULES, 'test.yml': unitTest(alert, { ...CASES.KVStoreMembersDown.quiet, alerts: [{}], valueText: '3' }) });
    expect(r.status).not.toBe(0);
    expect(r.output).toMatch(/FAILED/);
  });
});

describeWithPromtool('promtool: the dashboard\'s backup age query', () => {
  test('returns the age of the newest successful backup of this store', () => {
    const panel = dashboardPanels(storeDefinition('orders', { backup: BACKUP })).find((p) => p.title === 'Newest backup age')!;
    const r = promtool((dir) => ['test', 'rules', `${dir}/test.yml`], {
      'rules.yml': { groups: [] },
      'test.yml': {
        rule_files: ['rules.yml'],
        evaluation_interval: '1m',
        tests: [{
          interval: '1m',
          input_series: [
            ksm('kube_cronjob_status_last_successful_time', cron, '0x200'),
            ksm('kube_cronjob_status_last_successful_time', { ...cron, cronjob: 'carts-backup' }, '600x200'),
          ],
          promql_expr_test: [{ expr: panel.targets[0].expr, eval_time: '2h', exp_samples: [{ labels: '{namespace="shop",cronjob="orders-backup"}', value: 7200 }] }],
        }],
      },
    });
    expect(r).toEqual({ status: 0, output: expect.stringContaining('SUCCESS') });
  });
});
