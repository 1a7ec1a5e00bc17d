// A quorum-loss recovery under faults, on real etcd: a 3-member store loses two members' data for good
// (kv-0 and kv-1), and the maintenance run that recovers it from the survivor (kvstore-reconcile
// --maintain --recover-quorum-loss, a child process, --json) is SIGKILLed right after each step
// boundary of the recovery in turn, one kill per round; the next run (another holder, once the killed
// run's Lease expired, as a retried Job) must finish it: three healthy voting members, no one-off pod,
// no operation mark, every key acknowledged before the loss (and every write acknowledged during the
// runs, once the survivor served again), and the lost members' claims deleted only after the survivor
// served alone. A step boundary is a log line carrying `action` or `step`
// (test/support/kill-at.ts); the harness is day2-faults.test.ts's.
import { rmSync, writeFileSync } from 'fs';
import { join } from 'path';
import { OPERATION_ANNOTATION } from '../../lib/model/metadata';
import type { StoreDocument } from '../../lib/model/document';
import { ApiServer, RecordedRequest } from '../support/api-server';
import { ClusterSimulator } from '../support/cluster-simulator';
import { keysUnder, maintainOnce, memberList, reconcileOnce, simulatedCluster, storeDocument, Writer } from '../support/day2';
import { NAMESPACE, waitFor, withEndpoint } from '../support/etcd-cluster';
import { runReconcilerChild } from '../support/kill-at';
import { describeWithEtcd } from '../support/requires-etcd';

jest.setTimeout(600_000);

let api: ApiServer;
let sim: ClusterSimulator;
simulatedCluster((a, s) => { api = a; sim = s; });

const STORE = 'kv';
const MEMBERS = ['kv-0', 'kv-1', 'kv-2'];
/** The member whose data stays: the most advanced (the only one that answers), recovered from. */
const SURVIVOR = 'kv-2';
const LOST = ['kv-0', 'kv-1'];
const ONE_OFF = 'kv-recover-2';
/** The killed run's Lease, and how long the next run may wait for it. */
const LEASE_SECONDS = 3;
const LEASE_WAIT_MS = (LEASE_SECONDS + 5) * 1000;

const sts = () => api.get('apps/v1', 'StatefulSet', NAMESPACE, STORE) as any;
const claimUid = (claim: string) => (api.get('v1', 'PersistentVolumeClaim', NAMESPACE, claim) as any)?.metadata.uid as string | undefined;
/** Each member's own client URL by ordinal: its pod's IP is kept while the pod is down or gone. */
const memberEndpoints = () => MEMBERS.map((p) => `http://${sim.runner.ip(p)}:2379`);
const seconds = (from: number) => Math.round((Date.now() - from) / 100) / 10;

/**
 * Keys acknowledged while the quorum is healthy, then read once through the survivor (linearizable: it
 * waits until the survivor applied them all), so the survivor holds every one when the others go.
 */
async function writeWhileHealthy(prefix: string): Promise<string[]> {
  const writer = new Writer(MEMBERS.map((p) => sim.url(p)), prefix);
  try {
    await sim.waitUntil(`writes under ${prefix}`, () => writer.acked.length >= 30, 30_000);
  } finally {
    await writer.stop();
  }
  await withEndpoint(sim.url(SURVIVOR), (c) => c.get(`${prefix}000000`).exec());
  return [...writer.acked];
}

/** kv-0 and kv-1: their data directory replaced by a file, their processes killed: they never start again. */
async function loseQuorum(): Promise<void> {
  for (const pod of LOST) {
    const dir = join(sim.claimDir(`data-${pod}`), 'etcd');
    rmSync(dir, { recursive: true, force: true });
    writeFileSync(dir, 'not a data directory');
  }
  await Promise.all(LOST.map((pod) => sim.runner.kill(pod, 'SIGKILL')));
  await waitFor(`${SURVIVOR} to see no leader`, () => withEndpoint(sim.url(SURVIVOR), async (c) => (await c.maintenance.status()).leader === '0'), 15_000);
}

const isClaimDelete = (r: RecordedRequest) => r.method === 'DELETE' && /\/persistentvolumeclaims\/data-kv-[01]$/.test(r.path);
const isOneOffDelete = (r: RecordedRequest) => r.method === 'DELETE' && r.path.endsWith(`/pods/${ONE_OFF}`);

/**
 * In one run's requests: every delete of a lost member's claim comes after that run deleted the one-off
 * pod, which it does only once waitStandalone saw the survivor serve as a cluster of one.
 */
function claimsDeletedAfterStandalone(requests: readonly RecordedRequest[]): { claimDeletes: number; beforeStandalone: number } {
  const standalone = requests.findIndex(isOneOffDelete);
  const deletes = requests.map((r, i) => (isClaimDelete(r) ? i : -1)).filter((i) => i >= 0);
  return { claimDeletes: deletes.length, beforeStandalone: deletes.filter((i) => standalone < 0 || i < standalone).length };
}

