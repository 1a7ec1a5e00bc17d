// The reconciler against the API double, through the real @kubernetes/client-node.
import { mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { Chart, Testing } from 'cdk8s';
import { main } from '../../apps/reconcile';
import { AccessMode, KVStore, KVStoreProps, StoreDocument } from '../../lib';
import { specHash } from '../../lib/model/document';
import { KubeClient, KubeError } from '../../lib/reconciler/client';
import { BOUND_BY_LABEL, planBindings, reconcileResources } from '../../lib/reconciler/custom-resources';
import { LeaseHeldError } from '../../lib/reconciler/lease';
import { Log } from '../../lib/reconciler/log';
import { OUTCOME_FIELD_MANAGER, reconcileStore, RefusedError } from '../../lib/reconciler/reconcile';
import { ApiServer, reportRolledOut, startApiServer } from '../support/api-server';

const NS = 'shop';
let server: ApiServer;
let stopController: () => void;
let lines: string[];

beforeEach(async () => {
  server = await startApiServer();
  lines = [];
  stopController = reportRolledOut(server, NS, ['orders']);
});

afterEach(async () => {
  stopController();
  await server.stop();
});

function documentFor(props: KVStoreProps = {}): StoreDocument {
  const chart = new Chart(Testing.app(), 'c', { namespace: NS });
  return new KVStore(chart, 'orders', props).document;
}

const log = () => new Log(false, (l) => lines.push(l.trimEnd()));
const client = () => new KubeClient(server.kubeConfig(), { baseDelayMs: 5, maxDelayMs: 20 });
const options = { holder: 'test-job', pollMs: 20, rolloutTimeoutMs: 5000 };
const reconcile = (props: KVStoreProps = {}, extra: object = {}) => reconcileStore(documentFor(props), client(), log(), { ...options, ...extra });
// A run's records (its Events, the GitOps-mode outcome annotations) change no object of the store.
const isRecord = (r: { path: string; query: Readonly<Record<string, string>> }) => r.path.includes('/events.k8s.io/') || r.query.fieldManager === OUTCOME_FIELD_MANAGER;
const mutations = () => server.mutatingRequests().filter((r) => !r.injectedStatus && !isRecord(r));
const storeMutations = () => mutations().filter((r) => !r.path.includes('/leases'));

describe('reconcileStore against the API double', () => {
  test('creates every object by server-side apply, Services before the StatefulSet, under a Lease', async () => {
    await reconcile();
    const applies = storeMutations();
    expect(applies.map((r) => `${r.method} ${r.path}`)).toEqual([
      `PATCH /api/v1/namespaces/${NS}/configmaps/orders-applyset`,
      `PATCH /api/v1/namespaces/${NS}/configmaps/orders-bootstrap`,
      `PATCH /api/v1/namespaces/${NS}/services/orders-peers`,
      `PATCH /api/v1/namespaces/${NS}/services/orders`,
      `PATCH /apis/apps/v1/namespaces/${NS}/statefulsets/orders`,
      `PATCH /apis/policy/v1/namespaces/${NS}/poddisruptionbudgets/orders`,
      `PATCH /apis/networking.k8s.io/v1/namespaces/${NS}/networkpolicies/orders`,
      // Bootstrapped: members that start from now on join the existing cluster.
      `PATCH /api/v1/namespaces/${NS}/configmaps/orders-bootstrap`,
    ]);
    expect((applies[1].body as any).data.ETCD_INITIAL_CLUSTER_STATE).toBe('new');
    expect((server.get('v1', 'ConfigMap', NS, 'orders-bootstrap') as any).data.ETCD_INITIAL_CLUSTER_STATE).toBe('existing');
    for (const r of applies) {
      expect(r.contentType).toBe('application/apply-patch+yaml');
      expect(r.query).toMatchObject({ fieldManager: 'cdk8s-kvstore-reconciler', force: 'true' });
    }
    const sts = server.get('apps/v1', 'StatefulSet', NS, 'orders')!;
    expect((sts as any).spec.serviceName).toBe('orders-peers');
    expect(sts.metadata.labels?.['applyset.kubernetes.io/part-of']).toMatch(/^applyset-[A-Za-z0-9_-]{43}-v1$/);
    const parent = server.get('v1', 'ConfigMap', NS, 'orders-applyset')!;
    expect(parent.metadata.labels?.['applyset.kubernetes.io/id']).toBe(sts.metadata.labels?.['applyset.kubernetes.io/part-of']);
    expect(parent.metadata.annotations?.['applyset.kubernetes.io/contains-group-kinds']).toBe('ConfigMap,NetworkPolicy.networking.k8s.io,PodDisruptionBudget.policy,Service,StatefulSet.apps');
    // The Lease was taken and given back.
    const lease = server.get('coordination.k8s.io/v1', 'Lease', NS, 'orders-reconciler')!;
    expect((lease as any).spec.holderIdentity).toBeUndefined();
    expect(lines.some((l) => l.startsWith('[5/8] created StatefulSet/orders'))).toBe(true);
  });

  test('a TLS store in GitOps mode: no cert-manager object is the reconciler\'s (the GitOps tool applies them)', async () => {
    await reconcile({ tls: {} });
    expect(storeMutations().some((r) => r.path.includes('cert-manager.io'))).toBe(false);
  });

  test('a TLS store in CRD mode: the cert-manager Issuers and Certificates are applied before the Services, recorded in the ApplySet; a second run changes nothing; its CA cannot be swapped', async () => {
    const crd = (props: KVStoreProps) => reconcileStore({ ...documentFor(props), reconciledBy: 'operator' }, client(), log(), options);
    await crd({ tls: {} });
    const paths = storeMutations().map((r) => `${r.method} ${r.path}`);
    expect(paths.slice(2, 8)).toEqual([
      `PATCH /apis/cert-manager.io/v1/namespaces/${NS}/issuers/orders-selfsigned`,
      `PATCH /apis/cert-manager.io/v1/namespaces/${NS}/certificates/orders-ca`,
      `PATCH /apis/cert-manager.io/v1/namespaces/${NS}/issuers/orders-ca`,
      `PATCH /apis/cert-manager.io/v1/namespaces/${NS}/certificates/orders-member-tls`,
      `PATCH /apis/cert-manager.io/v1/namespaces/${NS}/certificates/orders-client-tls`,
      `PATCH /api/v1/namespaces/${NS}/services/orders-peers`,
    ]);
    expect(server.get('v1', 'ConfigMap', NS, 'orders-applyset')!.metadata.annotations?.['applyset.kubernetes.io/contains-group-kinds'])
      .toBe('Certificate.cert-manager.io,ConfigMap,Issuer.cert-manager.io,NetworkPolicy.networking.k8s.io,PodDisruptionBudget.policy,Service,StatefulSet.apps');
    expect((await crd({ tls: {} })).mutatingRequests).toBe(0);
    // The store's own CA given up for an issuer of the user's: a CA rotation, which needs the record of
    // the CA the members trust (none here: no CA was readable); refused before anything changed.
    const before = storeMutations().length;
    await expect(crd({ tls: { issuer: { name: 'corp', kind: 'ClusterIssuer' } } })).rejects.toThrow(/no record of the CA the members trust \(ConfigMap orders-trust.*cannot rotate from own-ca to ClusterIssuer\/corp; nothing was changed/);
    expect(storeMutations().length).toBe(before);
    expect(['orders-selfsigned', 'orders-ca'].map((n) => server.get('cert-manager.io/v1', 'Issuer', NS, n) !== undefined)).toEqual([true, true]);
  });

  test('a second reconcile with nothing changed makes zero mutating requests', async () => {
    await reconcile();
    const before = mutations().length;
    const result = await reconcile();
    expect(result.mutatingRequests).toBe(0);
    expect(mutations().length).toBe(before);
    expect(lines).toContain('plan: 0 to create, 0 to update, 0 to re-create, 0 to prune, 7 unchanged, 0 refused');
  });

  test('drift is put back, and only the drifted object is touched', async () => {
    await reconcile();
    const pdb = server.get('policy/v1', 'PodDisruptionBudget', NS, 'orders')!;
    server.put({ ...pdb, spec: { ...(pdb as any).spec, minAvailable: 1 } } as any);
    const before = storeMutations().length;
    await reconcile();
    expect(storeMutations().slice(before).map((r) => r.path)).toEqual([`/apis/policy/v1/namespaces/${NS}/poddisruptionbudgets/orders`]);
    expect((server.get('policy/v1', 'PodDisruptionBudget', NS, 'orders') as any).spec.minAvailable).toBe(2);
  });

  test('refuses a storage change with a clear error and changes nothing', async () => {
    await reconcile({ storageSize: '10Gi' });
    const before = mutations().length;
    const attempt = reconcile({ storageSize: '5Gi' });
    await expect(attempt).rejects.toThrow(RefusedError);
    await expect(reconcile({ storageSize: '5Gi' })).rejects.toThrow(/StatefulSet\/orders spec\.volumeClaimTemplates\[0\]\.spec\.resources\.requests\.storage: "10Gi" → "5Gi" refused: storage cannot shrink/);
    expect(mutations().length).toBe(before);
  });

  test('force re-creates the StatefulSet with orphan propagation (pods and PVCs stay)', async () => {
    await reconcile({ storageSize: '10Gi' });
    await reconcile({ storageSize: '20Gi' }, { force: true });
    const deletes = mutations().filter((r) => r.method === 'DELETE');
    expect(deletes.map((r) => [r.path, r.propagationPolicy])).toEqual([[`/apis/apps/v1/namespaces/${NS}/statefulsets/orders`, 'Orphan']]);
    expect((server.get('apps/v1', 'StatefulSet', NS, 'orders') as any).spec.volumeClaimTemplates[0].spec.resources.requests.storage).toBe('20Gi');
  });

  test('prunes objects of the ApplySet that are no longer desired, and never PVCs', async () => {
    await reconcile();
    const partOf = server.get('apps/v1', 'StatefulSet', NS, 'orders')!.metadata.labels!['applyset.kubernetes.io/part-of'];
    server.put({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data-orders-0', namespace: NS, labels: { 'applyset.kubernetes.io/part-of': partOf } }, spec: {} } as any);
    await reconcile({ networkPolicy: false });
    expect(server.get('networking.k8s.io/v1', 'NetworkPolicy', NS, 'orders')).toBeUndefined();
    expect(server.get('v1', 'PersistentVolumeClaim', NS, 'data-orders-0')).toBeDefined();
    expect(mutations().filter((r) => r.method === 'DELETE').map((r) => r.path)).toEqual([`/apis/networking.k8s.io/v1/namespaces/${NS}/networkpolicies/orders`]);
  });

  test('an interrupted prune is finished by the next run (the ApplySet parent still lists the kind)', async () => {
    await reconcile();
    server.failNext({ method: 'DELETE', pathPattern: /networkpolicies/, status: 500, count: 6 });
    await expect(reconcile({ networkPolicy: false })).rejects.toThrow(/delete NetworkPolicy\/orders failed \(HTTP 500\)/);
    expect(server.get('v1', 'ConfigMap', NS, 'orders-applyset')!.metadata.annotations?.['applyset.kubernetes.io/contains-group-kinds']).toContain('NetworkPolicy.networking.k8s.io');
    await reconcile({ networkPolicy: false });
    expect(server.get('networking.k8s.io/v1', 'NetworkPolicy', NS, 'orders')).toBeUndefined();
    expect(server.get('v1', 'ConfigMap', NS, 'orders-applyset')!.metadata.annotations?.['applyset.kubernetes.io/contains-group-kinds']).toBe('ConfigMap,PodDisruptionBudget.policy,Service,StatefulSet.apps');
    expect((await reconcile({ networkPolicy: false })).mutatingRequests).toBe(0);
  });

  test('the Lease is renewed during a long rollout, so no second reconciler can take over', async () => {
    stopController();
    const slow = reconcile({}, { leaseDurationSeconds: 1 });
    await new Promise((r) => setTimeout(r, 1500));
    // Past the lease duration: without renewal another holder could acquire it now.
    const other = reconcileStore(documentFor({ labels: { x: 'y' } }), client(), log(), { ...options, holder: 'other-job' });
    await expect(other).rejects.toThrow(LeaseHeldError);
    const sts = server.get('apps/v1', 'StatefulSet', NS, 'orders') as any;
    server.put({ ...sts, status: { observedGeneration: sts.metadata.generation, replicas: 3, readyReplicas: 3, updatedReplicas: 3 } });
    await slow;
    expect(server.requests.filter((r) => r.method === 'PUT' && r.path.includes('/leases/')).length).toBeGreaterThanOrEqual(3);
  });

  test('retries 503 and 429 (honouring Retry-After) and converges', async () => {
    server.failNext({ method: 'PATCH', pathPattern: /statefulsets/, status: 503, count: 2 });
    server.failNext({ method: 'PATCH', pathPattern: /services/, status: 429, retryAfterSeconds: 0 });
    await reconcile();
    expect(server.requests.filter((r) => r.injectedStatus).map((r) => r.injectedStatus)).toEqual([429, 503, 503]);
    expect(server.get('apps/v1', 'StatefulSet', NS, 'orders')).toBeDefined();
  });

  test('gives up naming the object and the reason; a re-run from the start converges', async () => {
    server.failNext({ method: 'PATCH', pathPattern: /statefulsets/, status: 500, count: 6 });
    await expect(reconcile()).rejects.toThrow(/apply StatefulSet\/orders failed \(HTTP 500\): .* \(gave up after 6 attempts\)/);
    expect(server.get('v1', 'Service', NS, 'orders')).toBeDefined();
    expect(server.get('apps/v1', 'StatefulSet', NS, 'orders')).toBeUndefined();
    // The Lease was released on the way out, so the next run need not wait for it.
    await reconcile();
    expect(server.get('apps/v1', 'StatefulSet', NS, 'orders')).toBeDefined();
    expect((await reconcile()).mutatingRequests).toBe(0);
  });

  test('a second reconciler waits for the Lease (leaseWaitMs): it goes on once the first releases it, or gives up at the deadline', async () => {
    const micro = (d: Date) => d.toISOString().replace('Z', '000Z');
    const held = () => server.put({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'orders-reconciler', namespace: NS }, spec: { holderIdentity: 'other-job', leaseDurationSeconds: 120, renewTime: micro(new Date()), acquireTime: micro(new Date()) } } as any);
    held();
    const lines: string[] = [];
    const waiting = reconcileStore(documentFor(), client(), new Log(false, (l) => lines.push(l)), { ...options, pollMs: 50, leaseWaitMs: 10_000 });
    await new Promise((r) => setTimeout(r, 300));
    // Still waiting, nothing changed; then the other run ends and releases the Lease.
    expect(storeMutations()).toEqual([]);
    expect(lines.some((l) => l.includes('Lease orders-reconciler is held by other-job') && l.includes('waiting for it'))).toBe(true);
    const lease = server.get('coordination.k8s.io/v1', 'Lease', NS, 'orders-reconciler') as any;
    server.put({ ...lease, spec: { ...lease.spec, holderIdentity: undefined } });
    await waiting;
    expect(server.get('apps/v1', 'StatefulSet', NS, 'orders')).toBeDefined();
    // Held again: a short wait gives up with LeaseHeldError, having changed nothing.
    held();
    const before = storeMutations().length;
    const started = Date.now();
    await expect(reconcileStore(documentFor({ labels: { x: 'y' } }), client(), log(), { ...options, pollMs: 50, leaseWaitMs: 400 })).rejects.toThrow(LeaseHeldError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    expect(storeMutations().length).toBe(before);
  });

  test('fencing: once the Lease is lost, the next write fails before it is sent, even inside a step (a resize growing one PVC after another)', async () => {
    await reconcile({ size: 3, storageSize: '1Gi' });
    for (const i of [0, 1, 2]) {
      server.put({
        apiVersion: 'v1', kind: 'PersistentVolumeClaim',
        metadata: { name: `data-orders-${i}`, namespace: NS, labels: { 'app.kubernetes.io/name': 'kvstore', 'app.kubernetes.io/instance': 'orders' } },
        spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
        status: { phase: 'Bound', capacity: { storage: '1Gi' } },
      } as any);
    }
    // The first PVC's request takes longer than a third of the Lease; meanwhile another reconciler takes it.
    server.failNext({ method: 'PATCH', pathPattern: /persistentvolumeclaims\/data-orders-0$/, delayMs: 1300 });
    const resizing = reconcile({ size: 3, storageSize: '2Gi' }, { leaseDurationSeconds: 3 });
    await new Promise((r) => setTimeout(r, 300));
    const lease = server.get('coordination.k8s.io/v1', 'Lease', NS, 'orders-reconciler') as any;
    expect(lease.spec.holderIdentity).toBe('test-job');
    server.put({ ...lease, spec: { ...lease.spec, holderIdentity: 'thief', renewTime: new Date().toISOString().replace('Z', '000Z') } });
    await expect(resizing).rejects.toThrow(/Lease orders-reconciler was lost to thief: stopping before another change/);
    const grown = [0, 1, 2].map((i) => (server.get('v1', 'PersistentVolumeClaim', NS, `data-orders-${i}`) as any).spec.resources.requests.storage);
    expect(grown).toEqual(['2Gi', '1Gi', '1Gi']);
  });

  test('one reconciler at a time: a Lease held by another live reconciler stops us before any change', async () => {
    const now = new Date();
    const micro = (d: Date) => d.toISOString().replace('Z', '000Z');
    server.put({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'orders-reconciler', namespace: NS }, spec: { holderIdentity: 'other-job', leaseDurationSeconds: 120, renewTime: micro(now), acquireTime: micro(now) } } as any);
    await expect(reconcile()).rejects.toThrow(LeaseHeldError);
    expect(storeMutations()).toEqual([]);
  });

  test('an expired Lease (a crashed reconciler) is taken over', async () => {
    const old = new Date(Date.now() - 600_000).toISOString().replace('Z', '000Z');
    server.put({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'orders-reconciler', namespace: NS }, spec: { holderIdentity: 'crashed-job', leaseDurationSeconds: 120, renewTime: old, acquireTime: old, leaseTransitions: 3 } } as any);
    await reconcile();
    expect(server.get('apps/v1', 'StatefulSet', NS, 'orders')).toBeDefined();
    expect((server.get('coordination.k8s.io/v1', 'Lease', NS, 'orders-reconciler') as any).spec.leaseTransitions).toBe(4);
  });

  test('a membership change needs the etcd members: unreachable, it fails naming them and leaves replicas alone', async () => {
    await reconcile({ size: 3 });
    await expect(reconcile({ size: 5 }, { etcdEndpoints: ['http://127.0.0.1:9'] })).rejects.toThrow(/could not list the etcd members at http:\/\/127\.0\.0\.1:9: /);
    expect((server.get('apps/v1', 'StatefulSet', NS, 'orders') as any).spec.replicas).toBe(3);
    // The StatefulSet is marked: the next run resumes the change.
    expect(server.get('apps/v1', 'StatefulSet', NS, 'orders')!.metadata.annotations?.['kvstore.cdk8s-kvstore.io/operation']).toBe('members → 5');
  });
});

describe('kvstore-reconcile (the CLI)', () => {
  let dir: string;
  let output: string[];
  let errors: string[];
  let spy: jest.SpyInstance;
  let errorSpy: jest.SpyInstance;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'kvstore-cli-'));
    output = [];
    errors = [];
    spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: any) => {
      output.push(String(chunk));
      return true;
    });
    errorSpy = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: any) => {
      errors.push(String(chunk));
      return true;
    });
  });
  afterEach(() => {
    spy.mockRestore();
    errorSpy.mockRestore();
    rmSync(dir, { recursive: true, force: true });
  });
  const write = (doc: StoreDocument) => {
    const file = join(dir, 'store.json');
    writeFileSync(file, JSON.stringify(doc));
    return file;
  };

  test('--force-spec: force applies only to the spec it was given for (a retried older Job reads a newer document)', async () => {
    expect(await main(['--store', write(documentFor())], server.kubeConfig())).toBe(0);
    const changed = documentFor({ volumeClaimTemplates: [{ name: 'data', accessModes: [AccessMode.READ_WRITE_ONCE_POD] }] });
    const older = documentFor({ size: 5 });
    expect(await main(['--store', write(changed), '--force', '--force-spec', specHash(older.spec)], server.kubeConfig())).toBe(2);
    expect(output.join('')).toContain(`--force was given for spec ${specHash(older.spec)}; this document is spec ${specHash(changed.spec)}: running without force`);
    expect(await main(['--store', write(changed), '--force', '--force-spec', specHash(changed.spec)], server.kubeConfig())).toBe(0);
    expect((server.get('apps/v1', 'StatefulSet', NS, 'orders') as any).spec.volumeClaimTemplates[0].spec.accessModes).toEqual(['ReadWriteOncePod']);
  });

  test('exit 0 after a reconcile; --json logs one JSON object per line', async () => {
    expect(await main(['--store', write(documentFor()), '--json'], server.kubeConfig())).toBe(0);
    const records = output.join('').trim().split('\n').map((l) => JSON.parse(l));
    expect(records.some((r) => r.action === 'create' && r.object === 'StatefulSet/orders' && r.steps === 8)).toBe(true);
    expect(server.get('apps/v1', 'StatefulSet', NS, 'orders')).toBeDefined();
  });

  test('exit 2 on a refused change, 64 on bad usage, 1 on a bad document', async () => {
    expect(await main(['--store', write(documentFor({ storageSize: '10Gi' }))], server.kubeConfig())).toBe(0);
    expect(await main(['--store', write(documentFor({ storageSize: '1Gi' }))], server.kubeConfig())).toBe(2);
    expect(await main(['--bogus'], server.kubeConfig())).toBe(64);
    writeFileSync(join(dir, 'bad.json'), '{"kind":"Nope"}');
    expect(await main(['--store', join(dir, 'bad.json')], server.kubeConfig())).toBe(1);
    // Errors go to stderr, one line each, naming the file.
    expect(errors.join('')).toMatch(/^error: --store \S+bad\.json: not a store document/m);
    expect(output.join('')).not.toContain('error:');
  });
});

