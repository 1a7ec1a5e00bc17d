// CRD-mode maintenance (`kvstore-reconcile --crd --maintain`, what KVStoreOperator's maintenance CronJob
// runs) on real etcd through the cluster simulator: a KVStore resource's store, created by the operator's
// reconcile, maintained as `--store --maintain` maintains one, and each run's outcome in the resource's
// Maintained condition. The maintenance itself is proven in day2-maintenance.test.ts; this proves the
// CRD-mode run around it: the document from the resource, the status it writes, the rules it needs.
import { Chart, Testing } from 'cdk8s';
import { Engine, KVStoreOperator } from '../../lib';
import type { Condition } from '../../lib/reconciler/custom-resources';
import type { KubeObject } from '../../lib/reconciler/types';
import { ApiServer } from '../support/api-server';
import { ClusterSimulator } from '../support/cluster-simulator';
import { keysUnder, loseMemberData, memberList, operatorMaintainOnce, operatorReconcileOnce, putKVStoreResource, simulatedCluster, Writer } from '../support/day2';
import { ETCD_VERSION, NAMESPACE } from '../support/etcd-cluster';
import { find, synth } from '../support/manifests';
import { describeWithEtcd } from '../support/requires-etcd';

jest.setTimeout(240_000);

let api: ApiServer;
let sim: ClusterSimulator;
simulatedCluster((a, s) => { api = a; sim = s; });

const props = { size: 3, storageSize: '1Gi', engine: Engine.etcd({ version: ETCD_VERSION }) };

const resource = () => api.get('kvstore.cdk8s-kvstore.io/v1', 'KVStore', NAMESPACE, 'kv') as KubeObject;
const conditions = () => (resource().status?.conditions ?? []) as Condition[];
const condition = (type: Condition['type']) => conditions().find((c) => c.type === type);

/** The store of KVStore resource kv created by the operator's reconcile, every member ready, status Ready. */
async function createStore(): Promise<void> {
  putKVStoreResource(api, 'kv', props);
  expect(await operatorReconcileOnce(api, sim, 'kv')).toEqual({ reconciled: 1, failed: 0 });
  await sim.waitForReady('kv', 3, 60_000);
  // A second pass sees every member ready.
  expect(await operatorReconcileOnce(api, sim, 'kv')).toEqual({ reconciled: 1, failed: 0 });
  expect(condition('Ready')).toMatchObject({ status: 'True', reason: 'Reconciled' });
}

/** The rules of the operator's Role, with or without maintenance. */
function operatorRules(maintenance?: object): Array<Record<string, string[]>> {
  const chart = new Chart(Testing.app(), 'c', { namespace: NAMESPACE, disableResourceNameHashes: true });
  new KVStoreOperator(chart, 'operator', { installCrd: false, ...(maintenance ? { maintenance } : {}) });
  return find(synth(chart), 'Role').rules;
}
const allows = (rules: Array<Record<string, string[]>>, resource: string, verb: string) => rules.some((r) => r.resources.includes(resource) && r.verbs.includes(verb));

