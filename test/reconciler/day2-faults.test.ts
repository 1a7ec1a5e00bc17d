// Day-2 operations under faults, on real etcd: the reconciler (kvstore-reconcile, a child process,
// --json) is SIGKILLed right after each step boundary of an operation in turn, one kill per run; the
// next run (another holder, once the killed run's Lease expired) must converge, and no write that
// etcd acknowledged meanwhile may be lost. A step boundary is a log line carrying `action` or `step`.
import { KVStoreProps } from '../../lib';
import type { StoreDocument } from '../../lib/model/document';
import { OPERATION_ANNOTATION } from '../../lib/model/metadata';
import { reconcilerNames } from '../../lib/model/names';
import { heldByOther } from '../../lib/reconciler/lease';
import { ApiServer } from '../support/api-server';
import { ClusterSimulator } from '../support/cluster-simulator';
import { keysUnder, loseMemberData, maintainOnce, memberList, reconcileOnce, simulatedCluster, storeDocument, Writer } from '../support/day2';
import { NAMESPACE } from '../support/etcd-cluster';
import { runReconcilerChild } from '../support/kill-at';
import { describeWithEtcd } from '../support/requires-etcd';

jest.setTimeout(600_000);

let api: ApiServer;
let sim: ClusterSimulator;
simulatedCluster((a, s) => { api = a; sim = s; });

const STORE = 'kv';
/** The members every operation here keeps: the writer writes through them, the child reaches etcd at them. */
const SURVIVORS = ['kv-0', 'kv-1', 'kv-2'];
/** The killed run's Lease, and how long the next run may wait for it. */
const LEASE_SECONDS = 3;
const LEASE_WAIT_MS = (LEASE_SECONDS + 5) * 1000;

const sts = () => api.get('apps/v1', 'StatefulSet', NAMESPACE, STORE) as any;
const pvc = (name: string) => api.get('v1', 'PersistentVolumeClaim', NAMESPACE, name) as any;
const survivorEndpoints = () => SURVIVORS.map((p) => sim.url(p));

/**
 * An operation under test, run again and again: `round` 0 is the reference run (no kill), round k
 * kills after boundary k. Each round starts from the operation's starting state and ends converged.
 */
interface Operation {
  /** The store as created before round 0. */
  readonly initial: KVStoreProps;
  /** Brings the (converged) store back to where the operation starts, for `round`. */
  readonly prepare: (round: number) => Promise<void>;
  /** The document the operation reconciles to in `round`. */
  readonly target: (round: number) => StoreDocument;
  /** Asserts the store is exactly `target(round)`, beyond what every operation checks. */
  readonly converged: (round: number) => Promise<void>;
  /** More arguments of the killed run (`--maintain`). @default none */
  readonly args?: (round: number) => string[];
  /** The run after a kill (a retried Job). @default a reconcile of `target(round)` as another holder */
  readonly after?: (round: number, holder: string) => Promise<unknown>;
}

/** How one round went, for the report: seconds in the killed run and in the run after it. */
const roundLine = (k: number, label: string, killed: boolean, killedS: number, afterS: number) =>
  `k=${k} ${label}: ${killed ? 'killed' : 'had exited by itself'}; converged (killed run ${killedS} s, next run ${afterS} s)`;
const seconds = (from: number) => Math.round((Date.now() - from) / 100) / 10;

/**
 * Waits until no other holder has the store's Lease: the program gives up at once on a held Lease,
 * and a run killed after its last change leaves its Lease to expire (the next run, a no-op, takes none).
 */
async function leaseFreeFor(holder: string): Promise<void> {
  await sim.waitUntil(`Lease ${reconcilerNames(STORE).lease} to be free`, () => {
    const live = api.get('coordination.k8s.io/v1', 'Lease', NAMESPACE, reconcilerNames(STORE).lease) as any;
    return !live || !heldByOther(live, holder, new Date());
  }, LEASE_WAIT_MS);
}

/** Pod name → PID of the survivors: none of them may restart during any operation here. */
const survivorPids = () => Object.fromEntries(SURVIVORS.map((p) => [p, sim.pid(p)]));

