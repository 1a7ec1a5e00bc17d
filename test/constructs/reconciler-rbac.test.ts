// Least privilege, checked against what the reconciler really sends: every request it makes to the
// API double in a sequence of runs (create, no-op, drift, prune, resize with a snapshot first, backup
// off, restore, Lease) is allowed by the Role the bundle grants for that run's spec, and nothing more
// than those (resource, verb) pairs is granted. The membership-only grants (a removed member's pod
// read and PVC deleted) need running etcd members: test/reconciler/day2.test.ts checks those.
import { Chart, Testing } from 'cdk8s';
import { AccessMode, Engine, KVStore, KVStoreProps } from '../../lib';
import { KubeClient } from '../../lib/reconciler/client';
import { Log } from '../../lib/reconciler/log';
import { reconcileStore } from '../../lib/reconciler/reconcile';
import { ApiServer, RecordedRequest, startApiServer } from '../support/api-server';
import { find, synth } from '../support/manifests';

const NS = 'shop';
let server: ApiServer;
let controller: NodeJS.Timeout;

beforeEach(async () => {
  server = await startApiServer();
  // Stands in for the controllers: StatefulSets roll out at once, Jobs succeed, PVCs grow.
  controller = setInterval(() => {
    const sts = server.get('apps/v1', 'StatefulSet', NS, 'orders') as any;
    if (sts && sts.status?.observedGeneration !== sts.metadata.generation) {
      server.put({ ...sts, status: { observedGeneration: sts.metadata.generation, replicas: sts.spec.replicas, readyReplicas: sts.spec.replicas, updatedReplicas: sts.spec.replicas } });
    }
    for (const job of server.list('batch/v1', 'Job', NS) as any[]) {
      if (!job.status?.succeeded) server.put({ ...job, status: { succeeded: 1 } });
    }
    for (const pvc of server.list('v1', 'PersistentVolumeClaim', NS) as any[]) {
      const want = pvc.spec.resources.requests.storage;
      if (pvc.status?.capacity?.storage !== want) server.put({ ...pvc, status: { phase: 'Bound', capacity: { storage: want } } });
    }
  }, 10);
});
afterEach(async () => {
  clearInterval(controller);
  await server.stop();
});

interface Access { group: string; resource: string; verb: string; name?: string }

/** The authorization attributes the API server derives from a request (no discovery). */
function accessOf(r: RecordedRequest, existedBefore: (a: Access) => boolean): Access[] {
  const m = /^\/(?:api\/v1|apis\/([^/]+)\/[^/]+)\/namespaces\/[^/]+\/([^/]+)(?:\/([^/]+))?(?:\/(status|scale))?$/.exec(r.path);
  if (!m) throw new Error(`unexpected request path ${r.path}`);
  const base = { group: m[1] ?? '', resource: m[4] ? `${m[2]}/${m[4]}` : m[2], ...(m[3] ? { name: m[3] } : {}) };
  switch (r.method) {
    case 'GET': return [{ ...base, verb: m[3] ? 'get' : 'list' }];
    case 'POST': return [{ ...base, verb: 'create' }];
    case 'PUT': return [{ ...base, verb: 'update' }];
    case 'DELETE': return [{ ...base, verb: 'delete' }];
    case 'PATCH': {
      // Server-side apply of an object that does not exist yet is also authorized as create.
      const patch = { ...base, verb: 'patch' };
      return existedBefore(patch) ? [patch] : [patch, { ...base, verb: 'create' }];
    }
    default: throw new Error(`unexpected method ${r.method}`);
  }
}

function allowed(rules: any[], a: Access): boolean {
  return rules.some((rule) => rule.apiGroups.includes(a.group) && rule.resources.includes(a.resource) && rule.verbs.includes(a.verb) &&
    (!rule.resourceNames || (a.name !== undefined && rule.resourceNames.includes(a.name))));
}