describe('CRD mode', () => {
  const resource = (spec: object, generation?: number) => server.put({
    apiVersion: 'kvstore.cdk8s-kvstore.io/v1', kind: 'KVStore', metadata: { name: 'orders', namespace: NS, ...(generation ? { generation } : {}) }, spec,
  } as any);

  test('reconciles a new resource and reports Ready through the status subresource', async () => {
    resource({ size: 3, storageSize: '1Gi' });
    const result = await reconcileResources(server.kubeConfig(), client(), log(), { ...options, namespaces: [NS] });
    expect(result).toEqual({ reconciled: 1, failed: 0 });
    expect(server.get('apps/v1', 'StatefulSet', NS, 'orders')).toBeDefined();
    const status = (server.get('kvstore.cdk8s-kvstore.io/v1', 'KVStore', NS, 'orders') as any).status;
    expect(status).toMatchObject({ observedGeneration: 1, readyReplicas: 3, replicas: 3, selector: 'app.kubernetes.io/name=kvstore,app.kubernetes.io/instance=orders', specHash: expect.stringMatching(/^[0-9a-f]{10}$/) });
    expect(status.conditions.map((c: any) => [c.type, c.status])).toEqual([['Ready', 'True'], ['Progressing', 'False'], ['Degraded', 'False']]);
    expect(server.mutatingRequests().some((r) => r.path.endsWith('/kvstores/orders/status') && r.method === 'PUT')).toBe(true);
  });

  test('a store whose Lease another run holds (the maintenance CronJob) is skipped, not failed: no status, no error, exit 0', async () => {
    resource({ size: 3, storageSize: '1Gi' });
    const micro = (d: Date) => d.toISOString().replace('Z', '000Z');
    server.put({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'orders-reconciler', namespace: NS }, spec: { holderIdentity: 'kvstore-maintenance-1', leaseDurationSeconds: 120, renewTime: micro(new Date()), acquireTime: micro(new Date()) } } as any);
    const lines: string[] = [];
    const result = await reconcileResources(server.kubeConfig(), client(), new Log(false, (l) => lines.push(l)), { ...options, namespaces: [NS] });
    expect(result).toEqual({ reconciled: 0, failed: 0 });
    expect((server.get('kvstore.cdk8s-kvstore.io/v1', 'KVStore', NS, 'orders') as any).status).toBeUndefined();
    expect(server.get('apps/v1', 'StatefulSet', NS, 'orders')).toBeUndefined();
    expect(lines.join('')).toMatch(/shop\/orders: Lease orders-reconciler is held by kvstore-maintenance-1 .*the next pass reconciles it/);
  });

  test('the store\'s NetworkPolicy admits the operator\'s pods from the operator\'s namespace (and only its)', async () => {
    resource({ size: 1, storageSize: '1Gi' });
    const operatorPeer = () => (server.get('networking.k8s.io/v1', 'NetworkPolicy', NS, 'orders') as any).spec.ingress[1].from
      .find((p: any) => p.podSelector?.matchLabels?.['app.kubernetes.io/component'] === 'operator');
    const podSelector = { matchLabels: { 'app.kubernetes.io/name': 'kvstore-reconciler', 'app.kubernetes.io/component': 'operator' } };
    await reconcileResources(server.kubeConfig(), client(), log(), { ...options, namespaces: [NS], operatorNamespace: NS });
    expect(operatorPeer()).toEqual({ podSelector });
    await reconcileResources(server.kubeConfig(), client(), log(), { ...options, namespaces: [NS], operatorNamespace: 'kvstore-system' });
    expect(operatorPeer()).toEqual({ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kvstore-system' } }, podSelector });
  });

  test('a backup without a prune image is pruned by the operator\'s image; one that names its own keeps it', async () => {
    resource({ size: 1, storageSize: '1Gi', backup: { storage: '1Gi' } });
    await reconcileResources(server.kubeConfig(), client(), log(), { ...options, namespaces: [NS], pruneImage: 'registry.example.com/team/rec:7' });
    const prune = () => (server.get('batch/v1', 'CronJob', NS, 'orders-backup') as any).spec.jobTemplate.spec.template.spec.containers[0].image;
    expect(prune()).toBe('registry.example.com/team/rec:7');
    resource({ size: 1, storageSize: '1Gi', backup: { storage: '1Gi', pruneImage: 'registry.example.com/team/mine:1' } }, 2);
    await reconcileResources(server.kubeConfig(), client(), log(), { ...options, namespaces: [NS], pruneImage: 'registry.example.com/team/rec:7' });
    expect(prune()).toBe('registry.example.com/team/mine:1');
  });

  test('a KVStore resource\'s NetworkPolicy admits the operator\'s pods (and the store\'s own Jobs), not other stores\' reconciler Jobs', async () => {
    resource({ size: 3, storageSize: '1Gi' });
    await reconcileResources(server.kubeConfig(), client(), log(), { ...options, namespaces: [NS] });
    const from = (server.get('networking.k8s.io/v1', 'NetworkPolicy', NS, 'orders') as any).spec.ingress[1].from;
    expect(from.slice(1)).toEqual([
      { podSelector: { matchLabels: { 'kvstore.cdk8s-kvstore.io/store': 'orders' } } },
      { podSelector: { matchLabels: { 'app.kubernetes.io/name': 'kvstore-reconciler', 'app.kubernetes.io/component': 'operator' } } },
    ]);
  });

  test('several namespaces: one LIST in each (the reconciler may read nothing elsewhere), a store reconciled in each', async () => {
    for (const ns of [NS, 'billing']) {
      server.put({ apiVersion: 'kvstore.cdk8s-kvstore.io/v1', kind: 'KVStore', metadata: { name: 'orders', namespace: ns }, spec: { size: 1, storageSize: '1Gi' } } as any);
    }
    server.put({ apiVersion: 'kvstore.cdk8s-kvstore.io/v1', kind: 'KVStore', metadata: { name: 'orders', namespace: 'elsewhere' }, spec: { size: 1 } } as any);
    const stopBilling = reportRolledOut(server, 'billing', ['orders']);
    const result = await reconcileResources(server.kubeConfig(), client(), log(), { ...options, namespaces: [NS, 'billing'] }).finally(stopBilling);
    expect(result).toEqual({ reconciled: 2, failed: 0 });
    expect([NS, 'billing', 'elsewhere'].map((ns) => server.get('apps/v1', 'StatefulSet', ns, 'orders') !== undefined)).toEqual([true, true, false]);
    expect(server.requests.filter((r) => r.method === 'GET' && /\/kvstores$/.test(r.path)).map((r) => r.path).sort()).toEqual([
      `/apis/kvstore.cdk8s-kvstore.io/v1/namespaces/billing/kvstores`, `/apis/kvstore.cdk8s-kvstore.io/v1/namespaces/${NS}/kvstores`,
    ]);
  });

  test('a dry run changes nothing, not even the status', async () => {
    resource({ size: 3, storageSize: '1Gi' });
    const result = await reconcileResources(server.kubeConfig(), client(), log(), { ...options, namespaces: [NS], dryRun: true });
    expect(result).toEqual({ reconciled: 1, failed: 0 });
    expect(server.mutatingRequests()).toEqual([]);
    expect((server.get('kvstore.cdk8s-kvstore.io/v1', 'KVStore', NS, 'orders') as any).status).toBeUndefined();
  });

  test('a second run with nothing changed makes zero mutating requests', async () => {
    resource({ size: 3 });
    await reconcileResources(server.kubeConfig(), client(), log(), { ...options, namespaces: [NS] });
    const before = mutations().length;
    await reconcileResources(server.kubeConfig(), client(), log(), { ...options, namespaces: [NS] });
    expect(mutations().length).toBe(before);
  });

  test('a refused change marks the resource Degraded with the reason, and the run fails', async () => {
    resource({ size: 3, storageSize: '10Gi' });
    await reconcileResources(server.kubeConfig(), client(), log(), { ...options, namespaces: [NS] });
    const live = server.get('kvstore.cdk8s-kvstore.io/v1', 'KVStore', NS, 'orders')!;
    server.put({ ...live, spec: { size: 3, storageSize: '5Gi' } } as any);
    expect(await reconcileResources(server.kubeConfig(), client(), log(), { ...options, namespaces: [NS] })).toEqual({ reconciled: 0, failed: 1 });
    const status = (server.get('kvstore.cdk8s-kvstore.io/v1', 'KVStore', NS, 'orders') as any).status;
    expect(status.observedGeneration).toBe(2);
    // The spec last applied is still the one running.
    expect(status.specHash).toMatch(/^[0-9a-f]{10}$/);
    expect(status.conditions.find((c: any) => c.type === 'Degraded')).toMatchObject({ status: 'True', reason: 'Refused', message: expect.stringMatching(/storage cannot shrink/) });
    expect(status.conditions.find((c: any) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'Refused' });
  });

  test('a resize shows in status as Progressing (Resizing, with what grows) before Ready', async () => {
    resource({ size: 3, storageSize: '1Gi' });
    await reconcileResources(server.kubeConfig(), client(), log(), { ...options, namespaces: [NS] });
    for (let i = 0; i < 3; i++) {
      server.put({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: `data-orders-${i}`, namespace: NS, labels: { 'app.kubernetes.io/name': 'kvstore', 'app.kubernetes.io/instance': 'orders' } }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } }, status: { phase: 'Bound', capacity: { storage: '1Gi' } } } as any);
    }
    // The volumes grow as soon as asked (what the resizer and kubelet do).
    const grow = setInterval(() => {
      for (const pvc of server.list('v1', 'PersistentVolumeClaim', NS) as any[]) {
        if (pvc.status.capacity.storage !== pvc.spec.resources.requests.storage) server.put({ ...pvc, status: { phase: 'Bound', capacity: { storage: pvc.spec.resources.requests.storage } } });
      }
    }, 10);
    try {
      const live = server.get('kvstore.cdk8s-kvstore.io/v1', 'KVStore', NS, 'orders')!;
      server.put({ ...live, spec: { size: 3, storageSize: '2Gi' } } as any);
      const before = server.requests.length;
      expect(await reconcileResources(server.kubeConfig(), client(), log(), { ...options, namespaces: [NS] })).toEqual({ reconciled: 1, failed: 0 });
      const statuses = server.requests.slice(before).filter((r) => r.method === 'PUT' && r.path.endsWith('/kvstores/orders/status')).map((r) => (r.body as any).status);
      const conditions = (st: any) => Object.fromEntries(st.conditions.map((c: any) => [c.type, [c.status, c.reason, c.message]]));
      expect(conditions(statuses[0]).Progressing).toEqual(['True', 'Resizing', 'volume data: 1Gi → 2Gi on 3 PVC(s)']);
      expect(conditions(statuses[statuses.length - 1]).Ready).toEqual(['True', 'Reconciled', '3/3 members ready']);
      expect((server.get('v1', 'PersistentVolumeClaim', NS, 'data-orders-1') as any).spec.resources.requests.storage).toBe('2Gi');
    } finally {
      clearInterval(grow);
    }
  });
});

