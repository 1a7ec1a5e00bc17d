// Benchmark part: recovery of a 3-member store (pod runner, installed etcd) that lost two members and
// their data for good, by both procedures of the engine's recovery planner, with the keys each loses
// against what the plan predicted. Survivor path: the survivor is cut off from the others (iptables,
// when available) for the last writes so it lags as a slow member would; then probe until the plan is
// settled, a one-off pod with --force-new-cluster, the survivor's pod started as usual, the two others
// added back one at a time as learners with wiped data. Snapshot path: a snapshot saved mid-writes,
// every member restored from it by the library's restore Jobs, the members started.
import { execFileSync } from 'child_process';
import { chmodSync, copyFileSync, mkdirSync } from 'fs';
import { join } from 'path';
import { Engine, KVStore, StoreDocument } from '../lib';
import { restoreJob } from '../lib/constructs/backup';
import { StoreDefinition } from '../lib/constructs/store-definition';
import { EtcdMembership } from '../lib/engines/etcd-membership';
import {
  forceNewClusterArgs, parseSnapshotStatus, planQuorumRecovery, probeMembers, QuorumRecoveryInput, QuorumRecoveryPlan, rejoinInitialCluster, SnapshotInfo, waitStandalone,
} from '../lib/engines/etcd-recovery';
import { storeNames } from '../lib/model/names';
import { statefulSetPodSpec } from '../test/support/controllers';
import { agreedLeader, ETCD_VERSION, NAMESPACE, RevisionWriter, waitFor, waitReady, withMember } from '../test/support/etcd-cluster';
import { find, Manifest, renderDocument, synth, testChart } from '../test/support/manifests';
import { Partition, partitionUnavailable, removeAll } from '../test/support/partition';
import { PodRunner, podRunnerUnavailable } from '../test/support/pod-runner';
import { fmt, verdict } from './measure';

/** The survivor path: --force-new-cluster on the most advanced survivor, then the others added back. */
export interface SurvivorRecoveryBench {
  /** From the kill of the majority to a settled plan (probed every 100 ms until no member sees a leader). */
  readonly toPlanMs: number;
  /** From the kill of the majority to the one-off --force-new-cluster pod serving alone (probes until settled included). */
  readonly toForcedMs: number;
  /** To the survivor's own pod, started as usual, serving as a 1-member cluster. */
  readonly toOneMemberMs: number;
  /** To 3 voting members again, every one ready. */
  readonly toThreeMembersMs: number;
  /** Writes acknowledged before the kill. */
  readonly acked: number;
  /** Of them, acknowledged while the survivor was cut off (0 without iptables). */
  readonly ackedWhileCutOff: number;
  /** The survivor's revision as probed: the plan said writes acknowledged after it may be lost. */
  readonly planRevision: number;
  /** Acknowledged keys the recovered store lacks. */
  readonly lost: number;
  /** Of them, at or below the plan's revision: the plan was wrong if this is not 0. */
  readonly lostAtOrBelowPlanRevision: number;
}

/** The snapshot path: every member restored from a snapshot taken before the loss. */
export interface SnapshotRecoveryBench {
  /** From the kill of the majority to a settled plan (probed every 100 ms until no member sees a leader). */
  readonly toPlanMs: number;
  /** From the kill of the majority to 3 members serving the restored data (restore Jobs run one at a time). */
  readonly toThreeMembersMs: number;
  /** Writes acknowledged before the kill. */
  readonly acked: number;
  /** The snapshot's revision. */
  readonly snapshotRevision: number;
  /** The plan's count of lost revisions: the survivor's revision minus the snapshot's. */
  readonly predictedLostRevisions: number;
  /** The revisions actually gone: the survivor's revision minus the restored store's. */
  readonly lostRevisions: number;
  /** Acknowledged keys the restored store lacks. */
  readonly lost: number;
  /** Acknowledged keys after the snapshot's revision (what the plan said is lost). */
  readonly ackedAfterSnapshot: number;
}

