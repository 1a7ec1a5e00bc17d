// Scheduled maintenance through the reconciler (`--maintain`, what the maintenance CronJob runs), on
// real etcd (the installed Debian etcd, 3.4.x: /health, the readiness probe there, fails while an alarm
// is raised): the run takes the store's Lease, reaches every member at its pod URL and plans from their
// status with the quota the spec gives. The defragmentation planner's thresholds and ordering are
// proven in test/engines/etcd-maintenance.test.ts; this proves the reconciler's run end to end.
import { rmSync, writeFileSync } from 'fs';
import { join } from 'path';
import type { Etcd3 } from 'etcd3';
import { Chart, Testing } from 'cdk8s';
import { Engine, KVStore } from '../../lib';
import { MaintenanceError } from '../../lib/reconciler/maintain';
import type { ReconcileOptions } from '../../lib/reconciler/reconcile';
import { ApiServer } from '../support/api-server';
import { ClusterSimulator } from '../support/cluster-simulator';
import { keysUnder, loseMemberData, maintainOnce, memberList, RECONCILER_IMAGE, reconcileOnce, simulatedCluster, storeDocument, Writer } from '../support/day2';
import { find, synth } from '../support/manifests';
import { ETCD_VERSION, NAMESPACE, sleep, withEndpoint } from '../support/etcd-cluster';
import { describeWithEtcd } from '../support/requires-etcd';

jest.setTimeout(240_000);

let api: ApiServer;
let sim: ClusterSimulator;
simulatedCluster((a, s) => { api = a; sim = s; });

const MiB = 2 ** 20;
const QUOTA = 8 * MiB;
const props = { size: 3, storageSize: '1Gi', engine: Engine.etcd({ version: ETCD_VERSION, quotaBackendBytes: QUOTA }) };

/** One maintenance run of the store in-process, as the CronJob's container runs it. */
const maintain = (lines: string[], extra: Partial<ReconcileOptions> = {}) => maintainOnce(api, sim, storeDocument('kv', props), { rolloutTimeoutMs: 30_000, ...extra }, lines);

/** A client of one member (kv-0 answers for the store), and of member `pod`. */
const withClient = <T>(fn: (c: Etcd3) => Promise<T>): Promise<T> => withEndpoint(sim.url('kv-0'), fn);
const withMember = <T>(pod: string, fn: (c: Etcd3) => Promise<T>): Promise<T> => withEndpoint(sim.url(pod), fn);
const putResult = (key: string) => withClient((c) => c.put(key).value('1').then(() => 'written', (e: Error) => e.message));

