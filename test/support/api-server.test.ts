// The Kubernetes API server double, driven through the real @kubernetes/client-node: the semantics a
// reconciler relies on, and how the client library itself behaves against them.
import * as k8s from '@kubernetes/client-node';
import { ApiServer, KubeObject, startApiServer } from './api-server';

const NS = 'kv';
const GROUP = 'kvstore.cdk8s-kvstore.io';
const RECONCILER = 'kvstore-reconciler';

let server: ApiServer;
let kc: k8s.KubeConfig;
let objects: k8s.KubernetesObjectApi;

beforeEach(async () => {
  server = await startApiServer();
  kc = server.kubeConfig();
  objects = k8s.KubernetesObjectApi.makeApiClient(kc);
});

afterEach(async () => {
  await server.stop();
});

// --- fixtures

function configMap(name: string, labels?: Record<string, string>, data?: Record<string, string>): any {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: NS, ...(labels ? { labels } : {}) }, ...(data ? { data } : {}) };
}

function statefulSet(name = 'orders', replicas = 3): any {
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name, namespace: NS, labels: { app: name } },
    spec: {
      replicas,
      serviceName: `${name}-headless`,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'etcd', image: 'quay.io/coreos/etcd:v3.5.17' }] } },
      volumeClaimTemplates: [{ metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } }],
    },
  };
}

function kvStore(name = 'orders', size = 3): any {
  return { apiVersion: `${GROUP}/v1`, kind: 'KVStore', metadata: { name, namespace: NS }, spec: { size } };
}

function job(name: string, image: string): any {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace: NS },
    spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'reconcile', image }] } } },
  };
}

function apply<T extends k8s.KubernetesObject>(obj: T, manager = RECONCILER, force?: boolean): Promise<T> {
  return objects.patch(obj, undefined, undefined, manager, force, k8s.PatchStrategy.ServerSideApply);
}

/** The ApiException a call fails with, its body parsed (the client hands it over as a string). */
async function failure(call: Promise<unknown>): Promise<{ code: number; status: any; headers: Record<string, string>; message: string }> {
  try {
    await call;
  } catch (e) {
    if (!(e instanceof k8s.ApiException)) throw e;
    const status = typeof e.body === 'string' ? JSON.parse(e.body) : e.body;
    return { code: e.code, status, headers: e.headers, message: e.message };
  }
  throw new Error('expected the call to fail');
}

/** A request without the client library, for what it cannot send (no token, raw discovery). */
async function raw(method: string, path: string, options: { body?: string; contentType?: string; token?: boolean } = {}): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = {};
  if (options.token !== false) headers.Authorization = 'Bearer api-server-double-token';
  if (options.contentType) headers['Content-Type'] = options.contentType;
  const res = await fetch(server.url + path, { method, headers, body: options.body });
  return { status: res.status, body: await res.json() };
}

function fieldsOf(obj: KubeObject | k8s.KubernetesObject, manager: string): any {
  return obj.metadata!.managedFields!.find((e: any) => e.manager === manager)?.fieldsV1;
}

// --- tests