async function votingAndLearners(): Promise<{ voting: string[]; learners: string[] }> {
  const members = await memberList(survivorEndpoints());
  return {
    voting: members.filter((m) => !m.isLearner).map((m) => m.name).sort(),
    learners: members.filter((m) => m.isLearner).map((m) => m.name || m.id),
  };
}

/** What every operation checks once the run after a kill returned: the store exactly as `target` says, and nothing left to do. */
async function expectConverged(op: Operation, round: number, what: string): Promise<void> {
  const target = op.target(round);
  const size = target.spec.size;
  await sim.waitForReady(STORE, size, 60_000);
  expect({ what, replicas: sts().spec.replicas, ready: sts().status.readyReplicas }).toEqual({ what, replicas: size, ready: size });
  const names = Array.from({ length: size }, (_, i) => `${STORE}-${i}`);
  expect({ what, ...(await votingAndLearners()) }).toEqual({ what, voting: names, learners: [] });
  expect({ what, operation: sts().metadata.annotations?.[OPERATION_ANNOTATION] }).toEqual({ what, operation: undefined });
  await op.converged(round);
  expect({ what, mutatingRequests: (await reconcileOnce(api, sim, target)).mutatingRequests }).toEqual({ what, mutatingRequests: 0 });
}

/**
 * The property: for k = 1..N (N boundaries of the reference run), a run killed right after boundary k
 * is finished by the next run. Writes the boundaries and each round's outcome to `log`.
 */
async function killAtEveryBoundary(op: Operation, log: string[]): Promise<void> {
  const started = Date.now();
  const doc = storeDocument(STORE, op.initial);
  await reconcileOnce(api, sim, doc);
  await sim.waitForReady(STORE, doc.spec.size, 60_000);
  await op.prepare(0);
  const pids = survivorPids();
  const writer = new Writer(survivorEndpoints());
  let writerStopped = false;
  try {
    // Round 0: the boundaries of an uninterrupted run.
    const reference = await runReconcilerChild(api, op.target(0), { etcdEndpoints: survivorEndpoints(), holder: 'reference', leaseSeconds: LEASE_SECONDS, args: op.args?.(0) });
    expect({ code: reference.code, output: reference.code === 0 ? '' : reference.output }).toEqual({ code: 0, output: '' });
    const labels = reference.boundaries.map((b) => b.label);
    expect(labels.length).toBeGreaterThan(0);
    await expectConverged(op, 0, 'reference run');
    log.push(`${labels.length} boundaries: ${labels.map((l, i) => `${i + 1}. ${l}`).join('; ')}`);

    for (let k = 1; k <= labels.length; k++) {
      await op.prepare(k);
      await leaseFreeFor(`killed-${k}`);
      const t = Date.now();
      const killed = await runReconcilerChild(api, op.target(k), { etcdEndpoints: survivorEndpoints(), holder: `killed-${k}`, leaseSeconds: LEASE_SECONDS, killAt: k, args: op.args?.(k) });
      // Each round stops at the boundary it is about: the runs take the same steps in the same order.
      // (A run that failed on its own, before its k-th boundary, shows its log here.)
      const failed = killed.killedAt === undefined && killed.code !== 0 ? killed.output : undefined;
      expect({ k, at: killed.boundaries.map((b) => b.label), failed }).toEqual({ k, at: labels.slice(0, k), failed: undefined });
      // Only the last boundary may race the run's own exit.
      if (k < labels.length) expect({ k, killedAt: killed.killedAt, signal: killed.signal }).toEqual({ k, killedAt: k, signal: 'SIGKILL' });
      const killedS = seconds(t);
      const t2 = Date.now();
      // Another holder, as a retried Job is: it waits for the killed run's Lease to expire.
      await (op.after ? op.after(k, `after-kill-${k}`) : reconcileOnce(api, sim, op.target(k), { holder: `after-kill-${k}`, leaseWaitMs: LEASE_WAIT_MS }));
      const afterS = seconds(t2);
      await expectConverged(op, k, `killed after boundary ${k} (${labels[k - 1]})`);
      log.push(roundLine(k, labels[k - 1], killed.killedAt === k, killedS, afterS));
    }

    // No member the operation keeps was restarted (the writer's acknowledgements rest on them).
    expect(survivorPids()).toEqual(pids);
    const w = await writer.stop();
    writerStopped = true;
    const held = await keysUnder(survivorEndpoints(), 'w/');
    expect(w.acked.length).toBeGreaterThan(100);
    expect(w.acked.filter((key) => !held.has(key))).toEqual([]);
    log.push(`writes: ${w.acked.length} acknowledged, all held; ${w.failures} failed attempts; longest gap between acknowledgements ${w.longestGapMs} ms`);
    log.push(`total ${Math.round((Date.now() - started) / 1000)} s`);
  } finally {
    if (!writerStopped) await writer.stop();
  }
}

