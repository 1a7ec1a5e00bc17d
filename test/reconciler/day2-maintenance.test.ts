// Scheduled maintenance through the reconciler (`--maintain`, what the maintenance CronJob runs), on
// real etcd (the installed Debian etcd, 3.4.x: /health, the readiness probe there, fails while an alarm
// is raised): the run takes the store's Lease, reaches every member at its pod URL and plans from their
// status with the quota the spec gives. The defragmentation planner's thresholds and ordering are
// proven in test/engines/etcd-maintenance.test.ts; this proves the reconciler's run end to end.
import { Etcd3 } from 'etcd3';
import { Engine } from '../../lib';
import { KubeClient } from '../../lib/reconciler/client';
import { Log } from '../../lib/reconciler/log';
import { MaintenanceError } from '../../lib/reconciler/maintain';
import { maintainStore, ReconcileOptions } from '../../lib/reconciler/reconcile';
import { ApiServer } from '../support/api-server';
import { ClusterSimulator } from '../support/cluster-simulator';
import { reconcileOnce, simulatedCluster, storeDocument } from '../support/day2';
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
async function maintain(lines: string[], extra: Partial<ReconcileOptions> = {}) {
  const document = storeDocument('kv', props);
  return maintainStore(document, new KubeClient(api.kubeConfig(), { baseDelayMs: 20, maxDelayMs: 200 }), new Log(false, (l) => lines.push(l.trimEnd())), {
    holder: 'maintenance-test', pollMs: 100, rolloutTimeoutMs: 30_000,
    etcdMemberEndpoint: (i) => sim.url(`kv-${i}`),
    ...extra,
  });
}

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

    // Fill the 8 MiB quota with 100 KB values, overwritten until etcd refuses.
    const acked = new Map<string, string>();
    const refused = await withClient(async (c) => {
      for (let round = 0; round < 200; round++) {
        for (let k = 0; k < 10; k++) {
          const value = `${round}:`.padEnd(100_000, 'x');
          try {
            await c.put(`big/${k}`).value(value);
          } catch (e) {
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
    expect([...acked].filter(([k, v]) => held[k] !== v).map(([k]) => k)).toEqual([]);
    // The Lease was taken and given back.
    expect((api.get('coordination.k8s.io/v1', 'Lease', NAMESPACE, 'kv-reconciler') as any).spec.holderIdentity).toBeFalsy();

    // Nothing left to do: no member has enough to reclaim, the run succeeds without touching etcd.
    const again: string[] = [];
    expect(await maintain(again)).toEqual({ kind: 'defragmentation' });
    expect(again).toContain('maintenance: no member has enough to reclaim');
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
