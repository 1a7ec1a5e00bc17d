// The reconcile phases on their own: pure decisions on live state built in memory; read and plan against the API double.
import { Chart, Testing } from 'cdk8s';
import { Engine, KVStore, KVStoreProps, StoreDocument } from '../../lib';
import { OPERATION_ANNOTATION, RESTORED_FROM_ANNOTATION } from '../../lib/model/metadata';
import { KubeClient } from '../../lib/reconciler/client';
import { desiredState } from '../../lib/reconciler/desired';
import { Log } from '../../lib/reconciler/log';
import { caRotation, crashLooping, intent, isNoOp, LiveStore, mayCrashLoop, membershipChange, planObjects, restoring, TLS_SWITCH_MARK, tlsSwitch, versionUpgrade } from '../../lib/reconciler/phases';
import { OUTCOME_FIELD_MANAGER, reconcileStore, RefusedError, StoreReconciler } from '../../lib/reconciler/reconcile';
import { KubeObject } from '../../lib/reconciler/types';
import { ApiServer, startApiServer } from '../support/api-server';

const NS = 'shop';
const CONTAINS = 'applyset.kubernetes.io/contains-group-kinds';

function documentFor(props: KVStoreProps = {}): StoreDocument {
  const chart = new Chart(Testing.app(), 'c', { namespace: NS });
  return new KVStore(chart, 'orders', props).document;
}

/** What the API would hold after applying `objects`: the same plus server-set fields. */
function applied(objects: readonly KubeObject[]): KubeObject[] {
  return objects.map((o) => ({ ...JSON.parse(JSON.stringify(o)), metadata: { ...JSON.parse(JSON.stringify(o.metadata)), uid: 'u', resourceVersion: '7', generation: 1 } }));
}

/** The live StatefulSet and bootstrap ConfigMap of a store once running with `size` members. */
function liveStore(size: number, annotations: Record<string, string> = {}): Required<LiveStore> {
  const objects = applied(desiredState(documentFor({ size }), { initialClusterState: 'existing' }).objects);
  const sts = objects.find((o) => o.kind === 'StatefulSet')!;
  const bootstrap = objects.find((o) => o.metadata.name === 'orders-bootstrap')!;
  return { sts: { ...sts, metadata: { ...sts.metadata, annotations: { ...sts.metadata.annotations, ...annotations } } }, bootstrap };
}

