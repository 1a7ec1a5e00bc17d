// A store's monitoring objects for the Prometheus Operator and Grafana: a PodMonitor or ServiceMonitor
// scraping the members' `metrics` port, a PrometheusRule with the store's alerts, an opt-in dashboard
// ConfigMap for Grafana's sidecar, and with the store's NetworkPolicy a second one letting Prometheus
// reach that port. metricsIssues() says what is wrong with the options; renderMonitoring() renders.
import type { IPodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor';
import type { IPrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule';
import type { IServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import { Construct } from 'constructs';
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { EtcdEngine } from '../engines/etcd';
import { SpecError, SpecIssue } from '../model/issues';
import type { StoreObjectRef } from '../model/names';
import { isLabelKey, isLabelValue } from '../model/schema';
import { kubeObject } from './kube';
import { enginePorts } from './stateful-set';
import { backupAgeLimitSeconds, RESERVED_ALERT_LABELS, storeAlertGroups } from './store-alerts';
import { storeDashboard } from './store-dashboard';
import type { StoreDefinition } from './store-definition';

/** Which Prometheus Operator object scrapes the members. */
export enum MonitorKind {
  /** A PodMonitor: each member pod's `metrics` container port. */
  POD_MONITOR = 'PodMonitor',
  /**
   * A ServiceMonitor: the headless Service's `metrics` port (it lists members that are not ready
   * too, so a member that stopped answering shows as down rather than vanishing).
   */
  SERVICE_MONITOR = 'ServiceMonitor',
}

/** Options of a store's monitoring. Everything has a default. */
export interface MetricsOptions {
  /**
   * The object that tells the Prometheus Operator to scrape the members.
   * @see https://prometheus-operator.dev/docs/developer/getting-started/
   * @default MonitorKind.POD_MONITOR
   */
  readonly monitor?: MonitorKind;
  /**
   * Labels on the monitor and the PrometheusRule, besides the store's own: what your Prometheus
   * selects them by (kube-prometheus-stack: `{ release: '<its Helm release>' }` unless its
   * `*SelectorNilUsesHelmValues` are false).
   * @default - the store's labels only
   */
  readonly labels?: { [key: string]: string };
  /**
   * How often Prometheus scrapes each member, as a Prometheus duration.
   * @default '30s'
   */
  readonly interval?: string;
  /**
   * Whether to render the store's PrometheusRule (its alerts, each with a runbook link).
   * @default true
   */
  readonly alerts?: boolean;
  /**
   * Labels added to every alert, for Alertmanager's routing (`team`, …); `kvstore`, `namespace` and
   * `severity` are the alerts' own.
   * @default - none
   */
  readonly alertLabels?: { [key: string]: string };
  /**
   * Where the alerts' `runbook_url` annotations point: `<base>#alert-<alert name in lowercase>`.
   * @default 'https://github.com/cdk8s-kvstore/cdk8s-kvstore'
   */
  readonly runbookBaseUrl?: string;
  /**
   * Whether to render the store's Grafana dashboard, as a ConfigMap Grafana's dashboard sidecar loads.
   * @see https://github.com/grafana/helm-charts/tree/main/charts/grafana#sidecar-for-dashboards
   * @default false
   */
  readonly dashboard?: boolean;
  /**
   * Labels of the dashboard ConfigMap: what Grafana's sidecar looks for (its `sidecar.dashboards.label`
   * and `labelValue`). Only with `dashboard`.
   * @default { grafana_dashboard: '1' }
   */
  readonly dashboardLabels?: { [key: string]: string };
  /**
   * With the store's NetworkPolicy: the labels of the Prometheus pods admitted to the members' metrics
   * port (nothing else is served there: health and metrics, never keys).
   * @default { 'app.kubernetes.io/name': 'prometheus' } (the Prometheus Operator's pods)
   */
  readonly prometheusPodLabels?: { [key: string]: string };
  /**
   * With the store's NetworkPolicy: the labels of the namespaces those Prometheus pods run in.
   * @default - any namespace
   */
  readonly prometheusNamespaceLabels?: { [key: string]: string };
}

/** What, besides the options, the construct knows about the store. */
export interface MonitoringContext {
  /**
   * GitOps mode: the store's reconciler Jobs run in its namespace, and alerts watch them.
   * @default false
   */
  readonly reconcilerJobs?: boolean;
}

/** Names of the monitoring objects of a store: contract, like the store's own names. */
export interface MonitoringNames {
  /** The PodMonitor or ServiceMonitor. */
  readonly monitor: string;
  readonly prometheusRule: string;
  /** The dashboard ConfigMap. */
  readonly dashboard: string;
  /** With the store's NetworkPolicy: the one admitting Prometheus to the metrics port. */
  readonly networkPolicy: string;
}

export function monitoringNames(storeName: string): MonitoringNames {
  return { monitor: storeName, prometheusRule: storeName, dashboard: `${storeName}-dashboard`, networkPolicy: `${storeName}-metrics` };
}

const DEFAULT_INTERVAL = '30s';
const DEFAULT_DASHBOARD_LABELS = { grafana_dashboard: '1' };
const DEFAULT_PROMETHEUS_POD_LABELS = { 'app.kubernetes.io/name': 'prometheus' };
/** The Prometheus Operator's duration pattern (its CRDs'), without the empty string. */
const DURATION_PATTERN = /^(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$/;
const PROMETHEUS_LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const LABEL_MAPS = ['labels', 'dashboardLabels', 'prometheusPodLabels', 'prometheusNamespaceLabels'] as const;

function labelIssues(field: string, labels: unknown): SpecIssue[] {
  if (labels === undefined) return [];
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels)) return [{ field, value: labels, allowed: 'a map of Kubernetes labels' }];
  return Object.entries(labels).flatMap(([key, value]): SpecIssue[] => [
    ...(isLabelKey(key) ? [] : [{ field: `${field}[${JSON.stringify(key)}]`, value: key, allowed: 'a label key (an optional DNS prefix and "/", then up to 63 characters of [A-Za-z0-9-_.], alphanumeric at both ends)' }]),
    ...(typeof value === 'string' && isLabelValue(value) ? [] : [{ field: `${field}[${JSON.stringify(key)}]`, value, allowed: 'a label value (up to 63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric)' }]),
  ]);
}

/** Everything wrong with a store's metrics options, in the user's vocabulary (fields under `metrics`). */
export function metricsIssues(store: StoreDefinition, options: MetricsOptions): SpecIssue[] {
  const issues: SpecIssue[] = [];
  const monitor = options.monitor ?? MonitorKind.POD_MONITOR;
  if (!Object.values(MonitorKind).includes(monitor)) {
    issues.push({ field: 'metrics.monitor', value: monitor, allowed: 'PodMonitor or ServiceMonitor' });
  } else if (!enginePorts(store).some((p) => p.name === 'metrics')) {
    const ports = enginePorts(store).map((p) => p.name).join(' and ');
    const where = monitor === MonitorKind.SERVICE_MONITOR
      ? `the port named metrics of the headless Service ${store.names.headlessService}, which has only ${ports}`
      : `the container port named metrics, and the ${store.engine.spec.kind} engine's container has only ${ports}`;
    issues.push({ field: 'metrics.monitor', value: monitor, allowed: `left out (no metrics) with the ${store.engine.spec.kind} engine`, reason: `a ${monitor} scrapes ${where}` });
  } else if (!(store.engine instanceof EtcdEngine)) {
    issues.push({ field: 'metrics', value: options, allowed: 'left out with the custom engine', reason: 'the alerts and the dashboard read etcd\'s metrics' });
  }
  if (!store.namespace) {
    issues.push({ field: 'metrics', value: options, allowed: 'used in a chart with a namespace', reason: 'the alerts and the dashboard select the store\'s series by their namespace label' });
  }
  for (const field of LABEL_MAPS) issues.push(...labelIssues(`metrics.${field}`, options[field]));
  if (options.dashboardLabels !== undefined && !options.dashboard) {
    issues.push({ field: 'metrics.dashboardLabels', value: options.dashboardLabels, allowed: 'left out unless dashboard is true', reason: 'there is no dashboard ConfigMap to label' });
  }
  if (options.dashboard && options.dashboardLabels !== undefined && Object.keys(options.dashboardLabels).length === 0) {
    issues.push({ field: 'metrics.dashboardLabels', value: options.dashboardLabels, allowed: 'at least one label', reason: 'Grafana\'s sidecar finds dashboards by label' });
  }
  if (options.interval !== undefined && (typeof options.interval !== 'string' || !DURATION_PATTERN.test(options.interval) || !/[1-9]/.test(options.interval))) {
    issues.push({ field: 'metrics.interval', value: options.interval, allowed: 'a Prometheus duration other than zero, such as 30s, 1m or 1m30s' });
  }
  for (const [key, value] of Object.entries(options.alertLabels ?? {})) {
    const field = `metrics.alertLabels[${JSON.stringify(key)}]`;
    if (!PROMETHEUS_LABEL_NAME.test(key) || key.startsWith('__')) {
      issues.push({ field, value: key, allowed: 'a Prometheus label name (letters, digits and "_", not starting with a digit or "__")' });
    } else if ((RESERVED_ALERT_LABELS as readonly string[]).includes(key)) {
      issues.push({ field, value: key, allowed: `a label other than ${RESERVED_ALERT_LABELS.join(', ')}`, reason: 'the alerts set those themselves: they name the store and rank the alert' });
    }
    if (typeof value !== 'string' || value === '') issues.push({ field, value, allowed: 'a non-empty string' });
  }
  if (options.runbookBaseUrl !== undefined && (typeof options.runbookBaseUrl !== 'string' || !/^https?:\/\/[^\s#]+$/.test(options.runbookBaseUrl))) {
    issues.push({ field: 'metrics.runbookBaseUrl', value: options.runbookBaseUrl, allowed: 'an http(s) URL without spaces or "#" (the alert\'s anchor is appended)' });
  }
  if ((options.alerts ?? true) && store.spec.backup && backupAgeLimitSeconds(store.spec.backup.schedule) === undefined) {
    issues.push({ field: 'backup.schedule', value: store.spec.backup.schedule, allowed: 'a schedule that runs at least twice within two years with metrics alerts', reason: 'the backup age alert is measured against the longest wait between two runs' });
  }
  return issues;
}

/** The objects renderMonitoring creates, by kind and name (to catch two stores creating one object). */
export function monitoringObjects(store: StoreDefinition, options: MetricsOptions): StoreObjectRef[] {
  const names = monitoringNames(store.spec.name);
  return [
    { kind: options.monitor ?? MonitorKind.POD_MONITOR, name: names.monitor },
    ...((options.alerts ?? true) ? [{ kind: 'PrometheusRule', name: names.prometheusRule }] : []),
    ...(options.dashboard ? [{ kind: 'ConfigMap', name: names.dashboard }] : []),
    ...(store.spec.networkPolicy.enabled ? [{ kind: 'NetworkPolicy', name: names.networkPolicy }] : []),
  ];
}

/**
 * Renders a store's monitoring objects as children of `scope` (ids PodMonitor or ServiceMonitor,
 * PrometheusRule, Dashboard, MetricsNetworkPolicy). Throws a SpecError naming every bad option.
 */
export function renderMonitoring(scope: Construct, store: StoreDefinition, options: MetricsOptions = {}, context: MonitoringContext = {}): void {
  const issues = metricsIssues(store, options);
  if (issues.length > 0) throw new SpecError(store.spec.name, issues);
  const names = monitoringNames(store.spec.name);
  const labels = { ...store.labels, ...options.labels };
  const metadata = (name: string, extra: Record<string, string> = {}) => ({ ...store.metadata(name), labels: { ...labels, ...extra } });
  const endpoint = {
    port: 'metrics',
    path: '/metrics',
    scheme: 'http' as const,
    interval: options.interval ?? DEFAULT_INTERVAL,
    // Every series of the store carries its name: the alerts and the dashboard select on it.
    relabelings: [{ action: 'replace' as const, targetLabel: 'kvstore', replacement: store.spec.name }],
  };
  const selector = { matchLabels: store.selectorLabels };
  if ((options.monitor ?? MonitorKind.POD_MONITOR) === MonitorKind.POD_MONITOR) {
    kubeObject<IPodMonitor>(scope, 'PodMonitor', { apiVersion: 'monitoring.coreos.com/v1', kind: 'PodMonitor' }, {
      metadata: metadata(names.monitor),
      spec: { selector, podMetricsEndpoints: [endpoint] },
    });
  } else {
    // Both Services carry the store's labels; only the headless one has a port named metrics, so
    // the client Service adds no target.
    kubeObject<IServiceMonitor>(scope, 'ServiceMonitor', { apiVersion: 'monitoring.coreos.com/v1', kind: 'ServiceMonitor' }, {
      metadata: metadata(names.monitor),
      spec: { selector, endpoints: [endpoint] },
    });
  }
  if (options.alerts ?? true) {
    const quota = (store.engine as EtcdEngine).quotaBackendBytes(store.spec);
    const groups = storeAlertGroups(store, quota, { alertLabels: options.alertLabels, runbookBaseUrl: options.runbookBaseUrl, reconcilerJobs: context.reconcilerJobs });
    kubeObject<IPrometheusRule>(scope, 'PrometheusRule', { apiVersion: 'monitoring.coreos.com/v1', kind: 'PrometheusRule' }, {
      metadata: metadata(names.prometheusRule),
      spec: { groups: groups.map((g) => ({ name: g.name, rules: g.rules.map((r) => ({ ...r, labels: { ...r.labels }, annotations: { ...r.annotations } })) })) },
    });
  }
  if (options.dashboard) {
    kubeObject<IConfigMap>(scope, 'Dashboard', { apiVersion: 'v1', kind: 'ConfigMap' }, {
      metadata: { ...store.metadata(names.dashboard), labels: { ...store.labels, ...(options.dashboardLabels ?? DEFAULT_DASHBOARD_LABELS) } },
      data: { [`kvstore-${store.namespace}-${store.spec.name}.json`]: JSON.stringify(storeDashboard(store), undefined, 2) },
    });
  }
  if (store.spec.networkPolicy.enabled) renderScrapeNetworkPolicy(scope, store, options, names.networkPolicy);
}

/**
 * NetworkPolicies add up: this one admits Prometheus to the metrics port beside the store's own,
 * which admits only members and clients.
 */
function renderScrapeNetworkPolicy(scope: Construct, store: StoreDefinition, options: MetricsOptions, name: string): void {
  const prometheus = {
    podSelector: { matchLabels: options.prometheusPodLabels ?? DEFAULT_PROMETHEUS_POD_LABELS },
    namespaceSelector: options.prometheusNamespaceLabels ? { matchLabels: options.prometheusNamespaceLabels } : {},
  };
  kubeObject<INetworkPolicy>(scope, 'MetricsNetworkPolicy', { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy' }, {
    metadata: store.metadata(name),
    spec: {
      podSelector: { matchLabels: store.selectorLabels },
      policyTypes: ['Ingress'],
      ingress: [{ from: [prometheus], ports: [{ protocol: 'TCP', port: store.engine.metricsPort! }] }],
    },
  });
}
