// Per-client access: the plan from etcd's users and roles to the spec's clients (pure), and the same
// applied to a real TLS etcd 3.4 cluster (the pod runner, certificates from the stand-in issuer) with the
// root certificate, then attacked with the clients' own certificates.
import { Chart, Testing } from 'cdk8s';
import { Etcd3 } from 'etcd3';
import { Engine, KVStore, KVStoreProps } from '../../lib';
import { authConflicts, AuthState, planAuth, prefixRangeEnd, reconcileAuth } from '../../lib/engines/etcd-auth';
import { etcdTlsOptions } from '../../lib/engines/etcd-membership';
import type { ClientSpec } from '../../lib/model/spec';
import { issueFromManifests, tlsFiles, TlsFiles } from '../support/cert-issuer';
import { ETCD_VERSION, NAMESPACE, waitReady } from '../support/etcd-cluster';
import { Manifest, renderDocument } from '../support/manifests';
import type { PodRunner } from '../support/pod-runner';
import { describeWithEtcd } from '../support/requires-etcd';
import { usePodRunner } from '../support/runner-fixture';

const client = (name: string, read: string[] = [], readWrite: string[] = []): ClientSpec => ({ name, read, readWrite });
const state = (users: Record<string, string[]>, roles: Record<string, AuthState['roles'] extends ReadonlyMap<string, infer P> ? P : never>): AuthState =>
  ({ users: new Map(Object.entries(users)), roles: new Map(Object.entries(roles)) });

describe('planAuth', () => {
  test('prefix ranges end where etcd says (the last byte below 0xff, incremented)', () => {
    expect(prefixRangeEnd('orders/')).toBe('orders0');
    // UTF-8 bytes: 'é' is c3 a9, so the range ends at c3 aa.
    expect(Buffer.from(prefixRangeEnd('caf\u00e9'), 'latin1')).toEqual(Buffer.from([0x63, 0x61, 0x66, 0xc3, 0xaa]));
    expect(prefixRangeEnd('')).toBe('\0');
  });

  test('from nothing: root first, a role and a user per client, authentication last', () => {
    expect(planAuth(state({}, {}), [client('api', [], ['orders/']), client('reports', ['orders/'])]).map((s) => s.action)).toEqual([
      'add-user', 'grant-role', 'add-role', 'grant', 'add-user', 'grant-role', 'add-role', 'grant', 'add-user', 'grant-role', 'enable',
    ]);
  });

  test('only what changed: a permission more, a client gone (its user and role), others untouched', () => {
    const live = state(
      { 'root': ['root'], 'api': ['kvstore-api'], 'reports': ['kvstore-reports'], 'someone': ['theirs'] },
      { 'root': [], 'theirs': [], 'kvstore-api': [{ permType: 'Readwrite', key: 'orders/', rangeEnd: 'orders0' }], 'kvstore-reports': [{ permType: 'Read', key: 'orders/', rangeEnd: 'orders0' }] },
    );
    expect(planAuth(live, [client('api', ['audit/'], ['orders/'])])).toEqual([
      { action: 'grant', role: 'kvstore-api', perm: { permType: 'Read', key: 'audit/', rangeEnd: 'audit0' } },
      { action: 'delete-user', user: 'reports' },
      { action: 'delete-role', role: 'kvstore-reports' },
      { action: 'enable' },
    ]);
    // Nothing changed: enabling again is the only call (etcd ignores it when on).
    expect(planAuth(live, [client('api', [], ['orders/']), client('reports', ['orders/'])])).toEqual([{ action: 'enable' }]);
    // Without clients: our users and roles gone, the user's own left alone, authentication stays on
    // (a former client's certificate, left in its Secret, must not get full access back).
    expect(planAuth(live, undefined).map((s) => `${s.action} ${'user' in s ? s.user : 'role' in s ? s.role : ''}`.trim())).toEqual([
      'delete-user api', 'delete-role kvstore-api', 'delete-user reports', 'delete-role kvstore-reports', 'enable',
    ]);
  });

  test('a client may not take over a user the library did not make', () => {
    const live = state({ root: ['root'], admin: ['root'], api: ['kvstore-api'], blank: [] }, { 'root': [], 'kvstore-api': [] });
    expect(authConflicts(live, [client('admin', ['x/']), client('api', ['x/']), client('blank', ['x/']), client('new', ['x/'])])).toEqual([
      'client admin: etcd already has a user admin with role(s) root, which the library did not give it; rename the client or remove that user',
    ]);
  });
});