describe('tlsSwitch (pure): where turning TLS on for a live store stands', () => {
  const tlsDoc = documentFor({ size: 3, tls: {} });
  /** The live store as the switch leaves it: rendered at `options`, as applied. */
  const liveAt = (options: Parameters<typeof desiredState>[1]): LiveStore => {
    const objects = applied(desiredState(tlsDoc, { initialClusterState: 'existing', ...options }).objects);
    return { sts: objects.find((o) => o.kind === 'StatefulSet'), bootstrap: objects.find((o) => o.metadata.name === 'orders-bootstrap') };
  };

  test('a plain live store whose spec has TLS: from the start; none without TLS in the spec, while restoring, or before the store exists', () => {
    expect(tlsSwitch(tlsDoc, liveStore(3), false)).toEqual({ from: 'off', switchedFrom: 3 });
    expect(tlsSwitch(documentFor({ size: 3 }), liveStore(3), false)).toBeUndefined();
    expect(tlsSwitch(tlsDoc, liveStore(3), true)).toBeUndefined();
    expect(tlsSwitch(tlsDoc, {}, false)).toBeUndefined();
  });

  test('after the first phase: no member switched yet; mid-way: the live partition; done (no mark): nothing', () => {
    expect(tlsSwitch(tlsDoc, liveAt({ tlsPhase: 'peer-certificates', partition: 0, operation: TLS_SWITCH_MARK }), false)).toEqual({ from: 'peer-certificates', switchedFrom: 3 });
    expect(tlsSwitch(tlsDoc, liveAt({ partition: 1, operation: TLS_SWITCH_MARK }), false)).toEqual({ from: 'on', switchedFrom: 1 });
    expect(tlsSwitch(tlsDoc, liveAt({ partition: 0, operation: TLS_SWITCH_MARK }), false)).toEqual({ from: 'on', switchedFrom: 0 });
    expect(tlsSwitch(tlsDoc, liveAt({}), false)).toBeUndefined();
  });

  test('a run plans against the live phase: the first phase at partition 0, then TLS at the live partition; the TLS mark is no membership change', () => {
    const sts = (i: ReturnType<typeof intent>) => i.desired.objects.find((o) => o.kind === 'StatefulSet')!;
    const fresh = intent(tlsDoc, liveStore(3), undefined);
    expect(fresh.change).toBeUndefined();
    expect(sts(fresh).metadata.annotations![OPERATION_ANNOTATION]).toBe(TLS_SWITCH_MARK);
    expect(sts(fresh).spec.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { partition: 0 } });
    expect(sts(fresh).spec.template.spec.containers[0].args).not.toContain('--client-cert-auth');
    const midway = intent(tlsDoc, liveAt({ partition: 2, operation: TLS_SWITCH_MARK }), undefined);
    expect(midway.change).toBeUndefined();
    expect(sts(midway).spec.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { partition: 2 } });
    expect(sts(midway).spec.template.spec.containers[0].args).toContain('--client-cert-auth');
    expect(isNoOp({ ...midway, ...planObjects(midway.desired, applied(midway.desired.objects), {}), live: liveAt({}) })).toBe(false);
  });
});

describe('caRotation (pure): where a change of what the members trust stands', () => {
  const corp = documentFor({ size: 3, tls: { issuer: { name: 'corp', kind: 'ClusterIssuer' } } });
  const liveAt = (doc: StoreDocument, options: Parameters<typeof desiredState>[1] = {}): LiveStore => {
    const objects = applied(desiredState(doc, { initialClusterState: 'existing', ...options }).objects);
    return { sts: objects.find((o) => o.kind === 'StatefulSet'), bootstrap: objects.find((o) => o.metadata.name === 'orders-bootstrap') };
  };
  const own = liveAt(documentFor({ size: 3, tls: {} }));
  /** The member Secret the spec's issuer gets (`orders-member-tls-<hash>`). */
  const newSecret: string = desiredState(corp).objects.find((o) => o.kind === 'StatefulSet')!.spec.template.spec.volumes.find((v: any) => v.name === 'tls').secret.secretName;

  test('the store\'s own CA live, an issuer in the spec: from the start; the same trust, no TLS or restoring: none', () => {
    expect(caRotation(corp, own, false)).toEqual({ from: 'own-ca', to: 'ClusterIssuer/corp', liveSecret: 'orders-member-tls', stage: 'old' });
    expect(caRotation(documentFor({ size: 3, tls: {} }), own, false)).toBeUndefined();
    expect(caRotation(corp, own, true)).toBeUndefined();
    expect(caRotation(corp, liveStore(3), false)).toBeUndefined();
  });

  test('trusting both with the old certificate, then with the new one; a bundle of two others than the spec\'s: none (the plan refuses)', () => {
    const both = liveAt(corp, { caRotation: { memberSecret: 'orders-member-tls', trust: 'own-ca+ClusterIssuer/corp', bundle: true } });
    expect(caRotation(corp, both, false)).toEqual({ from: 'own-ca', to: 'ClusterIssuer/corp', liveSecret: 'orders-member-tls', stage: 'both' });
    const newLeaf = liveAt(corp, { caRotation: { memberSecret: newSecret, trust: 'own-ca+ClusterIssuer/corp', bundle: true } });
    expect(caRotation(corp, newLeaf, false)).toMatchObject({ stage: 'both-new-leaf', liveSecret: newSecret });
    const other = liveAt(corp, { caRotation: { memberSecret: 'orders-member-tls', trust: 'own-ca+ClusterIssuer/other', bundle: true } });
    expect(caRotation(corp, other, false)).toBeUndefined();
  });
});

