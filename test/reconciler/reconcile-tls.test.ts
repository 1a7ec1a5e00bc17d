// The reconciler's TLS path against the API double (no etcd): what it needs before a membership change.
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { Chart, Testing } from 'cdk8s';
import { KVStore, KVStoreProps, StoreDocument } from '../../lib';
import { KubeClient } from '../../lib/reconciler/client';
import { Log } from '../../lib/reconciler/log';
import { OUTCOME_FIELD_MANAGER, reconcileStore } from '../../lib/reconciler/reconcile';
import { ApiServer, reportRolledOut, startApiServer } from '../support/api-server';

const NS = 'shop';
// A refused run's records (its Warning Event, the last-error annotation) change no object of the store.
const isRecord = (r: { path: string; query: Readonly<Record<string, string>> }) => r.path.includes('/events.k8s.io/') || r.query.fieldManager === OUTCOME_FIELD_MANAGER;
let server: ApiServer;
let stopController: () => void;
let dir: string;

beforeEach(async () => {
  server = await startApiServer();
  stopController = reportRolledOut(server, NS, ['orders']);
  dir = mkdtempSync(join(tmpdir(), 'kvstore-reconcile-tls-'));
});
afterEach(async () => {
  stopController();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

function documentFor(props: KVStoreProps): StoreDocument {
  return new KVStore(new Chart(Testing.app(), 'c', { namespace: NS }), 'orders', props).document;
}
const reconcile = (props: KVStoreProps, etcdTlsDir: string) => reconcileStore(documentFor(props), new KubeClient(server.kubeConfig(), { baseDelayMs: 5, maxDelayMs: 20 }),
  new Log(false, () => undefined), { holder: 'test-job', pollMs: 20, rolloutTimeoutMs: 3000, etcdTlsDir });

describe('a TLS store\'s membership change without the client certificate', () => {
  test('fails before anything changed: no snapshot Job, no operation mark, no replicas', async () => {
    const props = { size: 3, tls: {}, backup: {} };
    await reconcile(props, dir);
    const before = server.mutatingRequests().length;
    const missing = join(dir, 'nothing-mounted-here');
    await expect(reconcile({ ...props, size: 5 }, missing)).rejects.toThrow(`the store has TLS: cannot read its client certificate in ${missing}`);
    // Only the Lease was taken and released.
    expect(server.mutatingRequests().slice(before).filter((r) => !r.path.includes('/leases/') && !isRecord(r))).toEqual([]);
    expect(server.list('batch/v1', 'Job', NS)).toEqual([]);
    const sts = server.get('apps/v1', 'StatefulSet', NS, 'orders') as any;
    expect(sts.spec.replicas).toBe(3);
    expect(sts.metadata.annotations['kvstore.cdk8s-kvstore.io/operation']).toBeUndefined();
  });
});

describe('turning TLS on for a live store together with another member-moving change', () => {
  test.each([
    ['a membership change', { size: 5 }, /turning TLS on and a membership change \(3 → 5\) in one change is refused; nothing was changed/],
    ['a volume resize', { storageSize: '20Gi' }, /turning TLS on and a volume resize in one change is refused; nothing was changed/],
  ])('with %s: refused before anything changed', async (_what, extra, message) => {
    const plain = { size: 3, storageSize: '10Gi' };
    await reconcile(plain, dir);
    const before = server.mutatingRequests().length;
    await expect(reconcile({ ...plain, ...extra, tls: {} }, dir)).rejects.toThrow(message);
    expect(server.mutatingRequests().slice(before).filter((r) => !r.path.includes('/leases/') && !isRecord(r))).toEqual([]);
    const sts = server.get('apps/v1', 'StatefulSet', NS, 'orders') as any;
    expect(sts.spec.template.spec.containers[0].args.some((a: string) => a.startsWith('--peer-cert-file'))).toBe(false);
  });
});

describe('a CA rotation together with dropping clients', () => {
  test('refused before anything changed (dropping users needs the client certificate, which the new CA already signed)', async () => {
    await reconcile({ size: 3, tls: {} }, dir);
    // As a store that had clients leaves its StatefulSet: the mark that says their users are the library's.
    const sts = server.get('apps/v1', 'StatefulSet', NS, 'orders') as any;
    server.put({ ...sts, metadata: { ...sts.metadata, annotations: { ...sts.metadata.annotations, 'kvstore.cdk8s-kvstore.io/auth': 'clients' } } });
    const before = server.mutatingRequests().length;
    await expect(reconcile({ size: 3, tls: { issuer: { name: 'corp', kind: 'ClusterIssuer' } } }, dir))
      .rejects.toThrow(/a CA rotation and dropping clients in one change is refused; nothing was changed/);
    expect(server.mutatingRequests().slice(before).filter((r) => !r.path.includes('/leases/') && !isRecord(r))).toEqual([]);
  });
});
