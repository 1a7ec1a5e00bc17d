// The example app and the GitOps example run with TLS, on real etcd (the installed Debian etcd, 3.4.x).
// Each is the committed app's code at the installed etcd version (the examples pin a newer one, whose
// image and probes the pod runner cannot run); certificates are issued as cert-manager would from the
// synthesized Certificate objects (test/support/cert-issuer.ts). The GitOps example's store is created
// by the reconciler in-process from the bundle's own store document, as its Job would.
import { mkdtempSync, readFileSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { Etcd3 } from 'etcd3';
import { parseAllDocuments } from 'yaml';
import { gitOpsApp } from '../../apps/gitops';
import { exampleApp } from '../../apps/main';
import { Engine } from '../../lib';
import { etcdTlsOptions } from '../../lib/engines/etcd-membership';
import type { StoreDocument } from '../../lib/model/document';
import { startApiServer } from '../support/api-server';
import { issueFromManifests, tlsFiles } from '../support/cert-issuer';
import { ClusterSimulator } from '../support/cluster-simulator';
import { mountSecret, reconcileOnce } from '../support/day2';
import { ETCD_VERSION, waitFor, waitReady } from '../support/etcd-cluster';
import type { Manifest } from '../support/manifests';
import { describeWithEtcd } from '../support/requires-etcd';
import { usePodRunner } from '../support/runner-fixture';

jest.setTimeout(120_000);

const NS = 'kvstore-example';
const run = usePodRunner();
const engine = Engine.etcd({ version: ETCD_VERSION });

/** A client of `hosts` with the `<store>-client-tls` Secret's certificate, verifying the client Service's name. */
function client(hosts: string[], secret: Manifest): Etcd3 {
  const f = tlsFiles(secret as any);
  return new Etcd3({
    hosts,
    ...etcdTlsOptions({ ca: Buffer.from(f.ca), cert: Buffer.from(f.crt), key: Buffer.from(f.key), serverName: `cache.${NS}.svc.cluster.local` }),
    dialTimeout: 2000,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 4000 }),
  });
}

/** Writes a key through the first host and reads it back on each; the members' peer URLs. */
async function proveTls(hosts: string[], secret: Manifest): Promise<string[][]> {
  const c = client([hosts[0]], secret);
  try {
    await c.put('example/k').value('v');
    for (const host of hosts) {
      const one = client([host], secret);
      try {
        expect({ host, value: await one.get('example/k').string() }).toEqual({ host, value: 'v' });
      } finally {
        one.close();
      }
    }
    return (await c.cluster.memberList({})).members.map((m) => m.peerURLs).sort();
  } finally {
    c.close();
  }
}

const peers = [0, 1, 2].map((i) => [`https://cache-${i}.cache-peers.${NS}.svc.cluster.local:2380`]);

describeWithEtcd(`the examples with TLS (etcd ${ETCD_VERSION})`, () => {
  test('the example app: its 3 members form over mutual TLS from the synthesized manifests; plain HTTP gets nothing', async () => {
    const objects = parseAllDocuments(exampleApp(engine).synthYaml()).map((d) => d.toJSON()) as Manifest[];
    const secrets = issueFromManifests(objects, NS);
    const r = run([...objects, ...secrets], { namespace: NS });
    r.startStatefulSet('cache');
    const pods = r.podNames('cache');
    await waitReady(r, pods);
    const hosts = pods.map((p) => `https://${r.ip(p)}:2379`);
    expect(await proveTls(hosts, secrets.find((s) => s.metadata.name === 'cache-client-tls')!)).toEqual(peers);
    expect(await fetch(`${r.url(pods[0])}/version`, { signal: AbortSignal.timeout(4000) }).then(() => 'answered', () => 'no answer')).toBe('no answer');
  });

  test('the GitOps example: the bundle\'s certificates and store document; the reconciler creates the store, its members form over TLS, the next run changes nothing', async () => {
    const outdir = mkdtempSync(join(tmpdir(), 'kvstore-gitops-tls-'));
    const tlsDir = mkdtempSync(join(tmpdir(), 'kvstore-gitops-tls-client-'));
    const api = await startApiServer();
    const sim = ClusterSimulator.start(api, { namespace: NS });
    try {
      gitOpsApp(outdir, engine).synth();
      const bundle = parseAllDocuments(readFileSync(join(outdir, 'plain.k8s.yaml'), 'utf8')).map((d) => d.toJSON()) as Manifest[];
      // The GitOps tool applies the cert-manager objects (the reconciler does not, in GitOps mode).
      for (const o of bundle.filter((b) => b.apiVersion === 'cert-manager.io/v1')) api.put(o as any);
      await waitFor('the store\'s certificates', async () => ['cache-member-tls', 'cache-client-tls'].every((n) => api.get('v1', 'Secret', NS, n)));
      const spec = bundle.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'cache-kvstore-spec')!;
      const document = JSON.parse((spec as any).data['store.json']) as StoreDocument;
      // Where the reconciler Job mounts the client certificate.
      mountSecret(api, NS, 'cache-client-tls', tlsDir, `cache.${NS}.svc.cluster.local`);

      await reconcileOnce(api, sim, document, { etcdTlsDir: tlsDir });
      await sim.waitForReady('cache', 3, 60_000);
      const hosts = sim.endpoints('cache').map((u) => u.replace(/^http:/, 'https:'));
      expect(await proveTls(hosts, api.get('v1', 'Secret', NS, 'cache-client-tls') as any)).toEqual(peers);
      expect((await reconcileOnce(api, sim, document, { etcdTlsDir: tlsDir, etcdEndpoints: hosts })).mutatingRequests).toBe(0);
    } finally {
      await sim.stop();
      await api.stop();
      rmSync(outdir, { recursive: true, force: true });
      rmSync(tlsDir, { recursive: true, force: true });
    }
  });
});