describe('membershipChange (pure)', () => {
  const doc5 = documentFor({ size: 5 });

  test('members change from the live replicas to the spec size; none when they agree or nothing is bootstrapped', () => {
    expect(membershipChange(doc5, liveStore(3), false)).toEqual({ from: 3, inProgress: false });
    expect(membershipChange(doc5, liveStore(5), false)).toBeUndefined();
    expect(membershipChange(doc5, {}, false)).toBeUndefined();
    const fresh = liveStore(3).bootstrap;
    expect(membershipChange(doc5, { bootstrap: { ...fresh, data: { ...fresh.data, ETCD_INITIAL_CLUSTER_STATE: 'new' } } }, false)).toBeUndefined();
  });

  test('the operation mark resumes a stopped change even at the spec size', () => {
    expect(membershipChange(doc5, liveStore(5, { [OPERATION_ANNOTATION]: 'members → 5' }), false)).toEqual({ from: 5, inProgress: true });
  });

  test('while the StatefulSet is being re-created the bootstrap ConfigMap gives the member count', () => {
    expect(membershipChange(doc5, { bootstrap: liveStore(3).bootstrap }, false)).toEqual({ from: 3, inProgress: false });
  });

  test('no membership change during a restore or for a custom engine', () => {
    expect(membershipChange(doc5, liveStore(3), true)).toBeUndefined();
    const custom = documentFor({ engine: Engine.custom({ clientPort: 6379 }), containerImage: 'redis:7', size: 5 });
    expect(membershipChange(custom, { sts: liveStore(3).sts }, false)).toBeUndefined();
  });
});

describe('versionUpgrade (pure): where an etcd version change stands', () => {
  const at = (version: string) => documentFor({ size: 3, engine: Engine.etcd({ version }) });
  const liveAt = (version: string, annotations: Record<string, string> = {}, partition?: number): LiveStore => {
    const objects = applied(desiredState(at(version), { initialClusterState: 'existing', ...(partition !== undefined ? { partition } : {}) }).objects);
    const sts = objects.find((o) => o.kind === 'StatefulSet')!;
    return { sts: { ...sts, metadata: { ...sts.metadata, annotations: { ...sts.metadata.annotations, ...annotations } } } };
  };

  test('a live store on another version: from the start (every member still to restart); none on the same version, restoring or before it exists', () => {
    expect(versionUpgrade(at('3.5.21'), liveAt('3.5.9'), false)).toEqual({ from: '3.5.9', to: '3.5.21', upgradedFrom: 3 });
    expect(versionUpgrade(at('3.5.21'), liveAt('3.5.21'), false)).toBeUndefined();
    expect(versionUpgrade(at('3.5.21'), liveAt('3.5.9'), true)).toBeUndefined();
    expect(versionUpgrade(at('3.5.21'), {}, false)).toBeUndefined();
  });

  test('mid-way: resumed at the live partition; towards another version than the mark\'s, every member again', () => {
    const mark = { [OPERATION_ANNOTATION]: 'version 3.5.9 → 3.5.21' };
    expect(versionUpgrade(at('3.5.21'), liveAt('3.5.21', mark, 1), false)).toEqual({ from: '3.5.9', to: '3.5.21', upgradedFrom: 1 });
    expect(versionUpgrade(at('3.5.22'), liveAt('3.5.21', mark, 1), false)).toEqual({ from: '3.5.9', to: '3.5.22', upgradedFrom: 3 });
  });

  test('a run plans against the live phase: the new template at the live partition, marked; it is no membership change and no no-op', () => {
    const i = intent(at('3.5.21'), liveAt('3.5.9'), undefined);
    expect(i.change).toBeUndefined();
    expect(i.upgrade).toEqual({ from: '3.5.9', to: '3.5.21', upgradedFrom: 3 });
    const sts = i.desired.objects.find((o) => o.kind === 'StatefulSet')!;
    expect(sts.spec.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { partition: 3 } });
    expect(sts.metadata.annotations?.[OPERATION_ANNOTATION]).toBe('version 3.5.9 → 3.5.21');
    expect(sts.spec.template.spec.containers[0].image).toBe('gcr.io/etcd-development/etcd:v3.5.21');
  });
});

