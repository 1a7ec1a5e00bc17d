// Recovery from quorum loss: the pure planner (when, from what, at what cost), the one-off start's args,
// and both procedures on real etcd (installed 3.4.x) through the pod runner: a 3-member store loses its
// leader and another member, killed by SIGKILL with their data deleted, while a client writes through
// those two:
// - from the survivor (a follower, cut off from the others on the peer port for the last writes before
//   the kill, with iptables as in etcd-partition.test.ts, so it lacks some acknowledged writes): its pod
//   stops; a one-off pod of its own (the member's pod spec on the survivor's claim, args from
//   forceNewClusterArgs: the start the wiring is to render) runs etcd once with --force-new-cluster until
//   it serves alone, then stops; the survivor's pod starts as usual; the two lost members are added back
//   one at a time as learners with wiped data (EtcdMembership), their pods started with
//   ETCD_INITIAL_CLUSTER_STATE=existing and the member list rejoinInitialCluster gives (through the
//   bootstrap ConfigMap, as the reconciler renders it), then promoted. No pod runner change: definePod
//   runs the one-off pod. Without iptables the survivor does not lag (and may lack nothing);
// - from a snapshot saved mid-writes: every member's data laid out by the library's own restore Jobs
//   (etcdctl snapshot restore, a new cluster token), then the members started.
// What is held and lost is read back from etcd and compared with each acknowledged write's revision.
// Every process is a pod runner's (stopped by PID after each test, pass or fail) or a synchronous etcdctl.
import { execFileSync } from 'child_process';
import { chmodSync, copyFileSync, mkdirSync } from 'fs';
import { join } from 'path';
import { Engine, KVStore, StoreDocument } from '../../lib';
import { restoreJob } from '../../lib/constructs/backup';
import { StoreDefinition } from '../../lib/constructs/store-definition';
import { EtcdMembership, Member } from '../../lib/engines/etcd-membership';
import {
  describeRecoveryPlan, forceNewClusterArgs, MemberProbe, parseSnapshotStatus, planQuorumRecovery, probeMembers, QuorumRecoveryInput, QuorumRecoveryPlan,
  ReachableProbe, rejoinInitialCluster, waitStandalone,
} from '../../lib/engines/etcd-recovery';
import { storeNames } from '../../lib/model/names';
import { statefulSetPodSpec } from '../support/controllers';
import { agreedLeader, ETCD_VERSION, NAMESPACE, RevisionWriter, startReady, waitFor, waitReady, withMember } from '../support/etcd-cluster';
import { find, Manifest, renderDocument, synth, testChart } from '../support/manifests';
import { Partition, partitionUnavailable, removeAll } from '../support/partition';
import { PodRunner } from '../support/pod-runner';
import { describeWithEtcd } from '../support/requires-etcd';
import { usePodRunner } from '../support/runner-fixture';

const reach = (i: number, extra: Partial<ReachableProbe> = {}): ReachableProbe => ({
  reachable: true, name: `kv-${i}`, endpoint: `http://kv-${i}:2379`, id: String(100 + i), raftTerm: 5, raftIndex: 900, revision: 700, hasLeader: false, isLearner: false, ...extra,
});
const down = (i: number): MemberProbe => ({ reachable: false, name: `kv-${i}`, endpoint: `http://kv-${i}:2379`, error: '14 UNAVAILABLE: No connection established' });
const names = (n: number) => Array.from({ length: n }, (_, i) => `kv-${i}`);
const input = (probes: MemberProbe[], extra: Partial<QuorumRecoveryInput> = {}): QuorumRecoveryInput => ({
  members: names(3), probes, allowDataLoss: true, source: 'auto', ...extra,
});
const snapshot = (revision: number) => ({ file: 'kv-backup-1.db', revision });

