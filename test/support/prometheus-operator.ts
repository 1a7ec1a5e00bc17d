// Test support: what the Prometheus Operator (v0.65, the CRDs of @kubernetes-models/prometheus-operator
// 4.4.4) would make of a synthesized PodMonitor, as a plain Prometheus scrape configuration for the pods
// a PodRunner runs, and a PrometheusRule as a rule file.
//
// Translated from the PodMonitor, as the operator does:
// - the job name `podMonitor/<namespace>/<name>/<endpoint index>` and the target labels the operator
//   sets: `namespace`, `pod`, `container`, `endpoint` (the port name) and `job` = `<namespace>/<name>`;
// - `selector.matchLabels` against the pod template labels of the synthesized StatefulSets: every pod of
//   a matching StatefulSet that the runner knows is a target, at its loopback IP and the port its
//   container declares under the endpoint's `port` name;
// - each endpoint's `path`, `scheme`, `interval` and `scrapeTimeout`, and its `relabelings` and
//   `metricRelabelings` (camelCase fields to Prometheus' snake_case, actions lowercased).
// Not translated, and refused with an error rather than ignored: Kubernetes service discovery itself
// (the targets are fixed when the configuration is made: a pod whose process was killed stays a target
// and is scraped as down, as a pod whose container crashed is; a pod deleted from Kubernetes would
// leave the operator's list, never this one), so relabelings that read `__meta_kubernetes_*` labels;
// `selector.matchExpressions`, `namespaceSelector` (the pods are the monitor's namespace's),
// `jobLabel`, `podTargetLabels`, `targetPort`, TLS, authentication, proxies, `params`, `honorLabels`,
// `honorTimestamps`, limits, and the ServiceMonitor (the headless Service's endpoints would be the same
// pods and port).
import type { Manifest } from './manifests';
import type { PodRunner } from './pod-runner';

const ENDPOINT_FIELDS = new Set(['port', 'path', 'scheme', 'interval', 'scrapeTimeout', 'relabelings', 'metricRelabelings']);
const SPEC_FIELDS = new Set(['selector', 'podMetricsEndpoints']);
const RELABEL_FIELDS: Record<string, string> = {
  sourceLabels: 'source_labels', separator: 'separator', targetLabel: 'target_label', regex: 'regex',
  modulus: 'modulus', replacement: 'replacement', action: 'action',
};

function relabel(rules: any[] | undefined, where: string): Array<Record<string, unknown>> {
  return (rules ?? []).map((r, i) => Object.fromEntries(Object.entries(r).map(([k, v]) => {
    const key = RELABEL_FIELDS[k];
    if (!key) throw new Error(`${where}[${i}].${k} is not translated`);
    if (k === 'sourceLabels' && (v as string[]).some((l) => l.startsWith('__meta_'))) {
      throw new Error(`${where}[${i}] reads service discovery labels (${(v as string[]).join(', ')}), which static targets do not have`);
    }
    return [key, k === 'action' ? String(v).toLowerCase() : v];
  })));
}

/** Overrides for a test: a shorter scrape interval than the monitor's, so a test does not wait for it. */
export interface ScrapeOverrides {
  readonly interval?: string;
}

/** The scrape configs the operator would generate for `podMonitor`, targeting the runner's pods. */
export function podMonitorScrapeConfigs(podMonitor: Manifest, objects: readonly Manifest[], runner: PodRunner, overrides: ScrapeOverrides = {}): Array<Record<string, unknown>> {
  if (podMonitor.apiVersion !== 'monitoring.coreos.com/v1' || podMonitor.kind !== 'PodMonitor') throw new Error(`not a PodMonitor: ${podMonitor.apiVersion} ${podMonitor.kind}`);
  const { name, namespace } = podMonitor.metadata;
  if (!namespace) throw new Error(`PodMonitor ${name} has no namespace`);
  for (const k of Object.keys(podMonitor.spec)) if (!SPEC_FIELDS.has(k)) throw new Error(`PodMonitor spec.${k} is not translated`);
  const { selector } = podMonitor.spec;
  if (Object.keys(selector).some((k) => k !== 'matchLabels')) throw new Error('only selector.matchLabels is translated');
  const matches = (labels: Record<string, string> = {}) => Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
  const statefulSets = objects.filter((o) => o.kind === 'StatefulSet' && o.metadata.namespace === namespace && matches(o.spec.template.metadata?.labels));
  return podMonitor.spec.podMetricsEndpoints.map((ep: any, i: number) => {
    for (const k of Object.keys(ep)) if (!ENDPOINT_FIELDS.has(k)) throw new Error(`PodMonitor podMetricsEndpoints[${i}].${k} is not translated`);
    const staticConfigs = statefulSets.flatMap((sts) => {
      const containers: any[] = sts.spec.template.spec.containers;
      const container = containers.find((c) => (c.ports ?? []).some((p: any) => p.name === ep.port));
      if (!container) return [];
      const port = container.ports.find((p: any) => p.name === ep.port).containerPort;
      return runner.podNames(sts.metadata.name).map((pod) => ({
        targets: [`${runner.ip(pod)}:${port}`],
        labels: { namespace, pod, container: container.name, endpoint: ep.port },
      }));
    });
    if (staticConfigs.length === 0) throw new Error(`PodMonitor ${name}: no pod of the synthesized StatefulSets matches its selector and port ${ep.port}`);
    return {
      job_name: `podMonitor/${namespace}/${name}/${i}`,
      scrape_interval: overrides.interval ?? ep.interval ?? '30s',
      ...(ep.scrapeTimeout ? { scrape_timeout: ep.scrapeTimeout } : {}),
      metrics_path: ep.path ?? '/metrics',
      scheme: ep.scheme ?? 'http',
      static_configs: staticConfigs,
      relabel_configs: [
        { target_label: 'job', replacement: `${namespace}/${name}` },
        ...relabel(ep.relabelings, `podMetricsEndpoints[${i}].relabelings`),
      ],
      ...(ep.metricRelabelings ? { metric_relabel_configs: relabel(ep.metricRelabelings, `podMetricsEndpoints[${i}].metricRelabelings`) } : {}),
    };
  });
}

/** A PrometheusRule's groups as a rule file, each rule's `for` replaced where `forOverrides` names its alert. */
export function ruleFile(prometheusRule: Manifest, forOverrides: Record<string, string> = {}): { groups: any[] } {
  if (prometheusRule.kind !== 'PrometheusRule') throw new Error(`not a PrometheusRule: ${prometheusRule.kind}`);
  return {
    groups: prometheusRule.spec.groups.map((g: any) => ({
      ...g,
      rules: g.rules.map((r: any) => (r.alert in forOverrides ? { ...r, for: forOverrides[r.alert] } : r)),
    })),
  };
}