describe('CRD mode: namespaces opt in by a label (namespaceSelector)', () => {
  const OPERATOR_NS = 'kvstores';
  const RBAC = 'rbac.authorization.k8s.io/v1';
  const ours = { 'app.kubernetes.io/name': 'kvstore-reconciler', 'app.kubernetes.io/managed-by': 'cdk8s-kvstore', [BOUND_BY_LABEL]: OPERATOR_NS };
  const namespace = (name: string, labels: Record<string, string> = {}, phase?: string) =>
    ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels }, ...(phase ? { status: { phase } } : {}) });
  const binding = (ns: string, labels: Record<string, string> = ours, name = 'kvstore-reconciler') =>
    ({ apiVersion: RBAC, kind: 'RoleBinding', metadata: { name, namespace: ns, labels } });

  describe('planBindings (pure)', () => {
    test('binds the selected namespaces that have no binding of that name, in name order', () => {
      expect(planBindings([namespace('shop'), namespace('billing')], [], OPERATOR_NS)).toEqual({ create: ['billing', 'shop'], remove: [], namespaces: ['billing', 'shop'] });
    });

    test('a namespace already bound by this operator: nothing to do', () => {
      expect(planBindings([namespace('shop')], [binding('shop')], OPERATOR_NS)).toEqual({ create: [], remove: [], namespaces: ['shop'] });
    });

    test('removes this operator\'s binding where a namespace no longer matches', () => {
      expect(planBindings([namespace('shop')], [binding('shop'), binding('billing')], OPERATOR_NS)).toEqual({ create: [], remove: ['billing'], namespaces: ['shop'] });
    });

    test('never removes a binding it did not make: no labels, another operator\'s, or another name', () => {
      const others = [
        binding('a', {}),
        binding('b', { ...ours, [BOUND_BY_LABEL]: 'other-operator' }),
        binding('c', { 'app.kubernetes.io/managed-by': 'cdk8s-kvstore' }),
        binding('d', ours, 'someone-else'),
      ];
      expect(planBindings([], others, OPERATOR_NS)).toEqual({ create: [], remove: [], namespaces: [] });
    });

    test('a selected namespace holding a binding of that name it did not make: left as it is, not duplicated, still reconciled', () => {
      expect(planBindings([namespace('shop')], [binding('shop', {})], OPERATOR_NS)).toEqual({ create: [], remove: [], namespaces: ['shop'] });
    });

    test('a selected namespace being deleted: no binding made there, its own not removed, not reconciled', () => {
      expect(planBindings([namespace('shop'), namespace('gone', {}, 'Terminating')], [binding('gone')], OPERATOR_NS)).toEqual({ create: ['shop'], remove: [], namespaces: ['shop'] });
    });
  });

  describe('against the API double', () => {
    const selector = { team: 'shop' };
    const run = (extra: object = {}) => reconcileResources(server.kubeConfig(), client(), log(), { ...options, namespaceSelector: selector, operatorNamespace: OPERATOR_NS, ...extra });
    const roleBinding = (ns: string) => server.get(RBAC, 'RoleBinding', ns, 'kvstore-reconciler') as any;
    const bindingWrites = () => mutations().filter((r) => r.path.includes('/rolebindings'));

    beforeEach(() => {
      server.put(namespace(NS, selector));
      server.put(namespace('billing'));
      for (const ns of [NS, 'billing']) {
        server.put({ apiVersion: 'kvstore.cdk8s-kvstore.io/v1', kind: 'KVStore', metadata: { name: 'orders', namespace: ns }, spec: { size: 1, storageSize: '1Gi' } } as any);
      }
    });

    test('the labelled namespace gets the RoleBinding and its store is reconciled; the other gets nothing; a second run changes nothing', async () => {
      expect(await run()).toEqual({ reconciled: 1, failed: 0 });
      expect(roleBinding(NS)).toMatchObject({
        metadata: { labels: ours },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'kvstore-reconciler' },
        subjects: [{ kind: 'ServiceAccount', name: 'kvstore-reconciler', namespace: OPERATOR_NS }],
      });
      expect(roleBinding('billing')).toBeUndefined();
      expect([NS, 'billing'].map((ns) => server.get('apps/v1', 'StatefulSet', ns, 'orders') !== undefined)).toEqual([true, false]);
      expect(lines).toContain(`created RoleBinding ${NS}/kvstore-reconciler (namespace matches team=shop)`);
      // Namespaces by the selector; the KVStore resources of the selected namespace only.
      expect(server.requests.find((r) => r.path === '/api/v1/namespaces')?.query.labelSelector).toBe('team=shop');
      expect(server.requests.filter((r) => r.method === 'GET' && /\/kvstores$/.test(r.path)).map((r) => r.path)).toEqual([`/apis/kvstore.cdk8s-kvstore.io/v1/namespaces/${NS}/kvstores`]);

      const before = mutations().length;
      expect(await run()).toEqual({ reconciled: 1, failed: 0 });
      expect(mutations().length).toBe(before);
    });

    test('a namespace that loses the label loses the binding on the next run, and its stores are no longer reconciled', async () => {
      await run();
      server.put(namespace(NS));
      lines = [];
      expect(await run()).toEqual({ reconciled: 0, failed: 0 });
      expect(roleBinding(NS)).toBeUndefined();
      expect(lines).toContain(`removed RoleBinding ${NS}/kvstore-reconciler (namespace no longer matches team=shop)`);
      expect(bindingWrites().map((r) => `${r.method} ${r.path}`)).toEqual([
        `POST /apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings`,
        `DELETE /apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings/kvstore-reconciler`,
      ]);
    });

    test('a RoleBinding of that name it did not make is never deleted nor replaced', async () => {
      // One in an unselected namespace (as `namespaces` synthesizes them), one in the selected namespace.
      const foreign = (ns: string) => ({
        apiVersion: RBAC, kind: 'RoleBinding', metadata: { name: 'kvstore-reconciler', namespace: ns, labels: { 'app.kubernetes.io/managed-by': 'cdk8s-kvstore' } },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'kvstore-reconciler' },
        subjects: [{ kind: 'ServiceAccount', name: 'kvstore-reconciler', namespace: 'elsewhere' }],
      });
      server.put(foreign('billing'));
      server.put(foreign(NS));
      // The selected namespace is not reconciled: the binding there may grant someone else, not us.
      expect(await run()).toEqual({ reconciled: 0, failed: 0 });
      expect(await run()).toEqual({ reconciled: 0, failed: 0 });
      expect(bindingWrites()).toEqual([]);
      expect(roleBinding('billing').subjects[0].namespace).toBe('elsewhere');
      expect(roleBinding(NS).subjects[0].namespace).toBe('elsewhere');
      expect(lines).toContain(`namespace ${NS}: RoleBinding kvstore-reconciler exists and was not made by this operator; left as it is, and the namespace is not reconciled`);
      expect(server.requests.filter((r) => r.path.endsWith(`/namespaces/${NS}/kvstores`))).toEqual([]);
    });

    test('a dry run says which bindings it would make and makes none', async () => {
      // Nor lists what it holds no rights to yet.
      expect(await run({ dryRun: true })).toEqual({ reconciled: 0, failed: 0 });
      expect(server.mutatingRequests()).toEqual([]);
      expect(lines).toContain(`dry run: would have created RoleBinding ${NS}/kvstore-reconciler (namespace matches team=shop)`);
      expect(server.requests.filter((r) => r.path.endsWith(`/namespaces/${NS}/kvstores`))).toEqual([]);
    });

    test('right after binding, a 403 while the authorizer catches up is retried', async () => {
      server.failNext({ method: 'GET', pathPattern: new RegExp(`/namespaces/${NS}/kvstores$`), status: 403, count: 2 });
      expect(await run()).toEqual({ reconciled: 1, failed: 0 });
      expect(server.requests.filter((r) => r.injectedStatus === 403)).toHaveLength(2);
    });

    test('a 403 in a namespace bound before this run is not retried: that namespace fails, alone', async () => {
      await run();
      server.failNext({ method: 'GET', pathPattern: new RegExp(`/namespaces/${NS}/kvstores$`), status: 403 });
      expect(await run()).toEqual({ reconciled: 0, failed: 1 });
      expect(server.requests.filter((r) => r.injectedStatus === 403)).toHaveLength(1);
      expect(lines.some((l) => l.includes(`namespace ${NS}: cannot list KVStore resources`) && l.includes('403'))).toBe(true);
    });

    test('without the operator\'s namespace it refuses before any request', async () => {
      await expect(reconcileResources(server.kubeConfig(), client(), log(), { ...options, namespaceSelector: selector }))
        .rejects.toThrow('namespaceSelector needs operatorNamespace: the namespace of the ServiceAccount kvstore-reconciler that its RoleBindings name');
      expect(server.requests).toEqual([]);
    });

    test('an empty selector (it would match every namespace) is refused before any request', async () => {
      await expect(run({ namespaceSelector: {} })).rejects.toThrow('namespaceSelector must hold at least one label, got {}');
      expect(server.requests).toEqual([]);
    });
  });
});

describe('errors', () => {
  test('KubeError names the operation, object and reason', () => {
    expect(new KubeError('apply', { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'orders' }, 422, 'forbidden').message).toBe('apply StatefulSet/orders failed (HTTP 422): forbidden');
  });
});