describe('planQuorumRecovery', () => {
  test('quorum holds (2 of 3 answer with a leader): no recovery, and it says so', () => {
    const plan = planQuorumRecovery(input([reach(0, { hasLeader: true }), reach(1, { hasLeader: true }), down(2)]));
    expect(plan.outcome).toBe('not-needed');
    expect(plan.procedure).toBeUndefined();
    expect(plan.reason).toBe('quorum holds: 2 of 3 member(s) answer (kv-0, kv-1), 2 with a leader; a majority is 2. Nothing to recover: a lost minority is replaced by the usual membership change.');
    expect(plan.quorum).toEqual({ listed: 3, majority: 2, answering: ['kv-0', 'kv-1'], withLeader: ['kv-0', 'kv-1'], silent: [{ name: 'kv-2', error: '14 UNAVAILABLE: No connection established' }] });
  });

  test('a majority answering without a leader (an election under way): wait, no quorum loss', () => {
    const plan = planQuorumRecovery(input([reach(0), reach(1), reach(2)]));
    expect(plan.outcome).toBe('wait');
    expect(plan.reason).toBe('no quorum loss: 3 of 3 member(s) answer (kv-0, kv-1, kv-2), 0 with a leader; a majority is 2. A majority answers, so it elects a leader once an election is over: probe again.');
    expect(planQuorumRecovery(input([reach(0), reach(1), down(2)])).outcome).toBe('wait');
  });

  test('a minority that still sees a leader: wait, the majority may be alive out of reach', () => {
    const plan = planQuorumRecovery(input([reach(0, { hasLeader: true }), down(1), down(2)]));
    expect(plan.outcome).toBe('wait');
    expect(plan.reason).toMatch(/^quorum may still hold: 1 of 3 member\(s\) answer \(kv-0\), 1 with a leader; .* kv-0 still see\(s\) a leader\. .*network partition.*two clusters serving: probe again\.$/);
  });

  test('the survivor: highest committed raft index first, not the highest term (a lone member campaigns, its term grows)', () => {
    const probes = [reach(0, { raftIndex: 900, raftTerm: 40, revision: 700 }), reach(1, { raftIndex: 950, raftTerm: 6, revision: 720 }), down(2), down(3), down(4)];
    const plan = planQuorumRecovery(input(probes, { members: names(5), source: 'survivor' }));
    expect(plan.outcome).toBe('recover');
    expect(plan.procedure).toEqual(expect.objectContaining({ source: 'survivor', survivor: probes[1], rejoin: ['kv-0', 'kv-2', 'kv-3', 'kv-4'] }));
  });

  test.each<[string, Partial<ReachableProbe>, Partial<ReachableProbe>, string]>([
    ['the higher revision at the same index', { revision: 701 }, {}, 'kv-2'],
    ['the higher term at the same index and revision', {}, { raftTerm: 6 }, 'kv-10'],
    ['the lower name (numeric order) when nothing else differs', {}, {}, 'kv-2'],
  ])('ties: %s', (_, a, b, chosen) => {
    const probes = [reach(2, a), { ...reach(10, b), name: 'kv-10' }];
    const members = ['kv-2', 'kv-10', 'kv-11', 'kv-12', 'kv-13'];
    for (const order of [probes, [...probes].reverse()]) {
      const plan = planQuorumRecovery(input(order, { members }));
      expect(plan.procedure?.source === 'survivor' && plan.procedure.survivor.name).toBe(chosen);
    }
  });

  test('a learner is neither counted nor chosen', () => {
    const plan = planQuorumRecovery(input([reach(0, { isLearner: true, raftIndex: 5000, hasLeader: true }), reach(1), down(2)]));
    expect(plan.outcome).toBe('recover');
    expect(plan.quorum.silent).toEqual([{ name: 'kv-0', error: 'answers as a learner' }, expect.objectContaining({ name: 'kv-2' })]);
    expect(plan.procedure?.source === 'survivor' && plan.procedure.survivor.name).toBe('kv-1');
  });

  test('from a survivor without a snapshot: acknowledged writes after its revision may be lost, how many cannot be read', () => {
    const plan = planQuorumRecovery(input([reach(0, { revision: 1234 }), down(1), down(2)], { source: 'survivor' }));
    expect(plan.procedure?.dataLoss).toEqual({
      lostRevisions: 0,
      mayLoseAfterRevision: 1234,
      statement: 'writes acknowledged after revision 1234 may be lost: the lost majority (kv-1, kv-2) may have committed revisions beyond 1234, at most as many as they had beyond it, which cannot be read.',
    });
  });

  test('from a survivor with a snapshot behind it, and with one ahead of it', () => {
    const behind = planQuorumRecovery(input([reach(0, { revision: 1234 }), down(1), down(2)], { source: 'survivor', snapshot: snapshot(1000) }));
    expect(behind.procedure?.dataLoss.lostRevisions).toBe(0);
    expect(behind.procedure?.dataLoss.statement).toMatch(/The snapshot kv-backup-1\.db \(revision 1000\) is 234 revision\(s\) behind kv-0: it holds nothing kv-0 lacks\.$/);
    const ahead = planQuorumRecovery(input([reach(0, { revision: 1234 }), down(1), down(2)], { source: 'survivor', snapshot: snapshot(1300) }));
    expect(ahead.procedure?.dataLoss).toEqual(expect.objectContaining({ lostRevisions: 66, mayLoseAfterRevision: 1234 }));
    expect(ahead.procedure?.dataLoss.statement).toMatch(/the snapshot kv-backup-1\.db holds revision 1300, 66 revision\(s\) beyond kv-0: those are lost for certain on this path/);
  });

  test('from a snapshot: the survivor\'s revision minus the snapshot\'s; unknown when no member answers', () => {
    const counted = planQuorumRecovery(input([reach(0, { revision: 1234 }), down(1), down(2)], { source: 'snapshot', snapshot: snapshot(1000) }));
    expect(counted.outcome).toBe('recover');
    expect(counted.procedure).toEqual({
      source: 'snapshot',
      snapshot: snapshot(1000),
      restore: ['kv-0', 'kv-1', 'kv-2'],
      dataLoss: {
        lostRevisions: 234,
        mayLoseAfterRevision: 1234,
        statement: '234 revision(s) are lost: the snapshot kv-backup-1.db holds revision 1000 and kv-0 answers at revision 1234 (revisions 1001 to 1234); and any the lost members had committed beyond 1234, which cannot be read.',
      },
    });
    const blind = planQuorumRecovery(input([down(0), down(1), down(2)], { snapshot: snapshot(1000) }));
    expect(blind.outcome).toBe('recover');
    expect(blind.procedure?.source).toBe('snapshot');
    expect(blind.procedure?.dataLoss.lostRevisions).toBeUndefined();
    expect(blind.procedure?.dataLoss.statement).toMatch(/^unknown: no member answers/);
  });

  test('auto: the survivor unless the snapshot is ahead of it', () => {
    const source = (rev: number) => planQuorumRecovery(input([reach(0, { revision: 1000 }), down(1), down(2)], { snapshot: snapshot(rev) })).procedure?.source;
    expect(source(900)).toBe('survivor');
    expect(source(1000)).toBe('survivor');
    expect(source(1001)).toBe('snapshot');
  });

  test('refused without allowDataLoss, with what it would lose; the printed plan says how to allow it', () => {
    const plan = planQuorumRecovery(input([reach(2, { revision: 1234, raftIndex: 1500, raftTerm: 7, id: '8e9e05c52164694d' }), down(0), down(1)], { allowDataLoss: false, source: 'survivor' }));
    expect(plan.outcome).toBe('refused');
    expect(plan.reason).toMatch(/^quorum lost: 1 of 3 member\(s\) answer \(kv-2\), 0 with a leader; a majority is 2; recovering may lose data and allowDataLoss is not set: writes acknowledged after revision 1234 may be lost/);
    expect(describeRecoveryPlan(plan)).toEqual([
      `refused: ${plan.reason}`,
      'no answer from kv-0 (14 UNAVAILABLE: No connection established), kv-1 (14 UNAVAILABLE: No connection established)',
      'would recover from survivor kv-2 (member 8e9e05c52164694d, raft index 1500, term 7, revision 1234):',
      '  1. stop kv-2; start it once with --force-new-cluster on its own data: etcd rewrites the membership to kv-2 alone and keeps its data',
      '  2. once it serves as a 1-member cluster, stop it and start it as usual (never with the flag again)',
      '  3. add kv-0 back: wipe its data, register it as a learner, start it with ETCD_INITIAL_CLUSTER_STATE=existing, promote it once caught up',
      '  4. add kv-1 back: wipe its data, register it as a learner, start it with ETCD_INITIAL_CLUSTER_STATE=existing, promote it once caught up',
      'data loss: writes acknowledged after revision 1234 may be lost: the lost majority (kv-0, kv-1) may have committed revisions beyond 1234, at most as many as they had beyond it, which cannot be read.',
      'set allowDataLoss to recover this way',
    ]);
    const restore = planQuorumRecovery(input([down(0), down(1), down(2)], { allowDataLoss: false, snapshot: snapshot(10) }));
    expect(restore.outcome).toBe('refused');
    expect(describeRecoveryPlan(restore).slice(2)).toEqual([
      'would recover from the snapshot kv-backup-1.db (revision 10):',
      '  1. stop every member; lay out the data of kv-0, kv-1, kv-2 from the snapshot with a new cluster token (etcdctl snapshot restore, a new data directory each)',
      '  2. start every member: a new logical cluster holding the snapshot\'s data',
      'data loss: unknown: no member answers, so nothing says how far the store had gone beyond the snapshot kv-backup-1.db (revision 10); every write after revision 10 is lost.',
      'set allowDataLoss to recover this way',
    ]);
  });

  test.each<[string, QuorumRecoveryInput, RegExp]>([
    ['no survivor and no snapshot', input([down(0), down(1), down(2)]), /no voting member answers and no snapshot is given: the data went with the members, there is nothing to recover from/],
    ['the survivor asked for, none answers', input([down(0), down(1), down(2)], { source: 'survivor', snapshot: snapshot(5) }), /no survivor to recover from: the snapshot kv-backup-1\.db \(revision 5\) can be restored instead/],
    ['the snapshot asked for, none given', input([reach(0), down(1), down(2)], { source: 'snapshot' }), /no snapshot is given to restore: kv-0 \(revision 700\) can be recovered from instead/],
    ['no member listed', input([], { members: [] }), /no member is listed/],
  ])('cannot recover (%s): it says why', (_, given, reason) => {
    const plan = planQuorumRecovery(given);
    expect(plan.outcome).toBe('impossible');
    expect(plan.procedure).toBeUndefined();
    expect(plan.reason).toMatch(reason);
    expect(planQuorumRecovery({ ...given, allowDataLoss: false }).outcome).toBe('impossible');
  });
});

