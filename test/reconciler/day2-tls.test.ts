// Day-2 operations of a TLS store end to end, on real etcd (the installed Debian etcd, 3.4.x): as
// day2.test.ts, with `tls: {}`. The cluster simulator stands in for cert-manager (it issues the
// store's Certificates into Secrets the pods mount); the reconciler runs in-process and reaches the
// members at their https pod URLs with the client certificate of `<store>-client-tls`, written to a
// temporary directory (etcdTlsDir), as the reconciler Job would mount it at /etc/kvstore/client-tls.
import { execFileSync } from 'child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { Etcd3 } from 'etcd3';
import type { KVStoreProps, TlsOptions } from '../../lib';
import { EtcdClientTls, etcdTlsOptions } from '../../lib/engines/etcd-membership';
import { tlsSecrets } from '../../lib/model/names';
import { KubeClient } from '../../lib/reconciler/client';
import { reconcileResources } from '../../lib/reconciler/custom-resources';
import { Log } from '../../lib/reconciler/log';
import { reconcileStore } from '../../lib/reconciler/reconcile';
import { ApiServer, startApiServer } from '../support/api-server';
import { tlsFiles } from '../support/cert-issuer';
import { ClusterSimulator } from '../support/cluster-simulator';
import { applyAsGitOpsTool, keysUnder, memberList, mountSecret, putUserCa, reconcileOnce, storeDocument, Writer } from '../support/day2';
import { NAMESPACE, waitFor } from '../support/etcd-cluster';
import { describeWithEtcd } from '../support/requires-etcd';

jest.setTimeout(240_000);

/** The client Service's name: in the member certificate, and what clients verify whatever address they dial. */
const SERVER_NAME = `kv.${NAMESPACE}.svc.cluster.local`;

let api: ApiServer;
let sim: ClusterSimulator;
let tlsDir: string;

beforeEach(async () => {
  api = await startApiServer();
  sim = ClusterSimulator.start(api, { namespace: NAMESPACE });
  tlsDir = mkdtempSync(join(tmpdir(), 'kvstore-day2-tls-'));
});
afterEach(async () => {
  await sim.stop();
  await api.stop();
  rmSync(tlsDir, { recursive: true, force: true });
});

const sts = (name = 'kv') => api.get('apps/v1', 'StatefulSet', NAMESPACE, name) as any;
/** The members' client URLs over TLS (the pod runner names the client port; the scheme is ours to say). */
const httpsEndpoints = (name = 'kv') => sim.endpoints(name).map((u) => u.replace(/^http:/, 'https:'));

/** Writes the client Secret's files where the reconciler Job would mount them; returns the certificate for the test's own clients. */
function mountClientSecret(store: string): EtcdClientTls {
  return mountSecret(api, NAMESPACE, `${store}-client-tls`, tlsDir, SERVER_NAME);
}

/** The KVStore resource `kv` (storage 1Gi) with `props`, as its author would apply it. */
function putResource(props: KVStoreProps, generation: number): void {
  const { name: _n, ...spec } = storeDocument('kv', { storageSize: '1Gi', ...props }).spec;
  api.put({ apiVersion: 'kvstore.cdk8s-kvstore.io/v1', kind: 'KVStore', metadata: { name: 'kv', namespace: NAMESPACE, generation }, spec } as any);
}

/** One run of the CRD-mode operator in-process, reaching the members at their pod URLs. */
function runOperator(etcdEndpoints: string[]) {
  return reconcileResources(api.kubeConfig(), new KubeClient(api.kubeConfig(), { baseDelayMs: 20, maxDelayMs: 200 }), new Log(false, () => undefined), {
    holder: 'operator-test', pollMs: 100, rolloutTimeoutMs: 90_000, namespaces: [NAMESPACE], etcdEndpoints,
    etcdMemberEndpoint: (i) => `http://${sim.runner.ip(`kv-${i}`)}:2379`,
  });
}

