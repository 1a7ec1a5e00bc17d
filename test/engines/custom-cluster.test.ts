// The bring-your-own-image engine proven on real etcd: the user configures etcd by hand through
// Engine.custom() and the synthesized StatefulSet forms a cluster (installed etcd, 3.4.x).
import { Engine, KVStore, PodManagementPolicy } from '../../lib';
import { ETCD_VERSION, NAMESPACE, putKeys, readAll, startReady, withMember } from '../support/etcd-cluster';
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
      env: { ETCD_INITIAL_CLUSTER_TOKEN: 'byo-token' },
      readinessProbe: { httpGet: { path: '/health', port: 'client' }, periodSeconds: 5 },
    }),
  });
  return synth(chart);
}

describeWithEtcd(`custom engine running etcd ${ETCD_VERSION}`, () => {
  test('a user-configured etcd forms a 3-member cluster; writes are readable from every member', async () => {
    const r = run(byoStore(3));
    const pods = await startReady(r, 'byo');

    const members = await withMember(r, 'byo-1', (c) => c.cluster.memberList({}));
    expect(members.members.map((m) => m.name).sort()).toEqual(['byo-0', 'byo-1', 'byo-2']);
    await putKeys(r, 'byo-2', 'b/', 20);
    for (const pod of pods) expect(Object.keys(await readAll(r, pod, 'b/')).length).toBe(20);
    r.assertNoUnexpectedExits();
  });
});
