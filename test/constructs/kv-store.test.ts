import { App, Chart, Testing } from 'cdk8s';
import {
  AccessMode, Engine, KVStore, PatchOp, PodAntiAffinity, PodManagementPolicy, PvcRetention, SpecError, TaintEffect, TolerationOperator, UpdateStrategy, WhenUnsatisfiable,
} from '../../lib';
import { desiredState } from '../../lib/reconciler/desired';
import { container, find, Manifest, renderDocument, synth, testChart, validateAgainstSchema } from '../support/manifests';

function store(props: ConstructorParameters<typeof KVStore>[2] = {}, namespace?: string): { store: KVStore; objects: Manifest[]; chart: Chart } {
  const chart = testChart(namespace);
  const s = new KVStore(chart, 'orders', props);
  return { store: s, objects: synth(chart), chart };
}

const args = (objects: Manifest[]): string[] => container(objects).args;
const arg = (objects: Manifest[], flag: string): string | undefined =>
  args(objects).find((a) => a.startsWith(`--${flag}=`))?.slice(flag.length + 3);

describe('KVStore defaults', () => {
  test('snapshot', () => {
    expect(store().objects).toMatchSnapshot();
  });

  test('a StatefulSet, a headless and a client Service, a PDB and a NetworkPolicy with stable names', () => {
    const { objects } = store();
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([
      'Service/orders-peers',
      'Service/orders',
      'StatefulSet/orders',
      'PodDisruptionBudget/orders',
      'NetworkPolicy/orders',
    ]);
  });

  test('the StatefulSet uses the headless Service and Parallel pod management for etcd', () => {
    const sts = find(store().objects, 'StatefulSet').spec;
    expect(sts.serviceName).toBe('orders-peers');
    expect(sts.replicas).toBe(3);
    expect(sts.podManagementPolicy).toBe('Parallel');
    expect(sts.selector.matchLabels).toEqual({ 'app.kubernetes.io/name': 'kvstore', 'app.kubernetes.io/instance': 'orders' });
    expect(sts.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { partition: 0 } });
    expect(sts.persistentVolumeClaimRetentionPolicy).toEqual({ whenScaled: 'Retain', whenDeleted: 'Retain' });
  });

  test('the headless Service publishes not-ready members and exposes client, peer and metrics ports', () => {
    const svc = find(store().objects, 'Service', 'orders-peers').spec;
    expect(svc.clusterIP).toBe('None');
    expect(svc.publishNotReadyAddresses).toBe(true);
    expect(svc.ports).toEqual([
      { name: 'client', port: 2379, targetPort: 'client' },
      { name: 'peer', port: 2380, targetPort: 'peer' },
      { name: 'metrics', port: 2381, targetPort: 'metrics' },
    ]);
  });

  test('the client Service exposes only the client port and only ready members', () => {
    const svc = find(store().objects, 'Service', 'orders').spec;
    expect(svc.clusterIP).toBeUndefined();
    expect(svc.publishNotReadyAddresses).toBeUndefined();
    expect(svc.ports).toEqual([{ name: 'client', port: 2379, targetPort: 'client' }]);
  });

  test('one data PVC template of 10Gi mounted in the container', () => {
    const { objects } = store();
    const sts = find(objects, 'StatefulSet').spec;
    expect(sts.volumeClaimTemplates).toEqual([{
      metadata: { name: 'data', labels: { 'app.kubernetes.io/name': 'kvstore', 'app.kubernetes.io/instance': 'orders' } },
      spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '10Gi' } } },
    }]);
    expect(container(objects).volumeMounts).toContainEqual({ name: 'data', mountPath: '/var/lib/kvstore/data' });
  });

  test('pods meet Pod Security "restricted" with a read-only root filesystem and no service account token', () => {
    const pod = find(store().objects, 'StatefulSet').spec.template.spec;
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod.hostNetwork).toBeUndefined();
    for (const c of pod.containers) {
      expect(c.securityContext).toEqual({
        runAsNonRoot: true,
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      });
    }
    // Restricted allows only these volume types.
    for (const v of pod.volumes) {
      expect(Object.keys(v).filter((k) => k !== 'name')).toEqual(['emptyDir']);
    }
  });

  test('service links are off (they would inject ETCD_* variables etcd rejects)', () => {
    expect(find(store().objects, 'StatefulSet').spec.template.spec.enableServiceLinks).toBe(false);
  });

  test('the PDB keeps a quorum of 2 of 3 available', () => {
    expect(find(store().objects, 'PodDisruptionBudget').spec.minAvailable).toBe(2);
  });

  test('soft pod anti-affinity on hostname', () => {
    const affinity = find(store().objects, 'StatefulSet').spec.template.spec.affinity;
    expect(affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution).toEqual([{
      weight: 100,
      podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'kvstore', 'app.kubernetes.io/instance': 'orders' } } },
    }]);
  });

  test('exposes the names users wire to', () => {
    const s = store().store;
    expect(s.statefulSetName).toBe('orders');
    expect(s.headlessServiceName).toBe('orders-peers');
    expect(s.clientServiceName).toBe('orders');
    expect(s.clientHost).toBe('orders');
    expect(s.clientPort).toBe(2379);
    expect(s.peerPort).toBe(2380);
    expect(s.clientPodLabels).toEqual({ 'orders-client': 'true' });
    expect(s.statefulSet!.kind).toBe('StatefulSet');
  });

  test('clientHost is fully qualified when the chart has a namespace', () => {
    expect(store({}, 'shop').store.clientHost).toBe('orders.shop.svc.cluster.local');
  });
});

