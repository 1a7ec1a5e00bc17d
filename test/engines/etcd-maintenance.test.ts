// etcd maintenance: the pure plans (defragmentation, NOSPACE recovery, the disarm decision), and the
// procedures on real etcd (installed 3.4.x) through the pod runner: defragmentation under writes,
// recovery from NOSPACE, a store whose live data alone fills its quota, and a member down. Sizes and
// alarms are read back from etcd itself, never taken from what the code reported.
import { Etcd3 } from 'etcd3';
import { Engine } from '../../lib';
import {
  ClusterStatus, DefragmentationOptions, EtcdMaintenance, MaintenanceEvent, MemberStatus, nospaceDisarm, planDefragmentation, planNospaceRecovery,
  unhealthyReason,
} from '../../lib/engines/etcd-maintenance';
import { ETCD_VERSION, MemberWriter, missingOn, putKeys, startReady, synthStore, waitFor, waitReady, withMember } from '../support/etcd-cluster';
import { PodRunner } from '../support/pod-runner';
import { describeWithEtcd } from '../support/requires-etcd';
import { usePodRunner } from '../support/runner-fixture';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

/** Member kv-<i> (ID 10<i>); kv-1 leads unless told otherwise. */
const member = (i: number, extra: Partial<MemberStatus> = {}): MemberStatus => ({
  endpoint: `http://kv-${i}.kv-peers.kvtest.svc.cluster.local:2379`,
  id: String(100 + i),
  name: `kv-${i}`,
  dbSizeBytes: 130 * MiB,
  dbSizeInUseBytes: 10 * MiB,
  leaderId: '101',
  isLeader: i === 1,
  raftIndex: 500,
  raftAppliedIndex: 500,
  isLearner: false,
  revision: '400',
  errors: [],
  ...extra,
});
const cluster = (members: MemberStatus[], extra: Partial<ClusterStatus> = {}): ClusterStatus => ({
  members, unreachable: [], listed: members.map((m) => ({ id: m.id, name: m.name })), alarms: [], ...extra,
});
const nospace = [{ memberId: '100', alarm: 'NOSPACE' }];
const turns = (status: ClusterStatus, options: DefragmentationOptions = { quotaBackendBytes: 8 * GiB }) => planDefragmentation(status, options).turns.map((t) => t.reason);