describe('discovery', () => {
  test('KubernetesObjectApi asks /api/v1 or /apis/{group}/{version} once per apiVersion, then uses its cache', async () => {
    await objects.create(configMap('a'));
    await objects.read({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a', namespace: NS } });
    await objects.create(statefulSet());
    await objects.create(kvStore());

    expect(server.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      'GET /api/v1',
      `POST /api/v1/namespaces/${NS}/configmaps`,
      `GET /api/v1/namespaces/${NS}/configmaps/a`,
      'GET /apis/apps/v1',
      `POST /apis/apps/v1/namespaces/${NS}/statefulsets`,
      `GET /apis/${GROUP}/v1`,
      `POST /apis/${GROUP}/v1/namespaces/${NS}/kvstores`,
    ]);
    expect(server.requests.filter((r) => r.discovery).map((r) => r.path)).toEqual(['/api/v1', '/apis/apps/v1', `/apis/${GROUP}/v1`]);
    expect(server.mutatingRequests().map((r) => r.method)).toEqual(['POST', 'POST', 'POST']);
  });

  test('APIResourceList names kinds, scope, verbs and subresources', async () => {
    const kv = await raw('GET', `/apis/${GROUP}/v1`);
    expect(kv.body.groupVersion).toBe(`${GROUP}/v1`);
    expect(kv.body.resources).toEqual([
      { name: 'kvstores', singularName: 'kvstore', namespaced: true, kind: 'KVStore', verbs: ['create', 'delete', 'get', 'list', 'patch', 'update'] },
      { name: 'kvstores/status', singularName: '', namespaced: true, kind: 'KVStore', verbs: ['get', 'patch', 'update'] },
      { name: 'kvstores/scale', singularName: '', namespaced: true, group: 'autoscaling', version: 'v1', kind: 'Scale', verbs: ['get', 'patch', 'update'] },
    ]);

    const apps = await kc.makeApiClient(k8s.AppsV1Api).getAPIResources();
    expect(apps.resources.map((r) => r.name)).toEqual(['statefulsets', 'statefulsets/status', 'statefulsets/scale']);
    const crd = (await raw('GET', '/apis/apiextensions.k8s.io/v1')).body.resources[0];
    expect(crd).toMatchObject({ name: 'customresourcedefinitions', namespaced: false, kind: 'CustomResourceDefinition' });
    const core = await kc.makeApiClient(k8s.CoreV1Api).getAPIResources();
    expect(core.resources.filter((r) => !r.name.includes('/')).map((r) => r.kind)).toEqual(
      ['ConfigMap', 'Secret', 'Service', 'ServiceAccount', 'PersistentVolumeClaim', 'Pod', 'Namespace']);
  });

  test('/api, /apis and /apis/{group} list versions and groups', async () => {
    expect((await kc.makeApiClient(k8s.CoreApi).getAPIVersions()).versions).toEqual(['v1']);
    const groups = await kc.makeApiClient(k8s.ApisApi).getAPIVersions();
    expect(groups.groups.map((g) => g.preferredVersion!.groupVersion)).toEqual([
      'apps/v1', 'policy/v1', 'networking.k8s.io/v1', 'rbac.authorization.k8s.io/v1', 'batch/v1',
      'coordination.k8s.io/v1', 'events.k8s.io/v1', 'apiextensions.k8s.io/v1', 'cert-manager.io/v1', `${GROUP}/v1`,
    ]);
    expect((await raw('GET', '/apis/batch')).body).toMatchObject({ kind: 'APIGroup', name: 'batch' });
    expect((await raw('GET', '/apis/nope.example.com/v1')).status).toBe(404);
  });

  test('a request without the token is refused with 401', async () => {
    const res = await raw('GET', `/api/v1/namespaces/${NS}/configmaps`, { token: false });
    expect(res).toEqual({ status: 401, body: expect.objectContaining({ kind: 'Status', reason: 'Unauthorized', code: 401 }) });
  });
});

describe('create, read, list', () => {
  test('create assigns uid, resourceVersion and creationTimestamp; read returns the same object', async () => {
    const created = await objects.create(configMap('a', { app: 'kv' }, { k: 'v' }));

    expect(created.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.metadata.resourceVersion).toMatch(/^[0-9]+$/);
    // The client turns timestamps into Date objects.
    expect(created.metadata.creationTimestamp).toBeInstanceOf(Date);
    const read = await objects.read<any>({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a', namespace: NS } });
    expect(read.data).toEqual({ k: 'v' });
    expect(read.metadata.resourceVersion).toBe(created.metadata.resourceVersion);
    expect(server.get('v1', 'ConfigMap', NS, 'a')!.metadata.uid).toBe(created.metadata.uid);
  });

  test('a create without fieldManager is an Update by the User-Agent product, node-fetch', async () => {
    const created = await objects.create(configMap('a', { app: 'kv' }, { k: 'v' }));

    expect(created.metadata.managedFields).toHaveLength(1);
    expect(created.metadata.managedFields![0]).toMatchObject({ manager: 'node-fetch', operation: 'Update', apiVersion: 'v1', fieldsType: 'FieldsV1' });
    expect(created.metadata.managedFields![0].fieldsV1).toEqual({ 'f:data': { 'f:k': {} }, 'f:metadata': { 'f:labels': { 'f:app': {} } } });
  });

  test('ConfigMap has no generation; StatefulSet starts at 1', async () => {
    const cm = await objects.create(configMap('a'));
    const sts = await objects.create(statefulSet());

    expect(cm.metadata.generation).toBeUndefined();
    expect(sts.metadata.generation).toBe(1);
  });

  test('list by label selector: k=v, k!=v, k, !k, in, notin and AND', async () => {
    await objects.create(configMap('a', { app: 'kv', tier: 'db' }));
    await objects.create(configMap('b', { app: 'kv' }));
    await objects.create(configMap('c', { app: 'other', tier: 'web' }));
    await objects.create(configMap('d'));
    const names = async (selector: string) => {
      const list = await objects.list('v1', 'ConfigMap', NS, undefined, undefined, undefined, undefined, selector);
      return list.items.map((i) => i.metadata!.name);
    };

    expect(await names('app=kv')).toEqual(['a', 'b']);
    expect(await names('app==kv')).toEqual(['a', 'b']);
    expect(await names('app!=kv')).toEqual(['c', 'd']);
    expect(await names('tier')).toEqual(['a', 'c']);
    expect(await names('!tier')).toEqual(['b', 'd']);
    expect(await names('app=kv,tier')).toEqual(['a']);
    expect(await names('tier in (db, web),app=other')).toEqual(['c']);
    expect(await names('app notin (kv)')).toEqual(['c', 'd']);
    expect(server.requests.filter((r) => r.query.labelSelector).map((r) => r.query.labelSelector)[0]).toBe('app=kv');
  });

  test('a list of a built-in kind has kind XxxList and items without apiVersion/kind', async () => {
    await objects.create(configMap('a'));
    const list = await objects.list('v1', 'ConfigMap', NS);

    expect(list.kind).toBe('ConfigMapList');
    expect(list.metadata!.resourceVersion).toMatch(/^[0-9]+$/);
    expect(list.items[0].metadata!.name).toBe('a');
    expect(list.items[0].kind).toBeUndefined();
    expect(list.items[0].apiVersion).toBeUndefined();
  });

  test('a list of custom resources keeps apiVersion/kind on items; no namespace lists all namespaces', async () => {
    await objects.create(kvStore('a'));
    await objects.create({ ...kvStore('b'), metadata: { name: 'b', namespace: 'other' } });

    const inNs = await objects.list(`${GROUP}/v1`, 'KVStore', NS);
    const all = await objects.list(`${GROUP}/v1`, 'KVStore');
    expect(inNs.items.map((i) => [i.kind, i.metadata!.name])).toEqual([['KVStore', 'a']]);
    expect(all.items.map((i) => `${i.metadata!.namespace}/${i.metadata!.name}`)).toEqual([`${NS}/a`, 'other/b']);
    expect(server.requests.at(-1)!.path).toBe(`/apis/${GROUP}/v1/kvstores`);
  });

  test('limit and continue page through a list', async () => {
    for (const n of ['a', 'b', 'c']) await objects.create(configMap(n));
    const first = await objects.list('v1', 'ConfigMap', NS, undefined, undefined, undefined, undefined, undefined, 2);
    const rest = await objects.list('v1', 'ConfigMap', NS, undefined, undefined, undefined, undefined, undefined, 2, first.metadata!._continue);

    expect(first.items.map((i) => i.metadata!.name)).toEqual(['a', 'b']);
    expect(rest.items.map((i) => i.metadata!.name)).toEqual(['c']);
    expect(rest.metadata!._continue).toBeUndefined();
  });

  test('reading a missing object fails with 404 NotFound; ApiException.body is the Status as a JSON string', async () => {
    let thrown: unknown;
    try {
      await objects.read({ apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'missing', namespace: NS } });
    } catch (e) {
      thrown = e;
    }

    expect(thrown).toBeInstanceOf(k8s.ApiException);
    const e = thrown as k8s.ApiException<unknown>;
    expect(e.code).toBe(404);
    expect(typeof e.body).toBe('string');
    expect(JSON.parse(e.body as string)).toEqual({
      kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'statefulsets.apps "missing" not found',
      reason: 'NotFound', details: { name: 'missing', group: 'apps', kind: 'statefulsets' }, code: 404,
    });
  });

  test('creating an existing object fails with 409 AlreadyExists', async () => {
    await objects.create(configMap('a'));
    const { code, status } = await failure(objects.create(configMap('a')));

    expect(code).toBe(409);
    expect(status).toMatchObject({ reason: 'AlreadyExists', message: 'configmaps "a" already exists', details: { name: 'a', kind: 'configmaps' } });
  });

  test('creating with metadata.resourceVersion set fails with 500, as etcd storage does', async () => {
    const { code, status } = await failure(objects.create({ ...configMap('a'), metadata: { name: 'a', namespace: NS, resourceVersion: '7' } }));

    expect(code).toBe(500);
    expect(status.message).toBe('Internal error occurred: resourceVersion should not be set on objects to be created');
  });

  test('generateName gets a random suffix', async () => {
    const created = await objects.create<any>({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { generateName: 'snap-', namespace: NS } });

    expect(created.metadata.name).toMatch(/^snap-[a-z0-9]{5}$/);
  });

  test('invalid names and label values fail with 422 Invalid', async () => {
    const badName = await failure(objects.create({ ...configMap('a'), metadata: { name: 'Orders', namespace: NS } }));
    const badService = await failure(objects.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: '1orders', namespace: NS } }));
    const longLabel = await failure(objects.create(configMap('a', { app: 'x'.repeat(64) })));
    const longCronJob = await failure(objects.create({ apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name: 'c'.repeat(53), namespace: NS }, spec: {} }));

    expect(badName.code).toBe(422);
    expect(badName.status.message).toMatch(/^ConfigMap "Orders" is invalid: metadata.name: Invalid value: "Orders": a lowercase RFC 1123 subdomain/);
    expect(badService.status.message).toMatch(/^Service "1orders" is invalid: metadata.name: Invalid value: "1orders": a DNS-1035 label/);
    expect(longLabel.status.message).toBe(`ConfigMap "a" is invalid: metadata.labels: Invalid value: "${'x'.repeat(64)}": must be no more than 63 characters`);
    expect(longCronJob.status.message).toMatch(/^CronJob.batch "c+" is invalid: metadata.name: Invalid value: "c+": must be no more than 52 characters$/);
  });

  test('cluster-scoped kinds live at /apis/{group}/{version}/{plural}', async () => {
    const crd = { apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: `kvstores.${GROUP}` }, spec: { group: GROUP } };
    await objects.create(crd);
    await objects.create({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'kvstore:reader' }, rules: [] });

    expect(server.mutatingRequests().map((r) => r.path)).toEqual([
      '/apis/apiextensions.k8s.io/v1/customresourcedefinitions',
      '/apis/rbac.authorization.k8s.io/v1/clusterroles',
    ]);
    const read = await objects.read<any>({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: `kvstores.${GROUP}` } });
    expect(read.metadata.namespace).toBeUndefined();
    expect(read.metadata.generation).toBe(1);
  });

  test('dryRun=All validates and answers without storing', async () => {
    const answered = await objects.create(configMap('a'), undefined, 'All');

    expect(answered.metadata.name).toBe('a');
    expect(server.get('v1', 'ConfigMap', NS, 'a')).toBeUndefined();
  });
});

