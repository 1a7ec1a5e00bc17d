// The bring-your-own-image engine proven on real etcd: the user configures etcd by hand through
// Engine.custom() and the synthesized StatefulSet forms a cluster (installed etcd, 3.4.x).
import { Chart, Testing } from 'cdk8s';
import { Engine, KVStore, PodManagementPolicy } from '../../lib';
import { ETCD_VERSION, readAll, waitReady, withMember } from '../support/etcd-cluster';
import { synth } from '../support/manifests';
import { PodRunner } from '../support/pod-runner';
import { describeWithEtcd } from '../support/requires-etcd';

let runner: PodRunner | undefined;
afterEach(async () => {
  await runner?.stopAll();
  runner = undefined;
});

function byoStore(size: number) {
  const chart = new Chart(Testing.app(), 'test', { namespace: 'kvtest', disableResourceNameHashes: true });
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
    runner = new PodRunner(byoStore(3), { namespace: 'kvtest' });
    runner.startStatefulSet('byo');
    const pods = runner.podNames('byo');
    await waitReady(runner, pods);

    const members = await withMember(runner, 'byo-1', (c) => c.cluster.memberList({}));
    expect(members.members.map((m) => m.name).sort()).toEqual(['byo-0', 'byo-1', 'byo-2']);
    await withMember(runner, 'byo-2', async (c) => {
      for (let i = 0; i < 20; i++) await c.put(`b/${i}`).value(`v${i}`);
    });
    for (const pod of pods) expect(Object.keys(await readAll(runner, pod, 'b/')).length).toBe(20);
    runner.assertNoUnexpectedExits();
  });
});
