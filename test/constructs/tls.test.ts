// TLS as synthesized: cert-manager objects (validated against cert-manager's schemas by synth()), the
// members' flags, volumes and probes, the Jobs' client certificate, and the refusals.
import { Chart, Testing } from 'cdk8s';
import { Engine, KVStore, KVStoreProps } from '../../lib';
import { container, find, Manifest, synth, testChart } from '../support/manifests';

/** A TLS Secret's keys, listed so that a Secret without one fails the mount naming it. */
const TLS_ITEMS = ['tls.crt', 'tls.key', 'ca.crt'].map((key) => ({ key, path: key }));

function tlsStore(props: KVStoreProps = {}, namespace = 'shop'): Manifest[] {
  const chart = testChart(namespace);
  new KVStore(chart, 'orders', { tls: {}, ...props });
  return synth(chart);
}
const args = (objects: Manifest[]) => container(objects).args as string[];

describe('TLS with the store\'s own CA (cert-manager)', () => {
  const objects = tlsStore({ backup: {} });

  test('a self-signed Issuer, a CA Certificate, a CA Issuer, then the member and client Certificates, before the StatefulSet', () => {
    const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`);
    expect(kinds.slice(0, 5)).toEqual([
      'Issuer/orders-selfsigned', 'Certificate/orders-ca', 'Issuer/orders-ca', 'Certificate/orders-member-tls', 'Certificate/orders-client-tls',
    ]);
    expect(find(objects, 'Issuer', 'orders-selfsigned').spec).toEqual({ selfSigned: {} });
    expect(find(objects, 'Certificate', 'orders-ca').spec).toMatchObject({ isCA: true, secretName: 'orders-ca', issuerRef: { name: 'orders-selfsigned', kind: 'Issuer' } });
    expect(find(objects, 'Issuer', 'orders-ca').spec).toEqual({ ca: { secretName: 'orders-ca' } });
  });

  test('the member certificate names every member, the peers Service, the client Service four ways and loopback; server and client auth', () => {
    const spec = find(objects, 'Certificate', 'orders-member-tls').spec;
    expect(spec.secretName).toBe('orders-member-tls');
    expect(spec.issuerRef).toEqual({ name: 'orders-ca', kind: 'Issuer', group: 'cert-manager.io' });
    expect(spec.dnsNames).toEqual([
      ...[0, 1, 2, 3, 4, 5, 6].map((i) => `orders-${i}.orders-peers.shop.svc.cluster.local`),
      '*.orders-peers.shop.svc.cluster.local', 'orders-peers.shop.svc.cluster.local',
      'orders', 'orders.shop', 'orders.shop.svc', 'orders.shop.svc.cluster.local', 'localhost',
    ]);
    expect(spec.ipAddresses).toEqual(['127.0.0.1']);
    expect(spec.usages).toEqual(['server auth', 'client auth', 'digital signature', 'key encipherment']);
    expect(spec.privateKey).toEqual({ algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' });
  });

  test('the client certificate is the etcd user root, client auth only', () => {
    const spec = find(objects, 'Certificate', 'orders-client-tls').spec;
    expect(spec).toMatchObject({ secretName: 'orders-client-tls', commonName: 'root', usages: ['client auth', 'digital signature', 'key encipherment'] });
    expect(spec.dnsNames).toBeUndefined();
  });

  test('etcd: https everywhere, client certificates required on both listeners, peers must name the peers Service, metrics on plain HTTP', () => {
    const a = args(objects);
    for (const flag of ['listen-peer-urls', 'listen-client-urls', 'advertise-client-urls', 'initial-advertise-peer-urls']) {
      expect(a.find((x) => x.startsWith(`--${flag}=`))).toMatch(new RegExp(`^--${flag}=https://`));
    }
    expect(a).toEqual(expect.arrayContaining([
      '--cert-file=/etc/kvstore/tls/tls.crt', '--key-file=/etc/kvstore/tls/tls.key', '--trusted-ca-file=/etc/kvstore/tls/ca.crt', '--client-cert-auth',
      '--peer-cert-file=/etc/kvstore/tls/tls.crt', '--peer-key-file=/etc/kvstore/tls/tls.key', '--peer-trusted-ca-file=/etc/kvstore/tls/ca.crt', '--peer-client-cert-auth',
      '--peer-cert-allowed-hostname=orders-peers.$(POD_NAMESPACE).svc.cluster.local',
      '--listen-metrics-urls=http://$(POD_IP):2381',
    ]));
    expect(find(objects, 'ConfigMap', 'orders-bootstrap').data.ETCD_INITIAL_CLUSTER)
      .toBe(['0', '1', '2'].map((i) => `orders-${i}=https://orders-${i}.orders-peers.shop.svc.cluster.local:2380`).join(','));
  });

  test('the member Secret is mounted read-only as a directory (renewals reach it), the metrics port declared, probes on it', () => {
    const pod = find(objects, 'StatefulSet').spec.template.spec;
    expect(pod.volumes).toContainEqual({ name: 'tls', secret: { secretName: 'orders-member-tls', defaultMode: 0o440, items: TLS_ITEMS } });
    const c = container(objects);
    expect(c.volumeMounts).toContainEqual({ name: 'tls', mountPath: '/etc/kvstore/tls', readOnly: true });
    expect(c.ports).toContainEqual({ name: 'metrics', containerPort: 2381, protocol: 'TCP' });
    // The default 3.5.21 serves /livez and /readyz on the metrics listener.
    expect([c.livenessProbe.httpGet, c.readinessProbe.httpGet]).toEqual([{ path: '/livez', port: 'metrics' }, { path: '/readyz', port: 'metrics' }]);
    expect(c.startupProbe.tcpSocket).toEqual({ port: 'client' });
  });

  test('etcd 3.4: readiness /health on the metrics listener; liveness a TCP check there (nothing on it answers without quorum)', () => {
    const c = container(tlsStore({ engine: Engine.etcd({ version: '3.4.23' }) }));
    expect(c.readinessProbe.httpGet).toEqual({ path: '/health', port: 'metrics' });
    expect(c.livenessProbe.tcpSocket).toEqual({ port: 'metrics' });
  });

  test('the backup Job connects over https with the client certificate', () => {
    const pod = find(objects, 'CronJob').spec.jobTemplate.spec.template.spec;
    const snapshot = pod.initContainers[0];
    expect(snapshot.args.slice(0, 4)).toEqual([
      '--endpoints=https://orders.shop.svc.cluster.local:2379', '--cacert=/etc/kvstore/client-tls/ca.crt', '--cert=/etc/kvstore/client-tls/tls.crt', '--key=/etc/kvstore/client-tls/tls.key',
    ]);
    expect(snapshot.volumeMounts).toContainEqual({ name: 'client-tls', mountPath: '/etc/kvstore/client-tls', readOnly: true });
    expect(pod.volumes).toContainEqual({ name: 'client-tls', secret: { secretName: 'orders-client-tls', defaultMode: 0o440, items: TLS_ITEMS } });
  });
});