describeWithEtcd('day-2 operations over TLS through the reconciler', () => {
  test('created at 3 with cert-manager\'s Secrets, 3 → 5 with continuous writes over TLS (no acknowledged write lost), then a scheduled backup over TLS', async () => {
    const props = { size: 3, storageSize: '1Gi', tls: {}, backup: {} };
    // The GitOps tool applies the bundle and the certificates; the reconciler the store.
    applyAsGitOpsTool(api, 'kv', props);
    // Creating a store changes no membership: the reconciler does not talk to etcd yet.
    await reconcileOnce(api, sim, storeDocument('kv', props), { etcdTlsDir: tlsDir });
    await sim.waitForReady('kv', 3, 60_000);
    // The stand-in cert-manager issued the store's CA, member and client certificates.
    for (const name of ['kv-ca', 'kv-member-tls', 'kv-client-tls']) {
      expect({ name, type: (api.get('v1', 'Secret', NAMESPACE, name) as any)?.type }).toEqual({ name, type: 'kubernetes.io/tls' });
    }
    const tls = mountClientSecret('kv');

    // Plain HTTP gets no answer from a member; the client certificate does.
    expect(await fetch(`${sim.endpoints('kv')[0]}/version`, { signal: AbortSignal.timeout(4000) }).then(() => 'answered', () => 'no answer')).toBe('no answer');
    expect((await memberList(httpsEndpoints(), tls)).map((m) => m.name).sort()).toEqual(['kv-0', 'kv-1', 'kv-2']);

    const survivors = httpsEndpoints();
    const pids = sim.pids('kv');
    const writer = new Writer(survivors, 'w/', tls);
    await sim.waitUntil('first writes acknowledged over TLS', () => writer.acked.length >= 10, 30_000);

    await reconcileOnce(api, sim, storeDocument('kv', { ...props, size: 5 }), { etcdEndpoints: survivors, etcdTlsDir: tlsDir });
    expect(sts().spec.replicas).toBe(5);
    const members = await memberList(httpsEndpoints(), tls);
    expect(members.filter((m) => !m.isLearner).map((m) => m.name).sort()).toEqual(['kv-0', 'kv-1', 'kv-2', 'kv-3', 'kv-4']);
    expect(members.filter((m) => m.isLearner)).toEqual([]);
    // The new members joined over https, as peers with the member certificate.
    for (const m of members) expect(m.peerURLs).toEqual([`https://${m.name}.kv-peers.${NAMESPACE}.svc.cluster.local:2380`]);
    for (const [pod, pid] of Object.entries(pids)) expect(sim.pid(pod)).toBe(pid);

    // The snapshot before the membership change connected over TLS too.
    const pre = (api.list('batch/v1', 'Job', NAMESPACE) as any[]).find((j) => j.metadata.annotations?.['kvstore.cdk8s-kvstore.io/before'] === 'members 3 → 5');
    expect(pre?.status?.succeeded).toBe(1);
    expect(readdirSync(sim.claimDir('kv-backups'))).toContain(`${pre.metadata.name}.db`);

    const w = await writer.stop();
    expect(w.acked.length).toBeGreaterThan(50);
    const held = await keysUnder(httpsEndpoints(), 'w/', tls);
    expect(w.acked.filter((k) => !held.has(k))).toEqual([]);
    expect(w.longestGapMs).toBeLessThan(3000);
    // Each member, the new ones too, serves them.
    for (const url of httpsEndpoints()) {
      const own = await keysUnder([url], 'w/', tls);
      expect({ url, missing: w.acked.filter((k) => !own.has(k)).length }).toEqual({ url, missing: 0 });
    }
    expect(sts().metadata.annotations['kvstore.cdk8s-kvstore.io/operation']).toBeUndefined();
    // Done: the next run has nothing to do (the Certificates and Issuers included).
    expect((await reconcileOnce(api, sim, storeDocument('kv', { ...props, size: 5 }), { etcdEndpoints: httpsEndpoints(), etcdTlsDir: tlsDir })).mutatingRequests).toBe(0);

    // A scheduled backup: the snapshot Job connects to the client Service over https with the client certificate.
    const job = sim.triggerCronJob('kv-backup');
    const done = await sim.waitForJob(job, 60_000);
    expect(done.status.conditions.map((c: any) => c.type)).toContain('Complete');
    const snapshot = (api.get('batch/v1', 'Job', NAMESPACE, job) as any).spec.template.spec.initContainers[0];
    expect(snapshot.args).toEqual(expect.arrayContaining([`--endpoints=https://${SERVER_NAME}:2379`, '--cert=/etc/kvstore/client-tls/tls.crt']));
    const file = join(sim.claimDir('kv-backups'), `${job}.db`);
    expect(statSync(file).size).toBeGreaterThan(0);
    // The snapshot holds every acknowledged write (and nothing failed to verify: its hash is checked).
    const status = JSON.parse(execFileSync('etcdctl', ['snapshot', 'status', '-w', 'json', file], { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'utf8' }));
    expect(status.totalKey).toBeGreaterThanOrEqual(w.acked.length);

    // No member crashed (a missing or unreadable certificate would have made it exit).
    expect(sim.runner.unexpectedExits.filter((e) => e.pod.startsWith('kv-'))).toEqual([]);
  });

  test('plain HTTP → TLS on a live 3-member store with continuous writes: every member once with the peer certificate, then highest first with TLS; a stopped run resumes; no acknowledged write lost', async () => {
    const plain = { size: 3, storageSize: '1Gi' };
    await reconcileOnce(api, sim, storeDocument('kv', plain));
    await sim.waitForReady('kv', 3, 60_000);
    const httpEndpoints = sim.endpoints('kv');
    const https = httpEndpoints.map((u) => u.replace(/^http:/, 'https:'));
    const props = { ...plain, tls: {} };
    // The GitOps tool applies the new bundle's Certificates; cert-manager issues them.
    applyAsGitOpsTool(api, 'kv', props);
    await waitFor('the store\'s certificates', async () => ['kv-member-tls', 'kv-client-tls'].every((n) => api.get('v1', 'Secret', NAMESPACE, n)));
    const tls = mountClientSecret('kv');
    // A client that follows the store: plain HTTP while a member answers it, then TLS.
    const writer = new Writer(httpEndpoints, 'w/', undefined, { endpoints: https, tls });
    await sim.waitUntil('first plain writes acknowledged', () => writer.acked.length >= 10, 30_000);
    const options = { etcdTlsDir: tlsDir, etcdMemberEndpoint: (i: number) => httpEndpoints[i] };
    const plainPids = sim.pids('kv');

    // The first run stops (as a killed Job would) once kv-2 speaks TLS, as kv-1's turn begins.
    let turns = 0;
    const first: string[] = [];
    await expect(reconcileOnce(api, sim, storeDocument('kv', props), {
      ...options,
      onProgress: async (e) => {
        if (e.operation === 'EnablingTls' && ++turns === 2) throw new Error('reconciler stopped');
      },
    }, first)).rejects.toThrow('reconciler stopped');
    expect(sts().metadata.annotations['kvstore.cdk8s-kvstore.io/operation']).toBe('tls → on');
    expect(sts().spec.updateStrategy.rollingUpdate.partition).toBe(2);
    // Every member restarted once for the first phase: kv-0 and kv-1 run it, plain listeners with the peer certificate.
    for (const [pod, pid] of Object.entries(plainPids)) expect({ pod, restarted: sim.pid(pod) !== pid }).toEqual({ pod, restarted: true });
    for (const pod of ['kv-0', 'kv-1']) {
      const args: string[] = (api.get('v1', 'Pod', NAMESPACE, pod) as any).spec.containers[0].args;
      expect({ pod, tls: args.filter((a) => /^--(peer-cert-file|listen-peer-urls|client-cert-auth)/.test(a)) })
        .toEqual({ pod, tls: ['--listen-peer-urls=http://$(POD_IP):2380', '--peer-cert-file=/etc/kvstore/tls/tls.crt'] });
    }
    const phasePids = sim.pids('kv');
    expect((await memberList([https[2]], tls)).map((m) => [m.name, m.peerURLs[0].split(':')[0]]).sort()).toEqual([['kv-0', 'http'], ['kv-1', 'http'], ['kv-2', 'https']]);

    const second: string[] = [];
    await reconcileOnce(api, sim, storeDocument('kv', props), options, second);
    expect(second).toEqual(expect.arrayContaining([expect.stringContaining('⇄ TLS on, member by member: resuming below member 2')]));
    const switched = (lines: string[]) => lines.map((l) => /member (kv-[0-9]) speaks TLS/.exec(l)?.[1]).filter(Boolean);
    expect([...switched(first), ...switched(second)]).toEqual(['kv-2', 'kv-1', 'kv-0']);

    // And once more each for TLS.
    for (const [pod, pid] of Object.entries(phasePids)) expect({ pod, restarted: sim.pid(pod) !== pid }).toEqual({ pod, restarted: pod !== 'kv-2' });
    // The client goes on writing, over TLS now.
    const afterSwitch = writer.acked.length;
    await sim.waitUntil('writes after the switch', () => writer.acked.length >= afterSwitch + 20, 30_000);
    const w = await writer.stop();
    // The store kept taking writes; a gap is this client's own switch: a plain attempt on a member that
    // already speaks TLS waits out its 3 s deadline before the TLS client (reconnecting) takes over.
    expect(w.longestGapMs).toBeLessThan(10_000);
    // Every member holds every acknowledged write (read over TLS, member by member).
    for (const url of https) {
      const own = await keysUnder([url], 'w/', tls);
      expect({ url, missing: w.acked.filter((k) => !own.has(k)).length }).toEqual({ url, missing: 0 });
    }
    // Every member advertises https; plain HTTP gets no answer, on the client port or from a peer's view.
    const members = await memberList(https, tls);
    for (const m of members) expect(m.peerURLs).toEqual([`https://${m.name}.kv-peers.${NAMESPACE}.svc.cluster.local:2380`]);
    for (const url of httpEndpoints) {
      expect(await fetch(`${url}/version`, { signal: AbortSignal.timeout(4000) }).then(() => 'answered', () => 'no answer')).toBe('no answer');
    }
    expect(sts().metadata.annotations['kvstore.cdk8s-kvstore.io/operation']).toBeUndefined();
    expect(sts().spec.updateStrategy.rollingUpdate.partition).toBe(0);
    // Done: the next run has nothing to do.
    expect((await reconcileOnce(api, sim, storeDocument('kv', props), { ...options, etcdEndpoints: https })).mutatingRequests).toBe(0);
    expect(sim.runner.unexpectedExits.filter((e) => e.pod.startsWith('kv-'))).toEqual([]);
  });

  test('tls dropped after a stopped switch registered a member\'s https peer URL but before its pod restarted: the peer URLs go back to http, then the members', async () => {
    const plain = { size: 3, storageSize: '1Gi' };
    await reconcileOnce(api, sim, storeDocument('kv', plain));
    await sim.waitForReady('kv', 3, 60_000);
    const http = sim.endpoints('kv');
    const props = { ...plain, tls: {} };
    applyAsGitOpsTool(api, 'kv', props);
    await waitFor('the store\'s certificates', async () => ['kv-member-tls', 'kv-client-tls'].every((n) => api.get('v1', 'Secret', NAMESPACE, n)));
    mountClientSecret('kv');
    // The run dies right after etcd took kv-2's https peer URL, before its pod restarted with TLS.
    const dying = new Log(false, (line) => {
      if (line.includes('member kv-2: peer URL http://')) throw new Error('reconciler killed');
    });
    await expect(reconcileStore(storeDocument('kv', props), new KubeClient(api.kubeConfig(), { baseDelayMs: 20, maxDelayMs: 200 }), dying, {
      holder: 'day2-test', pollMs: 100, rolloutTimeoutMs: 90_000, etcdTlsDir: tlsDir, etcdMemberEndpoint: (i) => http[i],
    })).rejects.toThrow('reconciler killed');
    const scheme = async () => (await memberList(http)).map((m) => [m.name, m.peerURLs[0].split(':')[0]]).sort();
    expect(await scheme()).toEqual([['kv-0', 'http'], ['kv-1', 'http'], ['kv-2', 'https']]);
    expect(sts().metadata.annotations['kvstore.cdk8s-kvstore.io/operation']).toBe('tls → on');

    const lines: string[] = [];
    await reconcileOnce(api, sim, storeDocument('kv', plain), { etcdMemberEndpoint: (i) => http[i] }, lines);
    expect(lines).toEqual(expect.arrayContaining([expect.stringContaining('member kv-2: peer URL https://kv-2.kv-peers.kvtest.svc.cluster.local:2380 → http://kv-2.kv-peers.kvtest.svc.cluster.local:2380')]));
    expect(await scheme()).toEqual([['kv-0', 'http'], ['kv-1', 'http'], ['kv-2', 'http']]);
    const args: string[] = sts().spec.template.spec.containers[0].args;
    expect(args.filter((a) => a.startsWith('--peer-cert-file'))).toEqual([]);
    expect(sts().metadata.annotations['kvstore.cdk8s-kvstore.io/operation']).toBeUndefined();
    await sim.waitForReady('kv', 3, 60_000);
    // Every member takes writes and serves them; the next run has nothing to do.
    const writer = new Writer(http, 'r/');
    await sim.waitUntil('writes after the revert', () => writer.acked.length >= 20, 30_000);
    const w = await writer.stop();
    for (const url of http) {
      const own = await keysUnder([url], 'r/');
      expect({ url, missing: w.acked.filter((k) => !own.has(k)).length }).toEqual({ url, missing: 0 });
    }
    expect((await reconcileOnce(api, sim, storeDocument('kv', plain), { etcdMemberEndpoint: (i) => http[i] })).mutatingRequests).toBe(0);
  });

  test('CA rotation: the store\'s own CA → an issuer of the user\'s, with continuous writes; trust both, new certificates, new CA alone; a run killed mid-restart resumes; no acknowledged write lost', async () => {
    const own = { size: 3, storageSize: '1Gi', tls: {} };
    const corp = { ...own, tls: { issuer: { name: 'corp', kind: 'Issuer' as const } } };
    /** Where the GitOps reconciler Job mounts the spec's member Secret's ca.crt. */
    const memberCa = (props: typeof own | typeof corp) => async () => {
      const secret = api.get('v1', 'Secret', NAMESPACE, tlsSecrets(storeDocument('kv', props).spec).member);
      if (!secret) throw new Error('not issued yet');
      return Buffer.from(tlsFiles(secret as any).ca);
    };
    applyAsGitOpsTool(api, 'kv', own);
    await waitFor('the store\'s certificates', async () => ['kv-member-tls', 'kv-client-tls'].every((n) => api.get('v1', 'Secret', NAMESPACE, n)));
    await reconcileOnce(api, sim, storeDocument('kv', own), { etcdTlsDir: tlsDir, etcdMemberCa: memberCa(own) });
    await sim.waitForReady('kv', 3, 60_000);
    const ownCa = tlsFiles(api.get('v1', 'Secret', NAMESPACE, 'kv-member-tls') as any).ca;
    // The reconciler recorded the CA its members trust.
    expect((api.get('v1', 'ConfigMap', NAMESPACE, 'kv-trust') as any)?.data['ca.crt'].trim()).toBe(ownCa.trim());
    const oldClient = mountClientSecret('kv');

    // The user's CA, as cert-manager objects of its own; then the store's Certificates name it.
    putUserCa(api, NAMESPACE, 'corp');
    for (const c of api.list('cert-manager.io/v1', 'Certificate', NAMESPACE) as any[]) if (c.metadata.name.startsWith('kv-')) api.remove('cert-manager.io/v1', 'Certificate', NAMESPACE, c.metadata.name);
    applyAsGitOpsTool(api, 'kv', corp);
    const newMember = tlsSecrets(storeDocument('kv', corp).spec).member;
    await waitFor('the certificates from the user\'s CA', async () => api.get('v1', 'Secret', NAMESPACE, newMember)
      && tlsFiles(api.get('v1', 'Secret', NAMESPACE, 'kv-client-tls') as any).ca !== ownCa);
    const corpCa = tlsFiles(api.get('v1', 'Secret', NAMESPACE, newMember) as any).ca;
    expect(corpCa).not.toBe(ownCa);
    // The members still mount their old Secret: cert-manager issued the new one beside it.
    expect(tlsFiles(api.get('v1', 'Secret', NAMESPACE, 'kv-member-tls') as any).ca).toBe(ownCa);
    const newClient = mountClientSecret('kv');
    // A client that follows its Secret: the old certificate while the members take it, then the new one.
    const writer = new Writer(httpsEndpoints(), 'w/', oldClient, { endpoints: httpsEndpoints(), tls: newClient });
    await sim.waitUntil('first writes acknowledged', () => writer.acked.length >= 10, 30_000);

    // The first run dies (as a killed Job would) in the middle of the first phase's rolling restart.
    let rotating = false;
    const dying = new Log(false, (line) => {
      if (line.includes('RotatingCa: ')) rotating = true;
      if (rotating && line.includes('waiting for StatefulSet/kv')) throw new Error('reconciler killed');
    });
    await expect(reconcileStore(storeDocument('kv', corp), new KubeClient(api.kubeConfig(), { baseDelayMs: 20, maxDelayMs: 200 }), dying, {
      holder: 'day2-test', pollMs: 100, rolloutTimeoutMs: 90_000, etcdTlsDir: tlsDir, etcdMemberCa: memberCa(corp), etcdEndpoints: httpsEndpoints(),
    })).rejects.toThrow('reconciler killed');
    expect(sts().metadata.annotations['kvstore.cdk8s-kvstore.io/tls-trust']).toBe('own-ca+Issuer/corp');
    expect(sts().metadata.annotations['kvstore.cdk8s-kvstore.io/operation']).toBe('trust → rotating');
    // The members are to trust the bundle and still present their old certificate.
    const template = sts().spec.template.spec;
    expect({ ca: template.containers[0].args.filter((a: string) => a.startsWith('--trusted-ca-file')), secret: template.volumes.find((v: any) => v.name === 'tls').secret.secretName })
      .toEqual({ ca: ['--trusted-ca-file=/etc/kvstore/trust/ca.crt'], secret: 'kv-member-tls' });
    const bundle = (api.get('v1', 'ConfigMap', NAMESPACE, 'kv-trust') as any).data['ca.crt'];
    expect(bundle).toContain(ownCa.trim());
    expect(bundle).toContain(corpCa.trim());

    const second: string[] = [];
    await reconcileOnce(api, sim, storeDocument('kv', corp), { etcdTlsDir: tlsDir, etcdMemberCa: memberCa(corp), etcdEndpoints: httpsEndpoints() }, second);
    expect(second).toEqual(expect.arrayContaining([expect.stringContaining('⟳ CA rotation own-ca → Issuer/corp'), expect.stringContaining('(resuming: members trust both)')]));
    // It finished the restart the first run left half done before the next phase, then each phase in turn.
    const phaseLines = second.filter((l) => l.startsWith('CA rotation own-ca → Issuer/corp: '));
    expect(phaseLines.map((l) => l.split(': ')[1])).toEqual(['every member presents its new certificate, trusting both CAs', 'every member trusts the new CA alone']);
    expect(sts().metadata.annotations['kvstore.cdk8s-kvstore.io/tls-trust']).toBe('Issuer/corp');
    expect(sts().metadata.annotations['kvstore.cdk8s-kvstore.io/operation']).toBeUndefined();
    expect(sts().spec.template.spec.volumes.find((v: any) => v.name === 'tls').secret.secretName).toBe(newMember);
    expect(sts().spec.template.spec.containers[0].args).toContain('--trusted-ca-file=/etc/kvstore/tls/ca.crt');
    // What the members trust now is recorded for the next rotation: the new CA alone.
    expect((api.get('v1', 'ConfigMap', NAMESPACE, 'kv-trust') as any).data['ca.crt'].trim()).toBe(corpCa.trim());
    await sim.waitForReady('kv', 3, 60_000);

    const rotated = writer.acked.length;
    await sim.waitUntil('writes after the rotation', () => writer.acked.length >= rotated + 20, 30_000);
    const w = await writer.stop();
    for (const url of httpsEndpoints()) {
      const held = await keysUnder([url], 'w/', newClient);
      expect({ url, missing: w.acked.filter((k) => !held.has(k)).length }).toEqual({ url, missing: 0 });
    }
    // The old CA's client certificate gets nothing any more; the new one everything.
    await expect(keysUnder([httpsEndpoints()[0]], 'w/', oldClient)).rejects.toThrow();
    expect((await memberList(httpsEndpoints(), newClient)).map((m) => m.name).sort()).toEqual(['kv-0', 'kv-1', 'kv-2']);
    expect((await reconcileOnce(api, sim, storeDocument('kv', corp), { etcdTlsDir: tlsDir, etcdMemberCa: memberCa(corp), etcdEndpoints: httpsEndpoints() })).mutatingRequests).toBe(0);
    expect(sim.runner.unexpectedExits.filter((e) => e.pod.startsWith('kv-'))).toEqual([]);
  });

  test('CRD mode: the operator turns TLS on for a live plain store, then (no certificate mounted) reads the store\'s client Secret to scale it 3 → 5 with writes going on, and to give it clients', async () => {
    const resource = (props: KVStoreProps, generation: number) => putResource({ tls: {}, ...props }, generation);
    const operator = (endpoints: string[]) => runOperator(endpoints);
    resource({ size: 3, tls: undefined }, 1);
    expect(await operator([])).toEqual({ reconciled: 1, failed: 0 });
    await sim.waitForReady('kv', 3, 60_000);
    // TLS on: the operator applies the Certificates (CRD mode), then switches the members one by one.
    resource({ size: 3 }, 2);
    expect(await operator([])).toEqual({ reconciled: 1, failed: 0 });
    expect((api.get('kvstore.cdk8s-kvstore.io/v1', 'KVStore', NAMESPACE, 'kv') as any).status.conditions[0]).toMatchObject({ type: 'Ready', status: 'True' });
    const tls = mountClientSecret('kv');
    expect((await memberList(httpsEndpoints(), tls)).map((m) => m.peerURLs[0].split(':')[0])).toEqual(['https', 'https', 'https']);
    const survivors = httpsEndpoints();
    const writer = new Writer(survivors, 'w/', tls);
    await sim.waitUntil('first writes acknowledged over TLS', () => writer.acked.length >= 10, 30_000);

    resource({ size: 5 }, 3);
    expect(await operator(survivors)).toEqual({ reconciled: 1, failed: 0 });
    const members = await memberList(httpsEndpoints(), tls);
    expect(members.filter((m) => !m.isLearner).map((m) => m.name).sort()).toEqual(['kv-0', 'kv-1', 'kv-2', 'kv-3', 'kv-4']);
    const w = await writer.stop();
    const held = await keysUnder(httpsEndpoints(), 'w/', tls);
    expect(w.acked.filter((k) => !held.has(k))).toEqual([]);
    // The operator read the Secrets it needed, and only by name: the client certificate, and the
    // members' (for their CA, which it records).
    expect(api.requests.filter((r) => r.path.includes('/secrets')).map((r) => `${r.method} ${r.path}`))
      .toEqual(expect.arrayContaining([`GET /api/v1/namespaces/${NAMESPACE}/secrets/kv-client-tls`, `GET /api/v1/namespaces/${NAMESPACE}/secrets/kv-member-tls`]));
    expect(api.requests.filter((r) => r.path.includes('/secrets') && !/\/secrets\/kv-(client|member)-tls$/.test(r.path)).map((r) => `${r.method} ${r.path}`)).toEqual([]);

    // clients in CRD mode: the operator applies their Certificates and creates their users.
    resource({ size: 5, clients: [{ name: 'reports', read: ['w/'] }] }, 4);
    expect(await operator(httpsEndpoints())).toEqual({ reconciled: 1, failed: 0 });
    const f = tlsFiles(await waitFor('the client\'s Secret', async () => api.get('v1', 'Secret', NAMESPACE, 'kv-client-reports')) as any);
    const reports = new Etcd3({
      hosts: httpsEndpoints(),
      ...etcdTlsOptions({ ca: Buffer.from(f.ca), cert: Buffer.from(f.crt), key: Buffer.from(f.key), serverName: SERVER_NAME }),
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 4000 }),
    });
    try {
      expect(await reports.get(w.acked[0]).string()).toBeDefined();
      await expect(reports.put('w/x').value('no')).rejects.toThrow(/permission denied/i);
    } finally {
      reports.close();
    }
  });

  test('CRD mode: a CA rotation by the operator (it reads the members\' CA from their Secret; the old cert-manager objects go once done)', async () => {
    const resource = (tls: TlsOptions, generation: number) => putResource({ size: 1, tls }, generation);
    const operator = () => runOperator(httpsEndpoints());
    resource({}, 1);
    expect(await operator()).toEqual({ reconciled: 1, failed: 0 });
    await sim.waitForReady('kv', 1, 60_000);
    // The next run records the CA the members trust (the first had nothing issued to read yet).
    await waitFor('the member Secret', async () => api.get('v1', 'Secret', NAMESPACE, 'kv-member-tls'));
    expect(await operator()).toEqual({ reconciled: 1, failed: 0 });
    expect((api.get('v1', 'ConfigMap', NAMESPACE, 'kv-trust') as any)?.data['ca.crt'].trim()).toBe(tlsFiles(api.get('v1', 'Secret', NAMESPACE, 'kv-member-tls') as any).ca.trim());
    const w = new Writer(httpsEndpoints(), 'w/', mountClientSecret('kv'));
    await sim.waitUntil('first writes', () => w.acked.length >= 5, 30_000);
    await w.stop();

    putUserCa(api, NAMESPACE, 'corp');
    resource({ issuer: { name: 'corp', kind: 'Issuer' } }, 2);
    expect(await operator()).toEqual({ reconciled: 1, failed: 0 });
    expect(sts().metadata.annotations['kvstore.cdk8s-kvstore.io/tls-trust']).toBe('Issuer/corp');
    await sim.waitForReady('kv', 1, 60_000);
    // The store's own CA objects are gone now; the members answer the new client certificate.
    expect(api.get('cert-manager.io/v1', 'Issuer', NAMESPACE, 'kv-ca')).toBeUndefined();
    expect(api.get('cert-manager.io/v1', 'Certificate', NAMESPACE, 'kv-member-tls')).toBeUndefined();
    const held = await keysUnder(httpsEndpoints(), 'w/', mountClientSecret('kv'));
    expect(w.acked.filter((k) => !held.has(k))).toEqual([]);
    expect((api.get('v1', 'ConfigMap', NAMESPACE, 'kv-trust') as any).data['ca.crt'].trim()).toBe(tlsFiles(api.get('v1', 'Secret', NAMESPACE, 'corp-ca') as any).ca.trim());
  });

  test('clients through the reconciler: their etcd users and roles, authentication on; a changed client list (no object changes) changes only those', async () => {
    const props = { size: 1, storageSize: '1Gi', tls: {} };
    applyAsGitOpsTool(api, 'kv', props);
    await reconcileOnce(api, sim, storeDocument('kv', props), { etcdTlsDir: tlsDir });
    await sim.waitForReady('kv', 1, 60_000);
    mountClientSecret('kv');
    const clients = [{ name: 'api', readWrite: ['orders/'] }, { name: 'reports', read: ['orders/'] }];
    applyAsGitOpsTool(api, 'kv', { ...props, clients });
    await waitFor('the clients\' Secrets', async () => ['api', 'reports'].every((c) => api.get('v1', 'Secret', NAMESPACE, `kv-client-${c}`)));
    const lines: string[] = [];
    await reconcileOnce(api, sim, storeDocument('kv', { ...props, clients }), { etcdEndpoints: httpsEndpoints(), etcdTlsDir: tlsDir }, lines);
    expect(lines.filter((l) => l.includes('auth: '))).toEqual(expect.arrayContaining([expect.stringContaining('auth: enable authentication')]));

    const as = (name: string) => {
      const f = tlsFiles(api.get('v1', 'Secret', NAMESPACE, `kv-client-${name}`) as any);
      return new Etcd3({
        hosts: httpsEndpoints(),
        ...etcdTlsOptions({ ca: Buffer.from(f.ca), cert: Buffer.from(f.crt), key: Buffer.from(f.key), serverName: SERVER_NAME }),
        defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 4000 }),
      });
    };
    const outcome = async (c: Etcd3, fn: (c: Etcd3) => unknown) => {
      try {
        await fn(c);
        return 'ok';
      } catch (e) {
        return /permission denied/i.test((e as Error).message) ? 'denied' : 'refused';
      } finally {
        c.close();
      }
    };
    expect(await outcome(as('api'), (c) => c.put('orders/1').value('a'))).toBe('ok');
    expect(await outcome(as('reports'), (c) => c.get('orders/1').string())).toBe('ok');
    expect(await outcome(as('reports'), (c) => c.put('orders/2').value('b'))).toBe('denied');

    // reports dropped: the store's objects do not change (the certificates are the GitOps tool's), its user goes.
    const fewer = { ...props, clients: [clients[0]] };
    const again: string[] = [];
    await reconcileOnce(api, sim, storeDocument('kv', fewer), { etcdEndpoints: httpsEndpoints(), etcdTlsDir: tlsDir }, again);
    expect(again.filter((l) => l.includes('auth: '))).toEqual(['auth: delete user reports', 'auth: delete role kvstore-reports', 'auth: enable authentication'].map((l) => expect.stringContaining(l)));
    expect(await outcome(as('reports'), (c) => c.get('orders/1').string())).not.toBe('ok');
    expect(await outcome(as('api'), (c) => c.get('orders/1').string())).toBe('ok');
    // And once more: nothing to do, not even the Lease.
    expect((await reconcileOnce(api, sim, storeDocument('kv', fewer), { etcdEndpoints: httpsEndpoints(), etcdTlsDir: tlsDir })).mutatingRequests).toBe(0);
  });
});
