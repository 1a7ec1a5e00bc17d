// etcd membership operations: the pure step choice, and the procedure on real etcd (installed 3.4.x)
// through the pod runner: scale 3 → 5 → 3 one member at a time with continuous writes.
import { Engine, KVStore, StoreDocument } from '../../lib';
import { EtcdMembership, Member, nextMembershipStep } from '../../lib/engines/etcd-membership';
import { ETCD_VERSION, MemberWriter, missingOn, NAMESPACE, sleep, startReady, waitFor, waitReady } from '../support/etcd-cluster';
import { renderDocument, synth, testChart } from '../support/manifests';
import { describeWithEtcd } from '../support/requires-etcd';
import { usePodRunner } from '../support/runner-fixture';

const url = (i: number) => `http://orders-${i}.orders-peers.kvtest.svc.cluster.local:2380`;
const member = (i: number, extra: Partial<Member> = {}): Member => ({ id: String(100 + i), name: `orders-${i}`, peerURLs: [url(i)], isLearner: false, ...extra });
const desired = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `orders-${i}`, peerURL: url(i) }));

describe('nextMembershipStep', () => {
  test('nothing to do when members match', () => {
    expect(nextMembershipStep([0, 1, 2].map((i) => member(i)), desired(3))).toBeUndefined();
  });

  test('growing: add the lowest missing member as a learner', () => {
    expect(nextMembershipStep([0, 1, 2].map((i) => member(i)), desired(5))).toEqual({ action: 'add-learner', name: 'orders-3', peerURL: url(3) });
  });

  test('a learner is promoted before anything else happens', () => {
    expect(nextMembershipStep([member(0), member(1), member(2), member(3, { isLearner: true, name: '' })], desired(5))).toEqual({ action: 'promote', name: 'orders-3' });
  });

  test('shrinking: remove the highest surplus member first', () => {
    expect(nextMembershipStep([0, 1, 2, 3, 4].map((i) => member(i)), desired(3))).toEqual({ action: 'remove', id: '104', name: 'orders-4' });
    expect(nextMembershipStep([0, 1, 2, 3, 10].map((i) => member(i)), desired(3))).toEqual({ action: 'remove', id: '110', name: 'orders-10' });
  });
});

describeWithEtcd(`membership on etcd ${ETCD_VERSION}`, () => {
  const run = usePodRunner();

  /** The manifests for `size` members; `existing` for members joining a running cluster. */
  function manifests(document: StoreDocument, size: number, existing: boolean) {
    return synth(renderDocument(testChart(NAMESPACE), { ...document, spec: { ...document.spec, size } }, { initialClusterState: existing ? 'existing' : 'new' }));
  }

  test('3 → 5 → 3 one member at a time: no acknowledged write lost, writes never stop', async () => {
    const document = new KVStore(testChart(NAMESPACE), 'orders', { engine: Engine.etcd({ version: ETCD_VERSION }) }).document;
    const r = run(manifests(document, 3, false));
    await startReady(r, 'orders');

    // Continuous writes through the three members that stay; record every acknowledgement's time.
    const writer = new MemberWriter(r, ['orders-0', 'orders-1', 'orders-2'], 'm/');
    writer.start();

    const membership = new EtcdMembership([0, 1, 2].map((i) => r.url(`orders-${i}`)));
    const steps: string[] = [];
    try {
      for (const size of [5, 3]) {
        for (;;) {
          const current = await membership.list();
          const step = nextMembershipStep(current, desired(size));
          if (!step) break;
          steps.push(`${step.action} ${step.name}`);
          if (step.action === 'add-learner') {
            // Registered first, then the pod starts and joins the running cluster.
            await membership.addLearner(step.peerURL);
            const ordinal = Number(step.name.split('-')[1]);
            r.update(manifests(document, ordinal + 1, true));
            r.start(step.name);
            await waitFor(`${step.name} to start`, () => r.probe(step.name, 'startupProbe'));
          } else if (step.action === 'promote') {
            const learner = current.find((m) => m.isLearner)!;
            await membership.promote(learner.id);
            await waitReady(r, [step.name]);
          } else {
            // Removed from the cluster first, then the pod goes.
            await membership.remove(step.id);
            await r.stop(step.name);
          }
        }
      }
      expect(steps).toEqual([
        'add-learner orders-3', 'promote orders-3', 'add-learner orders-4', 'promote orders-4',
        'remove orders-4', 'remove orders-3',
      ]);
      expect((await membership.list()).map((m) => [m.name, m.isLearner]).sort()).toEqual([['orders-0', false], ['orders-1', false], ['orders-2', false]]);
      await sleep(500);
    } finally {
      await writer.stop();
      membership.close();
    }

    expect(writer.acked.size).toBeGreaterThan(100);
    // Quorum was never lost: writes were acknowledged without a gap longer than an election.
    const longestGap = Math.max(...writer.ackTimes.slice(1).map((t, i) => t - writer.ackTimes[i]));
    expect(longestGap).toBeLessThan(3000);
    for (const pod of ['orders-0', 'orders-1', 'orders-2']) {
      expect({ pod, missing: (await missingOn(r, pod, 'm/', writer.acked)).length }).toEqual({ pod, missing: 0 });
    }
    r.assertNoUnexpectedExits();
  });
});
