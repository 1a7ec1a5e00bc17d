import { widenParent } from '../../lib/reconciler/phases';
import { rolledOut } from '../../lib/reconciler/reconcile';

const sts = (spec: object, status: object, generation = 2) => ({ apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'orders', generation }, spec, status });

describe('rolledOut', () => {
  test('every replica updated and ready at the current generation', () => {
    expect(rolledOut(sts({ replicas: 3 }, { observedGeneration: 2, readyReplicas: 3, updatedReplicas: 3 }))).toBe(true);
    expect(rolledOut(sts({ replicas: 3 }, { observedGeneration: 1, readyReplicas: 3, updatedReplicas: 3 }))).toBe(false);
    expect(rolledOut(sts({ replicas: 3 }, { observedGeneration: 2, readyReplicas: 2, updatedReplicas: 3 }))).toBe(false);
    expect(rolledOut(sts({ replicas: 3 }, { observedGeneration: 2, readyReplicas: 3, updatedReplicas: 2 }))).toBe(false);
  });

  test('with a partition only the ordinals at or above it are updated', () => {
    const spec = { replicas: 3, updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 2 } } };
    expect(rolledOut(sts(spec, { observedGeneration: 2, readyReplicas: 3, updatedReplicas: 1 }))).toBe(true);
    expect(rolledOut(sts(spec, { observedGeneration: 2, readyReplicas: 3, updatedReplicas: 0 }))).toBe(false);
  });

  test('OnDelete needs only readiness', () => {
    expect(rolledOut(sts({ replicas: 3, updateStrategy: { type: 'OnDelete' } }, { observedGeneration: 2, readyReplicas: 3, updatedReplicas: 0 }))).toBe(true);
  });
});

describe('widenParent', () => {
  const parent = (kinds: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'p', labels: { 'applyset.kubernetes.io/id': 'id' }, annotations: { 'applyset.kubernetes.io/contains-group-kinds': kinds } } });

  test('keeps the kinds the live parent records until they are pruned', () => {
    expect(widenParent(parent('Service'), [parent('NetworkPolicy.networking.k8s.io,Service')], 'id').metadata.annotations?.['applyset.kubernetes.io/contains-group-kinds'])
      .toBe('NetworkPolicy.networking.k8s.io,Service');
  });

  test('returns the desired parent itself when nothing is missing', () => {
    const p = parent('Service');
    expect(widenParent(p, [parent('Service')], 'id')).toBe(p);
    expect(widenParent(p, [], 'id')).toBe(p);
  });
});