describeWithEtcd('a reconciler killed at every step boundary of a day-2 operation: the next run converges, no acknowledged write lost', () => {
  // Without backup: with it, each operation starts with one more boundary (the snapshot Job, before
  // anything changed, found again by name on the next run) at the cost of a Job per round.
  const props = { size: 3, storageSize: '1Gi' };

  test('scale 3 → 5', async () => {
    const log: string[] = [];
    try {
      await killAtEveryBoundary({
        // Created at 5, then scaled to 3: each round starts where a 3 → 5 → 3 left it, kv-3 and kv-4's
        // claims retained (so a round wipes them: those are boundaries too).
        initial: { ...props, size: 5 },
        prepare: async () => {
          await reconcileOnce(api, sim, storeDocument(STORE, props), { leaseWaitMs: LEASE_WAIT_MS });
          await sim.waitForReady(STORE, 3, 60_000);
          expect((await votingAndLearners()).voting).toEqual(SURVIVORS);
        },
        target: () => storeDocument(STORE, { ...props, size: 5 }),
        converged: async () => {
          for (const i of [0, 1, 2, 3, 4]) expect(pvc(`data-kv-${i}`)?.spec.resources.requests.storage).toBe('1Gi');
        },
      }, log);
    } finally {
      process.stdout.write(`scale 3 → 5:\n  ${log.join('\n  ')}\n`);
    }
  });

  test('volume growth by 1Gi', async () => {
    const log: string[] = [];
    // Storage cannot shrink: round r grows (r + 1)Gi → (r + 2)Gi.
    const storage = (round: number) => `${round + 2}Gi`;
    try {
      await killAtEveryBoundary({
        initial: props,
        prepare: async () => undefined,
        target: (round) => storeDocument(STORE, { ...props, storageSize: storage(round) }),
        converged: async (round) => {
          expect(sts().spec.volumeClaimTemplates[0].spec.resources.requests.storage).toBe(storage(round));
          for (const i of [0, 1, 2]) {
            expect({ pvc: i, requested: pvc(`data-kv-${i}`).spec.resources.requests.storage, capacity: pvc(`data-kv-${i}`).status.capacity.storage })
              .toEqual({ pvc: i, requested: storage(round), capacity: storage(round) });
          }
        },
      }, log);
    } finally {
      process.stdout.write(`volume growth:\n  ${log.join('\n  ')}\n`);
    }
  });

  test('replacing a lost member (kv-3 of 5, its data directory deleted)', async () => {
    const log: string[] = [];
    const five = { ...props, size: 5 };
    let lostId = '';
    const memberEndpoints = () => [0, 1, 2, 3, 4].map((i) => sim.url(`kv-${i}`));
    try {
      await killAtEveryBoundary({
        initial: five,
        // kv-3 loses its data under it and crash-loops once restarted (kv-0..kv-2 carry the writer).
        prepare: async () => {
          lostId = (await memberList(survivorEndpoints())).find((m) => m.name === 'kv-3')!.id;
          await loseMemberData(api, sim, 'kv-3');
        },
        target: () => storeDocument(STORE, five),
        args: () => ['--maintain', '--etcd-member-endpoints', memberEndpoints().join(',')],
        after: (_, holder) => maintainOnce(api, sim, storeDocument(STORE, five), { holder, leaseWaitMs: LEASE_WAIT_MS }),
        converged: async () => {
          const kv3 = (await memberList(survivorEndpoints())).find((m) => m.name === 'kv-3');
          expect({ replaced: kv3 && kv3.id !== lostId }).toEqual({ replaced: true });
        },
      }, log);
    } finally {
      process.stdout.write(`member replacement:\n  ${log.join('\n  ')}\n`);
    }
  });
});