describe('KVStore props', () => {
  test('size sets replicas, the member list and the PDB', () => {
    const { objects } = store({ size: 5 });
    expect(find(objects, 'StatefulSet').spec.replicas).toBe(5);
    expect(arg(objects, 'initial-cluster')!.split(',').map((m) => m.split('=')[0])).toEqual(['orders-0', 'orders-1', 'orders-2', 'orders-3', 'orders-4']);
    expect(find(objects, 'PodDisruptionBudget').spec.minAvailable).toBe(3);
  });

  test.each([[3, 2], [4, 3], [5, 3], [6, 4], [7, 4]])('size %i keeps %i available (a quorum)', (size, minAvailable) => {
    const pdb = find(store({ size }).objects, 'PodDisruptionBudget').spec;
    expect([pdb.minAvailable, pdb.maxUnavailable, pdb.unhealthyPodEvictionPolicy]).toEqual([minAvailable, undefined, undefined]);
  });

  test.each([1, 2])('size %i: one member may go, so a drain never waits forever (there is no quorum to keep)', (size) => {
    const pdb = find(store({ size }).objects, 'PodDisruptionBudget').spec;
    expect([pdb.minAvailable, pdb.maxUnavailable, pdb.unhealthyPodEvictionPolicy]).toEqual([undefined, 1, undefined]);
  });

  test('storageSize sizes every template without its own size', () => {
    const { objects } = store({ storageSize: '50Gi', volumeClaimTemplates: [{ name: 'data' }, { name: 'wal', storage: '5Gi' }] });
    expect(find(objects, 'StatefulSet').spec.volumeClaimTemplates.map((t: any) => t.spec.resources.requests.storage)).toEqual(['50Gi', '5Gi']);
  });

  test('containerImage replaces the engine image', () => {
    expect(container(store({ containerImage: 'registry.example.com/etcd:v3.5.21' }).objects).image).toBe('registry.example.com/etcd:v3.5.21');
  });

  test('the default image is the pinned etcd', () => {
    expect(container(store().objects).image).toBe('gcr.io/etcd-development/etcd:v3.5.21');
  });

  test('storageClassName applies to every template unless the template sets its own', () => {
    const { objects } = store({ storageClassName: 'fast', volumeClaimTemplates: [{ name: 'data' }, { name: 'wal', storageClassName: 'faster' }] });
    expect(find(objects, 'StatefulSet').spec.volumeClaimTemplates.map((t: any) => t.spec.storageClassName)).toEqual(['fast', 'faster']);
  });

  test('volumeClaimTemplates keep their declared order, access modes and mounts', () => {
    const { objects } = store({
      volumeClaimTemplates: [
        { name: 'data', storage: '10Gi' },
        { name: 'wal', storage: '2Gi', accessModes: [AccessMode.READ_WRITE_ONCE_POD], mountPath: '/wal' },
      ],
    });
    const templates = find(objects, 'StatefulSet').spec.volumeClaimTemplates;
    expect(templates.map((t: any) => t.metadata.name)).toEqual(['data', 'wal']);
    expect(templates[1].spec.accessModes).toEqual(['ReadWriteOncePod']);
    expect(container(objects).volumeMounts).toEqual([
      { name: 'data', mountPath: '/var/lib/kvstore/data' },
      { name: 'wal', mountPath: '/wal' },
      { name: 'tmp', mountPath: '/tmp' },
    ]);
    expect(arg(objects, 'wal-dir')).toBe('/wal/etcd-wal');
  });

  test('persistentVolumeClaimRetentionPolicy', () => {
    const { objects } = store({ persistentVolumeClaimRetentionPolicy: { whenScaled: PvcRetention.DELETE } });
    expect(find(objects, 'StatefulSet').spec.persistentVolumeClaimRetentionPolicy).toEqual({ whenScaled: 'Delete', whenDeleted: 'Retain' });
  });

  test('resources', () => {
    const { objects } = store({ resources: { requests: { cpu: '1', memory: '2Gi' }, limits: { memory: '4Gi' } } });
    expect(container(objects).resources).toEqual({ requests: { cpu: '1', memory: '2Gi' }, limits: { memory: '4Gi' } });
  });

  test('clusterDomain goes into every peer URL', () => {
    const { objects } = store({ clusterDomain: 'corp.internal' });
    expect(arg(objects, 'initial-advertise-peer-urls')).toBe('http://$(POD_NAME).orders-peers.$(POD_NAMESPACE).svc.corp.internal:2380');
    expect(arg(objects, 'initial-cluster')).toContain('orders-0=http://orders-0.orders-peers.$(POD_NAMESPACE).svc.corp.internal:2380');
  });

  test('labels go on every object and the pods, never into the selector', () => {
    const { objects } = store({ labels: { team: 'payments' } });
    for (const o of objects) expect(o.metadata.labels).toMatchObject({ team: 'payments' });
    const sts = find(objects, 'StatefulSet').spec;
    expect(sts.template.metadata.labels.team).toBe('payments');
    expect(sts.selector.matchLabels.team).toBeUndefined();
  });

  test('annotations go on every object; podAnnotations on the pods', () => {
    const { objects } = store({ annotations: { owner: 'a' }, podAnnotations: { 'prometheus.io/scrape': 'true' } });
    for (const o of objects) {
      // The StatefulSet also records its engine and version (a reconciler refuses engine changes and unsupported version steps by them).
      expect(o.metadata.annotations).toEqual(o.kind === 'StatefulSet' ? { 'owner': 'a', 'kvstore.cdk8s-kvstore.io/engine': 'etcd', 'kvstore.cdk8s-kvstore.io/engine-version': '3.5.21' } : { owner: 'a' });
    }
    expect(find(objects, 'StatefulSet').spec.template.metadata.annotations).toEqual({ 'prometheus.io/scrape': 'true' });
  });

  test('hard pod anti-affinity is required', () => {
    const affinity = find(store({ podAntiAffinity: PodAntiAffinity.HARD }).objects, 'StatefulSet').spec.template.spec.affinity;
    expect(affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey).toBe('kubernetes.io/hostname');
    expect(affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution).toBeUndefined();
  });

  test('no pod anti-affinity', () => {
    expect(find(store({ podAntiAffinity: PodAntiAffinity.NONE }).objects, 'StatefulSet').spec.template.spec.affinity).toBeUndefined();
  });

  test('topologySpreadConstraints select the store pods', () => {
    const { objects } = store({ topologySpreadConstraints: [{ topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: WhenUnsatisfiable.DO_NOT_SCHEDULE }] });
    expect(find(objects, 'StatefulSet').spec.template.spec.topologySpreadConstraints).toEqual([{
      topologyKey: 'topology.kubernetes.io/zone',
      maxSkew: 1,
      whenUnsatisfiable: 'DoNotSchedule',
      labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'kvstore', 'app.kubernetes.io/instance': 'orders' } },
    }]);
  });

  test('updateStrategy with a partition', () => {
    const { objects } = store({ updateStrategy: UpdateStrategy.rollingUpdate({ partition: 2 }) });
    expect(find(objects, 'StatefulSet').spec.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { partition: 2 } });
  });

  test('updateStrategy OnDelete', () => {
    expect(find(store({ updateStrategy: UpdateStrategy.onDelete() }).objects, 'StatefulSet').spec.updateStrategy).toEqual({ type: 'OnDelete' });
  });

  test('podManagementPolicy where the engine allows it', () => {
    const { objects } = store({
      containerImage: 'redis:7',
      engine: Engine.custom({ clientPort: 6379 }),
      podManagementPolicy: PodManagementPolicy.PARALLEL,
    });
    expect(find(objects, 'StatefulSet').spec.podManagementPolicy).toBe('Parallel');
  });

  test('networkPolicy admits peers on every port; clients and the store\'s own Jobs (its reconciler included) on the client port only; no other reconciler', () => {
    const { objects } = store({ clientPodLabels: { app: 'api' }, clientNamespaceLabels: { tier: 'backend' } });
    const np = find(objects, 'NetworkPolicy').spec;
    const selector = { 'app.kubernetes.io/name': 'kvstore', 'app.kubernetes.io/instance': 'orders' };
    expect(np.podSelector.matchLabels).toEqual(selector);
    expect(np.policyTypes).toEqual(['Ingress']);
    expect(np.ingress).toEqual([
      { from: [{ podSelector: { matchLabels: selector } }], ports: [{ protocol: 'TCP', port: 2379 }, { protocol: 'TCP', port: 2380 }, { protocol: 'TCP', port: 2381 }] },
      {
        from: [
          { podSelector: { matchLabels: { app: 'api' } }, namespaceSelector: { matchLabels: { tier: 'backend' } } },
          { podSelector: { matchLabels: { 'kvstore.cdk8s-kvstore.io/store': 'orders' } } },
        ],
        ports: [{ protocol: 'TCP', port: 2379 }],
      },
    ]);
  });

  test('networkPolicyEgress: members may reach DNS and each other only; the store\'s Jobs DNS and the client port', () => {
    const { objects } = store({ networkPolicyEgress: true, backup: {} }, 'prod');
    const members = find(objects, 'NetworkPolicy', 'orders').spec;
    const selector = { 'app.kubernetes.io/name': 'kvstore', 'app.kubernetes.io/instance': 'orders' };
    const dns = { to: [{ namespaceSelector: {}, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }], ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }] };
    expect(members.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(members.egress).toEqual([dns, { to: [{ podSelector: { matchLabels: selector } }], ports: [{ protocol: 'TCP', port: 2379 }, { protocol: 'TCP', port: 2380 }, { protocol: 'TCP', port: 2381 }] }]);
    const jobs = find(objects, 'NetworkPolicy', 'orders-jobs').spec;
    expect(jobs).toEqual({
      podSelector: { matchLabels: { 'kvstore.cdk8s-kvstore.io/store': 'orders' } },
      policyTypes: ['Egress'],
      egress: [dns, { to: [{ podSelector: { matchLabels: selector } }], ports: [{ protocol: 'TCP', port: 2379 }] }],
    });
    // Off by default: ingress only, no Jobs policy.
    const plain = store({}, 'prod').objects;
    expect(find(plain, 'NetworkPolicy').spec.policyTypes).toEqual(['Ingress']);
    expect(plain.filter((o) => o.kind === 'NetworkPolicy')).toHaveLength(1);
  });

  test('networkPolicyEgress in GitOps mode: the Jobs\' policy is the GitOps tool\'s, and lets the reconciler reach the API server', () => {
    const { objects, store: s } = store({ networkPolicyEgress: true, reconciler: {} }, 'prod');
    // The backup and snapshot Jobs may not reach the API server; the reconciler Job may.
    expect(find(objects, 'NetworkPolicy', 'orders-jobs').spec.egress).toHaveLength(2);
    expect(find(objects, 'NetworkPolicy', 'orders-reconciler-egress').spec).toEqual({
      podSelector: { matchLabels: { 'kvstore.cdk8s-kvstore.io/store': 'orders', 'app.kubernetes.io/name': 'kvstore-reconciler' } },
      policyTypes: ['Egress'],
      egress: [{ ports: [{ protocol: 'TCP', port: 443 }, { protocol: 'TCP', port: 6443 }] }],
    });
    const desired = desiredState(s.document).objects.map((o) => `${o.kind}/${o.metadata.name}`);
    expect(desired.filter((o) => o.startsWith('NetworkPolicy/'))).toEqual(['NetworkPolicy/orders']);
    expect(() => store({ networkPolicyEgress: true, networkPolicy: false }, 'prod')).toThrow(/networkPolicy\.egress must be used with the NetworkPolicy on \(networkPolicy\.enabled\), got true/);
  });

  test('networkPolicy: false emits none', () => {
    expect(store({ networkPolicy: false }).objects.some((o) => o.kind === 'NetworkPolicy')).toBe(false);
  });

  test('runAsUser', () => {
    expect(find(store({ runAsUser: 1001 }).objects, 'StatefulSet').spec.template.spec.securityContext).toMatchObject({ runAsUser: 1001, runAsGroup: 1001, fsGroup: 1001 });
  });

  test('nodeSelector', () => {
    expect(find(store({ nodeSelector: { pool: 'stateful' } }).objects, 'StatefulSet').spec.template.spec.nodeSelector).toEqual({ pool: 'stateful' });
  });

  test('name overrides the construct id', () => {
    const { objects } = store({ name: 'billing' });
    expect(find(objects, 'StatefulSet').metadata.name).toBe('billing');
    expect(find(objects, 'StatefulSet').spec.serviceName).toBe('billing-peers');
  });

  test('the cluster token differs between stores and namespaces but not between synths', () => {
    const token = (ns: string, id: string) => {
      const chart = testChart(ns);
      new KVStore(chart, id, { name: 'orders' });
      return arg(synth(chart), 'initial-cluster-token');
    };
    expect(token('a', 'x')).toBe(token('a', 'x'));
    expect(token('a', 'x')).not.toBe(token('b', 'x'));
    expect(token('a', 'x')).not.toBe(token('a', 'y'));
  });

  test('a bring-your-own image runs with the user command, ports and probes', () => {
    const { objects } = store({
      containerImage: 'redis:7.2',
      engine: Engine.custom({
        clientPort: 6379,
        peerPort: 16379,
        command: ['redis-server'],
        args: ['--dir', '/var/lib/kvstore/data'],
        readinessProbe: { exec: { command: ['redis-cli', 'ping'] } },
      }),
    });
    const c = container(objects);
    expect(c.name).toBe('kvstore');
    expect(c.image).toBe('redis:7.2');
    expect(c.command).toEqual(['redis-server']);
    expect(c.args).toEqual(['--dir', '/var/lib/kvstore/data']);
    expect(c.ports).toEqual([{ name: 'client', containerPort: 6379, protocol: 'TCP' }, { name: 'peer', containerPort: 16379, protocol: 'TCP' }]);
    expect(c.readinessProbe).toEqual({ exec: { command: ['redis-cli', 'ping'] } });
    expect(find(objects, 'StatefulSet').spec.podManagementPolicy).toBe('OrderedReady');
  });

  test('an even etcd size is allowed and reported', () => {
    const s = store({ size: 4 }).store;
    expect(s.warnings).toEqual([expect.stringMatching(/KVStore 'orders': size 4 is even; it tolerates 1 failed member/)]);
  });

  test('an odd size gives no warning', () => {
    expect(store({ size: 3 }).store.warnings).toEqual([]);
  });
});