describe('crashLooping (pure): a member lost for good, not one slow or killed from outside', () => {
  const pod = (c: Record<string, unknown>, ready = false) => ({
    apiVersion: 'v1', kind: 'Pod', metadata: { name: 'orders-1' },
    status: { conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }], containerStatuses: [{ restartCount: 4, state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode: 2, reason: 'Error' } }, ...c }] },
  });
  test('waiting out the back-off after failing by itself 3 times or more: lost', () => {
    expect(crashLooping(pod({}))).toBe(true);
  });
  test('between two failed starts (running for a moment): may be, look again; ready, too few restarts, killed (137, 143, OOM) or no pod: not lost', () => {
    expect([mayCrashLoop(pod({ state: { running: {} } })), crashLooping(pod({ state: { running: {} } }))]).toEqual([true, false]);
    expect(crashLooping(pod({}, true))).toBe(false);
    expect(crashLooping(pod({ restartCount: 2 }))).toBe(false);
    for (const last of [{ exitCode: 137, reason: 'Error' }, { exitCode: 143, reason: 'Error' }, { exitCode: 1, reason: 'OOMKilled' }, { exitCode: 0, reason: 'Completed' }]) {
      expect({ last, lost: crashLooping(pod({ lastState: { terminated: last } })) }).toEqual({ last, lost: false });
    }
    expect(crashLooping(undefined)).toBe(false);
  });
});

describe('restoring (pure)', () => {
  test('until the live store records the snapshot; the bootstrap ConfigMap counts only while the StatefulSet is gone', () => {
    const { sts, bootstrap } = liveStore(3);
    const marked = (o: KubeObject, from: string) => ({ ...o, metadata: { ...o.metadata, annotations: { ...o.metadata.annotations, [RESTORED_FROM_ANNOTATION]: from } } });
    expect(restoring({ sts, bootstrap }, undefined)).toBe(false);
    expect(restoring({ sts, bootstrap }, 'b/x.db')).toBe(true);
    expect(restoring({ sts: marked(sts, 'b/x.db'), bootstrap }, 'b/x.db')).toBe(false);
    expect(restoring({ bootstrap: marked(bootstrap, 'b/x.db') }, 'b/x.db')).toBe(false);
    expect(restoring({ sts, bootstrap: marked(bootstrap, 'b/x.db') }, 'b/x.db')).toBe(true);
  });
});

describe('intent (pure)', () => {
  test('a membership change is planned at the live size, marked; otherwise at the spec size', () => {
    const changing = intent(documentFor({ size: 5 }), liveStore(3), undefined);
    const sts = changing.desired.objects.find((o) => o.kind === 'StatefulSet')!;
    expect(sts.spec.replicas).toBe(3);
    expect(sts.metadata.annotations?.[OPERATION_ANNOTATION]).toBe('members → 5');
    const steady = intent(documentFor({ size: 3 }), liveStore(3), undefined).desired.objects.find((o) => o.kind === 'StatefulSet')!;
    expect(steady.spec.replicas).toBe(3);
    expect(steady.metadata.annotations?.[OPERATION_ANNOTATION]).toBeUndefined();
  });

  test('a store not yet bootstrapped renders its members to form a new cluster', () => {
    const bootstrap = (live: LiveStore) => intent(documentFor(), live, undefined).desired.objects.find((o) => o.metadata.name === 'orders-bootstrap')!;
    expect(bootstrap({}).data.ETCD_INITIAL_CLUSTER_STATE).toBe('new');
    expect(bootstrap(liveStore(3)).data.ETCD_INITIAL_CLUSTER_STATE).toBe('existing');
  });
});

