// The alerting rules of one etcd store, as Prometheus rule groups: each names the store in its labels
// and points to its runbook in the README. Pure data; monitoring.ts puts them in a PrometheusRule.
// Every etcd metric used exists from etcd 3.4 on (checked against 3.4.23's /metrics); the backup and
// reconciler rules read kube-state-metrics (v2), which kube-prometheus-stack runs.
import { backupCronJobName, reconcileJobName } from '../model/names';
import { longestCronGapSeconds } from './cron-schedule';
import { reconcileJobDeadlineSeconds } from './reconciler-bundle';
import type { StoreDefinition } from './store-definition';

/** Where the runbooks live unless told otherwise: the README, one section per alert. */
export const DEFAULT_RUNBOOK_BASE_URL = 'https://github.com/cdk8s-kvstore/cdk8s-kvstore';

/** The labels every alert sets itself: they name the store and rank the alert. */
export const RESERVED_ALERT_LABELS = ['kvstore', 'namespace', 'severity'] as const;

/** One alerting rule, in Prometheus' rule-file field names. */
export interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  readonly for: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
}

export interface AlertGroup {
  readonly name: string;
  readonly rules: readonly AlertRule[];
}

export interface AlertOptions {
  /** Labels added to every alert (routing: team, …); none of RESERVED_ALERT_LABELS. */
  readonly alertLabels?: Readonly<Record<string, string>>;
  /** @default DEFAULT_RUNBOOK_BASE_URL */
  readonly runbookBaseUrl?: string;
  /** GitOps mode: the store's reconciler Jobs run in its namespace, and their failures alert. */
  readonly reconcilerJobs?: boolean;
}

/** The README anchor of an alert's runbook: GitHub's anchor of the heading `Alert: <name>`. */
export function runbookUrl(alert: string, base = DEFAULT_RUNBOOK_BASE_URL): string {
  return `${base}#alert-${alert.toLowerCase()}`;
}

/** The PromQL label matchers of the store's own series: every scraped series carries both. */
export function storeSelector(store: StoreDefinition): string {
  return `kvstore="${store.spec.name}",namespace="${store.namespace}"`;
}

/** The backup CronJob's series in kube-state-metrics. */
export function backupCronJobSelector(store: StoreDefinition): string {
  return `namespace="${store.namespace}",cronjob="${backupCronJobName(store.names)}"`;
}

/** The store's GitOps reconciler Jobs in kube-state-metrics: named after the spec's hash (10 hex digits). */
export function reconcileJobSelector(store: StoreDefinition): string {
  const sample = reconcileJobName(store.spec.name, '#'.repeat(10));
  return `namespace="${store.namespace}",job_name=~"${sample.replace('#'.repeat(10), '[0-9a-f]{10}')}"`;
}

/**
 * How old the newest successful backup may get: the longest wait between two scheduled runs, plus a
 * grace for the run itself (the wait again, at least 15 minutes, at most an hour). One failed run is
 * enough to pass it. Undefined when the schedule runs less than twice in two years.
 */
export function backupAgeLimitSeconds(schedule: string): number | undefined {
  const gap = longestCronGapSeconds(schedule);
  if (gap === undefined) return undefined;
  return gap + Math.min(3600, Math.max(900, gap));
}

/** A byte count as people read quotas: in GiB or MiB when whole, else in bytes. */
function showBytes(bytes: number): string {
  if (bytes % 2 ** 30 === 0) return `${bytes / 2 ** 30} GiB`;
  if (bytes % 2 ** 20 === 0) return `${bytes / 2 ** 20} MiB`;
  return `${bytes} bytes`;
}

/** A duration in Prometheus' notation, in whole hours, minutes or seconds. */
function duration(seconds: number): string {
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  return seconds % 60 === 0 ? `${seconds / 60}m` : `${seconds}s`;
}

/** Every alert a store can have, in the order they are rendered. */
export const STORE_ALERTS = [
  'KVStoreMembersDown', 'KVStoreQuorumLost', 'KVStoreNoLeader', 'KVStoreFrequentLeaderChanges',
  'KVStoreProposalsFailing', 'KVStoreDatabaseNearQuota', 'KVStoreSlowWalFsync', 'KVStoreSlowBackendCommit',
  'KVStoreMemberNotPromoted', 'KVStoreBackupTooOld', 'KVStoreReconcileFailed', 'KVStoreReconcileStuck',
] as const;
export type StoreAlert = typeof STORE_ALERTS[number];

/**
 * The store's rule groups: the members' own health (from their metrics), then its Jobs' (from
 * kube-state-metrics) when it has a backup schedule or GitOps reconciler Jobs. The quota, member count
 * and thresholds are this store's, written into the expressions at synthesis.
 */
