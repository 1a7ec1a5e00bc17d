// The etcd engine proven on real etcd: the synthesized StatefulSet runs as real etcd processes
// through the pod runner. Proves the installed version (Debian's etcd-server, 3.4.x): the stores
// are synthesized with Engine.etcd({ version: <installed> }), everything else at its default.
import { describeWithEtcd } from '../support/requires-etcd';
import {
  agreedLeader, ETCD_VERSION, MemberWriter, missingOn, putKeys, startReady, synthStore, waitFor, waitReady, withMember,
} from '../support/etcd-cluster';
import { usePodRunner } from '../support/runner-fixture';

const run = usePodRunner();

describeWithEtcd(`etcd ${ETCD_VERSION} cluster from the synthesized manifests`, () => {
  test.each([3, 5])('%i members with the defaults form a healthy cluster; acknowledged writes are readable from every member', async (size) => {
    const r = run(synthStore('orders', { size }));
    const pods = await startReady(r, 'orders');

    const members = await withMember(r, 'orders-0', (c) => c.cluster.memberList({}));
    expect(members.members.map((m) => [m.name, m.peerURLs]).sort()).toEqual(pods.map((p) => [p, [`http://${p}.orders-peers.kvtest.svc.cluster.local:2380`]]));
    expect(members.members.map((m) => m.clientURLs[0]).sort()).toEqual(pods.map((p) => `http://${p}.orders-peers.kvtest.svc.cluster.local:2379`));

    const acked = await putKeys(r, 'orders-0', 'k/', 50);
    for (const pod of pods) expect(await missingOn(r, pod, 'k/', acked)).toEqual([]);
    r.assertNoUnexpectedExits();
  });

  test('failover: the leader is killed, a new one is elected, writes go on, the old one catches up, nothing is lost', async () => {
    const r = run(synthStore('orders'));
    const pods = await startReady(r, 'orders');

    const leader = await agreedLeader(r, pods);
    const leaderId = await withMember(r, leader, async (c) => (await c.maintenance.status()).header.member_id);
    const survivors = pods.filter((p) => p !== leader);
    const writer = new MemberWriter(r, pods, 'w/');
    writer.start();
    try {
      await waitFor('50 writes before the kill', async () => writer.acked.size >= 50);

      await r.kill(leader, 'SIGKILL');
      const newLeader = await agreedLeader(r, survivors, leader);
      expect(survivors).toContain(newLeader);
      const ackedAtElection = writer.acked.size;
      await waitFor('50 more writes with quorum after the kill', async () => writer.acked.size >= ackedAtElection + 50);

      r.start(leader);
      await waitReady(r, [leader]);
    } finally {
      await writer.stop();
    }

    // Same member, same data directory: it rejoined rather than being re-added.
    expect(await withMember(r, leader, async (c) => (await c.maintenance.status()).header.member_id)).toBe(leaderId);
    expect(writer.acked.size).toBeGreaterThan(100);
    for (const pod of pods) expect({ pod, missing: await missingOn(r, pod, 'w/', writer.acked) }).toEqual({ pod, missing: [] });
    r.assertNoUnexpectedExits();
  });

  test('a full restart of every member from its data directory keeps every key', async () => {
    const r = run(synthStore('orders', { volumeClaimTemplates: [{ name: 'data' }, { name: 'wal', storage: '1Gi' }] }));
    const pods = await startReady(r, 'orders');
    const acked = await putKeys(r, 'orders-1', 'r/', 100);

    await Promise.all(pods.map((p) => r.kill(p, 'SIGKILL')));
    await startReady(r, 'orders');

    for (const pod of pods) expect(await missingOn(r, pod, 'r/', acked)).toEqual([]);
    r.assertNoUnexpectedExits();
  });

  test('probes: all pass on a healthy member; without quorum readiness fails while liveness still passes', async () => {
    const r = run(synthStore('orders'));
    await startReady(r, 'orders');
    for (const kind of ['startupProbe', 'livenessProbe', 'readinessProbe'] as const) {
      expect({ kind, ok: await r.probe('orders-0', kind) }).toEqual({ kind, ok: true });
    }

    await r.kill('orders-1');
    await r.kill('orders-2');
    await waitFor('orders-0 to report not ready without quorum', async () => !(await r.probe('orders-0', 'readinessProbe')));
    // Losing quorum must not get the survivor restarted.
    expect(await r.probe('orders-0', 'livenessProbe')).toBe(true);
    expect(await r.probe('orders-0', 'startupProbe')).toBe(true);

    r.start('orders-1');
    await waitReady(r, ['orders-0', 'orders-1']);
    r.assertNoUnexpectedExits();
  });

  test('a member that has never had quorum serves no HTTP, so only the TCP startup probe passes', async () => {
    const r = run(synthStore('orders'));
    r.start('orders-0');
    await waitFor('orders-0 to accept TCP', () => r.probe('orders-0', 'startupProbe'));
    expect(await r.probe('orders-0', 'livenessProbe')).toBe(false);
    expect(await r.probe('orders-0', 'readinessProbe')).toBe(false);
    r.assertNoUnexpectedExits();
  });

  test('a broken member list fails with etcd\'s own message, reported with the log tail', async () => {
    const objects = synthStore('orders');
    // The member list lives in the bootstrap ConfigMap (loaded with envFrom): drop orders-2 from it.
    const data = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'orders-bootstrap')!.data;
    data.ETCD_INITIAL_CLUSTER = data.ETCD_INITIAL_CLUSTER.split(',').filter((m: string) => !m.startsWith('orders-2=')).join(',');
    const r = run(objects);
    r.startStatefulSet('orders');

    await waitFor('orders-2 to exit', async () => r.unexpectedExits.length > 0);
    expect(r.unexpectedExits.map((e) => e.pod)).toEqual(['orders-2']);
    expect(() => r.assertNoUnexpectedExits()).toThrow(/pod orders-2 exited unexpectedly \(code 1[\s\S]*couldn't find local name "orders-2" in the initial cluster configuration/);
  });
});