/** Both paths, one run each. */
export interface RecoveryBenchResult {
  /** From the survivor. */
  readonly survivor: SurvivorRecoveryBench;
  /** From a snapshot. */
  readonly snapshot: SnapshotRecoveryBench;
}

const PODS = ['rec-0', 'rec-1', 'rec-2'];
const WRITES = 1000;
const LAG = 100;
const TAG = `kvstore-bench-recovery-${process.pid}`;

const valueOf = (key: string) => `v${Number(key.slice(2))}`;
const heldBy = (runner: PodRunner, pod: string) => withMember(runner, pod, (c) => c.getAll().prefix('w/').serializable(true).strings());

/** One store's run: 3 members, writes, the leader and another killed with their data deleted. */
async function destroy(runner: PodRunner, options: { lag: boolean; midway?: (writer: RevisionWriter) => Promise<void> }) {
  runner.startStatefulSet('rec');
  await waitReady(runner, PODS, 60_000);
  const leader = await agreedLeader(runner, PODS);
  const survivor = PODS.filter((p) => p !== leader).pop()!;
  const lost = PODS.filter((p) => p !== survivor);
  const writer = new RevisionWriter(runner, lost);
  writer.start();
  await waitFor('writes', async () => writer.acked.size >= WRITES / 2, 120_000);
  await options.midway?.(writer);
  await waitFor('writes', async () => writer.acked.size >= WRITES - LAG, 120_000);
  const partition = options.lag && !partitionUnavailable(TAG) ? new Partition(TAG) : undefined;
  partition?.isolate(runner.pid(survivor), runner.ip(survivor), lost.map((p) => runner.ip(p)));
  const atCut = writer.acked.size;
  if (partition) await waitFor('writes while the survivor is cut off', async () => writer.acked.size >= WRITES, 60_000);
  await Promise.all(lost.map((p) => runner.kill(p, 'SIGKILL')));
  const destroyedAt = Date.now();
  for (const p of lost) runner.removeClaimData(`data-${p}`);
  const acked = await writer.stop();
  return { survivor, lost, acked, destroyedAt, partition, ackedWhileCutOff: partition ? acked.size - atCut : 0 };
}

/** Probes every 100 ms until the plan is no longer `wait`. */
async function settledPlan(runner: PodRunner, extra: Partial<QuorumRecoveryInput>): Promise<QuorumRecoveryPlan> {
  return waitFor('a settled recovery plan', async () => {
    const probes = await probeMembers(PODS.map((p) => ({ name: p, endpoint: runner.url(p) })), { callTimeoutMs: 1000 });
    const plan = planQuorumRecovery({ members: PODS, probes, allowDataLoss: true, source: 'auto', ...extra });
    return plan.outcome === 'wait' ? undefined : plan;
  }, 30_000, 100);
}

const withBootstrap = (manifests: Manifest[], data: Record<string, string>): Manifest[] =>
  manifests.map((o) => (o.kind === 'ConfigMap' && o.metadata.name === 'rec-bootstrap' ? { ...o, data: { ...o.data, ...data } } : o));

