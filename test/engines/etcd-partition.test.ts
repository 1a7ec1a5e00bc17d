// A network partition on real etcd (the installed 3.4.x) from the synthesized manifests: the leader
// is cut off from the two other members on the peer port (iptables rules, see ../support/partition.ts)
// during continuous writes through those two, then the cut is healed. Needs root and iptables besides
// etcd; skips with a hint without them, never under CI=true.
import { describeWithEtcd } from '../support/requires-etcd';
import {
  agreedLeader, ETCD_VERSION, leaderSeenBy, memberClient, MemberWriter, missingOn, readAll, sleep, startReady, synthStore, waitFor, withMember,
} from '../support/etcd-cluster';
import { Partition, partitionUnavailable, removeAll } from '../support/partition';
import type { PodRunner } from '../support/pod-runner';
import { usePodRunner } from '../support/runner-fixture';

/** The comment on every rule this file adds, and the name of its cgroup. */
const TAG = `kvstore-test-${process.pid}`;

const unavailable = partitionUnavailable(TAG);
if (unavailable && process.env.CI === 'true') {
  throw new Error(`CI=true, so the partition test must run, but ${unavailable}`);
}
if (unavailable) process.stderr.write(`skipping the partition test: ${unavailable}\n`);
const describeWithPartition = unavailable ? describe.skip : describeWithEtcd;

/** Acknowledged keys that `pod` does not serve from its own copy (a serializable read). */
async function missingLocally(r: PodRunner, pod: string, prefix: string, acked: Map<string, string>): Promise<string[]> {
  const found = await withMember(r, pod, (c) => c.getAll().prefix(prefix).serializable(true).strings());
  return [...acked].filter(([k, v]) => found[k] !== v).map(([k]) => k);
}

describeWithPartition(`etcd ${ETCD_VERSION}: the leader partitioned from the other members`, () => {
  const run = usePodRunner();
  let partition: Partition | undefined;

  afterEach(() => {
    const p = partition;
    partition = undefined;
    p?.heal();
  });
  afterAll(() => removeAll(TAG));

  test('the majority elects a new leader and goes on writing, the old leader commits nothing, rejoins and catches up; no acknowledged write is lost', async () => {
    const r = run(synthStore('orders'));
    const pods = await startReady(r, 'orders');
    const leader = await agreedLeader(r, pods);
    const others = pods.filter((p) => p !== leader);

    // Writes go through the two members that keep quorum, so they can go on during the partition.
    const writer = new MemberWriter(r, others, 'p/');
    writer.start();
    let electionMs: number;
    let catchUpMs: number;
    let duringPartition: number;
    let isolatedPut: string;
    let rules: number;
    try {
      await waitFor('50 writes before the partition', async () => writer.acked.size >= 50);

      partition = new Partition(TAG);
      const cutAt = Date.now();
      partition.isolate(r.pid(leader), r.ip(leader), others.map((p) => r.ip(p)));
      rules = partition.ruleCount;
      const ackedAtCut = writer.acked.size;

      // (a) The majority elects one of its own (agreed by both, not the old leader) within 15 s.
      const newLeader = await agreedLeader(r, others, leader, 15_000);
      electionMs = Date.now() - cutAt;

      // (b) Writes go on through the majority under its new leader.
      const ackedAtElection = writer.acked.size;
      await waitFor('50 writes through the majority after the election', async () => writer.acked.size >= ackedAtElection + 50, 15_000);

      // (c) The old leader is on its own: it does not know the new leader and cannot commit a write.
      expect(await leaderSeenBy(r, leader)).not.toBe(newLeader);
      const client = memberClient(r, leader);
      try {
        isolatedPut = await Promise.race([
          client.put('lost/through-old-leader').value('x').then(() => 'acknowledged', (e: Error) => `failed: ${e.message}`),
          sleep(3000).then(() => 'no answer within 3 s'),
        ]);
      } finally {
        client.close();
      }
      expect(isolatedPut).not.toBe('acknowledged');
      duringPartition = writer.acked.size - ackedAtCut;

      // Heal; (d) the old leader follows a leader of the majority and catches up from its own copy.
      const ackedBeforeHeal = new Map(writer.acked);
      const p = partition;
      partition = undefined;
      p.heal();
      const healedAt = Date.now();
      await waitFor(`${leader} to follow a leader among ${others.join(', ')}`, async () => others.includes((await leaderSeenBy(r, leader)) ?? ''), 20_000);
      await waitFor(`${leader} to serve every write acknowledged before the heal`, async () => (await missingLocally(r, leader, 'p/', ackedBeforeHeal)).length === 0, 20_000);
      catchUpMs = Date.now() - healedAt;
      const ackedAtCatchUp = writer.acked.size;
      await waitFor('50 writes after the heal', async () => writer.acked.size >= ackedAtCatchUp + 50, 15_000);
    } finally {
      await writer.stop();
    }

    // All three agree on a leader again, and it is not the old one (its log missed the partition's writes).
    expect(others).toContain(await agreedLeader(r, pods));
    // (e) Nothing acknowledged is lost on any member; the old leader's own copy has everything too.
    for (const pod of pods) expect({ pod, missing: await missingOn(r, pod, 'p/', writer.acked) }).toEqual({ pod, missing: [] });
    await waitFor(`${leader} to serve every acknowledged write locally`, async () => (await missingLocally(r, leader, 'p/', writer.acked)).length === 0, 10_000);
    // The write the isolated old leader took was never committed anywhere.
    for (const pod of pods) expect({ pod, lost: await readAll(r, pod, 'lost/') }).toEqual({ pod, lost: {} });
    r.assertNoUnexpectedExits();

    process.stderr.write(`partition of ${leader} (${rules!} rules): new leader after ${electionMs!} ms, ${duringPartition!} writes acknowledged during the partition, ` +
      `the isolated put: ${isolatedPut!}; old leader caught up ${catchUpMs!} ms after the heal; ${writer.acked.size} writes acknowledged, ${writer.failed} failed\n`);
  });
});