describe('TLS from another source', () => {
  test('the user\'s issuer: no CA objects, the Certificates point at it; the member Secret\'s name carries the issuer', () => {
    const objects = tlsStore({ tls: { issuer: { name: 'corp-ca', kind: 'ClusterIssuer' } } });
    expect(objects.filter((o) => o.kind === 'Issuer')).toEqual([]);
    const member = objects.find((o) => o.kind === 'Certificate' && o.metadata.name.startsWith('orders-member-tls'))!;
    expect(member.metadata.name).toMatch(/^orders-member-tls-[0-9a-f]{8}$/);
    expect(member.spec.secretName).toBe(member.metadata.name);
    expect(member.spec.issuerRef).toEqual({ name: 'corp-ca', kind: 'ClusterIssuer', group: 'cert-manager.io' });
    expect(find(objects, 'StatefulSet').spec.template.spec.volumes).toContainEqual({ name: 'tls', secret: { secretName: member.metadata.name, defaultMode: 0o440, items: TLS_ITEMS } });
    // Another issuer, another Secret: cert-manager issues it beside the one live members mount.
    const other = tlsStore({ tls: { issuer: { name: 'corp-ca-2', kind: 'ClusterIssuer' } } }).find((o) => o.kind === 'Certificate' && o.metadata.name.startsWith('orders-member-tls'))!;
    expect(other.spec.secretName).not.toBe(member.spec.secretName);
    // The store's own CA keeps the plain name (stores made before this keep their Secret).
    expect(find(tlsStore({ tls: {} }), 'Certificate', 'orders-member-tls').spec.secretName).toBe('orders-member-tls');
    expect(find(objects, 'Certificate', 'orders-client-tls').spec.issuerRef).toEqual({ name: 'corp-ca', kind: 'ClusterIssuer', group: 'cert-manager.io' });
  });

  test('Secrets of the user\'s: no cert-manager object at all, the Secrets mounted', () => {
    const objects = tlsStore({ tls: { memberSecret: 'orders-member', clientSecret: 'orders-client' }, backup: {} });
    expect(objects.some((o) => o.apiVersion === 'cert-manager.io/v1')).toBe(false);
    expect(find(objects, 'StatefulSet').spec.template.spec.volumes).toContainEqual({ name: 'tls', secret: { secretName: 'orders-member', defaultMode: 0o440, items: TLS_ITEMS } });
    expect(find(objects, 'CronJob').spec.jobTemplate.spec.template.spec.volumes).toContainEqual({ name: 'client-tls', secret: { secretName: 'orders-client', defaultMode: 0o440, items: TLS_ITEMS } });
  });
});

