// etcd version upgrades through the reconciler, on real etcd. Debian ships one etcd (3.4.x), so these
// tests prove the procedure — ordering (highest ordinal first), gating (each member ready and caught
// up before the next), the snapshot first, refusal, resume — with version labels over the same binary:
// the StatefulSet's image tag and version annotation move from the installed version to a later patch
// label, while every pod runs the installed etcd (the pod runner checks only the minor line).
import { Engine } from '../../lib';
import { ENGINE_VERSION_ANNOTATION, OPERATION_ANNOTATION } from '../../lib/model/metadata';
import { RefusedError } from '../../lib/reconciler/reconcile';
import { ApiServer } from '../support/api-server';
import { ClusterSimulator } from '../support/cluster-simulator';
import { keysUnder, memberList, reconcileOnce, simulatedCluster, storeDocument, Writer } from '../support/day2';
import { ETCD_VERSION, NAMESPACE, sleep } from '../support/etcd-cluster';
import { describeWithEtcd } from '../support/requires-etcd';

jest.setTimeout(240_000);

let api: ApiServer;
let sim: ClusterSimulator;
simulatedCluster((a, s) => { api = a; sim = s; });

const [major, minor, patch] = ETCD_VERSION.split('.').map(Number);
/** A later patch of the installed minor line: a label only, the pods run the installed binary. */
const NEXT_PATCH = `${major}.${minor}.${patch + 1}`;
const props = (version: string) => ({ size: 3, storageSize: '1Gi', backup: { keep: 3 }, engine: Engine.etcd({ version }) });
const sts = () => api.get('apps/v1', 'StatefulSet', NAMESPACE, 'kv') as any;
const pod = (i: number) => api.get('v1', 'Pod', NAMESPACE, `kv-${i}`) as any;