describe('planObjects (pure)', () => {
  test('live as desired: nothing to do, and the run is a no-op', () => {
    const desired = desiredState(documentFor(), { initialClusterState: 'existing' });
    const planned = planObjects(desired, applied(desired.objects), {});
    expect(planned.plan.steps).toEqual([]);
    expect(planned.exactParent).toBeUndefined();
    expect(isNoOp({ ...planned, desired, restoring: false, live: liveStore(3) })).toBe(true);
    expect(isNoOp({ ...planned, desired, restoring: false, live: liveStore(3), change: { from: 3, inProgress: true } })).toBe(false);
  });

  test('a kind no longer desired: pruned while the parent still lists it, the exact parent kept for after', () => {
    const before = desiredState(documentFor(), { initialClusterState: 'existing' });
    const desired = desiredState(documentFor({ networkPolicy: false }), { initialClusterState: 'existing' });
    const planned = planObjects(desired, applied(before.objects), {});
    expect(planned.plan.steps.map((s) => `${s.action} ${'object' in s ? s.object.kind : s.ref.kind}`)).toEqual(['prune NetworkPolicy']);
    expect(planned.plan.unchanged.map((r) => r.name)).toContain('orders-applyset');
    expect(planned.exactParent?.metadata.annotations?.[CONTAINS]).toBe('ConfigMap,PodDisruptionBudget.policy,Service,StatefulSet.apps');
    expect(isNoOp({ ...planned, desired, restoring: false, live: liveStore(3) })).toBe(false);
  });

  test('replicas managed: a replicas change is an update instead of a refusal', () => {
    const desired = desiredState(documentFor({ size: 5 }), { initialClusterState: 'existing' });
    const live = applied(desiredState(documentFor({ size: 3 }), { initialClusterState: 'existing' }).objects);
    expect(planObjects(desired, live, {}).plan.refusals.map((r) => r.field)).toEqual(['spec.replicas']);
    const managed = planObjects(desired, live, { replicasManaged: true }).plan;
    expect(managed.refusals).toEqual([]);
    expect(managed.steps.some((s) => s.action === 'update' && s.changes.some((c) => c.path === 'spec.replicas'))).toBe(true);
  });
});

