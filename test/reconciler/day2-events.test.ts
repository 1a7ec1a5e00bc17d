// Events are recorded by the API double for each step of a scale and a resize, on real etcd through the
// cluster simulator: GitOps mode (about the StatefulSet) and CRD mode (about the KVStore resource).
// Each list is the exact story `kubectl describe` tells, in the order the steps ran.
import { KVStoreProps } from '../../lib';
import { ApiServer, KubeObject } from '../support/api-server';
import { ClusterSimulator } from '../support/cluster-simulator';
import { operatorReconcileOnce, putKVStoreResource, reconcileOnce, simulatedCluster, storeDocument } from '../support/day2';
import { NAMESPACE } from '../support/etcd-cluster';
import { describeWithEtcd } from '../support/requires-etcd';

jest.setTimeout(240_000);

let api: ApiServer;
let sim: ClusterSimulator;
simulatedCluster((a, s) => { api = a; sim = s; });

const props = { size: 3, storageSize: '1Gi' };

/** The Events posted since request `from`, in order, as `reason regarding-kind/name`. */
function story(from: number): string[] {
  return api.requests.slice(from)
    .filter((r) => r.method === 'POST' && r.path === `/apis/events.k8s.io/v1/namespaces/${NAMESPACE}/events` && !r.injectedStatus)
    .map((r) => r.body as KubeObject).map((e) => `${e.reason} ${e.regarding.kind}/${e.regarding.name}`);
}

/**
 * The scale 3 → 5, step by step: the plan's own steps (an update, the rollout), then each new member
 * announced, registered as a learner, its objects updated (the member list, replicas), announced again
 * and promoted. An Event that says again what one of the run said (the second member's identical
 * updates, the finish's) is recorded once: the member Events tell the two members apart.
 */
const scaleSteps = (regarding: string) => [
  'Updated', 'RolledOut',
  'Scaling', 'MemberAdded', 'Updated', 'Updated', 'Updated', 'Scaling', 'MemberPromoted',
  'Scaling', 'MemberAdded', 'Scaling', 'MemberPromoted',
  'Updated', 'Reconciled',
].map((reason) => `${reason} ${regarding}`);

/** The resize 1Gi → 2Gi: the bootstrap ConfigMap's quota, every claim grown, the StatefulSet re-created, rolled out. */
const resizeSteps = (regarding: string) => [
  'Updated', 'Resizing', 'ClaimGrown', 'ClaimGrown', 'ClaimGrown', 'Resized', 'RolledOut', 'Reconciled',
].map((reason) => `${reason} ${regarding}`);

describeWithEtcd('Events for each step of a day-2 operation, GitOps mode: about the StatefulSet', () => {
  async function create(): Promise<number> {
    await reconcileOnce(api, sim, storeDocument('kv', props));
    await sim.waitForReady('kv', 3, 60_000);
    return api.requests.length;
  }

  test('a scale 3 → 5', async () => {
    const from = await create();
    await reconcileOnce(api, sim, storeDocument('kv', { ...props, size: 5 }));
    expect(story(from)).toEqual(scaleSteps('StatefulSet/kv'));
    // Every Event of the scale is about the StatefulSet as it is (its uid: `kubectl describe` finds them).
    const uid = api.get('apps/v1', 'StatefulSet', NAMESPACE, 'kv')!.metadata.uid;
    const posted = api.requests.slice(from).filter((r) => r.method === 'POST' && r.path.endsWith('/events')).map((r) => (r.body as KubeObject).regarding.uid);
    expect(new Set(posted)).toEqual(new Set([uid]));
  });

  test('a resize 1Gi → 2Gi: the Events after the re-create are about the new StatefulSet', async () => {
    const from = await create();
    const before = api.get('apps/v1', 'StatefulSet', NAMESPACE, 'kv')!.metadata.uid;
    await reconcileOnce(api, sim, storeDocument('kv', { ...props, storageSize: '2Gi' }));
    expect(story(from)).toEqual(resizeSteps('StatefulSet/kv'));
    const after = api.get('apps/v1', 'StatefulSet', NAMESPACE, 'kv')!.metadata.uid;
    expect(after).not.toBe(before);
    const posted = api.requests.slice(from).filter((r) => r.method === 'POST' && r.path.endsWith('/events')).map((r) => r.body as KubeObject);
    expect(posted[posted.length - 1].regarding.uid).toBe(after);
  });
});

describeWithEtcd('Events for each step of a day-2 operation, CRD mode: about the KVStore resource', () => {
  async function create(): Promise<number> {
    putKVStoreResource(api, 'kv', props);
    expect(await operatorReconcileOnce(api, sim, 'kv')).toEqual({ reconciled: 1, failed: 0 });
    await sim.waitForReady('kv', 3, 60_000);
    return api.requests.length;
  }

  const change = async (to: KVStoreProps) => {
    putKVStoreResource(api, 'kv', to);
    expect(await operatorReconcileOnce(api, sim, 'kv')).toEqual({ reconciled: 1, failed: 0 });
  };

  test('a scale 3 → 5', async () => {
    const from = await create();
    await change({ ...props, size: 5 });
    expect(story(from)).toEqual(scaleSteps('KVStore/kv'));
    const uid = api.get('kvstore.cdk8s-kvstore.io/v1', 'KVStore', NAMESPACE, 'kv')!.metadata.uid;
    expect(new Set(api.list('events.k8s.io/v1', 'Event', NAMESPACE).map((e) => e.regarding.uid))).toEqual(new Set([uid]));
  });

  test('a resize 1Gi → 2Gi', async () => {
    const from = await create();
    await change({ ...props, storageSize: '2Gi' });
    expect(story(from)).toEqual(resizeSteps('KVStore/kv'));
  });
});