describe('clients', () => {
  test('each client gets a certificate whose common name is its etcd user; the StatefulSet is marked for the reconciler', () => {
    const objects = tlsStore({ reconciler: {}, clients: [{ name: 'api', readWrite: ['orders/'] }, { name: 'reports', read: ['orders/'] }] });
    for (const name of ['api', 'reports']) {
      expect(find(objects, 'Certificate', `orders-client-${name}`).spec).toMatchObject({
        secretName: `orders-client-${name}`, commonName: name, usages: ['client auth', 'digital signature', 'key encipherment'], issuerRef: { name: 'orders-ca', kind: 'Issuer' },
      });
    }
    const chart = testChart('shop');
    const store = new KVStore(chart, 'orders', { tls: {}, reconciler: {}, clients: [{ name: 'api', read: ['a/'] }] });
    expect(store.spec.clients).toEqual([{ name: 'api', read: ['a/'], readWrite: [] }]);
  });

  const build = (props: KVStoreProps) => () => new KVStore(testChart('shop'), 'orders', { tls: {}, reconciler: {}, ...props });
  test.each([
    [{ tls: undefined, clients: [{ name: 'api', read: ['a/'] }] }, /^KVStore 'orders': clients must be used together with tls, got \[\{"name":"api","read":\["a\/"\]\}\] \(a client is known by its certificate's common name\)$/],
    [{ reconciler: undefined, clients: [{ name: 'api', read: ['a/'] }] }, /^KVStore 'orders': clients must be used together with reconciler, got .* \(the reconciler creates the etcd users and roles/],
    [{ clients: [{ name: 'Api', read: ['a/'] }] }, /^KVStore 'orders': clients\[0\]\.name must be a DNS-1123 label of at most 40 characters, got "Api"$/],
    [{ clients: [{ name: 'root', read: ['a/'] }] }, /^KVStore 'orders': clients\[0\]\.name must be a name other than root or tls, got "root"/],
    [{ clients: [{ name: 'api', read: ['a/'] }, { name: 'api', read: ['b/'] }] }, /^KVStore 'orders': clients\[1\]\.name must be a name not listed before, got "api"$/],
    [{ clients: [{ name: 'api' }] }, /^KVStore 'orders': clients\[0\] must be a client with read or readWrite prefixes, got \{"name":"api"\}/],
    [{ clients: [{ name: 'api', read: ['orders/eu/'], readWrite: ['orders/'] }] }, /^KVStore 'orders': clients\[0\]\.read must be a prefix that does not overlap readWrite prefix "orders\/", got "orders\/eu\/" \(the same keys would be both read-only and writable\)$/],
    [{ clients: [{ name: 'api', read: [''] }] }, /^KVStore 'orders': clients\[0\]\.read\[0\] must be a non-empty key prefix, got ""$/],
    [{ tls: { memberSecret: 'm', clientSecret: 'c' }, clients: [{ name: 'api', read: ['a/'] }] }, /^KVStore 'orders': clients must be used with certificates from cert-manager \(no tls\.memberSecret or tls\.clientSecret\)/],
    [{ engine: Engine.etcd({ version: '3.5.0' }), clients: [{ name: 'api', read: ['a/'] }] }, /^KVStore 'orders': engine\.version must be a version other than 3\.5\.0 with clients, got "3\.5\.0" \(etcd 3\.5\.0 reports itself unhealthy once authentication is on/],
  ])('refuses %j', (props, message) => {
    expect(build(props as KVStoreProps)).toThrow(message);
  });
});

describe('TLS refusals', () => {
  const build = (props: KVStoreProps, namespace: string | null = 'shop') => () => new KVStore(namespace ? testChart(namespace) : new Chart(Testing.app(), 'c'), 'orders', props);
  test.each([
    [{ tls: { issuer: { name: 'ca', kind: 'Vault' as any } } }, /^KVStore 'orders': tls\.issuer\.kind must be Issuer or ClusterIssuer, got "Vault"$/],
    [{ tls: { issuer: { name: 'Corp CA' } } }, /^KVStore 'orders': tls\.issuer\.name must be an issuer name \(a DNS-1123 subdomain\), got "Corp CA"$/],
    [{ tls: { memberSecret: 'm' } }, /^KVStore 'orders': tls\.clientSecret must be set together with tls\.memberSecret, got nothing \(with Secrets of your own there is no cert-manager to issue the other\)$/],
    [{ tls: { memberSecret: 'm', clientSecret: 'c', issuer: { name: 'ca' } } }, /^KVStore 'orders': tls\.issuer must be left out with tls\.memberSecret and tls\.clientSecret, got \{"name":"ca"\} \(your Secrets replace cert-manager\)$/],
    [{ tls: {}, containerImage: 'kv:1', engine: Engine.custom({ clientPort: 6379 }) }, /^KVStore 'orders': tls must be left out with the custom engine, got \{\} \(it declares no TLS support\)$/],
  ])('%j', (props, message) => {
    expect(build(props)).toThrow(message);
  });

  test('without a namespace', () => {
    expect(build({ tls: {} }, null)).toThrow(/^KVStore 'orders': tls must be used in a chart with a namespace, got \{\} \(the certificates name the members' DNS names, which contain it\)$/);
  });

  test('a volume claim template may not take the TLS volumes\' names', () => {
    expect(build({ volumeClaimTemplates: [{ name: 'data' }, { name: 'tls' }] })).toThrow(/volumeClaimTemplates\[1\]\.name must be a name other than tmp, backups, tls or client-tls, got "tls"/);
  });
});