describe('StoreReconciler against the API double', () => {
  let server: ApiServer;
  let controller: NodeJS.Timeout;
  let lines: string[];

  beforeEach(async () => {
    server = await startApiServer();
    lines = [];
    // Stands in for the StatefulSet controller: reports every StatefulSet as rolled out.
    controller = setInterval(() => {
      const sts = server.get('apps/v1', 'StatefulSet', NS, 'orders') as any;
      if (sts && sts.status?.observedGeneration !== sts.metadata.generation) {
        server.put({ ...sts, status: { observedGeneration: sts.metadata.generation, replicas: sts.spec.replicas, readyReplicas: sts.spec.replicas, updatedReplicas: sts.spec.replicas } });
      }
    }, 10);
  });
  afterEach(async () => {
    clearInterval(controller);
    await server.stop();
  });

  const options = { holder: 'test-job', pollMs: 20, rolloutTimeoutMs: 5000 };
  const reconciler = (props: KVStoreProps = {}, extra: object = {}) =>
    new StoreReconciler(documentFor(props), new KubeClient(server.kubeConfig(), { baseDelayMs: 5, maxDelayMs: 20 }), new Log(false, (l) => lines.push(l.trimEnd())), { ...options, ...extra });
  const leaseRequests = () => server.requests.filter((r) => r.path.includes('/leases'));

  test('readLive and planRun read only; planRun sees drift', async () => {
    await reconciler().reconcile();
    const mutating = server.mutatingRequests().length;
    const r = reconciler();
    const live = await r.readLive();
    expect(live.sts?.metadata.name).toBe('orders');
    expect(live.bootstrap?.data?.ETCD_INITIAL_CLUSTER_STATE).toBe('existing');
    expect(isNoOp(await r.planRun())).toBe(true);
    const pdb = server.get('policy/v1', 'PodDisruptionBudget', NS, 'orders') as any;
    server.put({ ...pdb, spec: { ...pdb.spec, minAvailable: 1 } });
    const drifted = await r.planRun();
    expect(isNoOp(drifted)).toBe(false);
    expect(drifted.plan.steps.map((s) => s.action)).toEqual(['update']);
    expect(server.mutatingRequests().length).toBe(mutating);
  });

  test('the no-op path returns before the Lease: not even a read of it', async () => {
    await reconciler().reconcile();
    lines.length = 0;
    const leases = leaseRequests().length;
    const requests = server.requests.length;
    const result = await reconciler().reconcile();
    expect(result.mutatingRequests).toBe(0);
    expect(server.requests.length).toBeGreaterThan(requests);
    expect(leaseRequests().length).toBe(leases);
    expect(lines).toEqual(['store shop/orders', 'plan: 0 to create, 0 to update, 0 to re-create, 0 to prune, 7 unchanged, 0 refused']);
  });

  test('a dry run plans everything, logs the plan and sends no mutating request', async () => {
    const result = await reconcileStore(documentFor(), new KubeClient(server.kubeConfig(), { baseDelayMs: 5 }), new Log(false, (l) => lines.push(l.trimEnd())), { ...options, dryRun: true });
    expect(result.plan.steps.map((s) => s.action)).toEqual(['create', 'create', 'create', 'create', 'create', 'wait-rollout', 'create', 'create']);
    expect(result.mutatingRequests).toBe(0);
    expect(server.mutatingRequests()).toEqual([]);
    expect(lines[0]).toBe(`store ${NS}/orders`);
    expect(lines).toContain('plan: 7 to create, 0 to update, 0 to re-create, 0 to prune, 0 unchanged, 0 refused');
  });

  test('a change made while the Lease was taken is planned again under it; refused, the Lease is still given back', async () => {
    await reconciler({ storageSize: '10Gi' }).reconcile();
    const pdb = server.get('policy/v1', 'PodDisruptionBudget', NS, 'orders') as any;
    server.put({ ...pdb, spec: { ...pdb.spec, minAvailable: 1 } });
    // Someone grows the volumes as our Lease is taken: the first plan did not see it, the second must.
    const stop = server.onChange((e) => {
      if (e.object.kind !== 'Lease' || !(e.object as any).spec?.holderIdentity) return;
      stop();
      const sts = server.get('apps/v1', 'StatefulSet', NS, 'orders') as any;
      const [claim] = sts.spec.volumeClaimTemplates;
      server.put({ ...sts, spec: { ...sts.spec, volumeClaimTemplates: [{ ...claim, spec: { ...claim.spec, resources: { requests: { storage: '20Gi' } } } }] } });
    });
    // The refusal's Event and last-error annotation are records, not changes to the store.
    const stores = () => server.mutatingRequests().filter((r) => !r.path.includes('/leases') && !r.path.includes('/events.k8s.io/') && r.query.fieldManager !== OUTCOME_FIELD_MANAGER).length;
    const before = stores();
    await expect(reconciler({ storageSize: '10Gi' }).reconcile()).rejects.toThrow(RefusedError);
    expect(stores()).toBe(before);
    expect((server.get('policy/v1', 'PodDisruptionBudget', NS, 'orders') as any).spec.minAvailable).toBe(1);
    expect((server.get('coordination.k8s.io/v1', 'Lease', NS, 'orders-reconciler') as any).spec.holderIdentity).toBeUndefined();
  });
});