describeWithEtcd(`maintenance through the reconciler (etcd ${ETCD_VERSION})`, () => {
  test('a store that hit its quota (NOSPACE) is writable again after one run; every acknowledged key is there; the next run has nothing to do', async () => {
    await reconcileOnce(api, sim, storeDocument('kv', props));
    await sim.waitForReady('kv', 3, 60_000);

    // Fill the 8 MiB quota with 100 KB values, overwritten until etcd refuses. etcd applies the write
    // that crosses the quota and answers it with the error: that key may hold the refused value.
    const acked = new Map<string, string>();
    let crossing: [string, string] | undefined;
    const refused = await withClient(async (c) => {
      for (let round = 0; round < 200; round++) {
        for (let k = 0; k < 10; k++) {
          const value = `${round}:`.padEnd(100_000, 'x');
          try {
            await c.put(`big/${k}`).value(value);
          } catch (e) {
            crossing = [`big/${k}`, value];
            return (e as Error).message;
          }
          acked.set(`big/${k}`, value);
        }
      }
      return undefined;
    });
    expect(refused).toMatch(/database space exceeded/);
    expect(await putResult('probe')).toMatch(/database space exceeded/);

    const lines: string[] = [];
    const done = await maintain(lines);
    expect(done.kind).toBe('nospace-recovery');
    expect(done.result?.disarmed).toBe(true);
    expect(done.result?.defragmented).toHaveLength(3);
    expect(lines).toContain('NOSPACE alarm raised: the store refuses writes (etcdserver: mvcc: database space exceeded); recovering: compact, defragment every member, disarm');

    // Read back from etcd: no alarm, writes accepted, the latest value of every key acknowledged before.
    expect(await withClient(async (c) => (await c.maintenance.alarm({ action: 0 as any })).alarms ?? [])).toEqual([]);
    expect(await putResult('probe')).toBe('written');
    const held = await withClient(async (c) => Object.fromEntries(await Promise.all([...acked.keys()].map(async (k) => [k, await c.get(k).string()]))));
    expect([...acked].filter(([k, v]) => held[k] !== v && !(crossing?.[0] === k && held[k] === crossing[1])).map(([k]) => k)).toEqual([]);
    // The Lease was taken and given back.
    expect((api.get('coordination.k8s.io/v1', 'Lease', NAMESPACE, 'kv-reconciler') as any).spec.holderIdentity).toBeFalsy();

    // Nothing left to do: no member has enough to reclaim, the run succeeds without touching etcd.
    const again: string[] = [];
    expect(await maintain(again)).toEqual({ kind: 'defragmentation' });
    expect(again).toContain('maintenance: no member has enough to reclaim');
  });

  test('a member whose data directory is deleted while it runs crash-loops once restarted; the run replaces it (removed, re-added as a learner on a new volume, promoted) with writes continuing', async () => {
    await reconcileOnce(api, sim, storeDocument('kv', props));
    await sim.waitForReady('kv', 3, 60_000);
    const before = await memberList(sim.endpoints('kv'));
    const oldId = before.find((m) => m.name === 'kv-1')!.id;
    const oldClaim = (api.get('v1', 'PersistentVolumeClaim', NAMESPACE, 'data-kv-1') as any).metadata.uid;
    const survivors = ['kv-0', 'kv-2'].map((p) => sim.url(p));
    const writer = new Writer(survivors);
    let lines: string[] = [];
    try {
      await sim.waitUntil('writes before', () => writer.acked.length >= 20, 30_000);
      // The volume's data is lost under the running member; it fails for good at its next start.
      await loseMemberData(api, sim, 'kv-1');

      lines = [];
      await maintain(lines);
      await sim.waitForReady('kv', 3, 60_000);
      const acked = writer.acked.length;
      await sim.waitUntil('writes after', () => writer.acked.length >= acked + 20, 30_000);
    } finally {
      await writer.stop();
    }
    const after = await memberList(sim.endpoints('kv'));
    expect(after.map((m) => [m.name, m.isLearner]).sort()).toEqual([['kv-0', false], ['kv-1', false], ['kv-2', false]]);
    expect(after.find((m) => m.name === 'kv-1')!.id).not.toBe(oldId);
    expect((api.get('v1', 'PersistentVolumeClaim', NAMESPACE, 'data-kv-1') as any).metadata.uid).not.toBe(oldClaim);
    expect(lines.filter((l) => /^member kv-1 /.test(l))).toEqual([
      expect.stringMatching(/^member kv-1 is lost \(its pod crash-loops: [0-9]+ restarts\): replacing it$/),
      expect.stringMatching(/^member kv-1 \(id [0-9]+\) removed from the cluster/),
      expect.stringMatching(/^member kv-1 registered again as a learner/),
      'member kv-1 replaced: promoted to a voting member on a new volume',
    ]);
    // What the replacement did to kv-1's pod and claim, the maintenance CronJob's Role allows.
    const chart = new Chart(Testing.app(), 'c', { namespace: NAMESPACE, disableResourceNameHashes: true });
    new KVStore(chart, 'kv', { ...props, reconciler: { image: RECONCILER_IMAGE, maintenance: {} } });
    const rules = find(synth(chart), 'Role').rules as any[];
    const allows = (resource: string, verb: string, name: string) => rules.some((r) => r.resources.includes(resource) && r.verbs.includes(verb) && (!r.resourceNames || r.resourceNames.includes(name)));
    const made = api.requests.filter((r) => r.method === 'DELETE' && /\/(pods\/kv-1|persistentvolumeclaims\/data-kv-1)$/.test(r.path));
    expect(made.map((r) => r.path.split('/').slice(-2)[0]).sort()).toEqual(['persistentvolumeclaims', 'pods']);
    expect([allows('pods', 'delete', 'kv-1'), allows('persistentvolumeclaims', 'delete', 'data-kv-1'), allows('pods', 'get', 'kv-1')]).toEqual([true, true, true]);
    // No acknowledged write lost, and the new member holds them all.
    expect(writer.acked.length).toBeGreaterThan(40);
    for (const url of [...survivors, sim.url('kv-1')]) {
      const held = await keysUnder([url], 'w/');
      expect({ url, missing: writer.acked.filter((k) => !held.has(k)) }).toEqual({ url, missing: [] });
    }
  });

  test('quorum lost for good (two of three members\' data unusable): refused without permission, changing nothing; allowed, recovered from the survivor with every acknowledged key', async () => {
    const plain = { size: 3, storageSize: '1Gi' };
    const document = storeDocument('kv', plain);
    await reconcileOnce(api, sim, document);
    await sim.waitForReady('kv', 3, 60_000);
    const writer = new Writer(sim.endpoints('kv'));
    await sim.waitUntil('writes', () => writer.acked.length >= 100, 30_000);
    const acked = (await writer.stop()).acked;
    const survivorId = (await memberList(sim.endpoints('kv'))).find((m) => m.name === 'kv-2')!.id;
    // Every acknowledged write applied on kv-2 before the others go: a linearizable read through it
    // waits until it has (what the survivor holds is the recovery point).
    await withMember('kv-2', (c) => c.get('w/0').exec());
    const claims = ['data-kv-0', 'data-kv-1'].map((c) => (api.get('v1', 'PersistentVolumeClaim', NAMESPACE, c) as any).metadata.uid);

    // kv-0 and kv-1: their data directory replaced by a file, their processes killed: they can never start again.
    for (const pod of ['kv-0', 'kv-1']) {
      const dir = join(sim.claimDir(`data-${pod}`), 'etcd');
      rmSync(dir, { recursive: true, force: true });
      writeFileSync(dir, 'not a data directory');
    }
    await Promise.all(['kv-0', 'kv-1'].map((pod) => sim.runner.kill(pod, 'SIGKILL')));
    const leaderless = async () => withMember('kv-2', async (c) => (await c.maintenance.status()).leader === '0');
    for (let i = 0; i < 100 && !(await leaderless()); i++) await sleep(100);
    expect(await leaderless()).toBe(true);

    // Not allowed: refused with the plan, nothing changed.
    const refusedLines: string[] = [];
    await expect(maintainOnce(api, sim, document, { rolloutTimeoutMs: 30_000 }, refusedLines)).rejects.toThrow(/quorum lost, not recovered: .*allow it with reconciler\.maintenance\.recoverQuorumLoss/s);
    expect(refusedLines.join('\n')).toMatch(/writes acknowledged after revision [0-9]+ may be lost/);
    expect((api.get('apps/v1', 'StatefulSet', NAMESPACE, 'kv') as any).spec.replicas).toBe(3);
    expect(['data-kv-0', 'data-kv-1'].map((c) => (api.get('v1', 'PersistentVolumeClaim', NAMESPACE, c) as any).metadata.uid)).toEqual(claims);

    // Allowed: recovered from kv-2, the others added back on new volumes.
    const lines: string[] = [];
    expect(await maintainOnce(api, sim, document, { recoverQuorumLoss: true, rolloutTimeoutMs: 60_000 }, lines)).toEqual({ kind: 'quorum-recovery' });
    await sim.waitForReady('kv', 3, 60_000);
    const members = await memberList(sim.endpoints('kv'));
    expect(members.map((m) => [m.name, m.isLearner]).sort()).toEqual([['kv-0', false], ['kv-1', false], ['kv-2', false]]);
    expect(members.find((m) => m.name === 'kv-2')!.id).toBe(survivorId);
    expect(['data-kv-0', 'data-kv-1'].map((c) => (api.get('v1', 'PersistentVolumeClaim', NAMESPACE, c) as any).metadata.uid).filter((u, i) => u === claims[i])).toEqual([]);
    expect(lines).toContain('every member stopped for the recovery from kv-2');
    expect(lines.some((l) => /^kv-2 serves as a cluster of one at revision [0-9]+/.test(l))).toBe(true);
    expect((api.get('apps/v1', 'StatefulSet', NAMESPACE, 'kv') as any).metadata.annotations['kvstore.cdk8s-kvstore.io/operation']).toBeUndefined();
    expect(api.get('v1', 'Pod', NAMESPACE, 'kv-recover-2')).toBeUndefined();
    // The one-off pod's requests, the Role of a bundle with recoverQuorumLoss allows (and only that one creates pods).
    const roleRules = (maintenance: object) => {
      const chart = new Chart(Testing.app(), 'c', { namespace: NAMESPACE, disableResourceNameHashes: true });
      new KVStore(chart, 'kv', { ...plain, reconciler: { image: RECONCILER_IMAGE, maintenance } });
      return find(synth(chart), 'Role').rules as any[];
    };
    const allowed = (rules: any[], resource: string, verb: string, name?: string) => rules.some((r) => r.resources.includes(resource) && r.verbs.includes(verb) && (!r.resourceNames || (name !== undefined && r.resourceNames.includes(name))));
    expect(api.requests.some((r) => r.method === 'POST' && r.path.endsWith('/namespaces/kvtest/pods'))).toBe(true);
    expect([allowed(roleRules({ recoverQuorumLoss: true }), 'pods', 'create'), allowed(roleRules({ recoverQuorumLoss: true }), 'pods', 'delete', 'kv-recover-2'), allowed(roleRules({}), 'pods', 'create')]).toEqual([true, true, false]);
    // Every acknowledged write, on every member; and the store takes writes again.
    for (const pod of ['kv-0', 'kv-1', 'kv-2']) {
      const held = await keysUnder([sim.url(pod)], 'w/');
      expect({ pod, missing: acked.filter((k) => !held.has(k)) }).toEqual({ pod, missing: [] });
    }
    expect(await putResult('after-recovery')).toBe('written');
    // The store exactly as reconciled: the next reconcile has nothing to do.
    expect((await reconcileOnce(api, sim, document)).mutatingRequests).toBe(0);
  });

  test('a member down: the run fails, saying which', async () => {
    await reconcileOnce(api, sim, storeDocument('kv', props));
    await sim.waitForReady('kv', 3, 60_000);
    // A member whose endpoint answers nothing (its pod URL replaced by a closed port).
    const run = maintain([], { etcdMemberEndpoint: (i) => (i === 1 ? 'http://127.0.0.1:9' : sim.url(`kv-${i}`)), rolloutTimeoutMs: 2_000 });
    await expect(run).rejects.toThrow(MaintenanceError);
    await expect(run).rejects.toThrow(/^store kvtest\/kv: maintenance not done: defragmentation skipped: no status from http:\/\/127\.0\.0\.1:9/);
  });
});