async function survivorPath(document: StoreDocument): Promise<SurvivorRecoveryBench> {
  const manifests = synth(renderDocument(testChart(NAMESPACE), document));
  const runner = new PodRunner(manifests, { namespace: NAMESPACE });
  let partition: Partition | undefined;
  try {
    const d = await destroy(runner, { lag: true });
    partition = d.partition;
    const plan = await settledPlan(runner, { source: 'survivor' });
    const toPlanMs = Date.now() - d.destroyedAt;
    if (plan.outcome !== 'recover' || plan.procedure?.source !== 'survivor') throw new Error(`expected a survivor recovery: ${plan.reason}`);
    const { survivor, rejoin } = plan.procedure;

    await runner.stop(survivor.name);
    partition?.heal();
    const sts = find(manifests, 'StatefulSet');
    const spec = JSON.parse(JSON.stringify(statefulSetPodSpec(sts.spec, sts.spec.template, survivor.name)));
    delete spec.hostname;
    delete spec.subdomain;
    spec.containers[0].args = forceNewClusterArgs(spec.containers[0].args, survivor.name);
    const oneOff = `${survivor.name}-force-new-cluster`;
    runner.definePod({ name: oneOff, spec });
    runner.start(oneOff);
    await waitStandalone(runner.url(oneOff));
    const toForcedMs = Date.now() - d.destroyedAt;
    await runner.stop(oneOff);
    runner.start(survivor.name);
    await waitReady(runner, [survivor.name], 60_000);
    const toOneMemberMs = Date.now() - d.destroyedAt;

    const urls: Record<string, string> = Object.fromEntries(find(manifests, 'ConfigMap', 'rec-bootstrap').data.ETCD_INITIAL_CLUSTER.split(',').map((e: string) => e.split('=')));
    const running = [survivor.name];
    for (const pod of rejoin) {
      const membership = new EtcdMembership(running.map((p) => runner.url(p)));
      try {
        runner.removeClaimData(`data-${pod}`);
        const added = await membership.addLearner(urls[pod]);
        runner.update(withBootstrap(manifests, { ETCD_INITIAL_CLUSTER: rejoinInitialCluster(await membership.list(), { name: pod, peerURL: urls[pod] }), ETCD_INITIAL_CLUSTER_STATE: 'existing' }));
        runner.start(pod);
        await waitFor(`${pod} to start`, () => runner.probe(pod, 'startupProbe'), 60_000);
        await membership.promote(added.id);
      } finally {
        membership.close();
      }
      running.push(pod);
      await waitReady(runner, running, 60_000);
    }
    const toThreeMembersMs = Date.now() - d.destroyedAt;

    const held = await heldBy(runner, survivor.name);
    const lost = [...d.acked].filter(([k]) => held[k] !== valueOf(k));
    runner.assertNoUnexpectedExits();
    return {
      toPlanMs, toForcedMs, toOneMemberMs, toThreeMembersMs,
      acked: d.acked.size,
      ackedWhileCutOff: d.ackedWhileCutOff,
      planRevision: survivor.revision,
      lost: lost.length,
      lostAtOrBelowPlanRevision: lost.filter(([, rev]) => rev <= survivor.revision).length,
    };
  } finally {
    partition?.heal();
    await runner.stopAll();
  }
}