describe('the recovery helpers', () => {
  const document = new KVStore(testChart(NAMESPACE), 'kv', { engine: Engine.etcd({ version: ETCD_VERSION }) }).document;
  const memberArgs: string[] = find(synth(renderDocument(testChart(NAMESPACE), document)), 'StatefulSet').spec.template.spec.containers[0].args;

  test('forceNewClusterArgs: the member\'s rendered args, its name pinned, the flag once at the end', () => {
    const args = forceNewClusterArgs(memberArgs, 'kv-2');
    expect(args).toEqual([
      ...memberArgs.map((a) => a.replace(/\$\(POD_NAME\)/g, 'kv-2')),
      '--force-new-cluster',
    ]);
    expect(args.slice(0, 2)).toEqual(['--name=kv-2', '--data-dir=/var/lib/kvstore/data/etcd']);
    expect(args).toContain('--advertise-client-urls=http://kv-2.kv-peers.$(POD_NAMESPACE).svc.cluster.local:2379');
    expect(forceNewClusterArgs(args, 'kv-2')).toEqual(args);
    expect(() => forceNewClusterArgs(['--listen-client-urls=http://x:2379'], 'kv-2')).toThrow(/no --name=…: not an etcd member's container/);
  });

  test('rejoinInitialCluster: the current members and the joining one, whatever their ordinals', () => {
    const url = (i: number) => `http://kv-${i}.kv-peers.kvtest.svc.cluster.local:2380`;
    const survivor: Member = { id: '1', name: 'kv-2', peerURLs: [url(2)], isLearner: false };
    const learner: Member = { id: '2', name: '', peerURLs: [url(0)], isLearner: true };
    expect(rejoinInitialCluster([survivor, learner], { name: 'kv-0', peerURL: url(0) })).toBe(`kv-2=${url(2)},kv-0=${url(0)}`);
    expect(rejoinInitialCluster([survivor], { name: 'kv-0', peerURL: url(0) })).toBe(`kv-2=${url(2)},kv-0=${url(0)}`);
    expect(() => rejoinInitialCluster([survivor, learner], { name: 'kv-1', peerURL: url(1) })).toThrow(/member 2 .* has not published its name yet: finish adding it before kv-1/);
  });

  test('parseSnapshotStatus reads etcdctl\'s JSON, and refuses anything else', () => {
    expect(parseSnapshotStatus('{"hash":1761499438,"revision":2,"totalKey":5,"totalSize":20480}', 's.db')).toEqual({ file: 's.db', revision: 2 });
    expect(() => parseSnapshotStatus('+----+', 's.db')).toThrow(/snapshot s\.db: the status is not JSON/);
    expect(() => parseSnapshotStatus('{"hash":1}', 's.db')).toThrow(/snapshot s\.db: the status gives no revision/);
  });
});

/** The comment on every partition rule this file adds, and the name of its cgroup. */
const TAG = `kvstore-recovery-${process.pid}`;

describeWithEtcd(`quorum-loss recovery on etcd ${ETCD_VERSION}`, () => {
  const run = usePodRunner();
  let partition: Partition | undefined;
  const healLag = () => {
    const p = partition;
    partition = undefined;
    p?.heal();
  };
  afterEach(healLag);
  afterAll(() => removeAll(TAG));
  if (partitionUnavailable(TAG)) process.stderr.write(`the survivor will not lag behind (no partition): ${partitionUnavailable(TAG)}\n`);
  const document = new KVStore(testChart(NAMESPACE), 'kv', { engine: Engine.etcd({ version: ETCD_VERSION }) }).document;
  const render = (doc: StoreDocument = document) => synth(renderDocument(testChart(NAMESPACE), doc));
  const pods = names(3);
  const claimOf = (pod: string) => `data-${pod}`;

  /** The manifests with the bootstrap ConfigMap's data changed (what the reconciler applies). */
  const withBootstrap = (manifests: Manifest[], data: Record<string, string>): Manifest[] =>
    manifests.map((o) => (o.kind === 'ConfigMap' && o.metadata.name === 'kv-bootstrap' ? { ...o, data: { ...o.data, ...data } } : o));
  /** Each member's peer URL, as the rendered bootstrap list gives it. */
  const peerURLs = (manifests: Manifest[]): Record<string, string> =>
    Object.fromEntries(find(manifests, 'ConfigMap', 'kv-bootstrap').data.ETCD_INITIAL_CLUSTER.split(',').map((e: string) => e.split('=')));

  /** Every key under w/ `pod` holds (serializable: its own data), with its value. */
  const heldBy = (r: PodRunner, pod: string) => withMember(r, pod, (c) => c.getAll().prefix('w/').serializable(true).strings());
  const valueOf = (key: string) => `v${Number(key.slice(2))}`;

  /**
   * Starts 3 members, writes until `before` keys are acknowledged (calling `midway` at half), then kills
   * the leader and another member by SIGKILL and deletes their data. With `lag`, the survivor is cut off
   * from the others on the peer port (a network partition) while the last `lag` writes are acknowledged,
   * so it lacks them. The cut stays until the survivor's process stops (healLag): healed earlier, the
   * dead members' kernels would still deliver what their sockets held.
   */
  async function destroyMajority(r: PodRunner, options: { before: number; lag?: number; midway?: (writer: RevisionWriter) => Promise<void> }) {
    await startReady(r, 'kv');
    const leader = await agreedLeader(r, pods);
    // The survivor is a follower: the one that can lack the last writes.
    const survivor = pods.filter((p) => p !== leader).pop()!;
    const lost = pods.filter((p) => p !== survivor);
    const writer = new RevisionWriter(r, lost);
    writer.start();
    const lag = options.lag ?? 0;
    await waitFor('writes before the destruction', async () => writer.acked.size >= options.before / 2, 60_000);
    await options.midway?.(writer);
    await waitFor('writes before the destruction', async () => writer.acked.size >= options.before - lag, 60_000);
    partition = lag > 0 && !partitionUnavailable(TAG) ? new Partition(TAG) : undefined;
    partition?.isolate(r.pid(survivor), r.ip(survivor), lost.map((p) => r.ip(p)));
    const ackedAtCut = writer.acked.size;
    await waitFor('writes while the survivor lags', async () => writer.acked.size >= options.before, 60_000);
    await Promise.all(lost.map((p) => r.kill(p, 'SIGKILL')));
    for (const p of lost) r.removeClaimData(claimOf(p));
    const acked = await writer.stop();
    return { survivor, lost, acked, lagged: partition ? acked.size - ackedAtCut : 0 };
  }

  /** Probes until the plan is settled (not `wait`: the survivor has noticed the leader is gone). */
  async function settledPlan(r: PodRunner, extra: Partial<QuorumRecoveryInput>): Promise<{ plan: QuorumRecoveryPlan; probes: MemberProbe[] }> {
    return waitFor('a settled recovery plan', async () => {
      const probes = await probeMembers(pods.map((p) => ({ name: p, endpoint: r.url(p) })), { callTimeoutMs: 1000 });
      const plan = planQuorumRecovery({ members: pods, probes, allowDataLoss: true, source: 'auto', ...extra });
      return plan.outcome === 'wait' ? undefined : { plan, probes };
    }, 20_000, 200);
  }

  test('from the survivor: --force-new-cluster once, a serving 1-member cluster that lacks only writes past its revision, then 3 members again', async () => {
    const manifests = render();
    const r = run(manifests);
    const { survivor, lost, acked, lagged } = await destroyMajority(r, { before: 300, lag: 50 });

    // Quorum is lost: the survivor commits nothing.
    const refused = await withMember(r, survivor, (c) => c.put('during/loss').value('x').then(() => 'written', (e: Error) => e.message));
    expect(refused).not.toBe('written');

    const refusedPlan = await settledPlan(r, { source: 'survivor', allowDataLoss: false });
    expect(refusedPlan.plan.outcome).toBe('refused');
    const { plan, probes } = await settledPlan(r, { source: 'survivor' });
    process.stdout.write(`${describeRecoveryPlan(plan).join('\n')}\n`);
    expect(plan.outcome).toBe('recover');
    if (plan.procedure?.source !== 'survivor') throw new Error(`expected a survivor procedure, got ${describeRecoveryPlan(plan).join('\n')}`);
    const probed = probes.find((p) => p.name === survivor) as ReachableProbe;
    expect(plan.procedure.survivor).toEqual(probed);
    expect(plan.procedure.rejoin).toEqual(lost);
    const revision = plan.procedure.dataLoss.mayLoseAfterRevision!;

    // The survivor's pod stops; a one-off pod on its claim starts etcd with --force-new-cluster.
    await r.stop(survivor);
    healLag();
    const sts = find(manifests, 'StatefulSet');
    const spec = JSON.parse(JSON.stringify(statefulSetPodSpec(sts.spec, sts.spec.template, survivor)));
    delete spec.hostname;
    delete spec.subdomain;
    spec.containers[0].args = forceNewClusterArgs(spec.containers[0].args, survivor);
    const oneOff = `${survivor}-force-new-cluster`;
    r.definePod({ name: oneOff, spec });
    r.start(oneOff);
    const standalone = await waitStandalone(r.url(oneOff), { retryTimeoutMs: 30_000 });
    expect(standalone.id).toBe(probed.id);
    expect(standalone.revision).toBeGreaterThanOrEqual(revision);
    await r.stop(oneOff);

    // Started as usual (no flag): a 1-member cluster that serves writes.
    r.start(survivor);
    await waitReady(r, [survivor]);
    await withMember(r, survivor, async (c) => {
      expect((await c.cluster.memberList({})).members.map((m) => [m.ID, m.name])).toEqual([[probed.id, survivor]]);
      await c.put('after/recovery').value('1');
      expect(await c.get('during/loss').string()).toBeNull();
    });

    // What it lacks is exactly what the plan said may be lost: acknowledged writes past its revision.
    const held = await heldBy(r, survivor);
    const missing = [...acked.keys()].filter((k) => held[k] !== valueOf(k));
    expect(acked.size).toBeGreaterThanOrEqual(300);
    expect(missing.filter((k) => acked.get(k)! <= revision)).toEqual([]);
    // Cut off through the last writes, it lacks them (all but one, in flight at the cut, at most): the loss the plan warned of.
    if (lagged > 0) expect(missing.length).toBeGreaterThanOrEqual(lagged - 1);
    expect(revision).toBe(probed.revision);
    process.stdout.write(`survivor ${survivor} at revision ${revision}: ${acked.size} acknowledged writes, ${lagged} after it was cut off, ${missing.length} missing (revisions ${missing.map((k) => acked.get(k)).join(', ') || 'none'})\n`);

    // The lost members back, one at a time: wiped, learner, started with the current list, promoted.
    const urls = peerURLs(manifests);
    const running = [survivor];
    for (const pod of plan.procedure.rejoin) {
      const membership = new EtcdMembership(running.map((p) => r.url(p)));
      try {
        r.removeClaimData(claimOf(pod));
        const added = await membership.addLearner(urls[pod]);
        const initial = rejoinInitialCluster(await membership.list(), { name: pod, peerURL: urls[pod] });
        r.update(withBootstrap(manifests, { ETCD_INITIAL_CLUSTER: initial, ETCD_INITIAL_CLUSTER_STATE: 'existing' }));
        r.start(pod);
        await waitFor(`${pod} to start`, () => r.probe(pod, 'startupProbe'));
        await membership.promote(added.id);
      } finally {
        membership.close();
      }
      running.push(pod);
      await waitReady(r, running);
    }

    const membership = new EtcdMembership(pods.map((p) => r.url(p)));
    try {
      expect((await membership.list()).map((m) => [m.name, m.isLearner]).sort()).toEqual(pods.map((p) => [p, false]));
      expect((await membership.list()).find((m) => m.name === survivor)!.id).toBe(probed.id);
      for (const i of [0, 1, 2]) await membership.waitCaughtUp(i);
    } finally {
      membership.close();
    }
    await agreedLeader(r, pods);
    for (const pod of pods) expect({ pod, held: await heldBy(r, pod) }).toEqual({ pod, held });
    await withMember(r, lost[0], async (c) => { await c.put('after/rejoin').value('3'); });
    for (const pod of pods) expect(await withMember(r, pod, (c) => c.get('after/rejoin').string())).toBe('3');
    r.assertNoUnexpectedExits();
  });

  test('from a snapshot: every member restored by the library\'s restore Jobs; keys up to the snapshot\'s revision are there, later ones are not, as the plan counted', async () => {
    const manifests = render();
    const r = run(manifests);
    const claim = 'kv-backups';
    const file = 'before-loss.db';
    let ackedBeforeSnapshot = new Set<string>();
    const { survivor, acked } = await destroyMajority(r, { before: 300, midway: async (writer) => {
      // Saved from a member mid-writes, into the backup claim the restore Jobs mount.
      ackedBeforeSnapshot = new Set(writer.acked.keys());
      const local = join(r.workDir, file);
      execFileSync('etcdctl', [`--endpoints=${r.url(pods[0])}`, 'snapshot', 'save', local], { env: { ...process.env, ETCDCTL_API: '3' }, stdio: 'ignore' });
      mkdirSync(r.claimDir(claim), { recursive: true });
      copyFileSync(local, join(r.claimDir(claim), file));
      chmodSync(join(r.claimDir(claim), file), 0o644);
    } });
    const status = execFileSync('etcdctl', ['snapshot', 'status', join(r.claimDir(claim), file), '-w', 'json'], { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'utf8' });
    const snap = parseSnapshotStatus(status, file);

    const { plan, probes } = await settledPlan(r, { source: 'snapshot', snapshot: snap });
    process.stdout.write(`${describeRecoveryPlan(plan).join('\n')}\n`);
    expect(plan.outcome).toBe('recover');
    if (plan.procedure?.source !== 'snapshot') throw new Error(`expected a snapshot procedure, got ${describeRecoveryPlan(plan).join('\n')}`);
    const probed = probes.find((p) => p.name === survivor) as ReachableProbe;
    expect(plan.procedure.dataLoss.lostRevisions).toBe(probed.revision - snap.revision);
    expect(plan.procedure.dataLoss.lostRevisions).toBeGreaterThan(0);

    // Every member stopped, every member's data laid out from the snapshot by the library's Jobs.
    await r.stop(survivor);
    const restored: StoreDocument = { ...document, spec: { ...document.spec, restore: { snapshot: file, claimName: claim } } };
    const store = StoreDefinition.fromDocument(restored);
    const parts = { spec: store.spec, engine: store.engine, names: storeNames(store.spec.name), namespace: NAMESPACE, context: store.engineContext('existing') };
    for (const [i, pod] of plan.procedure.restore.entries()) {
      expect(pod).toBe(pods[i]);
      const job = restoreJob(parts, i, `kv-restore-${i}`);
      r.definePod({ name: job.metadata.name, spec: job.spec.template.spec });
      const exit = await r.start(job.metadata.name, { runToCompletion: true }).exited;
      expect({ job: job.metadata.name, exit, log: exit.code === 0 ? '' : r.logTail(job.metadata.name) }).toEqual({ job: job.metadata.name, exit: { code: 0, signal: null }, log: '' });
    }
    r.update(render(restored));
    r.startStatefulSet('kv');
    await waitReady(r, pods, 60_000);

    // The new cluster is at the snapshot's revision: the plan's count of lost revisions was right.
    for (const pod of pods) expect(Number((await withMember(r, pod, (c) => c.maintenance.status())).header.revision)).toBe(snap.revision);
    const members = await withMember(r, pods[0], (c) => c.cluster.memberList({}));
    expect(members.members.map((m) => m.name).sort()).toEqual(pods);
    expect(members.members.map((m) => m.ID)).not.toContain(probed.id);
    const held = await withMember(r, pods[0], (c) => c.getAll().prefix('w/').strings());
    expect([...ackedBeforeSnapshot].filter((k) => held[k] !== valueOf(k))).toEqual([]);
    expect([...acked].filter(([k, rev]) => rev <= snap.revision && held[k] !== valueOf(k))).toEqual([]);
    const after = [...acked].filter(([, rev]) => rev > snap.revision).map(([k]) => k);
    expect(after.length).toBeGreaterThan(0);
    expect(after.filter((k) => k in held)).toEqual([]);
    process.stdout.write(`snapshot at revision ${snap.revision}, survivor at ${probed.revision}: ${after.length} acknowledged writes after the snapshot lost, ${acked.size - after.length} kept\n`);
    await withMember(r, pods[1], async (c) => { await c.put('after/restore').value('1'); });
    r.assertNoUnexpectedExits();
  });
});
