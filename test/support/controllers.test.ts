// The pure StatefulSet and Job controller decisions the cluster simulator runs, against the rules of
// kube-controller-manager: which pod is created or deleted next, the status written, the objects made.
import type { KubeObject } from './api-server';
import {
  cronJobJob, jobPod, nextStatefulSetSteps, PodView, revisionName, statefulSetClaims, statefulSetPod, statefulSetStatus,
} from './controllers';

const TEMPLATE = { metadata: { labels: { app: 'orders' } }, spec: { containers: [{ name: 'etcd', image: 'etcd' }], volumes: [{ name: 'tmp', emptyDir: {} }] } };

function sts(spec: Record<string, any> = {}): KubeObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: 'orders', namespace: 'kvtest', uid: 'sts-uid', generation: 4 },
    spec: {
      replicas: 3,
      serviceName: 'orders-peers',
      selector: { matchLabels: { app: 'orders' } },
      template: TEMPLATE,
      volumeClaimTemplates: [{ metadata: { name: 'data', labels: { tier: 'data' } }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } }],
      ...spec,
    },
  };
}

/** Pods `orders-<i>` for the given ordinals, Ready on revision `old` unless told otherwise. */
function pods(ordinals: number[], overrides: Record<number, Partial<PodView>> = {}): PodView[] {
  return ordinals.map((i) => ({ name: `orders-${i}`, ordinal: i, revision: 'old', ready: true, terminating: false, ...overrides[i] }));
}

describe('nextStatefulSetSteps', () => {
  test('Parallel creates every missing ordinal at once, on the update revision', () => {
    expect(nextStatefulSetSteps(sts({ podManagementPolicy: 'Parallel' }), [], 'old', 'old')).toEqual([0, 1, 2].map((ordinal) => ({ action: 'create', ordinal, revision: 'old' })));
  });

  test('OrderedReady creates the lowest missing ordinal only once every lower one is Ready', () => {
    const set = sts({ podManagementPolicy: 'OrderedReady' });
    expect(nextStatefulSetSteps(set, [], 'old', 'old')).toEqual([{ action: 'create', ordinal: 0, revision: 'old' }]);
    expect(nextStatefulSetSteps(set, pods([0], { 0: { ready: false } }), 'old', 'old')).toEqual([]);
    expect(nextStatefulSetSteps(set, pods([0]), 'old', 'old')).toEqual([{ action: 'create', ordinal: 1, revision: 'old' }]);
  });

  test('an ordinal whose pod is still terminating is not re-created', () => {
    expect(nextStatefulSetSteps(sts({ podManagementPolicy: 'Parallel' }), pods([0, 1, 2], { 1: { terminating: true } }), 'old', 'old')).toEqual([]);
  });

  test('scale-down deletes ordinals at or above replicas, highest first; OrderedReady one at a time', () => {
    expect(nextStatefulSetSteps(sts({ replicas: 1, podManagementPolicy: 'Parallel' }), pods([0, 1, 2]), 'old', 'old'))
      .toEqual([{ action: 'delete', pod: 'orders-2', reason: 'scale-down' }, { action: 'delete', pod: 'orders-1', reason: 'scale-down' }]);
    expect(nextStatefulSetSteps(sts({ replicas: 1 }), pods([0, 1, 2]), 'old', 'old')).toEqual([{ action: 'delete', pod: 'orders-2', reason: 'scale-down' }]);
    expect(nextStatefulSetSteps(sts({ replicas: 1 }), pods([0, 1, 2], { 2: { terminating: true } }), 'old', 'old')).toEqual([]);
  });

  test('RollingUpdate deletes the highest pod on an old revision, one at a time, only while every pod is Ready', () => {
    expect(nextStatefulSetSteps(sts(), pods([0, 1, 2]), 'old', 'new')).toEqual([{ action: 'delete', pod: 'orders-2', reason: 'update' }]);
    expect(nextStatefulSetSteps(sts(), pods([0, 1, 2], { 2: { revision: 'new' } }), 'old', 'new')).toEqual([{ action: 'delete', pod: 'orders-1', reason: 'update' }]);
    expect(nextStatefulSetSteps(sts(), pods([0, 1, 2], { 2: { revision: 'new', ready: false } }), 'old', 'new')).toEqual([]);
  });

  test('the partition keeps lower ordinals on the current revision, also when they are re-created', () => {
    const set = sts({ updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 2 } } });
    expect(nextStatefulSetSteps(set, pods([0, 1, 2], { 2: { revision: 'new' } }), 'old', 'new')).toEqual([]);
    expect(nextStatefulSetSteps({ ...set, spec: { ...set.spec, podManagementPolicy: 'Parallel' } }, pods([0, 2], { 2: { revision: 'new' } }), 'old', 'new'))
      .toEqual([{ action: 'create', ordinal: 1, revision: 'old' }]);
  });

  test('OnDelete replaces nothing; a deleted pod comes back on the update revision', () => {
    const set = sts({ updateStrategy: { type: 'OnDelete' }, podManagementPolicy: 'Parallel' });
    expect(nextStatefulSetSteps(set, pods([0, 1, 2]), 'old', 'new')).toEqual([]);
    expect(nextStatefulSetSteps(set, pods([0, 2]), 'old', 'new')).toEqual([{ action: 'create', ordinal: 1, revision: 'new' }]);
  });
});