test('every request of GitOps-mode runs is allowed by that run\'s bundle Role, and every granted verb is used', async () => {
  const props = (extra: KVStoreProps = {}) => ({ ...extra, reconciler: { image: 'r:1' } });
  /** The Role and document of one spec, as the bundle synthesizes them. */
  const bundle = (extra: KVStoreProps = {}) => {
    const chart = new Chart(Testing.app(), 'c', { namespace: NS, disableResourceNameHashes: true });
    const store = new KVStore(chart, 'orders', props(extra));
    return { rules: find(synth(chart), 'Role').rules as any[], document: store.document };
  };
  const client = () => new KubeClient(server.kubeConfig(), { baseDelayMs: 5 });
  const log = new Log(false, () => undefined);
  const options = { holder: 'job', pollMs: 20 };

  const seen = new Set<string>();
  const key = (a: Access) => `${a.group}|${a.resource}|${a.name ?? ''}`;
  const accesses: Access[] = [];
  const denied: Access[] = [];
  const granted = new Set<string>();
  let cursor = 0;
  const run = async (extra: KVStoreProps, more: object = {}) => {
    const { rules, document } = bundle(extra);
    for (const r of rules) for (const res of r.resources) for (const v of r.verbs) granted.add(`${r.apiGroups[0]}|${res}|${v}`);
    await reconcileStore(document, client(), log, { ...options, ...more });
    collect(rules);
  };
  const collect = (rules: any[]) => {
    for (const r of server.requests.slice(cursor)) {
      if (r.discovery) continue;
      for (const a of accessOf(r, (p) => seen.has(key(p)))) {
        accesses.push(a);
        if (!allowed(rules, a)) denied.push(a);
      }
      if (['PATCH', 'POST', 'PUT'].includes(r.method) && !r.injectedStatus) {
        const m = /\/([^/]+)\/([^/]+)$/.exec(r.path);
        if (m) seen.add(key({ group: accessOf({ ...r, method: 'GET' }, () => true)[0].group, resource: m[1], name: m[2], verb: '' }));
      }
    }
    cursor = server.requests.length;
  };

  await run({});
  await run({});
  const pdb = server.get('policy/v1', 'PodDisruptionBudget', NS, 'orders') as any;
  server.put({ ...pdb, spec: { ...pdb.spec, minAvailable: 1 } });
  await run({ networkPolicy: false });
  // The members' PVCs, as the StatefulSet controller would have made them.
  for (let i = 0; i < 3; i++) {
    server.put({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: `data-orders-${i}`, namespace: NS, labels: { 'app.kubernetes.io/name': 'kvstore', 'app.kubernetes.io/instance': 'orders' } }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '10Gi' } } }, status: { phase: 'Bound', capacity: { storage: '10Gi' } } } as any);
  }
  const backup = { pruneImage: 'r:1' };
  // Backup on and storage grown: a snapshot Job first, then the PVCs grown and the StatefulSet re-created.
  await run({ networkPolicy: false, backup, storageSize: '20Gi' });
  expect(server.list('batch/v1', 'Job', NS).map((j) => j.metadata.name)).toEqual([expect.stringMatching(/^orders-pre-[0-9a-f]{8}$/)]);
  expect((server.get('v1', 'PersistentVolumeClaim', NS, 'data-orders-2') as any).spec.resources.requests.storage).toBe('20Gi');
  // Backup off: the CronJob is pruned.
  await run({ networkPolicy: false, storageSize: '20Gi' });
  expect(server.get('batch/v1', 'CronJob', NS, 'orders-backup')).toBeUndefined();
  // Forced: an immutable field change re-creates the StatefulSet (delete with orphan propagation).
  await run({ networkPolicy: false, storageSize: '20Gi', volumeClaimTemplates: [{ name: 'data', accessModes: [AccessMode.READ_WRITE_ONCE_POD] }] }, { force: true });
  // Restore over the live store (forced): members stopped, their data laid out by one Job each.
  await run({ networkPolicy: false, storageSize: '20Gi', volumeClaimTemplates: [{ name: 'data', accessModes: [AccessMode.READ_WRITE_ONCE_POD] }], backup, restore: { snapshot: 'orders-x.db' } }, { force: true });
  expect(server.list('batch/v1', 'Job', NS).filter((j) => j.metadata.name!.includes('-restore-'))).toHaveLength(3);

  expect(denied).toEqual([]);
  const used = new Set(accesses.map((a) => `${a.group}|${a.resource}|${a.verb}`));
  // Used only against real etcd members: membership changes and replacing a lost member, and the
  // snapshot check's log read by a restore over live members (the day-2 tests).
  const membershipOnly = ['|pods|get', '|pods|delete', '|persistentvolumeclaims|delete', '|pods/log|get'];
  expect([...granted].filter((g) => !used.has(g) && !membershipOnly.includes(g))).toEqual([]);
});

test('a custom-engine store: every request of create, no-op and resize is allowed by its Role', async () => {
  const props: KVStoreProps = { engine: Engine.custom({ clientPort: 6379 }), containerImage: 'redis:7', size: 2, reconciler: { image: 'r:1' } };
  const bundle = (extra: KVStoreProps = {}) => {
    const chart = new Chart(Testing.app(), 'c', { namespace: NS, disableResourceNameHashes: true });
    const store = new KVStore(chart, 'orders', { ...props, ...extra });
    return { rules: find(synth(chart), 'Role').rules as any[], document: store.document };
  };
  const client = new KubeClient(server.kubeConfig(), { baseDelayMs: 5 });
  const log = new Log(false, () => undefined);
  for (let i = 0; i < 2; i++) {
    server.put({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: `data-orders-${i}`, namespace: NS, labels: { 'app.kubernetes.io/name': 'kvstore', 'app.kubernetes.io/instance': 'orders' } }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '10Gi' } } }, status: { phase: 'Bound', capacity: { storage: '10Gi' } } } as any);
  }
  const denied: Access[] = [];
  // The claims exist already (the StatefulSet controller made them): applying to them is a patch.
  const seen = new Set<string>(['persistentvolumeclaims|data-orders-0', 'persistentvolumeclaims|data-orders-1']);
  let cursor = server.requests.length;
  for (const extra of [{}, {}, { storageSize: '20Gi' }] as KVStoreProps[]) {
    const { rules, document } = bundle(extra);
    await reconcileStore(document, client, log, { holder: 'job', pollMs: 20 });
    for (const r of server.requests.slice(cursor)) {
      if (r.discovery) continue;
      for (const a of accessOf(r, (p) => seen.has(`${p.resource}|${p.name}`))) if (!allowed(rules, a)) denied.push(a);
      const m = /\/([^/]+)\/([^/]+)$/.exec(r.path);
      if (m && ['PATCH', 'POST', 'PUT'].includes(r.method)) seen.add(`${m[1]}|${m[2]}`);
    }
    cursor = server.requests.length;
  }
  expect(denied).toEqual([]);
  expect((server.get('v1', 'PersistentVolumeClaim', NS, 'data-orders-1') as any).spec.resources.requests.storage).toBe('20Gi');
});