/** What every round checks once the run after the kill returned. */
async function expectRecovered(document: StoreDocument, what: string, acked: readonly string[], survivorId: string, survivorClaim: string | undefined): Promise<void> {
  await sim.waitForReady(STORE, 3, 60_000);
  const members = await memberList(MEMBERS.map((p) => sim.url(p)));
  expect({ what, members: members.map((m) => [m.name, m.isLearner ? 'learner' : 'voting']).sort() })
    .toEqual({ what, members: MEMBERS.map((m) => [m, 'voting']) });
  // Recovered from the survivor: its member and its volume are the ones it had.
  expect({ what, survivor: members.find((m) => m.name === SURVIVOR)?.id, claim: claimUid(`data-${SURVIVOR}`) }).toEqual({ what, survivor: survivorId, claim: survivorClaim });
  expect({ what, operation: sts().metadata.annotations?.[OPERATION_ANNOTATION] }).toEqual({ what, operation: undefined });
  const oneOffPods = api.list('v1', 'Pod', NAMESPACE).map((p: any) => p.metadata.name as string).filter((n) => n.startsWith(`${STORE}-recover-`));
  expect({ what, oneOffPods }).toEqual({ what, oneOffPods: [] });
  for (const pod of MEMBERS) {
    const held = await keysUnder([sim.url(pod)], 'acked/');
    expect({ what, pod, missing: acked.filter((k) => !held.has(k)) }).toEqual({ what, pod, missing: [] });
  }
  // The store exactly as reconciled: the next reconcile has nothing to do.
  expect({ what, mutatingRequests: (await reconcileOnce(api, sim, document)).mutatingRequests }).toEqual({ what, mutatingRequests: 0 });
}