export function storeAlertGroups(store: StoreDefinition, quotaBackendBytes: number, options: AlertOptions = {}): AlertGroup[] {
  const { spec } = store;
  const sel = storeSelector(store);
  const who = `KVStore ${store.namespace}/${spec.name}`;
  const rule = (alert: StoreAlert, severity: 'warning' | 'critical', forDuration: string, expr: string, summary: string, description: string): AlertRule => ({
    alert,
    expr,
    for: forDuration,
    labels: { severity, ...options.alertLabels, kvstore: spec.name, namespace: store.namespace! },
    annotations: { summary, description, runbook_url: runbookUrl(alert, options.runbookBaseUrl) },
  });
  const quorum = Math.floor(spec.size / 2) + 1;
  const up = `(sum(up{${sel}}) or vector(0))`;
  const p99 = (metric: string) => `histogram_quantile(0.99, sum by (pod, le) (rate(${metric}{${sel}}[5m])))`;
  const members = [
    rule('KVStoreMembersDown', 'warning', '5m', `${up} < ${spec.size}`,
      `${who}: members down`,
      `Only {{ $value }} of the ${spec.size} members of ${who} answer Prometheus' scrapes.`),
    rule('KVStoreQuorumLost', 'critical', '1m', `${up} < ${quorum}`,
      `${who}: quorum lost`,
      `Fewer than ${quorum} of the ${spec.size} members of ${who} answer Prometheus' scrapes: the store cannot accept writes.`),
    rule('KVStoreNoLeader', 'critical', '1m', `etcd_server_has_leader{${sel}} == 0`,
      `${who}: a member has no leader`,
      `Member {{ $labels.pod }} of ${who} sees no leader: it serves no writes and no linearizable reads.`),
    rule('KVStoreFrequentLeaderChanges', 'warning', '5m', `max(increase(etcd_server_leader_changes_seen_total{${sel}}[15m])) >= 4`,
      `${who}: frequent leader changes`,
      `The members of ${who} saw 4 or more leader changes in 15 minutes.`),
    rule('KVStoreProposalsFailing', 'warning', '10m', `sum(increase(etcd_server_proposals_failed_total{${sel}}[15m])) > 5`,
      `${who}: proposals failing`,
      `More than 5 proposals failed in 15 minutes in ${who}.`),
    rule('KVStoreDatabaseNearQuota', 'warning', '10m', `etcd_mvcc_db_total_size_in_bytes{${sel}} / ${quotaBackendBytes} > 0.8`,
      `${who}: database close to its quota`,
      `The database of member {{ $labels.pod }} of ${who} is at {{ $value | humanizePercentage }} of its ${showBytes(quotaBackendBytes)} quota; at the quota etcd raises a NOSPACE alarm and refuses writes.`),
    rule('KVStoreSlowWalFsync', 'warning', '10m', `${p99('etcd_disk_wal_fsync_duration_seconds_bucket')} > 0.5`,
      `${who}: slow WAL fsync`,
      `The 99th percentile of WAL fsync on member {{ $labels.pod }} of ${who} is over 0.5 s.`),
    rule('KVStoreSlowBackendCommit', 'warning', '10m', `${p99('etcd_disk_backend_commit_duration_seconds_bucket')} > 0.25`,
      `${who}: slow backend commits`,
      `The 99th percentile of backend commits on member {{ $labels.pod }} of ${who} is over 0.25 s.`),
    rule('KVStoreMemberNotPromoted', 'warning', '15m', `etcd_server_is_learner{${sel}} == 1`,
      `${who}: a member not promoted`,
      `Member {{ $labels.pod }} of ${who} has been a learner (a non-voting member) for 15 minutes.`),
  ];
  const jobs: AlertRule[] = [];
  if (spec.backup) {
    const limit = backupAgeLimitSeconds(spec.backup.schedule)!;
    const cron = backupCronJobSelector(store);
    const lastSuccess = `kube_cronjob_status_last_successful_time{${cron}}`;
    jobs.push(rule('KVStoreBackupTooOld', 'warning', '5m',
      `(time() - ${lastSuccess} > ${limit}) or (time() - kube_cronjob_created{${cron}} > ${limit} unless on (namespace, cronjob) ${lastSuccess})`,
      `${who}: newest backup too old`,
      `The newest successful backup of ${who} is older than ${duration(limit)} (its schedule "${spec.backup.schedule}" runs at least every ${duration(longestCronGapSeconds(spec.backup.schedule)!)}), or the CronJob {{ $labels.cronjob }} never succeeded in that time.`));
  }
  if (options.reconcilerJobs) {
    const job = reconcileJobSelector(store);
    const stuckAfter = reconcileJobDeadlineSeconds(spec.size) / 2;
    jobs.push(
      // Only the newest reconciler Job counts: Jobs are named after the spec and kept (no TTL), so an
      // older spec's failed Job stays Failed after a newer one succeeded.
      rule('KVStoreReconcileFailed', 'critical', '1m',
        `kube_job_failed{${job},condition="true"} == 1 and on (namespace, job_name) (kube_job_created{${job}} == on (namespace) group_left () max by (namespace) (kube_job_created{${job}}))`,
        `${who}: reconciler Job failed`,
        `The reconciler Job {{ $labels.job_name }} of ${who}, its newest, failed (every retry): the store is not as its spec says.`),
      rule('KVStoreReconcileStuck', 'warning', '5m',
        `time() - kube_job_status_start_time{${job}} > ${stuckAfter} and on (namespace, job_name) kube_job_status_active{${job}} > 0`,
        `${who}: reconciler Job stuck`,
        `The reconciler Job {{ $labels.job_name }} of ${who} has been running for more than ${duration(stuckAfter)}, half its deadline.`),
    );
  }
  const base = `kvstore.${store.namespace}.${spec.name}`;
  return [{ name: `${base}.members`, rules: members }, ...(jobs.length ? [{ name: `${base}.jobs`, rules: jobs }] : [])];
}