describe('planDefragmentation', () => {
  test('one member at a time: followers in name order (kv-2 before kv-10), the leader last', () => {
    const plan = planDefragmentation(cluster([10, 1, 2, 0].map((i) => member(i))), { quotaBackendBytes: 8 * GiB });
    expect(plan.skipped).toBeUndefined();
    expect(plan.compactRevision).toBeUndefined();
    expect(plan.disarmNospace).toBe(false);
    expect(plan.turns.map((t) => [t.action, t.member.name])).toEqual([['defragment', 'kv-0'], ['defragment', 'kv-2'], ['defragment', 'kv-10'], ['defragment', 'kv-1']]);
    expect(plan.turns.map((t) => t.reason)).toEqual([
      'kv-0: 120 MiB of 130 MiB reclaimable: defragment',
      'kv-2: 120 MiB of 130 MiB reclaimable: defragment',
      'kv-10: 120 MiB of 130 MiB reclaimable: defragment',
      'kv-1: 120 MiB of 130 MiB reclaimable: defragment (the leader, last)',
    ]);
  });

  test('skips a member under the floor or under the ratio, each with its reason', () => {
    const status = cluster([
      member(0, { dbSizeBytes: 11 * MiB, dbSizeInUseBytes: 10 * MiB }),
      member(1),
      member(2, { dbSizeBytes: 2 * GiB, dbSizeInUseBytes: 1.9 * GiB }),
    ]);
    expect(turns(status)).toEqual([
      'kv-0: 1.0 MiB reclaimable, under the 64 MiB floor: skip',
      'kv-2: 102 MiB of 2.0 GiB reclaimable, under 10% of its database: skip',
      'kv-1: 120 MiB of 130 MiB reclaimable: defragment (the leader, last)',
    ]);
    expect(planDefragmentation(status, { quotaBackendBytes: 8 * GiB }).turns.map((t) => t.action)).toEqual(['skip', 'skip', 'defragment']);
    // Both thresholds are the caller's to set.
    expect(turns(status, { quotaBackendBytes: 8 * GiB, minReclaimableBytes: MiB, minReclaimableRatio: 0.05 })).toEqual([
      'kv-0: 1.0 MiB of 11 MiB reclaimable: defragment',
      'kv-2: 102 MiB of 2.0 GiB reclaimable: defragment',
      'kv-1: 120 MiB of 130 MiB reclaimable: defragment (the leader, last)',
    ]);
  });

  test('the default floor is a tenth of a quota under 640 MiB', () => {
    const status = cluster([member(0, { dbSizeBytes: 30 * MiB, dbSizeInUseBytes: 18 * MiB }), member(1)]);
    expect(turns(status, { quotaBackendBytes: 100 * MiB })[0]).toBe('kv-0: 12 MiB of 30 MiB reclaimable: defragment');
    expect(turns(status, { quotaBackendBytes: 200 * MiB })[0]).toBe('kv-0: 12 MiB reclaimable, under the 20 MiB floor: skip');
  });

  test.each<[string, ClusterStatus, RegExp]>([
    ['a member unreachable', cluster([member(0), member(1)], { unreachable: [{ endpoint: 'http://kv-2:2379', error: '14 UNAVAILABLE: No connection established' }] }), /no status from http:\/\/kv-2:2379 \(14 UNAVAILABLE/],
    ['a listed member without an endpoint', cluster([member(0), member(1)], { listed: [0, 1, 2].map((i) => ({ id: String(100 + i), name: `kv-${i}` })) }), /no status from member\(s\) kv-2/],
    ['no member list', cluster([member(0), member(1)], { listed: [] }), /no endpoint gave the member list/],
    ['no leader', cluster([member(0, { leaderId: '0' }), member(1)]), /kv-0 sees no leader/],
    ['two leaders', cluster([member(0, { leaderId: '100', isLeader: true }), member(1), member(2)]), /disagree on the leader \(kv-0 sees 100, kv-1 sees 101, kv-2 sees 101\)/],
    ['a learner', cluster([member(0), member(1), member(3, { isLearner: true })]), /kv-3 is a learner: a membership change is in progress/],
    ['a CORRUPT alarm', cluster([member(0), member(1)], { alarms: [{ memberId: '100', alarm: 'CORRUPT' }] }), /CORRUPT alarm is raised.*restore from a backup/],
  ])('unhealthy (%s): no steps, and the plan says why', (_, status, reason) => {
    const plan = planDefragmentation(status, { quotaBackendBytes: 8 * GiB });
    expect(plan.turns).toEqual([]);
    expect(plan.skipped).toMatch(/^defragmentation skipped: /);
    expect(plan.skipped).toMatch(reason);
    expect(planNospaceRecovery({ ...status, alarms: [...status.alarms, ...nospace] }, { quotaBackendBytes: 8 * GiB }).skipped).toMatch(reason);
  });

  test('with a NOSPACE alarm raised it also asks for the disarm', () => {
    expect(planDefragmentation(cluster([member(0), member(1)], { alarms: nospace }), { quotaBackendBytes: 8 * GiB }).disarmNospace).toBe(true);
  });
});

describe('planNospaceRecovery', () => {
  test('compacts to the highest revision applied, then defragments every member whatever it reclaims, the leader last', () => {
    const status = cluster([member(1, { revision: '401' }), member(2, { dbSizeBytes: 8 * MiB, dbSizeInUseBytes: 8 * MiB }), member(0)], { alarms: nospace });
    const plan = planNospaceRecovery(status, { quotaBackendBytes: 128 * MiB });
    expect(plan.skipped).toBeUndefined();
    expect(plan.compactRevision).toBe('401');
    expect(plan.disarmNospace).toBe(true);
    expect(plan.turns.map((t) => [t.action, t.member.name])).toEqual([['defragment', 'kv-0'], ['defragment', 'kv-2'], ['defragment', 'kv-1']]);
    expect(plan.turns[1].reason).toBe('kv-2: 8.0 MiB (8.0 MiB in use) of the 128 MiB quota: defragment after compacting to revision 401');
    expect(plan.turns[2].reason).toMatch(/\(the leader, last\)$/);
  });

  test('nothing to recover without a NOSPACE alarm', () => {
    expect(planNospaceRecovery(cluster([member(0), member(1)]), { quotaBackendBytes: 128 * MiB })).toEqual(expect.objectContaining({ skipped: 'NOSPACE recovery skipped: no NOSPACE alarm is raised', turns: [] }));
  });
});

describe('nospaceDisarm', () => {
  const sized = (sizes: Array<[number, number]>) => cluster(sizes.map(([file, inUse], i) => member(i, { dbSizeBytes: file * MiB, dbSizeInUseBytes: inUse * MiB })), { alarms: nospace });

  test('disarms once every database file is under 80% of the quota', () => {
    expect(nospaceDisarm(sized([[5, 5], [6.3, 6], [1, 1]]), { quotaBackendBytes: 8 * MiB })).toEqual({
      disarm: true, reason: 'NOSPACE alarm disarmed: every database file is under 6.4 MiB (80% of the 8.0 MiB quota), the largest 6.3 MiB',
    });
  });

  test('keeps it while a file is over the limit though its live data is not: defragment first', () => {
    const decision = nospaceDisarm(sized([[5, 5], [7, 2], [1, 1]]), { quotaBackendBytes: 8 * MiB });
    expect(decision.disarm).toBe(false);
    expect(decision.reason).toMatch(/database file is over 6\.4 MiB .* on kv-1 \(7\.0 MiB\); defragment it first/);
  });

  test('keeps it when the live data alone fills the quota, and says the quota must grow', () => {
    const decision = nospaceDisarm(sized([[9, 8.5], [9, 8.5], [9, 8.5]]), { quotaBackendBytes: 8 * MiB });
    expect(decision.disarm).toBe(false);
    expect(decision.reason).toMatch(/live data alone is over 6\.4 MiB \(80% of the 8\.0 MiB quota\) on kv-0 \(8\.5 MiB in use\), kv-1 .*, kv-2 .*read-only.*until the quota grows \(engine\.quotaBackendBytes/);
  });

  test('the ratio is the caller\'s: 1 disarms anything under the quota itself', () => {
    expect(nospaceDisarm(sized([[7.9, 7.9], [1, 1]]), { quotaBackendBytes: 8 * MiB, disarmBelowRatio: 1 }).disarm).toBe(true);
    expect(nospaceDisarm(sized([[8, 8], [1, 1]]), { quotaBackendBytes: 8 * MiB, disarmBelowRatio: 1 }).disarm).toBe(false);
  });

  test('never without a NOSPACE alarm, never on an unhealthy cluster', () => {
    expect(nospaceDisarm(cluster([member(0), member(1)]), { quotaBackendBytes: 8 * GiB })).toEqual({ disarm: false, reason: 'no NOSPACE alarm is raised' });
    expect(nospaceDisarm(cluster([member(0, { leaderId: '0' }), member(1)], { alarms: nospace }), { quotaBackendBytes: 8 * GiB }).reason).toBe('NOSPACE alarm kept: kv-0 sees no leader');
  });
});

describeWithEtcd(`maintenance on etcd ${ETCD_VERSION}`, () => {
  const run = usePodRunner();
  const big = (tag: string) => `${tag}:`.padEnd(100 * 1024, 'x');
  const statusOf = (r: PodRunner, pod: string) => withMember(r, pod, (c) => c.maintenance.status());
  const sizes = async (r: PodRunner, pods: string[]) => Promise.all(pods.map(async (p) => Number((await statusOf(r, p)).dbSize)));
  /** The alarm kinds each member lists, deduplicated (etcd3 names them Nospace, Corrupt; each member that saw the quota exceeded raises its own). */
  const alarmsOn = (r: PodRunner, pods: string[]) => Promise.all(pods.map((p) => withMember(r, p, async (c) => [...new Set((await c.maintenance.alarm({ action: 0 })).alarms.map((a) => a.alarm))])));
  /** Acknowledged keys `pod` does not return with their value, read one by one (100 KB values overflow one range answer). */
  const missingEach = (r: PodRunner, pod: string, acked: Map<string, string>) => withMember(r, pod, async (c) => {
    const missing: string[] = [];
    for (const [k, v] of acked) if ((await c.get(k).string()) !== v) missing.push(k);
    return missing;
  });
  const putError = (r: PodRunner, pod: string) => withMember(r, pod, (c) => c.put('probe').value('1').then(() => 'written', (e: Error) => e.message));

  /** Overwrites `keys` keys under `prefix` with 100 KB values, round after round, until `rounds` or the first refusal; returns the acknowledged latest values and the refusal. */
  async function fill(c: Etcd3, prefix: string, keys: number, rounds: number): Promise<{ acked: Map<string, string>; refused?: string }> {
    const acked = new Map<string, string>();
    for (let round = 0; round < rounds; round++) {
      for (let k = 0; k < keys; k++) {
        const value = big(`${round}`);
        try {
          await c.put(`${prefix}${k}`).value(value);
        } catch (e) {
          return { acked, refused: (e as Error).message };
        }
        acked.set(`${prefix}${k}`, value);
      }
    }
    return { acked };
  }

  test('defragmentation under writes: every file shrinks, a member with little to reclaim is skipped, the leader goes last, no write lost', async () => {
    const r = run(synthStore('kv'));
    const pods = await startReady(r, 'kv');
    const endpoints = pods.map((p) => r.url(p));
    const kept = await putKeys(r, 'kv-0', 'keep/', 50);

    // ~20 MB of garbage: 20 keys of 100 KB overwritten 10 times, then deleted, the history compacted.
    await withMember(r, 'kv-0', async (c) => {
      expect((await fill(c, 'junk/', 20, 10)).refused).toBeUndefined();
      await c.delete().prefix('junk/');
      await c.kv.compact({ revision: (await c.maintenance.status()).header.revision, physical: true });
    });
    // etcd refreshes dbSizeInUse when it next commits: a write makes the compacted space show.
    await waitFor('the compaction on every member', async () => {
      await withMember(r, 'kv-0', async (c) => c.put('tick').value('1'));
      return (await Promise.all(pods.map((p) => statusOf(r, p)))).every((s) => Number(s.dbSize) - Number(s.dbSizeInUse) > 15 * MiB);
    }, 30_000, 250);
    const garbage = await sizes(r, pods);
    expect(Math.min(...garbage)).toBeGreaterThan(18 * MiB);

    const leaderId = (await statusOf(r, 'kv-0')).leader;
    const ids = await Promise.all(pods.map(async (p) => (await statusOf(r, p)).header.member_id));
    const leader = pods[ids.indexOf(leaderId)];
    // A follower defragmented just before: it has next to nothing to reclaim, so the plan skips it.
    const [early, late] = pods.filter((p) => p !== leader);
    await withMember(r, early, (c) => c.maintenance.defragment());

    const maintenance = new EtcdMaintenance(endpoints);
    const writer = new MemberWriter(r, pods, 'w/');
    const events: MaintenanceEvent[] = [];
    try {
      const plan = planDefragmentation(await maintenance.status(), { quotaBackendBytes: 5 * GiB, minReclaimableBytes: 4 * MiB });
      expect(plan.skipped).toBeUndefined();
      expect(plan.turns.map((t) => [t.member.name, t.action])).toEqual([early, late, leader].map((p) => [p, p === early ? 'skip' : 'defragment']));
      expect(plan.turns[0].reason).toMatch(new RegExp(`^${early}: .* reclaimable, under the 4\\.0 MiB floor: skip$`));

      writer.start();
      await waitFor('writes before the defragmentation', async () => writer.acked.size >= 20);
      const result = await maintenance.run(plan, (e) => events.push(e));
      const acked = writer.acked.size;
      await waitFor('writes after the defragmentation', async () => writer.acked.size >= acked + 20);

      expect(result.stopped).toBeUndefined();
      expect(events.map((e) => e.action)).toEqual(['skip', 'defragment', 'defragment']);
      expect(events.filter((e) => e.defragmented).map((e) => e.defragmented!.id)).toEqual([ids[pods.indexOf(late)], leaderId]);
    } finally {
      await writer.stop();
      maintenance.close();
    }

    // Read back from etcd: every file shrank by most of the garbage.
    const after = await sizes(r, pods);
    pods.forEach((p, i) => expect({ p, after: after[i] < garbage[i] - 15 * MiB }).toEqual({ p, after: true }));
    expect(writer.acked.size).toBeGreaterThan(40);
    for (const pod of pods) {
      expect({ pod, missing: await missingOn(r, pod, 'w/', writer.acked) }).toEqual({ pod, missing: [] });
      expect({ pod, missing: await missingOn(r, pod, 'keep/', kept) }).toEqual({ pod, missing: [] });
    }
    r.assertNoUnexpectedExits();
  });

  test('NOSPACE: writes refused and the alarm raised; recovery compacts, defragments, disarms, and every acknowledged key is there', async () => {
    const quota = 8 * MiB;
    const r = run(synthStore('kv', { engine: Engine.etcd({ version: ETCD_VERSION, quotaBackendBytes: quota }) }));
    const pods = await startReady(r, 'kv');
    const kept = await putKeys(r, 'kv-0', 'keep/', 50);
    const filled = await withMember(r, 'kv-1', (c) => fill(c, 'big/', 10, 50));
    expect(filled.refused).toMatch(/etcdserver: mvcc: database space exceeded/);
    expect(await putError(r, 'kv-2')).toMatch(/database space exceeded/);
    expect(await alarmsOn(r, pods)).toEqual(pods.map(() => ['Nospace']));

    const maintenance = new EtcdMaintenance(pods.map((p) => r.url(p)));
    const events: MaintenanceEvent[] = [];
    try {
      const status = await maintenance.status();
      expect([...new Set(status.alarms.map((a) => a.alarm))]).toEqual(['NOSPACE']);
      const plan = planNospaceRecovery(status, { quotaBackendBytes: quota });
      expect(plan.skipped).toBeUndefined();
      const result = await maintenance.run(plan, (e) => events.push(e));
      expect(result.disarmed).toBe(true);
      expect(result.defragmented.map((d) => d.id).at(-1)).toBe(status.members.find((m) => m.isLeader)!.id);
    } finally {
      maintenance.close();
    }
    expect(events.map((e) => e.action)).toEqual(['compact', 'defragment', 'defragment', 'defragment', 'disarm']);

    // Read back from etcd: no alarm on any member, every file under 80% of the quota, writes accepted
    // (and every readiness probe passes again: on 3.4 /health fails while an alarm is raised), nothing lost.
    expect(await alarmsOn(r, pods)).toEqual(pods.map(() => []));
    for (const size of await sizes(r, pods)) expect(size).toBeLessThan(0.8 * quota);
    for (const pod of pods) expect(await putError(r, pod)).toBe('written');
    await waitReady(r, pods);
    expect(filled.acked.size).toBe(10);
    for (const pod of pods) {
      expect({ pod, missing: await missingOn(r, pod, 'keep/', kept) }).toEqual({ pod, missing: [] });
      expect({ pod, missing: await missingEach(r, pod, filled.acked) }).toEqual({ pod, missing: [] });
    }
    r.assertNoUnexpectedExits();
  });

  test('NOSPACE with live data over the quota: recovery compacts and defragments but keeps the alarm, and says the quota must grow', async () => {
    const store = (quota: number) => synthStore('kv', { engine: Engine.etcd({ version: ETCD_VERSION, quotaBackendBytes: quota }) });
    const r = run(store(64 * MiB));
    const pods = await startReady(r, 'kv');
    // 6 MB of live data (60 distinct keys), then the members restarted with a 4 MiB quota.
    const live = await withMember(r, 'kv-0', (c) => fill(c, 'live/', 60, 1));
    expect(live.refused).toBeUndefined();
    r.update(store(4 * MiB));
    await Promise.all(pods.map((p) => r.kill(p, 'SIGKILL')));
    r.startStatefulSet('kv');
    // Not waitReady: on 3.4 the readiness probe (/health) fails while an alarm is raised, and the
    // members may raise it as they start (replaying a write that no longer fits).
    await waitFor('a leader seen by every member', async () => (await Promise.all(pods.map((p) => statusOf(r, p)))).every((s) => s.leader !== '0'));
    expect(await putError(r, 'kv-0')).toMatch(/database space exceeded/);
    expect(await alarmsOn(r, pods)).toEqual(pods.map(() => ['Nospace']));

    const maintenance = new EtcdMaintenance(pods.map((p) => r.url(p)));
    const events: MaintenanceEvent[] = [];
    try {
      const result = await maintenance.run(planNospaceRecovery(await maintenance.status(), { quotaBackendBytes: 4 * MiB }), (e) => events.push(e));
      expect(result.disarmed).toBe(false);
      expect(result.defragmented).toHaveLength(3);
      expect(result.alarm).toMatch(/NOSPACE alarm kept: the live data alone is over 3\.2 MiB \(80% of the 4\.0 MiB quota\) on kv-0 .*read-only.*until the quota grows/);
    } finally {
      maintenance.close();
    }
    expect(events.map((e) => e.action)).toEqual(['compact', 'defragment', 'defragment', 'defragment', 'keep-alarm']);

    // Read back from etcd: the files are still over the quota, the alarm stays, writes are still refused, reads work.
    for (const size of await sizes(r, pods)) expect(size).toBeGreaterThan(4 * MiB);
    expect(await alarmsOn(r, pods)).toEqual(pods.map(() => ['Nospace']));
    expect(await putError(r, 'kv-1')).toMatch(/database space exceeded/);
    for (const pod of pods) expect({ pod, missing: await missingEach(r, pod, live.acked) }).toEqual({ pod, missing: [] });
    r.assertNoUnexpectedExits();
  });

  test('a member down: a new plan is skipped and says why; a run planned before stops without touching any member', async () => {
    const r = run(synthStore('kv'));
    const pods = await startReady(r, 'kv');
    let retries = 0;
    const maintenance = new EtcdMaintenance(pods.map((p) => r.url(p)), { retryTimeoutMs: 1000, onRetry: async () => { retries++; } });
    const events: MaintenanceEvent[] = [];
    try {
      const healthy = await maintenance.status();
      expect(unhealthyReason(healthy)).toBeUndefined();
      const everyone = { quotaBackendBytes: 5 * GiB, minReclaimableBytes: 0, minReclaimableRatio: 0 };
      const plan = planDefragmentation(healthy, everyone);
      expect(plan.turns.map((t) => t.action)).toEqual(['defragment', 'defragment', 'defragment']);
      const follower = plan.turns[0].member.name;
      await r.stop(follower);

      const down = await maintenance.status();
      expect(down.unreachable.map((u) => u.endpoint)).toEqual([r.url(follower)]);
      expect(down.members.map((m) => m.name).sort()).toEqual(pods.filter((p) => p !== follower));
      const skipped = planDefragmentation(down, everyone);
      expect(skipped.turns).toEqual([]);
      expect(skipped.skipped).toContain(`defragmentation skipped: no status from ${r.url(follower)} (`);

      const result = await maintenance.run(plan, (e) => events.push(e));
      expect(result.defragmented).toEqual([]);
      expect(result.stopped).toContain(`stopped before ${plan.turns.map((t) => t.member.name).join(', ')}: no status from ${r.url(follower)}`);
      expect(events.map((e) => e.action)).toEqual(['stop']);
      expect(retries).toBeGreaterThan(0);
    } finally {
      maintenance.close();
    }
  });
});
