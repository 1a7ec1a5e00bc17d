// Benchmark part: defragmentation of a 3-member store (pod runner, installed etcd) through the engine's
// maintenance executor, with the default thresholds: ~100 MB of garbage compacted away, then every
// member defragmented, followers first, the leader last, while a client keeps writing.
import { Etcd3 } from 'etcd3';
import { EtcdMaintenance, planDefragmentation } from '../lib/engines/etcd-maintenance';
import { MemberWriter, synthStore, waitFor, waitReady, withMember } from '../test/support/etcd-cluster';
import { PodRunner, podRunnerUnavailable } from '../test/support/pod-runner';
import { fmt, verdict } from './measure';

/** One member's defragmentation. */
export interface DefragmentedMemberBench {
  readonly name: string;
  readonly leader: boolean;
  readonly dbSizeBeforeBytes: number;
  readonly dbSizeAfterBytes: number;
  readonly defragmentMs: number;
}

export interface MaintenanceBenchResult {
  /** Bytes of values written and then made garbage (overwritten, deleted, compacted). */
  readonly garbageBytes: number;
  /** The executor's run: status before each member, defragmentation, status after; all three members. */
  readonly defragmentAllMs: number;
  /** In the order defragmented. */
  readonly members: DefragmentedMemberBench[];
  /** The longest gap between two acknowledged writes of the client writing during the run. */
  readonly longestWriteGapMs: number;
  readonly keysWritten: number;
  readonly keysLost: number;
}

const KEEP = 1000;
const GARBAGE_KEYS = 10;
const GARBAGE_ROUNDS = 100;
const VALUE_BYTES = 100 * 1024;
/** The store's quota with the default 10Gi volume (half of it). */
const QUOTA = 5 * 2 ** 30;

/** Keys acknowledged (`acked`) that `client` does not return with their value. */
async function lost(client: Etcd3, prefix: string, acked: Map<string, string>): Promise<string[]> {
  const found = await client.getAll().prefix(prefix).strings();
  return [...acked].filter(([k, v]) => found[k] !== v).map(([k]) => k);
}

/** One run: 1,000 keys, ~100 MB of garbage compacted away, then the plan with default thresholds, carried out under writes. */
export async function maintenanceBench(): Promise<MaintenanceBenchResult | string> {
  const unavailable = podRunnerUnavailable();
  if (unavailable) return unavailable;
  const runner = new PodRunner(synthStore('bench'), { namespace: 'kvtest' });
  try {
    const pods = runner.podNames('bench');
    runner.startStatefulSet('bench');
    await waitReady(runner, pods, 60_000);

    const kept = new Map<string, string>();
    await withMember(runner, pods[0], async (c) => {
      for (let i = 0; i < KEEP; i++) {
        await c.put(`keep/${i}`).value(`v${i}`);
        kept.set(`keep/${i}`, `v${i}`);
      }
      for (let round = 0; round < GARBAGE_ROUNDS; round++) {
        for (let k = 0; k < GARBAGE_KEYS; k++) await c.put(`junk/${k}`).value(`${round}:`.padEnd(VALUE_BYTES, 'x'));
      }
      await c.delete().prefix('junk/');
      await c.kv.compact({ revision: (await c.maintenance.status()).header.revision, physical: true });
    });
    // etcd refreshes dbSizeInUse at its next commit: a write makes the compacted space show.
    await waitFor('the compaction on every member', async () => {
      await withMember(runner, pods[0], async (c) => c.put('tick').value('1'));
      const status = await Promise.all(pods.map((p) => withMember(runner, p, (c) => c.maintenance.status())));
      return status.every((s) => Number(s.dbSize) - Number(s.dbSizeInUse) > 90 * 2 ** 20);
    }, 60_000, 250);

    const maintenance = new EtcdMaintenance(pods.map((p) => runner.url(p)));
    const writer = new MemberWriter(runner, pods, 'w/');
    let stopped = false;
    try {
      const plan = planDefragmentation(await maintenance.status(), { quotaBackendBytes: QUOTA });
      if (plan.skipped) throw new Error(plan.skipped);
      writer.start();
      await waitFor('writes before the run', async () => writer.acked.size >= 20);
      const from = writer.ackTimes.length - 1;
      const started = Date.now();
      const result = await maintenance.run(plan);
      const defragmentAllMs = Date.now() - started;
      await waitFor('writes after the run', async () => writer.ackTimes.length >= from + 40);
      stopped = true;
      await writer.stop();
      if (result.stopped) throw new Error(result.stopped);
      const times = writer.ackTimes.slice(from);
      const longestWriteGapMs = Math.max(...times.slice(1).map((t, i) => t - times[i]));

      const missing = new Set<string>();
      for (const pod of pods) {
        for (const k of await withMember(runner, pod, async (c) => [...await lost(c, 'keep/', kept), ...await lost(c, 'w/', writer.acked)])) missing.add(k);
      }
      const leaderId = plan.turns.find((t) => t.member.isLeader)?.member.id;
      return {
        garbageBytes: GARBAGE_KEYS * GARBAGE_ROUNDS * VALUE_BYTES,
        defragmentAllMs,
        members: result.defragmented.map((d) => ({
          name: d.name, leader: d.id === leaderId, dbSizeBeforeBytes: d.dbSizeBeforeBytes, dbSizeAfterBytes: d.dbSizeAfterBytes, defragmentMs: d.durationMs,
        })),
        longestWriteGapMs,
        keysWritten: kept.size + writer.acked.size,
        keysLost: missing.size,
      };
    } finally {
      if (!stopped) await writer.stop();
      maintenance.close();
    }
  } finally {
    await runner.stopAll();
  }
}

/** The report lines for the maintenance result. */
export function maintenanceReport(r: MaintenanceBenchResult): string[] {
  const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
  return [
    `defragment all 3 members (followers, then the leader), after ${mb(r.garbageBytes)} of garbage compacted away: ${fmt(r.defragmentAllMs)}`,
    ...r.members.map((m) => `  ${m.name}${m.leader ? ' (leader)' : ''}: ${mb(m.dbSizeBeforeBytes)} → ${mb(m.dbSizeAfterBytes)}, ${mb(m.dbSizeBeforeBytes - m.dbSizeAfterBytes)} reclaimed, in ${fmt(m.defragmentMs)}`),
    `longest gap between acknowledged writes of a client writing throughout: ${fmt(r.longestWriteGapMs)}`,
    `keys lost: ${r.keysLost} of ${r.keysWritten} acknowledged, read on every member  (${verdict(r.keysLost === 0)}: 0)`,
  ];
}