describeWithEtcd(`CRD-mode maintenance (etcd ${ETCD_VERSION})`, () => {
  test('a member that lost its data is replaced by --crd --maintain, with writes continuing; the resource shows Maintained True (MemberReplaced), its Ready condition untouched', async () => {
    await createStore();
    const readyBefore = condition('Ready');
    const oldId = (await memberList(sim.endpoints('kv'))).find((m) => m.name === 'kv-1')!.id;
    const oldClaim = (api.get('v1', 'PersistentVolumeClaim', NAMESPACE, 'data-kv-1') as any).metadata.uid;
    const survivors = ['kv-0', 'kv-2'].map((p) => sim.url(p));
    const writer = new Writer(survivors);
    const lines: string[] = [];
    try {
      await sim.waitUntil('writes before', () => writer.acked.length >= 20, 30_000);
      await loseMemberData(api, sim, 'kv-1');

      expect(await operatorMaintainOnce(api, sim, 'kv', { rolloutTimeoutMs: 60_000 }, lines)).toEqual({ maintained: 1, failed: 0 });
      await sim.waitForReady('kv', 3, 60_000);
      const acked = writer.acked.length;
      await sim.waitUntil('writes after', () => writer.acked.length >= acked + 20, 30_000);
    } finally {
      await writer.stop();
    }
    // etcd: kv-1 is a voting member again, under a new id, on a new claim.
    const after = await memberList(sim.endpoints('kv'));
    expect(after.map((m) => [m.name, m.isLearner]).sort()).toEqual([['kv-0', false], ['kv-1', false], ['kv-2', false]]);
    expect(after.find((m) => m.name === 'kv-1')!.id).not.toBe(oldId);
    expect((api.get('v1', 'PersistentVolumeClaim', NAMESPACE, 'data-kv-1') as any).metadata.uid).not.toBe(oldClaim);
    expect(lines).toContainEqual(expect.stringMatching(/^member kv-1 is lost \(its pod crash-loops: [0-9]+ restarts\): replacing it$/));
    // Status: Maintained True, naming the member; what the reconcile wrote, as it was.
    expect(condition('Maintained')).toMatchObject({ status: 'True', reason: 'MemberReplaced', message: expect.stringMatching(/^replaced kv-1 on an empty volume/) });
    expect(conditions().map((c) => c.type)).toEqual(['Ready', 'Progressing', 'Degraded', 'Maintained']);
    expect(condition('Ready')).toEqual(readyBefore);
    // While it ran, the condition said so (Unknown, with the operation).
    const statusWrites = api.requests.filter((r) => r.method === 'PUT' && r.path.endsWith('/kvstores/kv/status')).map((r) => ((r.body as any).status.conditions as Condition[]).find((c) => c.type === 'Maintained'));
    expect(statusWrites).toContainEqual(expect.objectContaining({ status: 'Unknown', reason: 'ReplacingMember' }));
    // What the replacement did to kv-1's pod and claim, the operator's Role with maintenance allows; without, no pod delete.
    const deletes = api.requests.filter((r) => r.method === 'DELETE' && /\/(pods\/kv-1|persistentvolumeclaims\/data-kv-1)$/.test(r.path)).map((r) => r.path.split('/').slice(-2)[0]);
    expect([...new Set(deletes)].sort()).toEqual(['persistentvolumeclaims', 'pods']);
    expect([allows(operatorRules({}), 'pods', 'delete'), allows(operatorRules({}), 'persistentvolumeclaims', 'delete'), allows(operatorRules(), 'pods', 'delete')]).toEqual([true, true, false]);
    expect(api.requests.some((r) => r.method === 'POST' && r.path.endsWith(`/namespaces/${NAMESPACE}/pods`))).toBe(false);
    // No acknowledged write lost; the new member holds them all.
    for (const url of [...survivors, sim.url('kv-1')]) {
      const held = await keysUnder([url], 'w/');
      expect({ url, missing: writer.acked.filter((k) => !held.has(k)) }).toEqual({ url, missing: [] });
    }
    // A reconcile afterwards keeps the Maintained condition.
    await operatorReconcileOnce(api, sim, 'kv');
    expect(condition('Maintained')).toMatchObject({ status: 'True', reason: 'MemberReplaced' });
  });

  test('a member that does not answer: the run fails for that store, changing nothing; Maintained False (Unhealthy) with why; the next healthy run flips it back', async () => {
    await createStore();
    const readyBefore = condition('Ready');
    const before = await memberList(sim.endpoints('kv'));
    const lines: string[] = [];
    // Member 1's URL replaced by a closed port: to the run, it does not answer.
    const result = await operatorMaintainOnce(api, sim, 'kv', { etcdMemberEndpoint: (i) => (i === 1 ? 'http://127.0.0.1:9' : sim.url(`kv-${i}`)), rolloutTimeoutMs: 2_000 }, lines);
    expect(result).toEqual({ maintained: 0, failed: 1 });
    const failed = condition('Maintained')!;
    expect(failed).toMatchObject({ status: 'False', reason: 'Unhealthy', message: expect.stringMatching(/^store kvtest\/kv: maintenance not done: defragmentation skipped: no status from http:\/\/127\.0\.0\.1:9/) });
    expect(lines).toContainEqual(expect.stringMatching(/^error: kvtest\/kv: store kvtest\/kv: maintenance not done/));
    expect(condition('Ready')).toEqual(readyBefore);
    expect(await memberList(sim.endpoints('kv'))).toEqual(before);
    // The Lease was given back.
    expect((api.get('coordination.k8s.io/v1', 'Lease', NAMESPACE, 'kv-reconciler') as any).spec.holderIdentity).toBeFalsy();

    // Healthy again: nothing to do, True, a new transition time.
    expect(await operatorMaintainOnce(api, sim, 'kv', { rolloutTimeoutMs: 30_000 })).toEqual({ maintained: 1, failed: 0 });
    expect(condition('Maintained')).toMatchObject({ status: 'True', reason: 'NothingToDo' });
    expect(condition('Maintained')!.lastTransitionTime >= failed.lastTransitionTime).toBe(true);
  });
});
