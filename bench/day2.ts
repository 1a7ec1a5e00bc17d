// Benchmark part: day-2 operations through the reconciler on real etcd members (cluster simulator).
import { startApiServer } from '../test/support/api-server';
import { ClusterSimulator } from '../test/support/cluster-simulator';
import { keysUnder, loseMemberData, maintainOnce, reconcileOnce, storeDocument, Writer } from '../test/support/day2';
import { NAMESPACE } from '../test/support/etcd-cluster';
import { podRunnerUnavailable } from '../test/support/pod-runner';

export interface Day2BenchResult {
  /** Reconcile of 3 → 5 members, until all 5 are voting and ready. */
  readonly scaleMs: number[];
  /** Reconcile of 1Gi → 2Gi on 5 members, until the re-created StatefulSet has them all ready. */
  readonly resizeMs: number[];
  readonly keysWritten: number;
  readonly keysLost: number;
}

/** `runs` times: a 3-member store, then 3 → 5 and 1Gi → 2Gi with writes running throughout. */
export async function day2Bench(runs: number): Promise<Day2BenchResult | string> {
  const unavailable = podRunnerUnavailable();
  if (unavailable) return unavailable;
  const result = { scaleMs: [] as number[], resizeMs: [] as number[], keysWritten: 0, keysLost: 0 };
  for (let run = 0; run < runs; run++) {
    const api = await startApiServer();
    const sim = ClusterSimulator.start(api, { namespace: NAMESPACE });
    try {
      await reconcileOnce(api, sim, storeDocument('bench', { size: 3, storageSize: '1Gi' }), { pollMs: 50 });
      await sim.waitForReady('bench', 3, 60_000);
      const survivors = sim.endpoints('bench');
      const writer = new Writer(survivors, `run${run}/`);

      let started = Date.now();
      await reconcileOnce(api, sim, storeDocument('bench', { size: 5, storageSize: '1Gi' }), { pollMs: 50 });
      await sim.waitForReady('bench', 5, 60_000);
      result.scaleMs.push(Date.now() - started);

      started = Date.now();
      await reconcileOnce(api, sim, storeDocument('bench', { size: 5, storageSize: '2Gi' }), { pollMs: 50 });
      await sim.waitForReady('bench', 5, 60_000);
      result.resizeMs.push(Date.now() - started);

      const acked = (await writer.stop()).acked;
      const held = await keysUnder(survivors, `run${run}/`);
      result.keysWritten += acked.length;
      result.keysLost += acked.filter((k) => !held.has(k)).length;
    } finally {
      await sim.stop();
      await api.stop();
    }
  }
  return result;
}

export interface ReplacementBenchResult {
  /** A maintenance run replacing a member whose data was lost, until all 3 are voting and ready. */
  readonly replaceMs: number[];
  readonly keysWritten: number;
  /** Acknowledged keys missing on any member afterwards, the replaced one included. */
  readonly keysLost: number;
}

/** `runs` times: a 3-member store, kv-1's data lost under it (it crash-loops), replaced by a maintenance run with writes going on through the others. */
export async function replacementBench(runs: number): Promise<ReplacementBenchResult | string> {
  const unavailable = podRunnerUnavailable();
  if (unavailable) return unavailable;
  const result = { replaceMs: [] as number[], keysWritten: 0, keysLost: 0 };
  for (let run = 0; run < runs; run++) {
    const api = await startApiServer();
    const sim = ClusterSimulator.start(api, { namespace: NAMESPACE });
    try {
      const doc = storeDocument('bench', { size: 3, storageSize: '1Gi' });
      await reconcileOnce(api, sim, doc, { pollMs: 50 });
      await sim.waitForReady('bench', 3, 60_000);
      const survivors = ['bench-0', 'bench-2'].map((p) => sim.url(p));
      const writer = new Writer(survivors, `run${run}/`);
      await loseMemberData(api, sim, 'bench-1');
      const started = Date.now();
      await maintainOnce(api, sim, doc, { pollMs: 50 });
      await sim.waitForReady('bench', 3, 60_000);
      result.replaceMs.push(Date.now() - started);
      const acked = (await writer.stop()).acked;
      result.keysWritten += acked.length;
      for (const pod of ['bench-0', 'bench-1', 'bench-2']) {
        const held = await keysUnder([sim.url(pod)], `run${run}/`);
        result.keysLost += acked.filter((k) => !held.has(k)).length;
      }
    } finally {
      await sim.stop();
      await api.stop();
    }
  }
  return result;
}