/** Watches the pods: each new pod object (a restart) with when it appeared and whether every other member was ready then. */
function watchRestarts(): { restarts: Array<{ pod: string; at: number; othersReady: boolean }>; stop: () => void } {
  const restarts: Array<{ pod: string; at: number; othersReady: boolean }> = [];
  const uids = new Map([0, 1, 2].map((i) => [`kv-${i}`, pod(i)?.metadata.uid]));
  const ready = (p: any) => (p?.status?.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True');
  const timer = setInterval(() => {
    for (const i of [0, 1, 2]) {
      const p = pod(i);
      if (!p || p.metadata.deletionTimestamp || p.metadata.uid === uids.get(`kv-${i}`)) continue;
      uids.set(`kv-${i}`, p.metadata.uid);
      restarts.push({ pod: `kv-${i}`, at: Date.now(), othersReady: [0, 1, 2].filter((j) => j !== i).every((j) => ready(pod(j))) });
    }
  }, 20);
  return { restarts, stop: () => clearInterval(timer) };
}

describeWithEtcd(`etcd upgrades through the reconciler (etcd ${ETCD_VERSION} under version labels)`, () => {
  test('member by member from the highest ordinal, snapshot first, stopped half-way and resumed: no acknowledged write lost', async () => {
    await reconcileOnce(api, sim, storeDocument('kv', props(ETCD_VERSION)));
    await sim.waitForReady('kv', 3, 60_000);
    expect(sts().metadata.annotations[ENGINE_VERSION_ANNOTATION]).toBe(ETCD_VERSION);
    const writer = new Writer(sim.endpoints('kv'));
    await sleep(300);
    const watch = watchRestarts();
    const lines: string[] = [];
    try {
      // The first run stops as the second member's turn begins (as a killed run would).
      let upgrading = 0;
      const stopSecond = async (e: { operation: string }) => {
        if (e.operation === 'Upgrading' && ++upgrading === 2) throw new Error('stopped for the test');
      };
      await expect(reconcileOnce(api, sim, storeDocument('kv', props(NEXT_PATCH)), { onProgress: stopSecond }, lines)).rejects.toThrow(/stopped for the test/);
      expect(watch.restarts.map((r) => r.pod)).toEqual(['kv-2']);
      expect(sts().metadata.annotations[OPERATION_ANNOTATION]).toBe(`version ${ETCD_VERSION} → ${NEXT_PATCH}`);
      expect(sts().spec.updateStrategy.rollingUpdate.partition).toBe(2);
      expect(pod(2).spec.containers[0].image).toBe(`gcr.io/etcd-development/etcd:v${NEXT_PATCH}`);
      expect(pod(1).spec.containers[0].image).toBe(`gcr.io/etcd-development/etcd:v${ETCD_VERSION}`);

      const resumed: string[] = [];
      await reconcileOnce(api, sim, storeDocument('kv', props(NEXT_PATCH)), { holder: 'second' }, resumed);
      expect(resumed.join('\n')).toContain(`⇡ etcd ${ETCD_VERSION} → ${NEXT_PATCH}, member by member from the highest ordinal, each ready and caught up before the next (resuming below member 2)`);
      await sim.waitForReady('kv', 3, 60_000);
    } finally {
      watch.stop();
      await writer.stop();
    }
    // Highest ordinal first, each once, each while the other two were ready.
    expect(watch.restarts.map((r) => r.pod)).toEqual(['kv-2', 'kv-1', 'kv-0']);
    expect(watch.restarts.every((r) => r.othersReady)).toBe(true);
    // Each member caught up with the leader before the next restarted.
    const caughtUp = [...lines, ''].filter((l) => /runs etcd .* caught up/.test(l));
    expect(caughtUp).toEqual([expect.stringMatching(new RegExp(`^member kv-2 runs etcd ${NEXT_PATCH.replace(/\./g, '\\.')}, caught up \\(applied index [0-9]+, leader had committed [0-9]+\\)$`))]);
    for (const i of [0, 1, 2]) expect(pod(i).spec.containers[0].image).toBe(`gcr.io/etcd-development/etcd:v${NEXT_PATCH}`);
    expect(sts().metadata.annotations[ENGINE_VERSION_ANNOTATION]).toBe(NEXT_PATCH);
    expect(sts().metadata.annotations[OPERATION_ANNOTATION]).toBeUndefined();
    // The spec's own update strategy is back.
    expect(sts().spec.updateStrategy.rollingUpdate.partition).toBe(0);

    // A snapshot first, completed before the first member restarted; the resumed run found it done.
    const snapshots = (api.list('batch/v1', 'Job', NAMESPACE) as any[]).filter((j) => j.metadata.annotations?.['kvstore.cdk8s-kvstore.io/before'] === `etcd ${ETCD_VERSION} → ${NEXT_PATCH}`);
    expect(snapshots).toHaveLength(1);
    expect(new Date(snapshots[0].status.completionTime).getTime()).toBeLessThanOrEqual(watch.restarts[0].at);

    const w = writer;
    expect(w.acked.length).toBeGreaterThan(50);
    const held = await keysUnder(sim.endpoints('kv'), 'w/');
    expect(w.acked.filter((k) => !held.has(k))).toEqual([]);
    expect((await memberList(sim.endpoints('kv'))).filter((m) => !m.isLearner)).toHaveLength(3);
    // Done: the next run has nothing to do.
    expect((await reconcileOnce(api, sim, storeDocument('kv', props(NEXT_PATCH)))).mutatingRequests).toBe(0);
  });

  test('a skipped minor is refused before anything changes; a patch back down is allowed', async () => {
    await reconcileOnce(api, sim, storeDocument('kv', props(ETCD_VERSION)));
    await sim.waitForReady('kv', 3, 60_000);
    const pids = sim.pids('kv');
    const skipped = `${major}.${minor + 2}.0`;
    const refused = reconcileOnce(api, sim, storeDocument('kv', props(skipped)));
    await expect(refused).rejects.toThrow(RefusedError);
    await expect(refused).rejects.toThrow(new RegExp(`engine-version: "${ETCD_VERSION}" → "${skipped}" refused: etcd ${ETCD_VERSION} → ${skipped} skips 1 minor version`));
    await expect(reconcileOnce(api, sim, storeDocument('kv', props(skipped)), { force: true })).rejects.toThrow(/not even force/);
    expect(sim.pids('kv')).toEqual(pids);
    expect(sts().metadata.annotations[ENGINE_VERSION_ANNOTATION]).toBe(ETCD_VERSION);
    expect((api.list('batch/v1', 'Job', NAMESPACE) as any[]).filter((j) => j.metadata.annotations?.['kvstore.cdk8s-kvstore.io/before'])).toEqual([]);

    // A patch label up, then back down: both allowed, each member restarted once per change.
    await reconcileOnce(api, sim, storeDocument('kv', props(NEXT_PATCH)));
    await reconcileOnce(api, sim, storeDocument('kv', props(ETCD_VERSION)));
    await sim.waitForReady('kv', 3, 60_000);
    expect(sts().metadata.annotations[ENGINE_VERSION_ANNOTATION]).toBe(ETCD_VERSION);
    for (const i of [0, 1, 2]) expect(pod(i).spec.containers[0].image).toBe(`gcr.io/etcd-development/etcd:v${ETCD_VERSION}`);
  });
});
