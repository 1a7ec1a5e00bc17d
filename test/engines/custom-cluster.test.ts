// The bring-your-own-image engine proven on real etcd: the user configures etcd by hand through
// Engine.custom() and the synthesized StatefulSet forms a cluster (installed etcd, 3.4.x).
import { Engine, KVStore, PodManagementPolicy } from '../../lib';
import { environOf, ETCD_VERSION, NAMESPACE, putKeys, readAll, startReady, withMember } from '../support/etcd-cluster';
import { synth, testChart } from '../support/manifests';
import { describeWithEtcd } from '../support/requires-etcd';
import { usePodRunner } from '../support/runner-fixture';

const run = usePodRunner();

function byoStore(size: number) {
  const chart = testChart(NAMESPACE);
  const peer = (i: number) => `byo-${i}=http://byo-${i}.byo-peers.$(POD_NAMESPACE).svc.cluster.local:2380`;
  new KVStore(chart, 'byo', {
    size,
    containerImage: `quay.io/coreos/etcd:v${ETCD_VERSION}`,
    podManagementPolicy: PodManagementPolicy.PARALLEL,
    engine: Engine.custom({
      clientPort: 2379,
      peerPort: 2380,
      command: ['/usr/local/bin/etcd'],
      args: [
        '--name=$(POD_NAME)',
        '--data-dir=/var/lib/kvstore/data/etcd',
        '--listen-peer-urls=http://$(POD_IP):2380',
        '--listen-client-urls=http://$(POD_IP):2379',
        '--advertise-client-urls=http://$(POD_NAME).byo-peers.$(POD_NAMESPACE).svc.cluster.local:2379',
        '--initial-advertise-peer-urls=http://$(POD_NAME).byo-peers.$(POD_NAMESPACE).svc.cluster.local:2380',
        `--initial-cluster=${Array.from({ length: size }, (_, i) => peer(i)).join(',')}`,
        '--initial-cluster-state=new',
      ],
      // A value kept out of the YAML: from a Secret, as a password would be.
      secretEnv: { ETCD_INITIAL_CLUSTER_TOKEN: { secretName: 'byo-secrets', key: 'token' } },
      readinessProbe: { httpGet: { path: '/health', port: 'client' }, periodSeconds: 5 },
    }),
  });
  const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'byo-secrets', namespace: NAMESPACE }, data: { token: Buffer.from('byo-token').toString('base64') } };
  return [...synth(chart), secret];
}

describeWithEtcd(`custom engine running etcd ${ETCD_VERSION}`, () => {
  test('a user-configured etcd forms a 3-member cluster; writes are readable from every member', async () => {
    const r = run(byoStore(3));
    const pods = await startReady(r, 'byo');

    const members = await withMember(r, 'byo-1', (c) => c.cluster.memberList({}));
    expect(members.members.map((m) => m.name).sort()).toEqual(['byo-0', 'byo-1', 'byo-2']);
    await putKeys(r, 'byo-2', 'b/', 20);
    for (const pod of pods) expect(Object.keys(await readAll(r, pod, 'b/')).length).toBe(20);
    // The Secret's value reached the members, and only through the Secret.
    expect(environOf(r.pid('byo-0')).ETCD_INITIAL_CLUSTER_TOKEN).toBe('byo-token');
    expect(JSON.stringify(byoStore(3).filter((o) => o.kind !== 'Secret'))).not.toContain('byo-token');
    r.assertNoUnexpectedExits();
  });
});
