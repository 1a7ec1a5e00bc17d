// Mutual TLS proven on real etcd: a store synthesized with `tls: {}` runs as real etcd processes
// through the pod runner, with certificates issued from its synthesized cert-manager objects by the
// stand-in issuer (test/support/cert-issuer.ts, real X.509 from openssl). Proves the installed version
// (Debian's etcd-server, 3.4.x), synthesized with Engine.etcd({ version: <installed> }).
//
// The pod runner's members all connect from 127.0.0.1 (one network namespace), so etcd's check of a
// peer certificate's SANs against the peer's address passes through the certificate's 127.0.0.1; the
// per-member DNS names and the wildcard are what a real cluster's peers are checked against, which
// this test cannot show. `--peer-cert-allowed-hostname` (only members' certificates may peer) is shown.
import { request } from 'https';
import { Etcd3 } from 'etcd3';
import { issueFromManifests, otherCa, TlsFiles, tlsFiles } from '../support/cert-issuer';
import { agreedLeader, ETCD_VERSION, MemberConnect, NAMESPACE, synthStore, waitFor, waitReady } from '../support/etcd-cluster';
import type { Manifest } from '../support/manifests';
import type { PodRunner } from '../support/pod-runner';
import { describeWithEtcd } from '../support/requires-etcd';
import { usePodRunner } from '../support/runner-fixture';

const run = usePodRunner();
/** The client Service's name: in the member certificate, and what clients verify whatever address they dial. */
const SERVER_NAME = `orders.${NAMESPACE}.svc.cluster.local`;

/**
 * The store's manifests and the Secrets cert-manager would write for them; plus, from the same CA (as
 * under an issuer shared by two stores), another store's member certificate.
 */
function tlsStore(): { manifests: Manifest[]; client: TlsFiles; member: TlsFiles; otherMember: TlsFiles } {
  const objects = synthStore('orders', { tls: {} });
  const memberCert = objects.find((o) => o.kind === 'Certificate' && o.metadata.name === 'orders-member-tls')!;
  const other = {
    ...memberCert,
    metadata: { name: 'other-member-tls', namespace: NAMESPACE },
    spec: { ...memberCert.spec, secretName: 'other-member-tls', commonName: `other-peers.${NAMESPACE}.svc.cluster.local`, dnsNames: [`other-peers.${NAMESPACE}.svc.cluster.local`, `*.other-peers.${NAMESPACE}.svc.cluster.local`] },
  };
  const secrets = issueFromManifests([...objects, other], NAMESPACE);
  const secret = (name: string) => tlsFiles(secrets.find((s) => s.metadata.name === name)!);
  return {
    manifests: [...objects, ...secrets.filter((s) => s.metadata.name !== 'other-member-tls')],
    client: secret('orders-client-tls'), member: secret('orders-member-tls'), otherMember: secret('other-member-tls'),
  };
}

/** An etcd client of one member over TLS, with the given certificate (or none). */
function tlsClient(r: PodRunner, pod: string, ca: string, cert?: { crt: string; key: string }): Etcd3 {
  return new Etcd3({
    hosts: `https://${r.ip(pod)}:2379`,
    credentials: { rootCertificate: Buffer.from(ca), ...(cert ? { certChain: Buffer.from(cert.crt), privateKey: Buffer.from(cert.key) } : {}) },
    grpcOptions: { 'grpc.ssl_target_name_override': SERVER_NAME, 'grpc.default_authority': SERVER_NAME },
    dialTimeout: 2000,
    faultHandling: { host: () => ({ execute: (fn: any) => fn() }) as any, global: ({ execute: (fn: any) => fn() }) as any },
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 4000 }),
  });
}