async function snapshotPath(document: StoreDocument): Promise<SnapshotRecoveryBench> {
  const runner = new PodRunner(synth(renderDocument(testChart(NAMESPACE), document)), { namespace: NAMESPACE });
  const claim = 'rec-backups';
  const file = 'before-loss.db';
  const etcdctl = (args: string[]) => execFileSync('etcdctl', args, { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const d = await destroy(runner, {
      lag: false,
      midway: async () => {
        const local = join(runner.workDir, file);
        etcdctl([`--endpoints=${runner.url(PODS[0])}`, 'snapshot', 'save', local]);
        mkdirSync(runner.claimDir(claim), { recursive: true });
        copyFileSync(local, join(runner.claimDir(claim), file));
        chmodSync(join(runner.claimDir(claim), file), 0o644);
      },
    });
    const snapshot: SnapshotInfo = parseSnapshotStatus(etcdctl(['snapshot', 'status', join(runner.claimDir(claim), file), '-w', 'json']), file);
    const plan = await settledPlan(runner, { source: 'snapshot', snapshot });
    const toPlanMs = Date.now() - d.destroyedAt;
    if (plan.outcome !== 'recover' || plan.procedure?.source !== 'snapshot') throw new Error(`expected a snapshot recovery: ${plan.reason}`);
    const survivorRevision = Math.max(...(await probeMembers([{ name: d.survivor, endpoint: runner.url(d.survivor) }])).map((p) => (p.reachable ? p.revision : 0)));

    await runner.stop(d.survivor);
    const restored: StoreDocument = { ...document, spec: { ...document.spec, restore: { snapshot: file, claimName: claim } } };
    const store = StoreDefinition.fromDocument(restored);
    const parts = { spec: store.spec, engine: store.engine, names: storeNames(store.spec.name), namespace: NAMESPACE, context: store.engineContext('existing') };
    for (let i = 0; i < plan.procedure.restore.length; i++) {
      const job = restoreJob(parts, i, `rec-restore-${i}`);
      runner.definePod({ name: job.metadata.name, spec: job.spec.template.spec });
      const exit = await runner.start(job.metadata.name, { runToCompletion: true }).exited;
      if (exit.code !== 0) throw new Error(`${job.metadata.name} failed: ${runner.logTail(job.metadata.name)}`);
    }
    runner.update(synth(renderDocument(testChart(NAMESPACE), restored)));
    runner.startStatefulSet('rec');
    await waitReady(runner, PODS, 60_000);
    const toThreeMembersMs = Date.now() - d.destroyedAt;

    const revision = Number((await withMember(runner, PODS[0], (c) => c.maintenance.status())).header.revision);
    const held = await withMember(runner, PODS[0], (c) => c.getAll().prefix('w/').strings());
    runner.assertNoUnexpectedExits();
    return {
      toPlanMs,
      toThreeMembersMs,
      acked: d.acked.size,
      snapshotRevision: snapshot.revision,
      predictedLostRevisions: plan.procedure.dataLoss.lostRevisions!,
      lostRevisions: survivorRevision - revision,
      lost: [...d.acked.keys()].filter((k) => held[k] !== valueOf(k)).length,
      ackedAfterSnapshot: [...d.acked.values()].filter((rev) => rev > snapshot.revision).length,
    };
  } finally {
    await runner.stopAll();
  }
}

/** One run of each path on a fresh 3-member store; a string says why it cannot run here. */
export async function recoveryBench(): Promise<RecoveryBenchResult | string> {
  const unavailable = podRunnerUnavailable();
  if (unavailable) return unavailable;
  const document = new KVStore(testChart(NAMESPACE), 'rec', { engine: Engine.etcd({ version: ETCD_VERSION }) }).document;
  try {
    return { survivor: await survivorPath(document), snapshot: await snapshotPath(document) };
  } finally {
    removeAll(TAG);
  }
}

/** The report lines for the recovery result. */
export function recoveryReport(r: RecoveryBenchResult): string[] {
  const s = r.survivor;
  const p = r.snapshot;
  return [
    'quorum loss: 2 of 3 members killed and their data deleted, while a client writes',
    `from the survivor: plan settled after ${fmt(s.toPlanMs)}, serving alone under --force-new-cluster after ${fmt(s.toForcedMs)}, as a 1-member cluster (own pod) after ${fmt(s.toOneMemberMs)}, 3 members again after ${fmt(s.toThreeMembersMs)}`,
    `  keys lost: ${s.lost} of ${s.acked} acknowledged (${s.ackedWhileCutOff} acknowledged while it was cut off); the plan: writes after revision ${s.planRevision} may be lost; `
      + `lost at or below it: ${s.lostAtOrBelowPlanRevision}  (${verdict(s.lostAtOrBelowPlanRevision === 0)}: 0)`,
    `from a snapshot (revision ${p.snapshotRevision}): plan settled after ${fmt(p.toPlanMs)}, 3 members serving after ${fmt(p.toThreeMembersMs)}`,
    `  revisions lost: ${p.lostRevisions}, the plan said ${p.predictedLostRevisions}  (${verdict(p.lostRevisions === p.predictedLostRevisions)}: equal); `
      + `keys lost: ${p.lost} of ${p.acked} acknowledged, ${p.ackedAfterSnapshot} of them after the snapshot  (${verdict(p.lost === p.ackedAfterSnapshot)}: equal)`,
  ];
}