describe('statefulSetStatus', () => {
  test('counts terminating pods in replicas only, omits zero counts and keeps the current revision mid-update', () => {
    const status = statefulSetStatus(sts(), pods([0, 1, 2], { 1: { revision: 'new', ready: false }, 2: { terminating: true, ready: false } }), 'old', 'new', Date.now());
    expect(status).toEqual({
      observedGeneration: 4, replicas: 3, readyReplicas: 1, currentReplicas: 1, updatedReplicas: 1, availableReplicas: 1,
      currentRevision: 'old', updateRevision: 'new', collisionCount: 0,
    });
    expect(statefulSetStatus(sts({ replicas: 0 }), [], 'old', 'old', Date.now())).toEqual({
      observedGeneration: 4, replicas: 0, availableReplicas: 0, currentRevision: 'old', updateRevision: 'old', collisionCount: 0,
    });
  });

  test('a finished RollingUpdate makes the update revision current', () => {
    expect(statefulSetStatus(sts(), pods([0, 1, 2], { 0: { revision: 'new' }, 1: { revision: 'new' }, 2: { revision: 'new' } }), 'old', 'new', Date.now()))
      .toMatchObject({ currentRevision: 'new', currentReplicas: 3, updatedReplicas: 3 });
  });

  test('a pod is available once Ready for minReadySeconds', () => {
    const now = Date.now();
    const status = statefulSetStatus(sts({ minReadySeconds: 10 }), pods([0, 1], { 0: { readySince: now - 11_000 }, 1: { readySince: now - 5_000 } }), 'old', 'old', now);
    expect(status).toMatchObject({ readyReplicas: 2, availableReplicas: 1 });
  });
});

describe('objects the controllers create', () => {
  test('the revision is the set name and 10 hex characters that ignore key order and follow the template', () => {
    const reordered = { spec: TEMPLATE.spec, metadata: TEMPLATE.metadata };
    expect(revisionName('orders', TEMPLATE)).toMatch(/^orders-[0-9a-f]{10}$/);
    expect(revisionName('orders', reordered)).toBe(revisionName('orders', TEMPLATE));
    expect(revisionName('orders', { ...TEMPLATE, metadata: { labels: { app: 'other' } } })).not.toBe(revisionName('orders', TEMPLATE));
  });

  test('a StatefulSet pod: identity labels, controller reference, hostname, subdomain and its claim', () => {
    const pod = statefulSetPod(sts(), TEMPLATE, 'orders-abc', 1);
    expect(pod.metadata).toEqual({
      name: 'orders-1',
      namespace: 'kvtest',
      labels: { 'app': 'orders', 'statefulset.kubernetes.io/pod-name': 'orders-1', 'apps.kubernetes.io/pod-index': '1', 'controller-revision-hash': 'orders-abc' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'orders', uid: 'sts-uid', controller: true, blockOwnerDeletion: true }],
    });
    expect(pod.spec).toMatchObject({ hostname: 'orders-1', subdomain: 'orders-peers' });
    expect(pod.spec.volumes).toEqual([{ name: 'tmp', emptyDir: {} }, { name: 'data', persistentVolumeClaim: { claimName: 'data-orders-1' } }]);
  });

  test('claims are bound with the requested capacity and owned by the set only when whenDeleted is Delete', () => {
    const [claim] = statefulSetClaims(sts(), 2);
    expect(claim.metadata).toEqual({ name: 'data-orders-2', namespace: 'kvtest', labels: { tier: 'data', app: 'orders' } });
    expect(claim.status).toEqual({ phase: 'Bound', accessModes: ['ReadWriteOnce'], capacity: { storage: '1Gi' } });
    const [owned] = statefulSetClaims(sts({ persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Delete', whenScaled: 'Retain' } }), 2);
    expect(owned.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'StatefulSet', uid: 'sts-uid' })]);
  });

  test('a Job pod carries the job-name and controller-uid labels; a CronJob\'s Job is named by the minute', () => {
    const job: KubeObject = { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'backup', namespace: 'kvtest', uid: 'job-uid' }, spec: { template: { metadata: { labels: { a: 'b' } }, spec: { containers: [] } } } };
    expect(jobPod(job, 'x1y2z').metadata).toMatchObject({
      name: 'backup-x1y2z',
      labels: { 'a': 'b', 'job-name': 'backup', 'batch.kubernetes.io/job-name': 'backup', 'controller-uid': 'job-uid', 'batch.kubernetes.io/controller-uid': 'job-uid' },
      ownerReferences: [expect.objectContaining({ kind: 'Job', uid: 'job-uid', controller: true })],
    });
    const cronJob: KubeObject = { apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name: 'nightly', namespace: 'kvtest', uid: 'cj-uid' }, spec: { jobTemplate: { spec: { backoffLimit: 2 } } } };
    const made = cronJobJob(cronJob, new Date(Date.UTC(2025, 0, 1, 0, 1, 30)));
    expect(made.metadata.name).toBe(`nightly-${Date.UTC(2025, 0, 1, 0, 1) / 60_000}`);
    expect(made.spec).toEqual({ backoffLimit: 2 });
  });
});
