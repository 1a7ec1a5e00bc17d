// Generated names: contract. PVC names derive from the StatefulSet name, so a change orphans data.
import { Engine } from '../../lib/engines/engine';
import { podFqdn, podName, pvcName, selectorLabels, storeNames, storeObjects } from '../../lib/model/names';
import { normalizeSpec } from '../../lib/model/normalize';
import type { KVStoreSpecInput } from '../../lib/model/spec';

describe('storeNames', () => {
  test('names every object of a store', () => {
    expect(storeNames('orders')).toStrictEqual({
      statefulSet: 'orders',
      headlessService: 'orders-peers',
      clientService: 'orders',
      podDisruptionBudget: 'orders',
      networkPolicy: 'orders',
      jobsNetworkPolicy: 'orders-jobs',
      reconcilerNetworkPolicy: 'orders-reconciler-egress',
      bootstrapConfig: 'orders-bootstrap',
      selfSignedIssuer: 'orders-selfsigned',
      ca: 'orders-ca',
      memberTls: 'orders-member-tls',
      clientTls: 'orders-client-tls',
      trustBundle: 'orders-trust',
    });
  });
});

describe('podName', () => {
  test('is the StatefulSet name and the ordinal', () => {
    const names = storeNames('orders');
    expect(podName(names, 0)).toBe('orders-0');
    expect(podName(names, 12)).toBe('orders-12');
  });
});

describe('podFqdn', () => {
  test('is the pod name under the headless Service', () => {
    expect(podFqdn(storeNames('orders'), 1, 'prod', 'cluster.local')).toBe('orders-1.orders-peers.prod.svc.cluster.local');
  });

  test('uses the given cluster domain and namespace verbatim', () => {
    expect(podFqdn(storeNames('cache'), 2, '$(POD_NAMESPACE)', 'k8s.example.com'))
      .toBe('cache-2.cache-peers.$(POD_NAMESPACE).svc.k8s.example.com');
  });
});

describe('pvcName', () => {
  test('is template, StatefulSet and ordinal, as the StatefulSet controller names it', () => {
    const names = storeNames('orders');
    expect(pvcName(names, 'data', 0)).toBe('data-orders-0');
    expect(pvcName(names, 'wal', 2)).toBe('wal-orders-2');
  });
});

describe('selectorLabels', () => {
  test('are exactly the name and instance labels', () => {
    expect(selectorLabels('orders')).toStrictEqual({
      'app.kubernetes.io/name': 'kvstore',
      'app.kubernetes.io/instance': 'orders',
    });
  });
});

describe('storeObjects', () => {
  const spec = (extra: Partial<KVStoreSpecInput> = {}) =>
    normalizeSpec({ name: 'orders', engine: Engine.etcd().spec, ...extra }, { image: 'x/etcd:v1', podManagementPolicy: 'Parallel' });
  const refs = (...args: Parameters<typeof storeObjects>) => storeObjects(...args).map((o) => `${o.kind}/${o.name}`);

  test('the StatefulSet first, then both Services, the PDB and the NetworkPolicy', () => {
    expect(refs(spec(), { bootstrapConfig: false, reconciler: false })).toStrictEqual([
      'StatefulSet/orders', 'Service/orders-peers', 'Service/orders', 'PodDisruptionBudget/orders', 'NetworkPolicy/orders',
    ]);
  });

  test('the bootstrap ConfigMap, the backup CronJob and the PVC it creates, and the reconciler bundle', () => {
    const backup = { pruneImage: 'r:1', storage: '5Gi' };
    expect(refs(spec({ backup, networkPolicy: { enabled: false } }), { bootstrapConfig: true, reconciler: true })).toStrictEqual([
      'StatefulSet/orders', 'Service/orders-peers', 'Service/orders', 'PodDisruptionBudget/orders',
      'ConfigMap/orders-bootstrap', 'CronJob/orders-backup', 'PersistentVolumeClaim/orders-backups',
      'ConfigMap/orders-kvstore-spec', 'ServiceAccount/orders-reconciler', 'Role/orders-reconciler', 'RoleBinding/orders-reconciler',
    ]);
  });

  test('not a backup claim named without a size: it exists already', () => {
    expect(refs(spec({ backup: { pruneImage: 'r:1', claimName: 'shared' } }), { bootstrapConfig: false, reconciler: false }))
      .not.toContain('PersistentVolumeClaim/shared');
  });
});