describe('replace', () => {
  test('a replace carrying a stale resourceVersion fails with 409 Conflict', async () => {
    await objects.create(configMap('a', undefined, { k: '1' }));
    const stale = await objects.read<any>({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a', namespace: NS } });
    await objects.replace({ ...stale, data: { k: '2' } });

    const { code, status } = await failure(objects.replace({ ...stale, data: { k: '3' } }));
    expect(code).toBe(409);
    expect(status).toMatchObject({
      reason: 'Conflict',
      message: 'Operation cannot be fulfilled on configmaps "a": the object has been modified; please apply your changes to the latest version and try again',
    });
    expect(server.get('v1', 'ConfigMap', NS, 'a')!.data).toEqual({ k: '2' });
  });

  test('a replace without resourceVersion is unconditional for built-in kinds and 422 for custom resources', async () => {
    await objects.create(configMap('a'));
    await objects.create(kvStore());

    await objects.replace(configMap('a', undefined, { k: 'v' }));
    const { code, status } = await failure(objects.replace(kvStore('orders', 5)));
    expect(code).toBe(422);
    expect(status.message).toBe(`kvstores.${GROUP} "orders" is invalid: metadata.resourceVersion: Invalid value: 0: must be specified for an update`);
  });

  test('a replace that changes nothing keeps the resourceVersion', async () => {
    const created = await objects.create(configMap('a', undefined, { k: 'v' }));
    const replaced = await objects.replace(configMap('a', undefined, { k: 'v' }));

    expect(replaced.metadata.resourceVersion).toBe(created.metadata.resourceVersion);
  });

  test('a replace of a missing object fails with 404', async () => {
    expect((await failure(objects.replace(configMap('a')))).code).toBe(404);
  });
});

describe('server-side apply', () => {
  test('creates the object, then a re-apply of the same configuration changes nothing', async () => {
    const created = await apply(statefulSet());
    const again = await apply(statefulSet());

    expect(created.metadata!.generation).toBe(1);
    expect(again.metadata!.resourceVersion).toBe(created.metadata!.resourceVersion);
    expect(server.get('apps/v1', 'StatefulSet', NS, 'orders')!.metadata.resourceVersion).toBe(created.metadata!.resourceVersion);
    expect(created.metadata!.managedFields).toEqual([expect.objectContaining({ manager: RECONCILER, operation: 'Apply', apiVersion: 'apps/v1', fieldsType: 'FieldsV1' })]);
    expect(fieldsOf(created, RECONCILER)).toEqual({
      'f:metadata': { 'f:labels': { 'f:app': {} } },
      'f:spec': {
        'f:replicas': {}, 'f:selector': { 'f:matchLabels': { 'f:app': {} } }, 'f:serviceName': {},
        'f:template': { 'f:metadata': { 'f:labels': { 'f:app': {} } }, 'f:spec': { 'f:containers': {} } },
        'f:volumeClaimTemplates': {},
      },
    });
  });

  test('the request log shows the apply content type and the query parameters as the client sent them', async () => {
    await apply(kvStore(), RECONCILER, true);
    await apply(kvStore(), 'other');

    const [forced, plain] = server.mutatingRequests();
    expect(forced).toMatchObject({
      method: 'PATCH', path: `/apis/${GROUP}/v1/namespaces/${NS}/kvstores/orders`,
      contentType: 'application/apply-patch+yaml', query: { fieldManager: RECONCILER, force: 'true' },
      body: kvStore(),
    });
    // force is left out when undefined; the body is JSON, which YAML accepts.
    expect(plain.query).toEqual({ fieldManager: 'other' });
  });

  test('a different value for a field another manager owns is a 409 conflict naming field and manager', async () => {
    await apply(statefulSet('orders', 3));
    const scaleTo5 = { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'orders', namespace: NS }, spec: { replicas: 5 } };

    const { code, status } = await failure(apply(scaleTo5, 'autoscaler'));
    expect(code).toBe(409);
    expect(status).toMatchObject({
      reason: 'Conflict',
      message: `Apply failed with 1 conflict: conflict with "${RECONCILER}": .spec.replicas`,
      details: { causes: [{ reason: 'FieldManagerConflict', message: `conflict with "${RECONCILER}"`, field: '.spec.replicas' }] },
    });
    expect(server.get('apps/v1', 'StatefulSet', NS, 'orders')!.spec.replicas).toBe(3);
  });

  test('force moves ownership; the previous owner then conflicts in turn', async () => {
    await apply(statefulSet('orders', 3));
    const scaleTo5 = { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'orders', namespace: NS }, spec: { replicas: 5 } };

    const forced = await apply(scaleTo5, 'autoscaler', true);
    expect(forced.spec.replicas).toBe(5);
    expect(fieldsOf(forced, 'autoscaler')).toEqual({ 'f:spec': { 'f:replicas': {} } });
    expect(fieldsOf(forced, RECONCILER)['f:spec']['f:replicas']).toBeUndefined();
    const back = await failure(apply(statefulSet('orders', 3)));
    expect(back.status.message).toBe('Apply failed with 1 conflict: conflict with "autoscaler": .spec.replicas');
  });

  test('applying the same value as another manager shares the field without conflict', async () => {
    await apply(statefulSet('orders', 3));
    const same = { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'orders', namespace: NS }, spec: { replicas: 3 } };

    const shared = await apply(same, 'autoscaler');
    expect(fieldsOf(shared, 'autoscaler')).toEqual({ 'f:spec': { 'f:replicas': {} } });
    expect(fieldsOf(shared, RECONCILER)['f:spec']['f:replicas']).toEqual({});
  });

  test('managers applying different keys of one map share the map without conflict', async () => {
    await apply(configMap('a', { app: 'kv' }, { x: '1' }));
    const merged = await apply(configMap('a', { team: 'storage' }, {}), 'other');

    expect(merged.metadata!.labels).toEqual({ app: 'kv', team: 'storage' });
    expect((merged as any).data).toEqual({ x: '1' });
    expect(fieldsOf(merged, 'other')).toEqual({ 'f:data': {}, 'f:metadata': { 'f:labels': { 'f:team': {} } } });
  });

  test('a field last set by an Update conflicts with an apply, naming the manager, apiVersion and time', async () => {
    await apply(statefulSet('orders', 3));
    await objects.patch({ apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'orders', namespace: NS }, spec: { replicas: 4 } } as any,
      undefined, undefined, 'kubectl-edit', undefined, k8s.PatchStrategy.MergePatch);

    const { status } = await failure(apply(statefulSet('orders', 3)));
    expect(status.message).toMatch(/^Apply failed with 1 conflict: conflict with "kubectl-edit" using apps\/v1 at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: \.spec\.replicas$/);
  });

  test('several conflicts are listed by manager', async () => {
    await apply(statefulSet('orders', 3));
    const changed = statefulSet('orders', 4);
    changed.spec.serviceName = 'elsewhere';

    const { status } = await failure(apply(changed, 'other'));
    expect(status.message).toBe(`Apply failed with 2 conflicts: conflict with "${RECONCILER}":\n- .spec.replicas\n- .spec.serviceName`);
    expect(status.details.causes.map((c: any) => c.field)).toEqual(['.spec.replicas', '.spec.serviceName']);
  });

  test('fields the manager applied before and omits now are removed, unless another manager owns them', async () => {
    await apply(configMap('a', { app: 'kv', team: 'x' }, { x: '1', y: '2' }));
    await apply(configMap('a', undefined, { y: '2' }), 'other');

    const trimmed = await apply(configMap('a', { app: 'kv' }, { x: '1' }));
    expect(trimmed.metadata!.labels).toEqual({ app: 'kv' });
    expect((trimmed as any).data).toEqual({ x: '1', y: '2' });

    const bare = await apply(configMap('a'));
    expect(bare.metadata!.labels).toBeUndefined();
    expect((bare as any).data).toEqual({ y: '2' });
    expect(fieldsOf(bare, RECONCILER)).toBeUndefined();

    await apply(configMap('a', undefined, { y: '3' }), 'other');
    const emptied = await apply(configMap('a'), 'other');
    expect((emptied as any).data).toBeUndefined();
  });

  test('fields set by others through Update are kept when the applier never owned them', async () => {
    await apply(configMap('a', undefined, { x: '1' }));
    await objects.patch(configMap('a', undefined, { y: '2' }), undefined, undefined, 'kubectl', undefined, k8s.PatchStrategy.MergePatch);

    const reapplied = await apply(configMap('a', undefined, { x: '1' }));
    expect((reapplied as any).data).toEqual({ x: '1', y: '2' });
    expect(fieldsOf(reapplied, 'kubectl')).toEqual({ 'f:data': { 'f:y': {} } });
  });

  test('fieldManager is required (422) and managedFields in the body are refused (400)', async () => {
    const noManager = await failure(objects.patch(kvStore(), undefined, undefined, undefined, undefined, k8s.PatchStrategy.ServerSideApply));
    expect(noManager.code).toBe(422);
    expect(noManager.status.message).toBe('PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch');

    await apply(kvStore());
    const live = await objects.read<any>({ apiVersion: `${GROUP}/v1`, kind: 'KVStore', metadata: { name: 'orders', namespace: NS } });
    const readBack = await failure(apply({ ...live, spec: { size: 5 } }));
    expect(readBack.code).toBe(400);
    expect(readBack.status.message).toBe('metadata.managedFields must be nil');
  });

  test('metadata.resourceVersion in an applied configuration is a precondition', async () => {
    const created = await apply(kvStore());
    await apply(kvStore('orders', 4));

    const { code } = await failure(apply({ ...kvStore('orders', 5), metadata: { name: 'orders', namespace: NS, resourceVersion: created.metadata!.resourceVersion } }));
    expect(code).toBe(409);
  });

  test('an apply to /status owns status fields under subresource "status"', async () => {
    await apply(kvStore());
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    const body = { apiVersion: `${GROUP}/v1`, kind: 'KVStore', metadata: { name: 'orders', namespace: NS }, status: { readyReplicas: 3 }, spec: { size: 9 } };

    const stored = await custom.patchNamespacedCustomObjectStatus(
      { group: GROUP, version: 'v1', namespace: NS, plural: 'kvstores', name: 'orders', body, fieldManager: RECONCILER },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.ServerSideApply));
    expect(stored.status).toEqual({ readyReplicas: 3 });
    expect(stored.spec).toEqual({ size: 3 });
    expect(stored.metadata.managedFields.map((e: any) => [e.manager, e.operation, e.subresource])).toEqual([
      [RECONCILER, 'Apply', undefined],
      [RECONCILER, 'Apply', 'status'],
    ]);
  });
});

