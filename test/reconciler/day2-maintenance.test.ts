// Scheduled maintenance through the reconciler (`--maintain`, what the maintenance CronJob runs), on
// real etcd (the installed Debian etcd, 3.4.x: /health, the readiness probe there, fails while an alarm
// is raised): the run takes the store's Lease, reaches every member at its pod URL and plans from their
// status with the quota the spec gives. The defragmentation planner's thresholds and ordering are
// proven in test/engines/etcd-maintenance.test.ts; this proves the reconciler's run end to end.
import { Etcd3 } from 'etcd3';
import { Engine } from '../../lib';
import { MaintenanceError } from '../../lib/reconciler/maintain';
import type { ReconcileOptions } from '../../lib/reconciler/reconcile';
import { ApiServer } from '../support/api-server';
import { ClusterSimulator } from '../support/cluster-simulator';
import { keysUnder, loseMemberData, maintainOnce, memberList, reconcileOnce, simulatedCluster, storeDocument, Writer } from '../support/day2';
import { ETCD_VERSION, NAMESPACE } from '../support/etcd-cluster';
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

const withClient = async <T>(fn: (c: Etcd3) => Promise<T>): Promise<T> => {
  const c = new Etcd3({ hosts: sim.endpoints('kv') });
  try {
    return await fn(c);
  } finally {
    c.close();
  }
};
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
    // No acknowledged write lost, and the new member holds them all.
    expect(writer.acked.length).toBeGreaterThan(40);
    for (const url of [...survivors, sim.url('kv-1')]) {
      const held = await keysUnder([url], 'w/');
      expect({ url, missing: writer.acked.filter((k) => !held.has(k)) }).toEqual({ url, missing: [] });
    }
  });

  test('a member down: the run fails, saying which', async () => {
    await reconcileOnce(api, sim, storeDocument('kv', props));
    await sim.waitForReady('kv', 3, 60_000);
    // A member whose endpoint answers nothing (its pod URL replaced by a closed port).
    const run = maintain([], { etcdMemberEndpoint: (i) => (i === 1 ? 'http://127.0.0.1:9' : sim.url(`kv-${i}`)), rolloutTimeoutMs: 2_000 });
    await expect(run).rejects.toThrow(MaintenanceError);
    await expect(run).rejects.toThrow(/maintenance not done: defragmentation skipped: no status from http:\/\/127\.0\.0\.1:9/);
  });
});
