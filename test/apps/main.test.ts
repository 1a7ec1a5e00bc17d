import { parseAllDocuments } from 'yaml';
import { exampleApp } from '../../apps/main';
import { Manifest, validateAgainstSchema } from '../support/manifests';

describe('example app', () => {
  test('holds every object of a 3-member etcd store with two PVC templates, TLS from its own CA and monitoring', () => {
    const objects = parseAllDocuments(exampleApp().synthYaml()).map((d) => d.toJSON()) as Manifest[];
    objects.forEach(validateAgainstSchema);
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
      'Certificate/cache-ca',
      'Certificate/cache-client-tls',
      'Certificate/cache-member-tls',
      'ConfigMap/cache-bootstrap',
      'ConfigMap/cache-dashboard',
      'Issuer/cache-ca',
      'Issuer/cache-selfsigned',
      'NetworkPolicy/cache',
      'NetworkPolicy/cache-metrics',
      'PodDisruptionBudget/cache',
      'PodMonitor/cache',
      'PrometheusRule/cache',
      'Service/cache',
      'Service/cache-peers',
      'StatefulSet/cache',
    ]);
    const sts = objects.find((o) => o.kind === 'StatefulSet')!;
    expect(sts.spec.replicas).toBe(3);
    expect(sts.spec.volumeClaimTemplates.map((t: any) => [t.metadata.name, t.spec.resources.requests.storage]))
      .toEqual([['data', '10Gi'], ['wal', '2Gi']]);
    expect(objects.every((o) => o.metadata.namespace === 'kvstore-example')).toBe(true);
  });

  test('synthesizes byte-identical YAML twice', () => {
    const first = exampleApp().synthYaml();
    const second = exampleApp().synthYaml();
    expect(first.length).toBeGreaterThan(1000);
    expect(second).toBe(first);
  });
});