describe('patch', () => {
  test('a non-apply patch with a force parameter fails with 422, even force=false', async () => {
    await objects.create(configMap('a'));

    const { code, status } = await failure(objects.patch(configMap('a', { x: 'y' }), undefined, undefined, 'me', false, k8s.PatchStrategy.MergePatch));
    expect(code).toBe(422);
    expect(status.message).toBe('PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch');
  });

  test('a strategic merge patch is applied as a JSON merge patch; $ directives are refused', async () => {
    await objects.create(configMap('a', { app: 'kv' }, { x: '1', y: '2' }));
    const patched = await objects.patch({ ...configMap('a', undefined, { x: null as any }) });

    expect((patched as any).data).toEqual({ y: '2' });
    expect(server.requests.at(-1)!.contentType).toBe('application/strategic-merge-patch+json');
    const res = await raw('PATCH', `/api/v1/namespaces/${NS}/configmaps/a`, { body: '{"data":{"$patch":"replace"}}', contentType: 'application/strategic-merge-patch+json' });
    expect(res.status).toBe(400);
  });

  test('the typed clients send application/json-patch+json by default; a failed test op is 422', async () => {
    const coordination = kc.makeApiClient(k8s.CoordinationV1Api);
    await coordination.createNamespacedLease({ namespace: NS, body: { metadata: { name: 'orders-reconcile' }, spec: { holderIdentity: 'pod-a' } } });

    const taken = await coordination.patchNamespacedLease({
      name: 'orders-reconcile', namespace: NS,
      body: [{ op: 'test', path: '/spec/holderIdentity', value: 'pod-a' }, { op: 'replace', path: '/spec/holderIdentity', value: 'pod-b' }],
    });
    expect(taken.spec!.holderIdentity).toBe('pod-b');
    expect(server.requests.at(-1)!.contentType).toBe('application/json-patch+json');
    const lost = await failure(coordination.patchNamespacedLease({
      name: 'orders-reconcile', namespace: NS, body: [{ op: 'test', path: '/spec/holderIdentity', value: 'pod-a' }],
    }));
    expect(lost.code).toBe(422);
    expect(lost.status.details.causes[0].message).toMatch(/test failed/);
  });

  test('setHeaderOptions switches a typed patch to merge patch', async () => {
    const coordination = kc.makeApiClient(k8s.CoordinationV1Api);
    await coordination.createNamespacedLease({ namespace: NS, body: { metadata: { name: 'l' }, spec: { holderIdentity: 'pod-a', leaseDurationSeconds: 15 } } });

    const patched = await coordination.patchNamespacedLease(
      { name: 'l', namespace: NS, body: { spec: { holderIdentity: 'pod-b' } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    expect(patched.spec).toMatchObject({ holderIdentity: 'pod-b', leaseDurationSeconds: 15 });
  });
});

describe('Lease through CoordinationV1Api', () => {
  test('create, replace with the current resourceVersion, and 409 with a stale one', async () => {
    const coordination = kc.makeApiClient(k8s.CoordinationV1Api);
    const created = await coordination.createNamespacedLease({
      namespace: NS,
      body: { metadata: { name: 'orders-reconcile' }, spec: { holderIdentity: 'pod-a', leaseDurationSeconds: 15, renewTime: new k8s.V1MicroTime('2025-01-01T00:00:00Z') } },
    });
    // MicroTime comes back as the string the server stored, not as a Date.
    expect(created.spec!.renewTime).toBe('2025-01-01T00:00:00.000000Z');
    expect(created.metadata!.generation).toBeUndefined();

    const renewed = await coordination.replaceNamespacedLease({
      name: 'orders-reconcile', namespace: NS, body: { ...created, spec: { ...created.spec, renewTime: new k8s.V1MicroTime('2025-01-01T00:00:10Z') } },
    });
    expect(Number(renewed.metadata!.resourceVersion)).toBeGreaterThan(Number(created.metadata!.resourceVersion));
    const stale = await failure(coordination.replaceNamespacedLease({
      name: 'orders-reconcile', namespace: NS, body: { ...created, spec: { ...created.spec, holderIdentity: 'pod-b' } },
    }));
    expect(stale.code).toBe(409);
    expect(stale.status.message).toMatch(/^Operation cannot be fulfilled on leases.coordination.k8s.io "orders-reconcile": the object has been modified/);
  });

  test('a plain Date in renewTime is sent with milliseconds, which the server cannot decode (400)', async () => {
    const coordination = kc.makeApiClient(k8s.CoordinationV1Api);

    const { code, status } = await failure(coordination.createNamespacedLease({
      namespace: NS, body: { metadata: { name: 'l' }, spec: { holderIdentity: 'pod-a', renewTime: new Date('2025-01-01T00:00:00Z') } },
    }));
    expect(code).toBe(400);
    expect(status.message).toBe('Lease in version "v1" cannot be handled as a Lease: parsing time "2025-01-01T00:00:00.000Z" as "2006-01-02T15:04:05.000000Z07:00": cannot parse ".000Z" as ".000000"');
  });
});

describe('generation and resourceVersion', () => {
  test('generation moves only when something outside metadata and status changes; resourceVersion on every change', async () => {
    const created = await apply(statefulSet());
    const labelled = await objects.patch({ apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'orders', namespace: NS, labels: { team: 'a' } } } as any,
      undefined, undefined, 'labeller', undefined, k8s.PatchStrategy.MergePatch);
    const scaled = await apply(statefulSet('orders', 5));

    expect(labelled.metadata!.generation).toBe(1);
    expect(Number(labelled.metadata!.resourceVersion)).toBeGreaterThan(Number(created.metadata!.resourceVersion));
    expect(scaled.metadata!.generation).toBe(2);
  });

  test('resourceVersion comes from one counter shared by all kinds', async () => {
    const a = await objects.create(configMap('a'));
    const b = await objects.create(kvStore());

    expect(Number(b.metadata.resourceVersion)).toBe(Number(a.metadata.resourceVersion) + 1);
  });
});

describe('status subresource', () => {
  test('writes to the resource ignore status; writes to /status change only status and never generation', async () => {
    const apps = kc.makeApiClient(k8s.AppsV1Api);
    const created = await objects.create({ ...statefulSet(), status: { replicas: 99 } });
    expect(created.status).toBeUndefined();

    const replaced = await objects.replace({ ...created, status: { replicas: 3, readyReplicas: 3 } } as any);
    expect(replaced.status).toBeUndefined();
    expect(replaced.metadata!.resourceVersion).toBe(created.metadata.resourceVersion);

    const current = await apps.readNamespacedStatefulSet({ name: 'orders', namespace: NS });
    const withStatus = await apps.replaceNamespacedStatefulSetStatus({
      name: 'orders', namespace: NS,
      body: { ...current, spec: { ...current.spec!, replicas: 7 }, status: { replicas: 3, readyReplicas: 2, observedGeneration: 1 } },
    });
    expect(withStatus.status).toMatchObject({ replicas: 3, readyReplicas: 2, observedGeneration: 1 });
    expect(withStatus.spec!.replicas).toBe(3);
    expect(withStatus.metadata!.generation).toBe(1);
  });

  test('KVStore status: merge patch on /status, ignored by apply on the resource', async () => {
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    await apply({ ...kvStore(), status: { readyReplicas: 9 } });

    const patched = await custom.patchNamespacedCustomObjectStatus(
      { group: GROUP, version: 'v1', namespace: NS, plural: 'kvstores', name: 'orders', body: { status: { readyReplicas: 2, observedGeneration: 1 } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    expect(patched.status).toEqual({ readyReplicas: 2, observedGeneration: 1 });
    expect(patched.metadata.generation).toBe(1);

    const reapplied = await apply({ ...kvStore('orders', 4), status: { readyReplicas: 0 } });
    expect((reapplied as any).status).toEqual({ readyReplicas: 2, observedGeneration: 1 });
    expect(reapplied.metadata!.generation).toBe(2);
  });
});

describe('scale subresource', () => {
  test('KVStore /scale reads spec.size and status.readyReplicas and writes spec.size', async () => {
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    server.put({ ...kvStore('orders', 3), status: { readyReplicas: 2, selector: 'app=orders' } });
    const ref = { group: GROUP, version: 'v1', namespace: NS, plural: 'kvstores', name: 'orders' };

    const scale = await custom.getNamespacedCustomObjectScale(ref);
    expect(scale).toMatchObject({ apiVersion: 'autoscaling/v1', kind: 'Scale', spec: { replicas: 3 }, status: { replicas: 2, selector: 'app=orders' } });

    const replaced = await custom.replaceNamespacedCustomObjectScale({ ...ref, body: { ...scale, spec: { replicas: 5 } } });
    expect(replaced.spec.replicas).toBe(5);
    const stored = server.get(`${GROUP}/v1`, 'KVStore', NS, 'orders')!;
    expect(stored.spec.size).toBe(5);
    expect(stored.metadata.generation).toBe(2);

    const patched = await custom.patchNamespacedCustomObjectScale({ ...ref, body: { spec: { replicas: 1 } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    expect(patched.spec.replicas).toBe(1);
    expect(server.get(`${GROUP}/v1`, 'KVStore', NS, 'orders')!.spec.size).toBe(1);
  });

  test('a stale Scale resourceVersion is a 409 and negative replicas a 422', async () => {
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    server.put(kvStore('orders', 3));
    const ref = { group: GROUP, version: 'v1', namespace: NS, plural: 'kvstores', name: 'orders' };
    const scale = await custom.getNamespacedCustomObjectScale(ref);
    await custom.replaceNamespacedCustomObjectScale({ ...ref, body: { ...scale, spec: { replicas: 4 } } });

    expect((await failure(custom.replaceNamespacedCustomObjectScale({ ...ref, body: { ...scale, spec: { replicas: 5 } } }))).code).toBe(409);
    const negative = await failure(custom.replaceNamespacedCustomObjectScale({ ...ref, body: { apiVersion: 'autoscaling/v1', kind: 'Scale', spec: { replicas: -1 } } }));
    expect(negative.code).toBe(422);
    expect(negative.status.message).toBe('Scale.autoscaling "orders" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0');
  });

  test('StatefulSet /scale reads spec.replicas, status.replicas and the selector', async () => {
    server.put({ ...statefulSet('orders', 3), status: { replicas: 1 } });
    const scale = await kc.makeApiClient(k8s.AppsV1Api).readNamespacedStatefulSetScale({ name: 'orders', namespace: NS });

    expect(scale.spec!.replicas).toBe(3);
    expect(scale.status).toEqual({ replicas: 1, selector: 'app=orders' });
  });
});

describe('immutable fields', () => {
  const FORBIDDEN = 'StatefulSet.apps "orders" is invalid: spec: Forbidden: updates to statefulset spec for fields other than '
    + "'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";

  test('StatefulSet: changing serviceName (replace) or volumeClaimTemplates (apply) is 422 with the real message', async () => {
    const created = await apply(statefulSet());
    const renamed = { ...created, metadata: { ...created.metadata, managedFields: undefined }, spec: { ...created.spec, serviceName: 'other' } };
    const bigger = statefulSet();
    bigger.spec.volumeClaimTemplates[0].spec.resources.requests.storage = '2Gi';

    const replace = await failure(objects.replace(renamed as any));
    const applied = await failure(apply(bigger));
    expect(replace.code).toBe(422);
    expect(replace.status).toMatchObject({
      reason: 'Invalid', message: FORBIDDEN,
      details: { name: 'orders', group: 'apps', kind: 'StatefulSet', causes: [{ reason: 'FieldValueForbidden', field: 'spec' }] },
    });
    expect(applied.code).toBe(422);
    expect(applied.status.message).toBe(FORBIDDEN);
  });

  test('StatefulSet: replicas, template, updateStrategy and retention policy may change', async () => {
    await apply(statefulSet());
    const changed = statefulSet('orders', 5);
    changed.spec.template.spec.containers[0].image = 'quay.io/coreos/etcd:v3.5.18';
    changed.spec.updateStrategy = { type: 'RollingUpdate', rollingUpdate: { partition: 2 } };
    changed.spec.persistentVolumeClaimRetentionPolicy = { whenDeleted: 'Retain', whenScaled: 'Delete' };

    const updated = await apply(changed);
    expect(updated.spec.replicas).toBe(5);
    expect(updated.metadata!.generation).toBe(2);
  });

  test('StatefulSet: podManagementPolicy through a merge patch is 422; a selector that misses the template labels too', async () => {
    await apply(statefulSet());
    const patch = { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'orders', namespace: NS }, spec: { podManagementPolicy: 'Parallel' } };
    const mismatched = statefulSet('other');
    mismatched.spec.selector.matchLabels = { app: 'nope' };

    expect((await failure(objects.patch(patch as any, undefined, undefined, 'me', undefined, k8s.PatchStrategy.MergePatch))).status.message).toBe(FORBIDDEN);
    const created = await failure(objects.create(mismatched));
    expect(created.code).toBe(422);
    expect(created.status.message).toBe('StatefulSet.apps "other" is invalid: spec.template.metadata.labels: Invalid value: {"app":"other"}: `selector` does not match template `labels`');
  });

  test('Job: a changed spec.template is 422 (field is immutable); other spec fields may change', async () => {
    const created = await objects.create(job('reconcile-abc', 'kvstore:1'));

    const { code, status } = await failure(objects.replace({ ...created, spec: job('reconcile-abc', 'kvstore:2').spec }));
    expect(code).toBe(422);
    expect(status.message).toMatch(/^Job.batch "reconcile-abc" is invalid: spec.template: Invalid value: .*"kvstore:2".*: field is immutable$/);
    const suspended = await objects.replace({ ...created, spec: { ...created.spec, suspend: true } });
    expect(suspended.spec.suspend).toBe(true);
  });

  test('PVC: storage may grow only on a Bound claim, never shrink; other spec fields are immutable', async () => {
    const pvc = { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data-orders-0', namespace: NS }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } };
    const withStorage = (storage: string) => ({ ...pvc, spec: { ...pvc.spec, resources: { requests: { storage } } } });
    await apply(pvc);

    const pending = await failure(apply(withStorage('2Gi')));
    expect(pending.status.message).toBe('PersistentVolumeClaim "data-orders-0" is invalid: spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims');
    server.put({ ...server.get('v1', 'PersistentVolumeClaim', NS, 'data-orders-0')!, status: { phase: 'Bound' } });
    expect((await apply(withStorage('2Gi'))).spec.resources.requests.storage).toBe('2Gi');
    const shrink = await failure(apply(withStorage('1536Mi')));
    expect(shrink.status.message).toBe('PersistentVolumeClaim "data-orders-0" is invalid: spec.resources.requests.storage: Forbidden: field can not be less than previous value');
  });

  test('RoleBinding: roleRef cannot change', async () => {
    const binding = (role: string) => ({
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'reconciler', namespace: NS },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role }, subjects: [{ kind: 'ServiceAccount', name: 'reconciler', namespace: NS }],
    });
    await apply(binding('a'));

    const { code, status } = await failure(apply(binding('b')));
    expect(code).toBe(422);
    expect(status.message).toMatch(/^RoleBinding.rbac.authorization.k8s.io "reconciler" is invalid: roleRef: Invalid value: .*: cannot change roleRef$/);
  });
});

describe('delete', () => {
  test('propagationPolicy Orphan from the query is recorded; only the StatefulSet goes', async () => {
    const sts = await objects.create(statefulSet());
    const pod = server.put({
      apiVersion: 'v1', kind: 'Pod',
      metadata: { name: 'orders-0', namespace: NS, labels: { app: 'orders' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'orders', uid: sts.metadata.uid, controller: true }] },
      spec: { containers: [{ name: 'etcd', image: 'etcd' }] },
    });

    const status = await objects.delete(statefulSet(), undefined, undefined, undefined, undefined, 'Orphan');
    expect(status).toMatchObject({ kind: 'Status', status: 'Success', details: { name: 'orders', group: 'apps', kind: 'statefulsets', uid: sts.metadata.uid } });
    const [request] = server.mutatingRequests().filter((r) => r.method === 'DELETE');
    expect(request).toMatchObject({ path: `/apis/apps/v1/namespaces/${NS}/statefulsets/orders`, query: { propagationPolicy: 'Orphan' }, propagationPolicy: 'Orphan' });
    expect(server.get('apps/v1', 'StatefulSet', NS, 'orders')).toBeUndefined();
    expect(server.get('v1', 'Pod', NS, 'orders-0')).toEqual(pod);
  });

  test('propagationPolicy in the DeleteOptions body is honoured too; an unknown one is 422', async () => {
    const apps = kc.makeApiClient(k8s.AppsV1Api);
    await objects.create(statefulSet());

    await apps.deleteNamespacedStatefulSet({ name: 'orders', namespace: NS, body: { propagationPolicy: 'Orphan' } });
    const deletion = server.mutatingRequests().find((r) => r.method === 'DELETE')!;
    expect(deletion.body).toEqual({ propagationPolicy: 'Orphan' });
    expect(deletion.propagationPolicy).toBe('Orphan');
    await objects.create(statefulSet());
    const bad = await failure(objects.delete(statefulSet(), undefined, undefined, undefined, undefined, 'Sometimes'));
    expect(bad.code).toBe(422);
    expect(server.get('apps/v1', 'StatefulSet', NS, 'orders')).toBeDefined();
  });

  test('a missing object is 404; a stale precondition is 409', async () => {
    const created = await objects.create(configMap('a'));
    await objects.replace(configMap('a', undefined, { k: 'v' }));

    expect((await failure(objects.delete(configMap('b')))).code).toBe(404);
    const stale = await failure(objects.delete(configMap('a'), undefined, undefined, undefined, undefined, undefined, { preconditions: { resourceVersion: created.metadata.resourceVersion } }));
    expect(stale.code).toBe(409);
  });
});

describe('what the client library sends', () => {
  test('KubernetesObjectApi drops fields its typed model lacks for built-in kinds, keeps everything for custom resources', async () => {
    const sts = statefulSet();
    sts.spec.notAField = true;
    await objects.create(sts);
    await objects.create({ ...kvStore(), spec: { size: 3, engineOptions: { quota: '2G' } } });

    const [stsPost, kvPost] = server.mutatingRequests();
    expect((stsPost.body as any).spec.notAField).toBeUndefined();
    expect((stsPost.body as any).spec.serviceName).toBe('orders-headless');
    expect((kvPost.body as any).spec).toEqual({ size: 3, engineOptions: { quota: '2G' } });
  });
});

describe('fault injection', () => {
  test('failNext answers 503 once, then the request succeeds; the client does not retry by itself', async () => {
    await objects.create(configMap('a'));
    server.failNext({ method: 'GET', pathPattern: /\/configmaps\/a$/, status: 503 });
    const ref = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a', namespace: NS } };

    const { code, status } = await failure(objects.read(ref));
    expect(code).toBe(503);
    expect(status.reason).toBe('ServiceUnavailable');
    expect((await objects.read(ref)).metadata!.name).toBe('a');
    expect(server.requests.filter((r) => r.path.endsWith('/configmaps/a')).map((r) => r.injectedStatus)).toEqual([503, undefined]);
  });

  test('429 carries Retry-After in the headers and details.retryAfterSeconds', async () => {
    server.failNext({ method: 'POST', status: 429, retryAfterSeconds: 2 });

    const { code, status, headers } = await failure(objects.create(configMap('a')));
    expect(code).toBe(429);
    expect(headers['retry-after']).toBe('2');
    expect(status).toMatchObject({ reason: 'TooManyRequests', details: { retryAfterSeconds: 2 } });
    expect(server.mutatingRequests()).toHaveLength(1);
    expect(server.get('v1', 'ConfigMap', NS, 'a')).toBeUndefined();
  });

  test('a failed discovery request fails the call with a prefixed message and is asked again next time', async () => {
    server.failNext({ pathPattern: /^\/apis\/apps\/v1$/, status: 500 });

    const { code, message } = await failure(objects.create(statefulSet()));
    expect(code).toBe(500);
    expect(message).toMatch(/^Failed to fetch resource metadata for apps\/v1\/StatefulSet: HTTP-Code: 500/);
    await objects.create(statefulSet());
    expect(server.requests.filter((r) => r.path === '/apis/apps/v1')).toHaveLength(2);
  });

  test('delayMs slows the matching requests down, count of them', async () => {
    await objects.create(configMap('a'));
    server.failNext({ method: 'GET', pathPattern: /configmaps/, delayMs: 200, count: 2 });
    const ref = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a', namespace: NS } };

    const started = Date.now();
    await objects.read(ref);
    await objects.read(ref);
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    const fast = Date.now();
    await objects.read(ref);
    expect(Date.now() - fast).toBeLessThan(200);
  });
});

describe('direct store access', () => {
  test('put assigns uid, resourceVersion and generation; an identical put changes nothing', async () => {
    const first = server.put(statefulSet());
    const same = server.put(statefulSet());
    const scaled = server.put(statefulSet('orders', 5));

    expect(first.metadata).toMatchObject({ namespace: NS, generation: 1, resourceVersion: expect.stringMatching(/^[0-9]+$/), uid: expect.any(String) });
    expect(same.metadata.resourceVersion).toBe(first.metadata.resourceVersion);
    expect(scaled.metadata).toMatchObject({ uid: first.metadata.uid, generation: 2 });
    expect(server.mutatingRequests()).toEqual([]);
  });

  test('get returns undefined for a missing object and throws for a kind the double does not serve', () => {
    expect(server.get('v1', 'ConfigMap', NS, 'missing')).toBeUndefined();
    expect(() => server.get('apps/v1', 'Deployment', NS, 'x')).toThrow(/apps\/v1 Deployment is not a kind it serves/);
  });
  test('list returns one kind, in one namespace or all, sorted by name; remove deletes and says whether it did', () => {
    server.put(configMap('b'));
    server.put(configMap('a'));
    server.put({ ...configMap('c'), metadata: { name: 'c', namespace: 'other' } });
    server.put(statefulSet());

    expect(server.list('v1', 'ConfigMap', NS).map((o) => o.metadata.name)).toEqual(['a', 'b']);
    expect(server.list('v1', 'ConfigMap').map((o) => `${o.metadata.namespace}/${o.metadata.name}`)).toEqual(['kv/a', 'kv/b', 'other/c']);
    expect(server.remove('v1', 'ConfigMap', NS, 'a')).toBe(true);
    expect(server.remove('v1', 'ConfigMap', NS, 'a')).toBe(false);
    expect(server.list('v1', 'ConfigMap', NS).map((o) => o.metadata.name)).toEqual(['b']);
  });
});

describe('change notification', () => {
  test('every stored change is reported in order, with the DELETE options in force; dry runs and no-op writes are not', async () => {
    const events: string[] = [];
    const unsubscribe = server.onChange((e) => events.push([e.type, e.object.kind, e.object.metadata.name, e.object.metadata.resourceVersion, e.propagationPolicy, e.gracePeriodSeconds].join(' ').trim()));

    const created = await apply(statefulSet());
    await objects.create(statefulSet('dry'), undefined, 'All');
    await apply(statefulSet());
    const put = server.put(configMap('a'));
    await objects.delete(statefulSet(), undefined, undefined, 5, undefined, 'Orphan');
    server.remove('v1', 'ConfigMap', NS, 'a');
    unsubscribe();
    server.put(configMap('b'));

    expect(events).toEqual([
      `ADDED StatefulSet orders ${created.metadata.resourceVersion}`,
      `ADDED ConfigMap a ${put.metadata.resourceVersion}`,
      `DELETED StatefulSet orders ${created.metadata.resourceVersion} Orphan 5`,
      `DELETED ConfigMap a ${put.metadata.resourceVersion}`,
    ]);
  });

  test('a status write is reported as MODIFIED with the object after the change', async () => {
    const events: any[] = [];
    server.onChange((e) => events.push(e));
    await objects.create(statefulSet());
    const apps = kc.makeApiClient(k8s.AppsV1Api);

    await apps.replaceNamespacedStatefulSetStatus({ name: 'orders', namespace: NS, body: { ...server.get('apps/v1', 'StatefulSet', NS, 'orders'), status: { replicas: 2 } } as any });

    expect(events.map((e) => [e.type, e.object.status])).toEqual([['ADDED', undefined], ['MODIFIED', { replicas: 2 }]]);
  });
});

describe('pods/{name}/log', () => {
  const pod = (containers: string[]) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'check-abcde', namespace: NS }, spec: { containers: containers.map((name) => ({ name, image: 'x' })) } });
  test('text from the kubelet\'s hook, for the only container by default or the one named', async () => {
    server.put(pod(['etcd']));
    server.podLogs = (ns, name, container) => `${ns}/${name}/${container}: {"revision":7}\n`;
    const core = kc.makeApiClient(k8s.CoreV1Api);
    expect(await core.readNamespacedPodLog({ name: 'check-abcde', namespace: NS })).toBe('kv/check-abcde/etcd: {"revision":7}\n');
    expect(await core.readNamespacedPodLog({ name: 'check-abcde', namespace: NS, container: 'etcd' })).toBe('kv/check-abcde/etcd: {"revision":7}\n');
  });
  test('400 for a pod of several containers without one named, or a container it lacks; 404 for no pod', async () => {
    server.put(pod(['a', 'b']));
    const core = kc.makeApiClient(k8s.CoreV1Api);
    await expect(core.readNamespacedPodLog({ name: 'check-abcde', namespace: NS })).rejects.toMatchObject({ code: 400 });
    await expect(core.readNamespacedPodLog({ name: 'check-abcde', namespace: NS, container: 'c' })).rejects.toMatchObject({ code: 400 });
    await expect(core.readNamespacedPodLog({ name: 'gone', namespace: NS })).rejects.toMatchObject({ code: 404 });
  });
});