/** A GitOps store's objects as the reconciler renders them, its certificates, and the Secrets cert-manager would write. */
function storeWithClients(props: KVStoreProps) {
  const chart = new Chart(Testing.app(), 'c', { namespace: NAMESPACE });
  const store = new KVStore(chart, 'orders', { engine: Engine.etcd({ version: ETCD_VERSION }), tls: {}, reconciler: {}, ...props });
  const certificates = (Testing.synth(chart) as Manifest[]).filter((o) => o.apiVersion === 'cert-manager.io/v1');
  const objects = Testing.synth(renderDocument(new Chart(Testing.app(), 'r', { namespace: NAMESPACE, disableResourceNameHashes: true }), store.document)) as Manifest[];
  const secrets = issueFromManifests([...certificates], NAMESPACE);
  const files = (name: string) => tlsFiles(secrets.find((s) => s.metadata.name === name)!);
  return { manifests: [...objects, ...secrets], spec: store.spec, files };
}

function connect(r: PodRunner, cert: TlsFiles): Etcd3 {
  const serverName = `orders.${NAMESPACE}.svc.cluster.local`;
  return new Etcd3({
    hosts: r.podNames('orders').map((p) => `https://${r.ip(p)}:2379`),
    ...etcdTlsOptions({ ca: Buffer.from(cert.ca), cert: Buffer.from(cert.crt), key: Buffer.from(cert.key), serverName }),
    dialTimeout: 2000,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 4000 }),
  });
}

async function attempt(c: Etcd3, fn: (c: Etcd3) => unknown): Promise<string> {
  try {
    await fn(c);
    return 'ok';
  } catch (e) {
    return /permission denied/i.test((e as Error).message) ? 'denied' : `error: ${(e as Error).message}`;
  }
}

const run = usePodRunner();

describeWithEtcd(`per-client access on etcd ${ETCD_VERSION} with mutual TLS`, () => {
  test('the reconciler\'s users and roles: each client may do what its prefixes say and nothing else; a changed list changes only that; without clients only root', async () => {
    const clients = [{ name: 'api', readWrite: ['orders/'] }, { name: 'reports', read: ['orders/'] }];
    const { manifests, spec, files } = storeWithClients({ clients });
    const r = run(manifests);
    r.startStatefulSet('orders');
    await waitReady(r, r.podNames('orders'));
    const root = connect(r, files('orders-client-tls'));
    const api = connect(r, files('orders-client-api'));
    const reports = connect(r, files('orders-client-reports'));
    // A certificate of the store's CA whose common name is no user: the members' own.
    const stranger = connect(r, files('orders-member-tls'));
    try {
      await root.put('other/secret').value('s');
      const steps = await reconcileAuth(root, spec.clients);
      expect(steps.map((s) => s.action)).toContain('enable');

      expect(await attempt(api, (c) => c.put('orders/1').value('a'))).toBe('ok');
      expect(await attempt(api, (c) => c.get('orders/1').string())).toBe('ok');
      expect(await attempt(api, (c) => c.get('other/secret').string())).toBe('denied');
      expect(await attempt(reports, (c) => c.get('orders/1').string())).toBe('ok');
      expect(await attempt(reports, (c) => c.put('orders/2').value('b'))).toBe('denied');
      expect(await attempt(reports, (c) => c.get('other/secret').string())).toBe('denied');
      expect(await attempt(stranger, (c) => c.get('orders/1').string())).not.toBe('ok');
      // The library's own clients are root: membership and snapshots keep working.
      expect(await attempt(root, (c) => c.cluster.memberList({}))).toBe('ok');
      // Probes do not authenticate: the metrics listener's /health still answers.
      expect(await r.probe('orders-0', 'readinessProbe')).toBe(true);

      // Nothing changed: nothing done.
      expect(await reconcileAuth(root, spec.clients)).toEqual([]);
      // reports may now write too; api is gone.
      const changed = await reconcileAuth(root, [{ name: 'reports', read: [], readWrite: ['orders/'] }]);
      expect(changed.map((s) => s.action)).toEqual(['revoke', 'grant', 'delete-user', 'delete-role', 'enable']);
      expect(await attempt(reports, (c) => c.put('orders/2').value('b'))).toBe('ok');
      expect(await attempt(api, (c) => c.get('orders/1').string())).not.toBe('ok');

      // A client named like a user the library did not make: refused, nothing changed.
      await root.auth.userAdd({ name: 'ops', options: { no_password: true } });
      await root.auth.userGrantRole({ user: 'ops', role: 'root' });
      await expect(reconcileAuth(root, [{ name: 'ops', read: ['x/'], readWrite: [] }])).rejects.toThrow(/client ops: etcd already has a user ops with role\(s\) root/);

      // Clients dropped from the spec: their users go, authentication stays on with root only.
      await reconcileAuth(root, undefined);
      expect(await attempt(reports, (c) => c.get('orders/1').string())).not.toBe('ok');
      expect(await attempt(stranger, (c) => c.get('other/secret').string())).not.toBe('ok');
      expect(await attempt(root, (c) => c.get('other/secret').string())).toBe('ok');
    } finally {
      for (const c of [root, api, reports, stranger]) c.close();
    }
    r.assertNoUnexpectedExits();
  });
});