describe('KVStore escape hatches', () => {
  const tolerations = [{ key: 'dedicated', operator: TolerationOperator.EQUAL, value: 'kv', effect: TaintEffect.NO_SCHEDULE }, { operator: TolerationOperator.EXISTS, effect: TaintEffect.NO_EXECUTE, tolerationSeconds: 60 }];
  const tolerated = [{ key: 'dedicated', operator: 'Equal', value: 'kv', effect: 'NoSchedule' }, { operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 60 }];

  test('tolerations and registry credentials on the members and every Job; a priority class on the members only', () => {
    const { objects } = store({ tolerations, imagePullSecrets: ['regcred'], priorityClassName: 'kv-critical', backup: {} }, 'prod');
    objects.forEach(validateAgainstSchema);
    const members = find(objects, 'StatefulSet').spec.template.spec;
    expect(members).toMatchObject({ tolerations: tolerated, imagePullSecrets: [{ name: 'regcred' }], priorityClassName: 'kv-critical' });
    const backup = find(objects, 'CronJob').spec.jobTemplate.spec.template.spec;
    expect(backup).toMatchObject({ tolerations: tolerated, imagePullSecrets: [{ name: 'regcred' }] });
    expect(backup.priorityClassName).toBeUndefined();
  });

  test('none of them by default', () => {
    const members = find(store().objects, 'StatefulSet').spec.template.spec;
    expect([members.tolerations, members.imagePullSecrets, members.priorityClassName]).toEqual([undefined, undefined, undefined]);
  });

  test('patches: every object of a kind, or one by name, in order', () => {
    const { objects } = store({
      patches: [
        { kind: 'Service', ops: [{ op: PatchOp.ADD, path: '/metadata/annotations', value: { 'example.com/team': 'kv' } }] },
        { kind: 'Service', name: 'orders', ops: [{ op: PatchOp.REPLACE, path: '/spec/type', value: 'LoadBalancer' }, { op: PatchOp.ADD, path: '/spec/loadBalancerSourceRanges', value: ['10.0.0.0/8'] }] },
        { kind: 'StatefulSet', ops: [{ op: PatchOp.ADD, path: '/spec/template/spec/containers/0/env/-', value: { name: 'ETCD_LOG_LEVEL', value: 'debug' } }] },
      ],
    });
    objects.forEach(validateAgainstSchema);
    const services = objects.filter((o) => o.kind === 'Service');
    expect(services.map((s) => [s.metadata.name, s.metadata.annotations, s.spec.type])).toEqual([
      ['orders-peers', { 'example.com/team': 'kv' }, undefined],
      ['orders', { 'example.com/team': 'kv' }, 'LoadBalancer'],
    ]);
    expect(container(objects).env.at(-1)).toEqual({ name: 'ETCD_LOG_LEVEL', value: 'debug' });
  });

  test.each([
    [{ kind: 'CronJob', ops: [{ op: PatchOp.ADD, path: '/x', value: 1 }] }, /^KVStore 'orders': patches\[0\] must be an object this store synthesizes \(Service\/orders-peers, Service\/orders, StatefulSet\/orders, PodDisruptionBudget\/orders, NetworkPolicy\/orders\), got "CronJob"$/],
    [{ kind: 'Service', name: 'other', ops: [{ op: PatchOp.ADD, path: '/x', value: 1 }] }, /^KVStore 'orders': patches\[0\] must be an object this store synthesizes .*, got "Service\/other"$/],
    [{ kind: 'StatefulSet', ops: [{ op: PatchOp.REMOVE, path: '/spec/nope' }] }, /^KVStore 'orders': patches\[0\] must be operations that apply to StatefulSet\/orders, got \["remove \/spec\/nope"\] \(.+\)$/],
    [{ kind: 'StatefulSet', ops: [{ op: PatchOp.REPLACE, path: '/spec/replicas', value: 5 }] }, /^KVStore 'orders': patches\[0\] must be operations that leave \/spec\/replicas \(use size\) of StatefulSet\/orders as rendered, got \["replace \/spec\/replicas"\] \(the library or the reconciler owns them\)$/],
    [{ kind: 'StatefulSet', ops: [{ op: PatchOp.REPLACE, path: '/spec/template/metadata/labels', value: { app: 'x' } }] }, /leave \/spec\/template\/metadata\/labels\/app.kubernetes.io~1name \(not changeable, it selects the members\), \/spec\/template\/metadata\/labels\/app.kubernetes.io~1instance \(not changeable, it selects the members\) of StatefulSet\/orders as rendered/],
    [{ kind: 'Service', ops: [{ op: PatchOp.REPLACE, path: '/metadata/name', value: 'x' }] }, /leave \/metadata\/name \(use name\) of Service\/orders-peers as rendered/],
    [{ kind: 'Service', name: 'orders', ops: [{ op: PatchOp.REMOVE, path: '/spec/selector' }] }, /leave \/spec\/selector \(not changeable\) of Service\/orders as rendered/],
    [{ kind: 'PodDisruptionBudget', ops: [{ op: PatchOp.REPLACE, path: '/spec/minAvailable', value: 1 }] }, /leave \/spec\/minAvailable \(use size\) of PodDisruptionBudget\/orders as rendered/],
    [{ kind: 'NetworkPolicy', ops: [{ op: PatchOp.REPLACE, path: '/spec/podSelector', value: {} }] }, /leave \/spec\/podSelector \(not changeable\) of NetworkPolicy\/orders as rendered/],
  ])('refuses the patch %j at synth time', (patch, message) => {
    const build = () => new KVStore(testChart(), 'orders', { patches: [patch] });
    expect(build).toThrow(SpecError);
    expect(build).toThrow(message);
  });

  test('refuses patches to what the reconciler reads back: its marks, the bootstrap data, the Jobs\' store label', () => {
    const refused = (props: ConstructorParameters<typeof KVStore>[2]) => () => new KVStore(testChart('prod'), 'orders', props);
    // Replacing the annotation map would drop the restore mark: the reconciler would start the store empty.
    expect(refused({ reconciler: {}, backup: {}, restore: { snapshot: 's.db' }, patches: [{ kind: 'StatefulSet', ops: [{ op: PatchOp.ADD, path: '/metadata/annotations', value: { team: 'a' } }] }] }))
      .toThrow(/leave .*\/metadata\/annotations\/kvstore.cdk8s-kvstore.io~1restored-from \(not changeable, the reconciler's mark\) of StatefulSet\/orders as rendered/);
    expect(refused({ patches: [{ kind: 'ConfigMap', ops: [{ op: PatchOp.REPLACE, path: '/data/ETCD_INITIAL_CLUSTER_STATE', value: 'new' }] }] }))
      .toThrow(/leave \/data \(use size, engine\) of ConfigMap\/orders-bootstrap as rendered/);
    expect(refused({ backup: {}, patches: [{ kind: 'CronJob', ops: [{ op: PatchOp.REMOVE, path: '/spec/jobTemplate/spec/template/metadata/labels' }] }] }))
      .toThrow(/leave \/spec\/jobTemplate\/spec\/template\/metadata\/labels\/kvstore.cdk8s-kvstore.io~1store \(not changeable\) of CronJob\/orders-backup as rendered/);
    // Annotations of their own, key by key, are fine.
    expect(() => new KVStore(testChart('prod'), 'orders', { patches: [{ kind: 'StatefulSet', ops: [{ op: PatchOp.ADD, path: '/metadata/annotations/example.com~1team', value: 'a' }] }] })).not.toThrow();
  });

  test('in GitOps mode the patches are checked at synth too, as the reconciler will render them', () => {
    const build = (ops: any[]) => () => new KVStore(testChart('prod'), 'orders', { reconciler: {}, patches: [{ kind: 'StatefulSet', ops }] });
    expect(build([{ op: PatchOp.REPLACE, path: '/spec/replicas', value: 5 }])).toThrow(/leave \/spec\/replicas \(use size\) of StatefulSet\/orders as rendered/);
    expect(build([{ op: PatchOp.REMOVE, path: '/spec/nope' }])).toThrow(/must be operations that apply to StatefulSet\/orders, got \["remove \/spec\/nope"\] \(ops\[0\] \(remove \/spec\/nope\): \/spec\/nope does not exist\)/);
    const chart = testChart('prod');
    new KVStore(chart, 'orders', { reconciler: {}, patches: [{ kind: 'StatefulSet', ops: [{ op: PatchOp.ADD, path: '/spec/template/spec/hostNetwork', value: false }] }] });
    expect(synth(chart).map((o) => o.kind)).not.toContain('StatefulSet');
  });
});

describe('KVStore validation', () => {
  const fails = (props: ConstructorParameters<typeof KVStore>[2], id = 'orders') =>
    () => new KVStore(new Chart(Testing.app(), 'c'), id, props);

  test.each([0, -1, 2.5, NaN])('fails on size %p', (size) => {
    expect(fails({ size })).toThrow(new RegExp(`KVStore 'orders': size must be an integer from 1 to 99, got ${size}`));
  });

  test('fails on an etcd size above 7', () => {
    expect(fails({ size: 9 })).toThrow(/KVStore 'orders': size must be an integer from 1 to 7 for etcd, got 9/);
  });

  test.each(['10Gb', '-1Gi', ''])('fails on storageSize %p', (storageSize) => {
    expect(fails({ storageSize })).toThrow(new RegExp(`KVStore 'orders': storageSize must be a storage size as a Kubernetes quantity .*, got ${JSON.stringify(storageSize)}`));
  });

  test.each(['', 'Etcd:3.5', 'etcd 3.5', 'gcr.io/Etcd/etcd:v3'])('fails on containerImage %p', (containerImage) => {
    expect(fails({ containerImage })).toThrow(new RegExp(`KVStore 'orders': image must be an image reference .*, got ${JSON.stringify(containerImage)}`));
  });

  test('fails on a name that is not a DNS-1123 label', () => {
    expect(fails({}, 'Orders_DB')).toThrow(/KVStore 'Orders_DB': name must be a DNS-1035 label .* got "Orders_DB"/);
  });

  test('fails on a name that makes the StatefulSet name longer than 52 characters', () => {
    const name = 'a'.repeat(53);
    expect(fails({ name })).toThrow(new RegExp(`name must be .* at most 52 characters, got "${name}"`));
    expect(fails({ name: 'a'.repeat(52) })).not.toThrow();
  });

  test('fails on duplicate PVC template names', () => {
    expect(fails({ volumeClaimTemplates: [{ name: 'data' }, { name: 'data', mountPath: '/other' }] }))
      .toThrow(/KVStore 'orders': volumeClaimTemplates\[1\].name must be unique among the volume claim templates, got "data"/);
  });

  test('fails on a PVC template name colliding with another volume', () => {
    expect(fails({ volumeClaimTemplates: [{ name: 'data' }, { name: 'tmp' }] }))
      .toThrow(/volumeClaimTemplates\[1\].name must be a name other than tmp, backups, tls or client-tls, got "tmp" \(the pod or its backup and restore Jobs already have a volume of that name\)/);
  });

  test.each(['Keep', 'retain'])('fails on retention %p', (value) => {
    expect(fails({ persistentVolumeClaimRetentionPolicy: { whenDeleted: value as PvcRetention } }))
      .toThrow(new RegExp(`persistentVolumeClaimRetentionPolicy.whenDeleted must be Retain or Delete, got "${value}"`));
  });

  test('fails on OrderedReady with etcd, saying why', () => {
    expect(fails({ podManagementPolicy: PodManagementPolicy.ORDERED_READY }))
      .toThrow(/podManagementPolicy must be Parallel for etcd, got "OrderedReady" \(members bootstrap together/);
  });

  test('fails on a partition above size', () => {
    expect(fails({ updateStrategy: UpdateStrategy.rollingUpdate({ partition: 4 }) })).toThrow(/updateStrategy.partition must be an integer from 0 to size \(3\), got 4/);
  });

  test('fails on a custom engine without an image', () => {
    expect(fails({ engine: Engine.custom({ clientPort: 6379 }) })).toThrow(/KVStore 'orders': image must be set: this engine has no default image, got nothing/);
  });

  test.each(['annotations', 'podAnnotations'] as const)('fails on an invalid %s key', (field) => {
    expect(fails({ [field]: { 'bad key': 'x' } })).toThrow(new RegExp(
      `^KVStore 'orders': ${field} key must be an annotation key \\(an optional DNS prefix and "/", then up to 63 characters of \\[A-Za-z0-9-_.\\], alphanumeric at both ends\\), got "bad key"$`,
    ));
  });

  test('annotation keys with a DNS prefix pass, and annotation values are free strings', () => {
    const annotations = { 'example.com/owner': 'Team Shop <shop@example.com>', 'note': '' };
    const objects = store({ annotations, podAnnotations: { 'prometheus.io/scrape': 'true, maybe: {x}' } }).objects;
    expect(find(objects, 'StatefulSet').metadata.annotations).toMatchObject(annotations);
    expect(find(objects, 'StatefulSet').spec.template.metadata.annotations).toEqual({ 'prometheus.io/scrape': 'true, maybe: {x}' });
  });

  test.each(['Bad_NS', 'shop.prod', 'a'.repeat(64)])('fails on the chart namespace %p', (namespace) => {
    expect(() => new KVStore(new Chart(Testing.app(), 'c', { namespace }), 'orders')).toThrow(new RegExp(
      `^KVStore 'orders': namespace must be a DNS-1123 label \\(lowercase letters, digits and '-', starting and ending alphanumeric\\) of at most 63 characters, got "${namespace}" \\(the chart's namespace\\)$`,
    ));
  });

  test('a namespace of 63 characters passes', () => {
    expect(() => store({}, `shop-${'a'.repeat(58)}`)).not.toThrow();
  });

  test.each([
    ['app.kubernetes.io/name', "it selects the store's pods"],
    ['app.kubernetes.io/instance', "it selects the store's pods"],
    ['app.kubernetes.io/managed-by', 'the library sets it on every object'],
    ['app.kubernetes.io/component', 'the library sets it to the engine on every object of the store'],
    ['kvstore.cdk8s-kvstore.io/store', "the library sets it on the store's Job pods"],
  ])('fails on a user label %p the library sets', (key, why) => {
    expect(fails({ labels: { [key]: 'mine' } })).toThrow(new RegExp(
      `^KVStore 'orders': labels key must be a key other than app\\.kubernetes\\.io/name, .*, got "${key}" \\(${why}`,
    ));
  });

  test('other app.kubernetes.io labels pass, and client pod labels may use any key', () => {
    const objects = store({ labels: { 'app.kubernetes.io/part-of': 'shop' }, clientPodLabels: { 'app.kubernetes.io/name': 'checkout' } }).objects;
    expect(find(objects, 'StatefulSet').metadata.labels).toMatchObject({ 'app.kubernetes.io/part-of': 'shop', 'app.kubernetes.io/name': 'kvstore' });
  });
});

describe('KVStore objects another store of the app also creates', () => {
  /** Two charts of one app, each with the given namespace. */
  function twoCharts(prodNamespace?: string, otherNamespace?: string): { app: App; prod: Chart; other: Chart } {
    const app = Testing.app();
    return {
      app,
      prod: new Chart(app, 'prod', { namespace: prodNamespace, disableResourceNameHashes: true }),
      other: new Chart(app, 'other', { namespace: otherNamespace, disableResourceNameHashes: true }),
    };
  }

  test('fails on two stores of one name in two charts of one namespace, naming both construct paths', () => {
    const { prod, other } = twoCharts('shop', 'shop');
    new KVStore(prod, 'orders');
    expect(() => new KVStore(other, 'orders')).toThrow(
      /^KVStore 'orders' \(prod\/orders\) and KVStore 'orders' \(other\/orders\) both synthesize StatefulSet shop\/orders: give one a different name or namespace$/,
    );
  });

  test('fails on two stores of one name prop in one chart', () => {
    const chart = testChart('shop');
    new KVStore(chart, 'a', { name: 'orders' });
    expect(() => new KVStore(chart, 'b', { name: 'orders' })).toThrow(
      /^KVStore 'orders' \(test\/a\) and KVStore 'orders' \(test\/b\) both synthesize StatefulSet shop\/orders: give one a different name or namespace$/,
    );
  });

  test('fails on two stores of one name in charts without a namespace (both are applied to the current one)', () => {
    const { prod, other } = twoCharts();
    new KVStore(prod, 'orders');
    expect(() => new KVStore(other, 'orders')).toThrow(/both synthesize StatefulSet orders \(their charts set no namespace\): give one a different name or namespace$/);
  });

  test("fails on a store whose client Service is another store's headless Service", () => {
    const chart = testChart('shop');
    new KVStore(chart, 'orders');
    expect(() => new KVStore(chart, 'orders-peers')).toThrow(
      /^KVStore 'orders' \(test\/orders\) and KVStore 'orders-peers' \(test\/orders-peers\) both synthesize Service shop\/orders-peers/,
    );
  });

  test('fails on a GitOps store and a direct store of one name in one namespace', () => {
    const { prod, other } = twoCharts('shop', 'shop');
    new KVStore(prod, 'orders', { reconciler: { image: 'r.example.com/rec:1' } });
    expect(() => new KVStore(other, 'orders')).toThrow(/KVStore 'orders' \(prod\/orders\) and KVStore 'orders' \(other\/orders\) both synthesize StatefulSet shop\/orders/);
  });

  test('fails on two stores creating one backup claim', () => {
    const chart = testChart('shop');
    const backup = { pruneImage: 'r.example.com/rec:1', claimName: 'backups', storage: '5Gi' };
    new KVStore(chart, 'orders', { backup });
    expect(() => new KVStore(chart, 'carts', { backup })).toThrow(/both synthesize PersistentVolumeClaim shop\/backups/);
  });

  test('two stores of different names in one chart synthesize', () => {
    const chart = testChart('shop');
    new KVStore(chart, 'orders');
    new KVStore(chart, 'carts');
    const names = synth(chart).filter((o) => o.kind === 'StatefulSet').map((o) => o.metadata.name);
    expect(names).toEqual(['orders', 'carts']);
  });

  test('one name in two namespaces synthesizes, through app.synth() too', () => {
    const { app, prod, other } = twoCharts('shop', 'staging');
    new KVStore(prod, 'orders');
    new KVStore(other, 'orders', { reconciler: { image: 'r.example.com/rec:1' } });
    expect(() => app.synth()).not.toThrow();
    expect(find(synth(prod), 'StatefulSet').metadata.namespace).toBe('shop');
    expect(find(synth(other), 'ConfigMap', 'orders-kvstore-spec').metadata.namespace).toBe('staging');
  });

  test('stores sharing an existing backup claim (named without a size) synthesize', () => {
    const chart = testChart('shop');
    const backup = { pruneImage: 'r.example.com/rec:1', claimName: 'backups' };
    new KVStore(chart, 'orders', { backup });
    new KVStore(chart, 'carts', { backup });
    expect(synth(chart).filter((o) => o.kind === 'CronJob').map((o) => o.metadata.name)).toEqual(['orders-backup', 'carts-backup']);
  });

  test('stores of separate apps never conflict', () => {
    new KVStore(testChart('shop'), 'orders');
    expect(() => new KVStore(testChart('shop'), 'orders')).not.toThrow();
  });
});

describe('KVStore membership bootstrap (chart with a namespace)', () => {
  const env = (objects: Manifest[]) => find(objects, 'ConfigMap').data;

  test('the member list and state live in a ConfigMap the container loads with envFrom, not in flags', () => {
    const { objects } = store({}, 'prod');
    expect(find(objects, 'ConfigMap').metadata.name).toBe('orders-bootstrap');
    expect(env(objects)).toEqual({
      ETCD_INITIAL_CLUSTER: [0, 1, 2].map((i) => `orders-${i}=http://orders-${i}.orders-peers.prod.svc.cluster.local:2380`).join(','),
      ETCD_INITIAL_CLUSTER_STATE: 'new',
      ETCD_QUOTA_BACKEND_BYTES: String(5 * 2 ** 30),
    });
    expect(container(objects).envFrom).toEqual([{ configMapRef: { name: 'orders-bootstrap' } }]);
    expect(args(objects).filter((a) => a.startsWith('--initial-cluster=') || a.startsWith('--initial-cluster-state='))).toEqual([]);
  });

  test('the pod template does not depend on the size: scaling rolls no member', () => {
    const three = find(store({ size: 3 }, 'prod').objects, 'StatefulSet').spec.template;
    const five = find(store({ size: 5 }, 'prod').objects, 'StatefulSet').spec.template;
    expect(five).toEqual(three);
    expect(env(store({ size: 5 }, 'prod').objects).ETCD_INITIAL_CLUSTER.split(',')).toHaveLength(5);
  });

  test('nor on the storage size (the quota follows it through the ConfigMap): growing volumes rolls no member', () => {
    const small = store({ storageSize: '1Gi' }, 'prod').objects;
    const big = store({ storageSize: '2Gi' }, 'prod').objects;
    expect(find(big, 'StatefulSet').spec.template).toEqual(find(small, 'StatefulSet').spec.template);
    expect(env(big).ETCD_QUOTA_BACKEND_BYTES).toBe(String(2 ** 30));
  });

  test('without a namespace the list stays in flags with $(POD_NAMESPACE) (ConfigMap values are not expanded)', () => {
    const { objects } = store();
    expect(objects.some((o) => o.kind === 'ConfigMap')).toBe(false);
    expect(arg(objects, 'initial-cluster')).toContain('orders-0.orders-peers.$(POD_NAMESPACE).svc.cluster.local');
    expect(arg(objects, 'initial-cluster-state')).toBe('new');
  });
});

describe('KVStore backup', () => {
  test('warns when the user sized the backups and keep snapshots of a database at its quota do not fit the claim', () => {
    const warnings = (props: ConstructorParameters<typeof KVStore>[2]) => store(props, 'prod').store.warnings;
    // Derived quota: half of 10Gi = 5 GiB; 6 of those need 30 GiB.
    expect(warnings({ storageSize: '10Gi', backup: { keep: 6 } })).toStrictEqual([
      "KVStore 'orders': backup.storage 10Gi holds fewer than backup.keep (6) snapshots of a database at its quota (5368709120 bytes); size it for your database, or keep fewer.",
    ]);
    expect(warnings({ storageSize: '10Gi', backup: { keep: 6, storage: '30Gi' } })).toStrictEqual([]);
    // An explicit quota counts the same way.
    expect(warnings({ engine: Engine.etcd({ quotaBackendBytes: 2 * 2 ** 30 }), storageSize: '10Gi', backup: { storage: '10Gi' } })).toHaveLength(1);
    expect(warnings({ engine: Engine.etcd({ quotaBackendBytes: 2 * 2 ** 30 }), storageSize: '10Gi', backup: { keep: 5, storage: '10Gi' } })).toStrictEqual([]);
    // The defaults (documented capacity) and an existing claim (size unknown at synth) do not warn.
    expect(warnings({ storageSize: '10Gi', backup: {} })).toStrictEqual([]);
    expect(warnings({ storageSize: '10Gi', backup: { keep: 100, claimName: 'shared' } })).toStrictEqual([]);
  });

  const backup = { pruneImage: 'registry.example.com/kvstore-reconciler:1', keep: 5, schedule: '*/30 * * * *' };

  test('a CronJob saves a snapshot from the client Service into the backup PVC, then prunes to keep', () => {
    const { objects } = store({ backup, storageSize: '4Gi' }, 'prod');
    objects.forEach(validateAgainstSchema);
    const pvc = objects.find((o) => o.kind === 'PersistentVolumeClaim')!;
    expect(pvc.metadata.name).toBe('orders-backups');
    expect(pvc.spec.resources.requests.storage).toBe('4Gi');
    expect(pvc.metadata.annotations).toEqual({ 'argocd.argoproj.io/sync-options': 'Delete=false', 'kustomize.toolkit.fluxcd.io/prune': 'disabled' });
    const cj = find(objects, 'CronJob');
    expect(cj.metadata.name).toBe('orders-backup');
    expect(cj.spec.schedule).toBe('*/30 * * * *');
    expect(cj.spec.concurrencyPolicy).toBe('Forbid');
    const pod = cj.spec.jobTemplate.spec.template;
    // Admitted to the client port by the store's NetworkPolicy through this label.
    expect(pod.metadata.labels).toEqual({ 'kvstore.cdk8s-kvstore.io/store': 'orders' });
    const [snapshot] = pod.spec.initContainers;
    expect(snapshot.image).toBe(find(objects, 'StatefulSet').spec.template.spec.containers[0].image);
    expect([...snapshot.command, ...snapshot.args]).toEqual([
      '/usr/local/bin/etcdctl', '--endpoints=http://orders.prod.svc.cluster.local:2379', '--dial-timeout=10s', '--command-timeout=10m',
      'snapshot', 'save', '/backups/$(JOB_NAME).db',
    ]);
    expect(snapshot.env[0]).toEqual({ name: 'JOB_NAME', valueFrom: { fieldRef: { fieldPath: "metadata.labels['batch.kubernetes.io/job-name']" } } });
    const [prune] = pod.spec.containers;
    expect(prune.image).toBe(backup.pruneImage);
    expect(prune.args).toEqual(['--prune-snapshots', '/backups', '--prefix', 'orders-backup-', '--pre-operation-prefix', 'orders-pre-', '--keep', '5']);
    expect(pod.spec.volumes[0]).toEqual({ name: 'backups', persistentVolumeClaim: { claimName: 'orders-backups' } });
  });

  test('an existing claim: no PVC is created', () => {
    const { objects } = store({ backup: { ...backup, claimName: 'shared' } }, 'prod');
    expect(objects.some((o) => o.kind === 'PersistentVolumeClaim')).toBe(false);
    expect(find(objects, 'CronJob').spec.jobTemplate.spec.template.spec.volumes[0].persistentVolumeClaim.claimName).toBe('shared');
  });

  test('the reconciler image is the default prune image', () => {
    const chart = testChart('prod');
    const s = new KVStore(chart, 'orders', { backup: {}, reconciler: { image: 'r.example.com/rec:2' } });
    expect(s.spec.backup!.pruneImage).toBe('r.example.com/rec:2');
  });

  test('fails with a custom engine (no snapshots)', () => {
    expect(() => store({ engine: Engine.custom({ clientPort: 6379 }), containerImage: 'redis:7', backup })).toThrow(
      /^KVStore 'orders': backup must be left out with the custom engine, got .* \(it has no snapshot support\)$/,
    );
  });

  test('fails when the CronJob name would not fit', () => {
    const chart = testChart('prod');
    expect(() => new KVStore(chart, 'x', { name: 'a'.repeat(46), backup })).toThrow(/name must be at most 45 characters with backup/);
  });
});

describe('KVStore restore', () => {
  const backup = { pruneImage: 'registry.example.com/kvstore-reconciler:1' };

  test('fails without the reconciler', () => {
    expect(() => store({ backup, restore: { snapshot: 'orders-1.db' } }, 'prod')).toThrow(/^KVStore 'orders': restore must be used together with reconciler, got .* \(restoring runs one Job per member/);
  });

  test('a restored store reads a data directory of its own and forms a new cluster', () => {
    const chart = testChart('prod');
    const doc = new KVStore(chart, 'orders', { backup, restore: { snapshot: 'orders-1.db' }, reconciler: { image: 'r:1' } }).document;
    const restored = synth(renderDocument(testChart('prod'), doc));
    const plain = synth(renderDocument(testChart('prod'), { ...doc, spec: { ...doc.spec, restore: undefined } }));
    expect(arg(restored, 'data-dir')).toMatch(/^\/var\/lib\/kvstore\/data\/etcd-restore-[0-9a-f]{8}$/);
    expect(arg(plain, 'data-dir')).toBe('/var/lib/kvstore/data/etcd');
    expect(arg(restored, 'initial-cluster-token')).toBe(`${arg(plain, 'initial-cluster-token')}-${arg(restored, 'data-dir')!.slice(-8)}`);
    expect(find(restored, 'StatefulSet').metadata.annotations!['kvstore.cdk8s-kvstore.io/restored-from']).toBe('orders-backups/orders-1.db');
  });
});
