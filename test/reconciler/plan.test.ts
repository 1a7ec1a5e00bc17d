import { Chart, Testing } from 'cdk8s';
import { Engine, KVStore, KVStoreProps } from '../../lib';
import { desiredState } from '../../lib/reconciler/desired';
import { differences, formatPlan, plan, upgradeMark } from '../../lib/reconciler/plan';
import { KubeObject } from '../../lib/reconciler/types';

function desiredFor(props: KVStoreProps = {}) {
  const chart = new Chart(Testing.app(), 'c', { namespace: 'shop' });
  const store = new KVStore(chart, 'orders', props);
  return desiredState(store.document);
}

/** What the API would hold after applying `objects`: the same plus server-set fields. */
function live(objects: readonly KubeObject[]): KubeObject[] {
  return objects.map((o) => ({
    ...JSON.parse(JSON.stringify(o)),
    metadata: { ...JSON.parse(JSON.stringify(o.metadata)), uid: 'u', resourceVersion: '7', generation: 1, creationTimestamp: '2026-01-01T00:00:00Z' },
    ...(o.kind === 'StatefulSet' ? { status: { replicas: o.spec.replicas, readyReplicas: o.spec.replicas } } : {}),
  }));
}

const find = (objects: KubeObject[], kind: string) => objects.find((o) => o.kind === kind)!;
const actions = (p: ReturnType<typeof plan>) => p.steps.map((s) => `${s.action} ${'object' in s ? `${s.object.kind}/${s.object.metadata.name}` : `${s.ref.kind}/${s.ref.name}`}`);