describeWithEtcd('a quorum-loss recovery killed at every step boundary: the next run finishes it, no acknowledged key lost', () => {
  test('recovery of a 3-member store from kv-2 (kv-0 and kv-1\'s data unusable)', async () => {
    const log: string[] = [];
    const started = Date.now();
    const document = storeDocument(STORE, { size: 3, storageSize: '1Gi' });
    let during: Writer | undefined;
    const args = () => ['--maintain', '--recover-quorum-loss', '--etcd-member-endpoints', memberEndpoints().join(',')];
    try {
      await reconcileOnce(api, sim, document);
      await sim.waitForReady(STORE, 3, 60_000);
      const survivorId = (await memberList(MEMBERS.map((p) => sim.url(p)))).find((m) => m.name === SURVIVOR)!.id;
      const survivorClaim = claimUid(`data-${SURVIVOR}`);
      const acked: string[] = [];
      let duringTotal = 0;
      let labels: string[] = [];

      // Round 0 counts the boundaries (no kill); round k kills after boundary k. Each round starts healthy.
      for (let k = 0; k === 0 || k <= labels.length; k++) {
        const t = Date.now();
        acked.push(...await writeWhileHealthy(`acked/${k}/`));
        const lostClaims = LOST.map((p) => claimUid(`data-${p}`));
        await loseQuorum();
        const lossS = seconds(t);

        // Writes go on through the runs: refused while quorum is lost, acknowledged again once the
        // survivor serves (a resume that starts it again with --force-new-cluster must keep those too).
        during = new Writer(memberEndpoints(), `acked/${k}-during/`);
        const t1 = Date.now();
        const first = api.requests.length;
        const run = await runReconcilerChild(api, document, { etcdEndpoints: memberEndpoints(), holder: k === 0 ? 'reference' : `killed-${k}`, leaseSeconds: LEASE_SECONDS, ...(k > 0 ? { killAt: k } : {}), args: args() });
        const killedS = seconds(t1);
        expect({ k, run: 'first', ...claimsDeletedAfterStandalone(api.requests.slice(first)) }).toEqual({ k, run: 'first', claimDeletes: expect.any(Number), beforeStandalone: 0 });
        if (k === 0) {
          expect({ code: run.code, output: run.code === 0 ? '' : run.output }).toEqual({ code: 0, output: '' });
          labels = run.boundaries.map((b) => b.label);
          log.push(`${labels.length} boundaries: ${labels.map((l, i) => `${i + 1}. ${l}`).join('; ')}`);
          // The claims go after the survivor served alone (and the reference run goes through them all).
          expect(labels.indexOf(`standalone ${SURVIVOR}`)).toBeGreaterThanOrEqual(0);
          expect(labels.filter((l) => l.startsWith('wipe ')).map((l) => labels.indexOf(l) > labels.indexOf(`standalone ${SURVIVOR}`))).toEqual([true, true]);
        } else {
          // Each round stops at the boundary it is about: the runs take the same steps in the same order.
          const failed = run.killedAt === undefined && run.code !== 0 ? run.output : undefined;
          expect({ k, at: run.boundaries.map((b) => b.label), failed }).toEqual({ k, at: labels.slice(0, k), failed: undefined });
          if (k < labels.length) expect({ k, killedAt: run.killedAt, signal: run.signal }).toEqual({ k, killedAt: k, signal: 'SIGKILL' });
        }

        // Killed while the survivor served alone in its one-off pod: that pod then ends too (as an OOM
        // kill or an eviction would end it); the next run must start it afresh, not wait on the dead one.
        const oneOff = `${STORE}-recover-2`;
        const endedOneOff = k > 0 && labels[k - 1] === `standalone ${SURVIVOR}` && sim.pid(oneOff) !== undefined;
        if (endedOneOff) {
          process.kill(sim.pid(oneOff)!, 'SIGKILL');
          await sim.waitUntil(`${oneOff} Failed`, () => (api.get('v1', 'Pod', NAMESPACE, oneOff) as any)?.status?.phase === 'Failed', 30_000);
        }

        // The next run: another holder, as a retried Job is; it waits for the killed run's Lease to expire.
        const t2 = Date.now();
        const second = api.requests.length;
        let afterS = 0;
        let waited = false;
        if (k > 0) {
          const lines: string[] = [];
          await maintainOnce(api, sim, document, { holder: `after-kill-${k}`, leaseWaitMs: LEASE_WAIT_MS, recoverQuorumLoss: true, rolloutTimeoutMs: 90_000 }, lines);
          afterS = seconds(t2);
          waited = lines.some((l) => l.includes(`held by killed-${k}`));
          // Killed once the members had started again (a lost one was being added back): the store may
          // have its quorum again, so the next run goes on adding members back, never stops them again.
          if (endedOneOff) {
            const next = api.requests.slice(second);
            const deleted = next.findIndex((r) => r.method === 'DELETE' && r.path.endsWith(`/pods/${oneOff}`));
            const created = next.findIndex((r) => r.method === 'POST' && r.path.endsWith('/pods') && (r.body as any)?.metadata?.name === oneOff);
            expect({ k, deleted: deleted >= 0, createdAfter: created > deleted }).toEqual({ k, deleted: true, createdAfter: true });
          }
          const addingBack = k < labels.length && k >= labels.indexOf('add-learner kv-0') + 1;
          const stopped = api.requests.slice(second).some((r) => r.method === 'PATCH' && r.path.endsWith(`/statefulsets/${STORE}`) && (r.body as any)?.spec?.replicas === 0);
          if (addingBack || k === labels.length) expect({ k, addingBack, stopped }).toEqual({ k, addingBack, stopped: false });
          expect({ k, run: 'next', ...claimsDeletedAfterStandalone(api.requests.slice(second)) }).toEqual({ k, run: 'next', claimDeletes: expect.any(Number), beforeStandalone: 0 });
        }
        // Between them, the two runs replaced both lost members' claims, and only theirs.
        expect({ k, replaced: LOST.map((p, i) => claimUid(`data-${p}`) !== lostClaims[i]) }).toEqual({ k, replaced: [true, true] });
        expect(api.requests.slice(first).filter((r) => r.method === 'DELETE' && r.path.includes('/persistentvolumeclaims/') && !isClaimDelete(r)).map((r) => r.path)).toEqual([]);

        const what = k === 0 ? 'reference run' : `killed after boundary ${k} (${labels[k - 1]})`;
        await sim.waitForReady(STORE, 3, 60_000);
        const duringAcked = (await during.stop()).acked;
        during = undefined;
        acked.push(...duringAcked);
        duringTotal += duringAcked.length;
        await expectRecovered(document, what, acked, survivorId, survivorClaim);
        log.push(k === 0
          ? `k=0 reference: converged (quorum lost in ${lossS} s, run ${killedS} s, round ${seconds(t)} s; ${duringAcked.length} writes acknowledged during the run)`
          : `k=${k} ${labels[k - 1]}: ${run.killedAt === k ? 'killed' : 'had exited by itself'}; converged (quorum lost in ${lossS} s, killed run ${killedS} s, next run ${afterS} s${waited ? ' after waiting for the Lease' : ''}, round ${seconds(t)} s; ${duringAcked.length} writes acknowledged during the runs)`);
      }
      log.push(`keys: ${acked.length - duringTotal} acknowledged before the losses, ${duringTotal} during the runs; all held by every member`);
    } finally {
      await during?.stop();
      log.push(`total ${seconds(started)} s`);
      process.stdout.write(`quorum-loss recovery:\n  ${log.join('\n  ')}\n`);
    }
  });
});