async function withClient<T>(c: Etcd3, fn: (c: Etcd3) => Promise<T>): Promise<T> {
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

/** An HTTPS request with a client certificate; resolves to the status code, or the error's message. */
function httpsGet(url: string, ca: string, cert: { crt: string; key: string }, servername: string): Promise<number | string> {
  return new Promise((resolve) => {
    const req = request(url, { ca, cert: cert.crt, key: cert.key, servername, timeout: 4000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', (e) => resolve(e.message));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/** A plain-HTTP request; resolves to the status code, or the error's message. */
async function httpStatus(url: string, method = 'GET', body?: string): Promise<number | string> {
  try {
    const res = await fetch(url, { method, body, signal: AbortSignal.timeout(4000) });
    return res.status;
  } catch (e) {
    return ((e as Error & { cause?: Error }).cause ?? (e as Error)).message;
  }
}

describeWithEtcd(`etcd ${ETCD_VERSION} with mutual TLS from the synthesized manifests`, () => {
  test('forms over https; members list https peer and client URLs; a client with the library\'s certificate reads and writes on every member', async () => {
    const { manifests, client } = tlsStore();
    const r = run(manifests);
    r.startStatefulSet('orders');
    const pods = r.podNames('orders');
    await waitReady(r, pods);

    const members = await withClient(tlsClient(r, 'orders-0', client.ca, client), (c) => c.cluster.memberList({}));
    expect(members.members.map((m) => [m.name, m.peerURLs, m.clientURLs]).sort()).toEqual(pods.map((p) => [
      p, [`https://${p}.orders-peers.${NAMESPACE}.svc.cluster.local:2380`], [`https://${p}.orders-peers.${NAMESPACE}.svc.cluster.local:2379`],
    ]));
    await withClient(tlsClient(r, 'orders-0', client.ca, client), async (c) => { await c.put('tls/k').value('v'); });
    for (const pod of pods) {
      expect({ pod, value: await withClient(tlsClient(r, pod, client.ca, client), (c) => c.get('tls/k').string()) }).toEqual({ pod, value: 'v' });
    }
    // The probes run against the plain metrics listener: liveness (TCP on 3.4) and readiness (/health).
    for (const kind of ['startupProbe', 'livenessProbe', 'readinessProbe'] as const) {
      expect({ kind, ok: await r.probe('orders-0', kind) }).toEqual({ kind, ok: true });
    }
    r.assertNoUnexpectedExits();
  });

  test('a member Secret without ca.crt (a CA that does not put its certificate in the Secrets it issues): the mount fails naming the key, no member starts', () => {
    const { manifests } = tlsStore();
    const withoutCa = manifests.map((m) => (m.kind === 'Secret' && m.metadata.name === 'orders-member-tls'
      ? { ...m, data: Object.fromEntries(Object.entries((m as any).data).filter(([k]) => k !== 'ca.crt')) }
      : m));
    const r = run(withoutCa);
    expect(() => r.startStatefulSet('orders')).toThrow('Secret orders-member-tls references non-existent secret key: ca.crt');
    expect(r.podNames('orders').filter((p) => r.running(p))).toEqual([]);
  });

  test('attacks that must fail: no client certificate, another CA\'s, plain HTTP on the client and peer ports, a client certificate or another store\'s member as a peer, keys through the metrics listener', async () => {
    const { manifests, client, member, otherMember } = tlsStore();
    const r = run(manifests);
    r.startStatefulSet('orders');
    await waitReady(r, r.podNames('orders'));
    const ip = r.ip('orders-0');

    // The library's client certificate works, so what fails below fails for the reason given.
    expect(await withClient(tlsClient(r, 'orders-0', client.ca, client), (c) => c.put('secret').value('s').then(() => 'ok'))).toBe('ok');

    // etcd answers the handshake with a TLS alert (bad certificate): the refusal is the server's, not a timeout.
    const BAD_CERTIFICATE = /alert bad certificate/;
    await expect(withClient(tlsClient(r, 'orders-0', client.ca), (c) => c.get('secret').string())).rejects.toThrow(BAD_CERTIFICATE);
    const intruder = otherCa();
    await expect(withClient(tlsClient(r, 'orders-0', client.ca, intruder), (c) => c.get('secret').string())).rejects.toThrow(BAD_CERTIFICATE);

    // Plain HTTP on the TLS ports gets no answer at all (etcd drops a connection that does not start TLS).
    expect(await httpStatus(`http://${ip}:2379/v3/kv/range`, 'POST', JSON.stringify({ key: Buffer.from('secret').toString('base64') }))).not.toBe(200);
    expect(await httpStatus(`http://${ip}:2379/version`)).toBe('other side closed');
    expect(await httpStatus(`http://${ip}:2380/members`)).toBe('other side closed');

    // The peer port: the member certificate is a peer, the client certificate (same CA) is not.
    const peersName = `orders-peers.${NAMESPACE}.svc.cluster.local`;
    expect(await httpsGet(`https://${ip}:2380/members`, member.ca, member, peersName)).toBe(200);
    expect(await httpsGet(`https://${ip}:2380/members`, client.ca, client, peersName)).toMatch(/alert bad certificate/);
    // Another store's member, from the same CA (a shared issuer): not a peer of this one either.
    expect(await httpsGet(`https://${ip}:2380/members`, otherMember.ca, otherMember, peersName)).toMatch(/alert bad certificate/);

    // The metrics listener: health and metrics in plain HTTP, no keys.
    expect(await httpStatus(`http://${ip}:2381/health`)).toBe(200);
    expect(await httpStatus(`http://${ip}:2381/metrics`)).toBe(200);
    expect(await httpStatus(`http://${ip}:2381/v3/kv/range`, 'POST', JSON.stringify({ key: Buffer.from('secret').toString('base64') }))).toBe(404);
    expect(await httpStatus(`http://${ip}:2381/v2/keys/secret`)).toBe(404);
    r.assertNoUnexpectedExits();
  });

  test('failover over TLS: the leader is killed, the others elect a new one and go on taking writes; the old one rejoins', async () => {
    const { manifests, client } = tlsStore();
    const r = run(manifests);
    r.startStatefulSet('orders');
    const pods = r.podNames('orders');
    await waitReady(r, pods);
    const connect: MemberConnect = (pod, fn) => withClient(tlsClient(r, pod, client.ca, client), fn);
    const leader = await agreedLeader(r, pods, undefined, 15_000, connect);
    const survivors = pods.filter((p) => p !== leader);

    await r.kill(leader, 'SIGKILL');
    const newLeader = await agreedLeader(r, survivors, leader, 15_000, connect);
    expect(survivors).toContain(newLeader);
    await withClient(tlsClient(r, survivors[0], client.ca, client), async (c) => { await c.put('after/kill').value('1'); });

    r.start(leader);
    await waitReady(r, [leader]);
    await waitFor(`${leader} to catch up`, async () => (await withClient(tlsClient(r, leader, client.ca, client), (c) => c.get('after/kill').string())) === '1');
    r.assertNoUnexpectedExits();
  });
});