describe('plan', () => {
  test('nothing live: create everything in dependency order, then wait for the rollout', () => {
    const d = desiredFor();
    const p = plan(d.objects, [], { applySetId: d.applySetId });
    expect(actions(p)).toEqual([
      'create ConfigMap/orders-applyset',
      'create ConfigMap/orders-bootstrap',
      'create Service/orders-peers',
      'create Service/orders',
      'create StatefulSet/orders',
      'wait-rollout StatefulSet/orders',
      'create PodDisruptionBudget/orders',
      'create NetworkPolicy/orders',
    ]);
    expect(p.refusals).toEqual([]);
  });

  test('everything live and equal: no steps (a no-op)', () => {
    const d = desiredFor();
    const p = plan(d.objects, live(d.objects), { applySetId: d.applySetId });
    expect(p.steps).toEqual([]);
    expect(p.unchanged).toHaveLength(7);
  });

  test('fields only the live object has (API defaults) are not differences', () => {
    const d = desiredFor();
    const l = live(d.objects);
    const sts = find(l, 'StatefulSet');
    sts.spec.template.spec.containers[0].terminationMessagePath = '/dev/termination-log';
    sts.spec.revisionHistoryLimit = 10;
    find(l, 'Service').spec.clusterIPs = ['None'];
    expect(plan(d.objects, l, { applySetId: d.applySetId }).steps).toEqual([]);
  });

  test('a drifted field is put back with an update naming the field', () => {
    const d = desiredFor();
    const l = live(d.objects);
    find(l, 'PodDisruptionBudget').spec.minAvailable = 1;
    const p = plan(d.objects, l, { applySetId: d.applySetId });
    expect(actions(p)).toEqual(['update PodDisruptionBudget/orders']);
    expect(p.steps[0]).toMatchObject({ changes: [{ path: 'spec.minAvailable', from: 1, to: 2 }] });
  });

  test('a template change updates the StatefulSet and waits for its rollout', () => {
    const before = desiredFor();
    const after = desiredFor({ resources: { requests: { cpu: '500m', memory: '1Gi' } } });
    const p = plan(after.objects, live(before.objects), { applySetId: after.applySetId });
    expect(actions(p)).toEqual(['update StatefulSet/orders', 'wait-rollout StatefulSet/orders']);
    const paths = (p.steps[0] as any).changes.map((c: any) => c.path);
    expect(paths).toContain('spec.template.spec.containers[0].resources.requests.cpu');
  });

  test('objects of the ApplySet that are no longer desired are pruned, last', () => {
    const before = desiredFor();
    const after = desiredFor({ networkPolicy: false });
    const p = plan(after.objects, live(before.objects), { applySetId: after.applySetId });
    // The ApplySet parent's contains-group-kinds annotation shrinks too.
    expect(actions(p)).toEqual(['update ConfigMap/orders-applyset', 'prune NetworkPolicy/orders']);
  });

  test('objects without the ApplySet label, and PVCs, are never pruned', () => {
    const d = desiredFor();
    const foreign: KubeObject = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'someone-else', namespace: 'shop' } };
    const pvc: KubeObject = { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data-orders-0', namespace: 'shop', labels: { 'applyset.kubernetes.io/part-of': d.applySetId } } };
    expect(plan(d.objects, [...live(d.objects), foreign, pvc], { applySetId: d.applySetId }).steps).toEqual([]);
  });

  describe('refusals (changes the API rejects or that lose data)', () => {
    const refused = (before: KVStoreProps, after: KVStoreProps) => {
      const a = desiredFor(after);
      return plan(a.objects, live(desiredFor(before).objects), { applySetId: a.applySetId });
    };

    test('growing storage is a resize step (grow the PVCs, re-create the StatefulSet), not a refusal', () => {
      const p = refused({ storageSize: '10Gi' }, { storageSize: '20Gi' });
      expect(p.refusals).toEqual([]);
      expect(actions(p)).toEqual(['update ConfigMap/orders-bootstrap', 'resize StatefulSet/orders', 'wait-rollout StatefulSet/orders']);
      const resize = p.steps.find((s) => s.action === 'resize') as Extract<typeof p.steps[number], { action: 'resize' }>;
      expect(resize.claims).toEqual([{ template: 'data', from: '10Gi', to: '20Gi' }]);
      // The pod template does not change: the pods keep running through the re-create.
      expect(resize.changes.filter((c) => c.path.startsWith('spec.template'))).toEqual([]);
      expect(formatPlan(p)).toContain('      volume data: 10Gi → 20Gi');
    });

    test('growing one template and shrinking another refuses the whole change', () => {
      const templates = (a: string, b: string) => ({ volumeClaimTemplates: [{ name: 'data', storage: a }, { name: 'wal', storage: b }] });
      const p = refused(templates('10Gi', '2Gi'), templates('20Gi', '1Gi'));
      expect(actions(p).filter((a) => a.includes('StatefulSet'))).toEqual([]);
      expect(p.refusals.map((r) => r.field)).toEqual(['spec.volumeClaimTemplates[1].spec.resources.requests.storage']);
    });

    test('restoring over a live store replaces its data: refused unless forced', () => {
      const backup = { pruneImage: 'r:1' };
      const restored = desiredFor({ backup, restore: { snapshot: 'orders-1.db' }, reconciler: { image: 'r:1' } });
      const p = plan(restored.objects, live(desiredFor({ backup }).objects), { applySetId: restored.applySetId });
      expect(p.refusals).toEqual([expect.objectContaining({ field: 'metadata.annotations.kvstore.cdk8s-kvstore.io/restored-from', from: undefined, to: 'orders-backups/orders-1.db', reason: expect.stringMatching(/writes since the snapshot are lost/) })]);
      expect(plan(restored.objects, live(desiredFor({ backup }).objects), { applySetId: restored.applySetId, force: true }).refusals).toEqual([]);
    });

    test('shrinking the backup PVC', () => {
      const backup = { pruneImage: 'r:1' };
      const p = refused({ backup, storageSize: '20Gi' }, { backup, storageSize: '10Gi' });
      expect(p.refusals.map((r) => [r.ref.kind, r.field, r.from, r.to])).toEqual([
        ['StatefulSet', 'spec.volumeClaimTemplates[0].spec.resources.requests.storage', '20Gi', '10Gi'],
        ['PersistentVolumeClaim', 'spec.resources.requests.storage', '20Gi', '10Gi'],
      ]);
    });

    test('dropping restore from a restored store is refused (members would go back to their old data)', () => {
      const backup = { pruneImage: 'r:1' };
      const restored = desiredFor({ backup, restore: { snapshot: 'orders-1.db' }, reconciler: { image: 'r:1' } });
      const plain = desiredFor({ backup });
      expect(plan(plain.objects, live(restored.objects), { applySetId: plain.applySetId }).refusals)
        .toEqual([expect.objectContaining({ from: 'orders-backups/orders-1.db', to: undefined, reason: expect.stringMatching(/go back to the data they had before/), forceable: false })]);
      // Not even force: the members could not rejoin the restored cluster.
      expect(plan(plain.objects, live(restored.objects), { applySetId: plain.applySetId, force: true }).refusals).toHaveLength(1);
    });

    test('TLS moves one phase at a time: plain → the peer-certificate phase, or back; straight to TLS, or TLS off, refused even with force', () => {
      const plainStore = desiredFor();
      const tlsStore = desiredFor({ tls: {} });
      const doc = new KVStore(new Chart(Testing.app(), 'c', { namespace: 'shop' }), 'orders', { tls: {} }).document;
      const phase = desiredState(doc, { tlsPhase: 'peer-certificates', partition: 0 });
      const stsOf = (d: typeof phase) => d.objects.find((o) => o.kind === 'StatefulSet')!;
      expect(stsOf(phase).spec.template.spec.containers[0].args).toEqual(expect.arrayContaining(['--peer-cert-file=/etc/kvstore/tls/tls.crt', '--listen-peer-urls=http://$(POD_IP):2380']));
      for (const [from, to] of [[plainStore, phase], [phase, plainStore]] as const) {
        expect(plan(to.objects, live(from.objects), { applySetId: to.applySetId }).refusals).toEqual([]);
      }
      for (const [from, to, f, t, why] of [
        [plainStore, tlsStore, 'off', 'on', /member by member/],
        [phase, tlsStore, 'peer-certificates', 'on', /member by member/],
        [tlsStore, plainStore, 'on', 'off', /turning TLS off for a live store is not supported/],
        [tlsStore, phase, 'on', 'peer-certificates', /turning TLS off/],
      ] as const) {
        for (const force of [false, true]) {
          expect(plan(to.objects, live(from.objects), { applySetId: to.applySetId, force }).refusals)
            .toEqual([expect.objectContaining({ field: 'spec.tls', from: f, to: t, reason: expect.stringMatching(why), forceable: false })]);
        }
      }
    });

    test('what a live TLS store trusts moves one phase at a time (old → both → new); straight to another CA, or back from both, refused even with force', () => {
      const own = desiredFor({ tls: {} });
      const corp = desiredFor({ tls: { issuer: { name: 'corp', kind: 'ClusterIssuer' } } });
      const doc = new KVStore(new Chart(Testing.app(), 'c', { namespace: 'shop' }), 'orders', { tls: { issuer: { name: 'corp', kind: 'ClusterIssuer' } } }).document;
      const both = desiredState(doc, { caRotation: { memberSecret: 'orders-member-tls', trust: 'own-ca+ClusterIssuer/corp', bundle: true }, partition: 0 });
      const trustOf = (d: typeof own) => plan(d.objects, [], { applySetId: d.applySetId });
      expect(trustOf(both).refusals).toEqual([]);
      const sts = both.objects.find((o) => o.kind === 'StatefulSet')!;
      expect(sts.spec.template.spec.containers[0].args).toEqual(expect.arrayContaining(['--trusted-ca-file=/etc/kvstore/trust/ca.crt', '--peer-trusted-ca-file=/etc/kvstore/trust/ca.crt', '--cert-file=/etc/kvstore/tls/tls.crt']));
      expect(sts.spec.template.spec.volumes).toContainEqual({ name: 'trust', configMap: { name: 'orders-trust', items: [{ key: 'ca.crt', path: 'ca.crt' }] } });
      for (const [from, to] of [[own, both], [both, corp]] as const) {
        expect(plan(to.objects, live(from.objects), { applySetId: to.applySetId }).refusals.filter((r) => r.field.includes('tls-trust'))).toEqual([]);
      }
      for (const [from, to, f, t] of [[own, corp, 'own-ca', 'ClusterIssuer/corp'], [both, own, 'own-ca+ClusterIssuer/corp', 'own-ca']] as const) {
        for (const force of [false, true]) {
          expect(plan(to.objects, live(from.objects), { applySetId: to.applySetId, force }).refusals.filter((r) => r.field.includes('tls-trust')))
            .toEqual([expect.objectContaining({ from: f, to: t, reason: expect.stringMatching(/goes through the reconciler's CA rotation/), forceable: false })]);
        }
      }
    });

    test('a KVStore resource\'s TLS store (CRD mode) applies its Certificates and Issuers before the StatefulSet', () => {
      const chart = new Chart(Testing.app(), 'c', { namespace: 'shop' });
      const d = desiredState({ ...new KVStore(chart, 'orders', { tls: {} }).document, reconciledBy: 'operator' });
      expect(actions(plan(d.objects, [], { applySetId: d.applySetId })).slice(0, 8)).toEqual([
        'create ConfigMap/orders-applyset',
        'create ConfigMap/orders-bootstrap',
        'create Issuer/orders-selfsigned',
        'create Certificate/orders-ca',
        'create Issuer/orders-ca',
        'create Certificate/orders-member-tls',
        'create Certificate/orders-client-tls',
        'create Service/orders-peers',
      ]);
    });

    test('shrinking storage', () => {
      expect(refused({ storageSize: '10Gi' }, { storageSize: '5Gi' }).refusals).toEqual([expect.objectContaining({ from: '10Gi', to: '5Gi', reason: expect.stringMatching(/cannot shrink/) })]);
    });

    test('adding a volume claim template', () => {
      expect(refused({}, { volumeClaimTemplates: [{ name: 'data' }, { name: 'wal' }] }).refusals)
        .toEqual([expect.objectContaining({ field: 'spec.volumeClaimTemplates', from: ['data'], to: ['data', 'wal'] })]);
    });

    test('changing a template storage class', () => {
      expect(refused({ storageClassName: 'slow' }, { storageClassName: 'fast' }).refusals)
        .toEqual([expect.objectContaining({ field: 'spec.volumeClaimTemplates[0].spec.storageClassName', from: 'slow', to: 'fast' })]);
    });

    test('podManagementPolicy', () => {
      const custom = { containerImage: 'redis:7', engine: Engine.custom({ clientPort: 6379 }) };
      expect(refused(custom, { ...custom, podManagementPolicy: 'Parallel' as any }).refusals)
        .toEqual([expect.objectContaining({ field: 'spec.podManagementPolicy', from: 'OrderedReady', to: 'Parallel', reason: expect.stringMatching(/immutable/) })]);
    });

    test('changing the engine', () => {
      const p = refused({}, { containerImage: 'quay.io/coreos/etcd:v3.5.21', engine: Engine.custom({ clientPort: 2379, peerPort: 2380 }), podManagementPolicy: 'Parallel' as any });
      expect(p.refusals.map((r) => r.field)).toContain('metadata.annotations.kvstore.cdk8s-kvstore.io/engine');
    });

    test('changing the etcd member count (membership procedure)', () => {
      expect(refused({ size: 3 }, { size: 5 }).refusals).toEqual([expect.objectContaining({ field: 'spec.replicas', from: 3, to: 5, reason: expect.stringMatching(/registered/) })]);
    });

    test('a custom engine may change replicas', () => {
      const custom = { containerImage: 'redis:7', engine: Engine.custom({ clientPort: 6379 }) };
      const p = refused({ ...custom, size: 3 }, { ...custom, size: 4 });
      expect(p.refusals).toEqual([]);
      expect(actions(p)).toEqual(['update StatefulSet/orders', 'wait-rollout StatefulSet/orders', 'update PodDisruptionBudget/orders']);
    });

    test('serviceName and selector changes are refused as immutable', () => {
      const d = desiredFor();
      const l = live(d.objects);
      find(l, 'StatefulSet').spec.serviceName = 'old-peers';
      find(l, 'StatefulSet').spec.selector = { matchLabels: { app: 'old' } };
      const p = plan(d.objects, l, { applySetId: d.applySetId });
      expect(p.refusals.map((r) => r.field).sort()).toEqual(['spec.selector', 'spec.serviceName']);
    });

    test('force turns immutable-field refusals into an orphan re-create', () => {
      const a = desiredFor();
      const l = live(a.objects);
      find(l, 'StatefulSet').spec.serviceName = 'old-peers';
      const p = plan(a.objects, l, { applySetId: a.applySetId, force: true });
      expect(p.refusals).toEqual([]);
      expect(actions(p)).toEqual(['recreate StatefulSet/orders', 'wait-rollout StatefulSet/orders']);
    });

    test('a replicas change the caller manages (membership, restore) is an update', () => {
      const a = desiredFor({ size: 5 });
      const p = plan(a.objects, live(desiredFor({ size: 3 }).objects), { applySetId: a.applySetId, replicasManaged: true });
      expect(p.refusals).toEqual([]);
      expect(actions(p)).toEqual(['update ConfigMap/orders-bootstrap', 'update StatefulSet/orders', 'wait-rollout StatefulSet/orders', 'update PodDisruptionBudget/orders']);
    });

    test('force lets a replicas change through as an update', () => {
      const a = desiredFor({ size: 5 });
      const p = plan(a.objects, live(desiredFor({ size: 3 }).objects), { applySetId: a.applySetId, force: true });
      expect(actions(p)).toEqual(['update ConfigMap/orders-bootstrap', 'update StatefulSet/orders', 'wait-rollout StatefulSet/orders', 'update PodDisruptionBudget/orders']);
    });
  });

  test('formatPlan prints one line per step and per changed field, like a diff', () => {
    const d = desiredFor();
    const l = live(d.objects).filter((o) => o.kind !== 'NetworkPolicy');
    find(l, 'PodDisruptionBudget').spec.minAvailable = 1;
    expect(formatPlan(plan(d.objects, l, { applySetId: d.applySetId }))).toEqual([
      'plan: 1 to create, 1 to update, 0 to re-create, 0 to prune, 5 unchanged, 0 refused',
      '  ~ PodDisruptionBudget/orders',
      '      spec.minAvailable: 1 → 2',
      '  + NetworkPolicy/orders',
    ]);
  });

  test('1,000 desired objects all live and equal are all unchanged (timing lives in the benchmark)', () => {
    const objects = Array.from({ length: 1000 }, (_, i) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `cm-${i}`, namespace: 'x', labels: { a: 'b' } }, data: { k: String(i) } }));
    expect(plan(objects, live(objects), { applySetId: 'id' }).unchanged).toHaveLength(1000);
  });
});

describe('differences', () => {
  test('maps: only desired keys are compared', () => {
    expect(differences({ a: 1, b: { c: 2 } }, { a: 1, b: { c: 2, d: 3 }, e: 4 })).toEqual([]);
    expect(differences({ a: 1, b: { c: 2 } }, { a: 1, b: { c: 5 } })).toEqual([{ path: 'b.c', from: 5, to: 2 }]);
  });

  test('arrays: compared element by element, a length change is one difference', () => {
    expect(differences({ l: [{ a: 1 }] }, { l: [{ a: 1, z: 0 }] })).toEqual([]);
    expect(differences({ l: [1, 2] }, { l: [1] })).toEqual([{ path: 'l', from: [1], to: [1, 2] }]);
  });

  test('a missing live field is a difference', () => {
    expect(differences({ a: { b: 1 } }, {})).toEqual([{ path: 'a', from: undefined, to: { b: 1 } }]);
  });
});

describe('quantities the API rewrites into canonical form', () => {
  test('cpu 1000m against a live 1, and 1024Gi against a live 1Ti, are no change and no refusal', () => {
    const d = desiredFor({ storageSize: '1024Gi', resources: { requests: { cpu: '1000m', memory: '1024Mi' } } });
    const l = live(d.objects);
    const sts = find(l, 'StatefulSet');
    sts.spec.template.spec.containers[0].resources.requests = { cpu: '1', memory: '1Gi' };
    sts.spec.volumeClaimTemplates[0].spec.resources.requests.storage = '1Ti';
    const p = plan(d.objects, l, { applySetId: d.applySetId });
    expect(p.refusals).toEqual([]);
    expect(p.steps).toEqual([]);
  });

  test('a real value change is still one', () => {
    expect(differences({ resources: { requests: { cpu: '500m' } } }, { resources: { requests: { cpu: '1' } } }))
      .toEqual([{ path: 'resources.requests.cpu', from: '1', to: '500m' }]);
  });
});

describe('etcd version changes', () => {
  const at = (version: string) => desiredFor({ engine: Engine.etcd({ version }) });
  const liveAt = (version: string, mark?: string) => {
    const l = live(at(version).objects);
    if (mark) find(l, 'StatefulSet').metadata.annotations!['kvstore.cdk8s-kvstore.io/operation'] = mark;
    return l;
  };

  test('a patch change and one minor step up: an update of the StatefulSet (the reconciler rolls it member by member)', () => {
    for (const [from, to] of [['3.5.9', '3.5.21'], ['3.5.21', '3.5.9'], ['3.4.23', '3.5.21']]) {
      const d = at(to);
      const p = plan(d.objects, liveAt(from), { applySetId: d.applySetId });
      expect(p.refusals).toEqual([]);
      expect(actions(p)).toContain('update StatefulSet/orders');
    }
  });

  test('a skipped minor and a minor downgrade: refused, not even force', () => {
    for (const [from, to, why] of [['3.4.23', '3.6.0', /skips 1 minor/], ['3.5.21', '3.4.23', /downgrade of the minor/]] as const) {
      const d = at(to);
      const p = plan(d.objects, liveAt(from), { applySetId: d.applySetId, force: true });
      expect(p.refusals).toHaveLength(1);
      expect(p.refusals[0]).toMatchObject({ field: 'metadata.annotations.kvstore.cdk8s-kvstore.io/engine-version', from, to, forceable: false });
      expect(p.refusals[0].reason).toMatch(why);
      expect(p.steps.filter((s) => 'object' in s && s.object.kind === 'StatefulSet')).toEqual([]);
    }
  });

  test('mid-upgrade, a new version is checked against where the members came from too', () => {
    // 3.4 → 3.5 under way (the StatefulSet says 3.5.21), now 3.5.22: a patch from 3.5.21 but two minors from 3.4.
    const d = at('3.5.22');
    const p = plan(d.objects, liveAt('3.5.21', upgradeMark('3.3.9', '3.5.21')), { applySetId: d.applySetId });
    expect(p.refusals.map((r) => r.from)).toEqual(['3.3.9']);
    const ok = plan(d.objects, liveAt('3.5.21', upgradeMark('3.5.9', '3.5.21')), { applySetId: d.applySetId });
    expect(ok.refusals).toEqual([]);
  });

  test('back to where an upgrade under way came from: a patch freely; a minor only with force (etcd allows it until the last member moved)', () => {
    const d = at('3.4.23');
    const refused = plan(d.objects, liveAt('3.5.21', upgradeMark('3.4.23', '3.5.21')), { applySetId: d.applySetId });
    expect(refused.refusals).toHaveLength(1);
    expect(refused.refusals[0]).toMatchObject({ from: '3.5.21', to: '3.4.23' });
    expect(refused.refusals[0].forceable).toBeUndefined();
    expect(refused.refusals[0].reason).toMatch(/only while some member still runs 3\.4\.23/);
    expect(plan(d.objects, liveAt('3.5.21', upgradeMark('3.4.23', '3.5.21')), { applySetId: d.applySetId, force: true }).refusals).toEqual([]);
    const patch = at('3.5.9');
    expect(plan(patch.objects, liveAt('3.5.21', upgradeMark('3.5.9', '3.5.21')), { applySetId: patch.applySetId }).refusals).toEqual([]);
  });

  test('a live StatefulSet without the version annotation: its image tag tells the version', () => {
    const d = at('3.6.0');
    const l = liveAt('3.4.23');
    delete find(l, 'StatefulSet').metadata.annotations!['kvstore.cdk8s-kvstore.io/engine-version'];
    expect(plan(d.objects, l, { applySetId: d.applySetId }).refusals.map((r) => r.from)).toEqual(['3.4.23']);
  });
});
