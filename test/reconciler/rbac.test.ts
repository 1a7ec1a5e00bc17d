// Least privilege, checked against what the reconciler really sends: every request it makes to the
// API double in a full run (create, no-op, drift, prune, Lease) is allowed by the Role the bundle grants,
// and nothing more than those (resource, verb) pairs is granted.
import { Chart, Testing } from 'cdk8s';
import { KVStore, KVStoreProps } from '../../lib';
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

test('every request of a full GitOps-mode run is allowed by the bundle Role, and every granted verb is used', async () => {
  const props = (extra: KVStoreProps = {}) => ({ ...extra, reconciler: { image: 'r:1' } });
  const chart = new Chart(Testing.app(), 'c', { namespace: NS, disableResourceNameHashes: true });
  const store = new KVStore(chart, 'orders', props());
  const rules = find(synth(chart), 'Role').rules;
  const documentOf = (extra: KVStoreProps) => new KVStore(new Chart(Testing.app(), 'c', { namespace: NS }), 'orders', props(extra)).document;
  const client = () => new KubeClient(server.kubeConfig(), { baseDelayMs: 5 });
  const log = new Log(false, () => undefined);
  const options = { holder: 'job', pollMs: 20 };

  const seen = new Set<string>();
  const key = (a: Access) => `${a.group}|${a.resource}|${a.name ?? ''}`;
  const accesses: Access[] = [];
  let cursor = 0;
  const collect = () => {
    for (const r of server.requests.slice(cursor)) {
      if (r.discovery) continue;
      for (const a of accessOf(r, (p) => seen.has(key(p)))) accesses.push(a);
      if (['PATCH', 'POST', 'PUT'].includes(r.method) && !r.injectedStatus) {
        const m = /\/([^/]+)\/([^/]+)$/.exec(r.path);
        if (m) seen.add(key({ group: accessOf({ ...r, method: 'GET' }, () => true)[0].group, resource: m[1], name: m[2], verb: '' }));
      }
    }
    cursor = server.requests.length;
  };

  await reconcileStore(store.document, client(), log, options);
  collect();
  await reconcileStore(store.document, client(), log, options);
  collect();
  const pdb = server.get('policy/v1', 'PodDisruptionBudget', NS, 'orders') as any;
  server.put({ ...pdb, spec: { ...pdb.spec, minAvailable: 1 } });
  await reconcileStore(documentOf({ networkPolicy: false }), client(), log, options);
  collect();
  // Forced: an immutable field change re-creates the StatefulSet (delete with orphan propagation).
  await reconcileStore(documentOf({ networkPolicy: false, storageSize: '20Gi' }), client(), log, { ...options, force: true });
  collect();

  const denied = accesses.filter((a) => !allowed(rules, a));
  expect(denied).toEqual([]);
  const used = new Set(accesses.map((a) => `${a.group}|${a.resource}|${a.verb}`));
  const granted = rules.flatMap((r: any) => r.resources.flatMap((res: string) => r.verbs.map((v: string) => `${r.apiGroups[0]}|${res}|${v}`)));
  expect([...new Set(granted)].filter((g) => !used.has(g as string))).toEqual([]);
});
