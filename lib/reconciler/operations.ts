// Day-2 operations a StatefulSet cannot do alone: membership changes one member at a time, volume
// growth, a snapshot before either, and restore from a snapshot. Each is a named, logged step; each
// decides from what is live (the API and the engine's member list), so a run that was stopped in the
// middle and started again picks up where the last one left off.
import { createHash } from 'crypto';
import { jobFromCronJob, restoreJob } from '../constructs/backup';
import type { StoreDefinition } from '../constructs/store-definition';
import { ETCD_MAX_SIZE, EtcdEngine } from '../engines/etcd';
import type { EtcdClientTls, EtcdMembership, Member } from '../engines/etcd-membership';
import type { SnapshotInfo } from '../engines/types';
import type { StoreDocument } from '../model/document';
import { KVSTORE_GROUP, OPERATION_ANNOTATION, RESTORED_FROM_ANNOTATION, STORE_LABEL } from '../model/metadata';
import { claimOrdinals, labelSelector, podName, preOperationSnapshotPrefix, pvcName, recoveryPodName, selectorLabels, StoreNames, storeNames } from '../model/names';
import { parseQuantity } from '../model/quantity';
import type { EtcdEngineSpec } from '../model/spec';
import { KubeClient } from './client';
import { Log } from './log';
import { ClaimGrowth } from './plan';
import { KubeObject, ObjectRef } from './types';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What the operations need from the run they are part of. */
export interface OperationContext {
  readonly client: KubeClient;
  readonly log: Log;
  readonly document: StoreDocument;
  /** Renews the reconciler's Lease; call during every wait. */
  readonly keepAlive: () => Promise<void>;
  /** Reports progress (CRD mode writes it to status). */
  readonly progress: (operation: string, message: string, members?: readonly string[]) => Promise<void>;
  readonly timeoutMs: number;
  readonly pollMs: number;
}

const ref = (apiVersion: string, kind: string, namespace: string, name: string): ObjectRef => ({ apiVersion, kind, namespace, name });
const pvcRef = (ns: string, name: string) => ref('v1', 'PersistentVolumeClaim', ns, name);
const jobRef = (ns: string, name: string) => ref('batch/v1', 'Job', ns, name);

/** Polls `check` until it returns a value, renewing the Lease; throws `what` on timeout. */
export async function until<T>(ctx: OperationContext, what: string, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ctx.timeoutMs;
  for (;;) {
    await ctx.keepAlive();
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${Math.round(ctx.timeoutMs / 1000)} s waiting for ${what}`);
    await sleep(ctx.pollMs);
  }
}

/** The Job's Failed condition, once it has failed for good. */
const failedCondition = (job: KubeObject | undefined) => (job?.status?.conditions ?? []).find((c: any) => c.type === 'Failed' && c.status === 'True');
const jobFailed = (job: KubeObject | undefined) => !!failedCondition(job);

/** A Job's outcome: true when it succeeded, undefined while it runs; throws when it failed for good. */
function jobDone(job: KubeObject | undefined): boolean | undefined {
  if (!job) return undefined;
  const failed = failedCondition(job);
  if (failed) throw new Error(`Job ${job.metadata.name} failed: ${failed.reason ?? ''} ${failed.message ?? ''}`.trim());
  return (job.status?.succeeded ?? 0) >= 1 ? true : undefined;
}

/**
 * Creates a Job unless it exists (a re-run finds the one an earlier run created) and waits for it.
 * With `retryFailed`, a Job of that name that failed stays (the reconciler may not delete Jobs) and
 * the attempt runs as `<name>-1`, `-2`, `-3`.
 */
async function runJob(ctx: OperationContext, job: KubeObject, what: string, options: { retryFailed?: boolean } = {}): Promise<string> {
  let name = job.metadata.name;
  for (let attempt = 1; options.retryFailed && attempt <= 3 && jobFailed(await ctx.client.read(jobRef(ctx.document.namespace, name))); attempt++) {
    name = `${job.metadata.name}-${attempt}`;
  }
  const jr = jobRef(ctx.document.namespace, name);
  if (!(await ctx.client.read(jr))) await ctx.client.create({ ...job, metadata: { ...job.metadata, name } });
  await until(ctx, `${what} (Job ${name})`, async () => jobDone(await ctx.client.read(jr)));
  return name;
}

const shortHash = (...parts: string[]) => createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 8);

/**
 * A snapshot before a risky operation, through the backup CronJob's own pod template (so it runs with
 * the same image, claim and NetworkPolicy admission). Named after the operation: a re-run of the same
 * operation finds it done.
 */
export async function snapshotBefore(ctx: OperationContext, desired: readonly KubeObject[], operation: string, key: string, options: { bestEffort?: boolean } = {}): Promise<void> {
  const { document, client } = ctx;
  const cronJob = desired.find((o) => o.kind === 'CronJob');
  if (!document.spec.backup || !cronJob) return;
  const claim = desired.find((o) => o.kind === 'PersistentVolumeClaim' && o.metadata.name === document.spec.backup!.claimName);
  if (claim && !(await client.read(pvcRef(document.namespace, claim.metadata.name)))) await client.apply(claim);
  const base = `${preOperationSnapshotPrefix(storeNames(document.spec.name))}${shortHash(operation, key)}`;
  await ctx.progress('BackingUp', `snapshot before ${operation}`);
  let name: string;
  try {
    name = await runJob(ctx, jobFromCronJob(cronJob as any, base, { [`${KVSTORE_GROUP}/before`]: operation }), `the snapshot before ${operation}`, { retryFailed: true });
  } catch (e) {
    if (!options.bestEffort) throw new Error(`${(e as Error).message}; nothing was changed (the next run tries a new snapshot)`);
    ctx.log.info(`no snapshot before ${operation} (${(e as Error).message}): going on, as a restore must work when the cluster cannot answer`, { action: 'snapshot-skipped' });
    return;
  }
  ctx.log.info(`snapshot before ${operation} saved by Job ${name}`, { action: 'snapshot', job: name });
}

/** The ordinal a member's peer URL names (`http://<sts>-<i>.<headless>...`), if it is one of ours. */
export function ordinalOfPeerURL(url: string, names: StoreNames): number | undefined {
  const m = new RegExp(`^https?://${names.statefulSet}-([0-9]+)\\.${names.headlessService}\\.`).exec(url);
  return m ? Number(m[1]) : undefined;
}

/**
 * Grows every existing PVC of the templates that grow (retained ones of removed ordinals too, so a
 * later scale-up does not get a smaller one), then waits until the storage layer reports the new
 * capacity or that only the file system resize is left (which the kubelet finishes online).
 */
export async function growClaims(ctx: OperationContext, claims: readonly ClaimGrowth[]): Promise<void> {
  const { client, document, log } = ctx;
  const names = storeNames(document.spec.name);
  const pvcs = await client.list('v1', 'PersistentVolumeClaim', document.namespace, labelSelector(selectorLabels(document.spec.name)));
  // Every ordinal the store can have had (what the Role names): claims retained beyond are left.
  const ordinals = claimOrdinals(document.spec.size, document.spec.engine.kind === 'etcd' ? ETCD_MAX_SIZE : 0);
  for (const growth of claims) {
    const wanted = new Set(ordinals.map((i) => pvcName(names, growth.template, i)));
    const mine = pvcs.filter((p) => wanted.has(p.metadata.name)).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name, 'en', { numeric: true }));
    await ctx.progress('Resizing', `volume ${growth.template}: ${growth.from} → ${growth.to} on ${mine.length} PVC(s)`);
    const want = parseQuantity(growth.to)!;
    for (const pvc of mine) {
      const current = parseQuantity(pvc.spec?.resources?.requests?.storage) ?? 0;
      if (current > want) log.info(`PVC ${pvc.metadata.name} already requests ${pvc.spec.resources.requests.storage}, more than ${growth.to}: left as it is`);
      if (current < want) {
        await client.apply({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: pvc.metadata.name, namespace: document.namespace }, spec: { resources: { requests: { storage: growth.to } } } });
        log.info(`PVC ${pvc.metadata.name}: requested ${growth.to} (was ${pvc.spec.resources.requests.storage})`, { action: 'grow', pvc: pvc.metadata.name });
      }
    }
    for (const pvc of mine.filter((p) => (parseQuantity(p.spec?.resources?.requests?.storage) ?? 0) <= want)) {
      await until(ctx, `PVC ${pvc.metadata.name} to reach ${growth.to} (does its StorageClass allow volume expansion?)`, async () => {
        const live = await client.read(pvcRef(document.namespace, pvc.metadata.name));
        if (!live) throw new Error(`PVC ${pvc.metadata.name} disappeared while growing`);
        if ((parseQuantity(live.status?.capacity?.storage) ?? 0) >= want) return true;
        const pending = (live.status?.conditions ?? []).some((c: any) => c.type === 'FileSystemResizePending' && c.status === 'True');
        return pending ? true : undefined;
      });
    }
  }
}

/**
 * Before ordinal `j` joins (above the live replicas): its pod must be gone, and PVCs left by a removed
 * member of that ordinal are deleted. etcd refuses to start on a removed member's data ("member
 * removed"), which wedges the most popular etcd charts; the cluster's data lives in its current
 * members (and, with backup, in the snapshot taken before this operation). No other PVC is ever
 * deleted: the member list is read again right before, and must still not name the ordinal.
 */
export async function wipeRemovedMember(ctx: OperationContext, ordinal: number, stillRemoved: () => Promise<boolean>): Promise<void> {
  const { client, document, log } = ctx;
  const names = storeNames(document.spec.name);
  const pod = podName(names, ordinal);
  await until(ctx, `pod ${pod} to be gone before it joins again`, async () =>
    (await client.read(ref('v1', 'Pod', document.namespace, pod))) ? undefined : true);
  const claims = [];
  for (const t of document.spec.volumeClaimTemplates) {
    if (await client.read(pvcRef(document.namespace, pvcName(names, t.name, ordinal)))) claims.push(pvcName(names, t.name, ordinal));
  }
  if (claims.length === 0) return;
  if (!(await stillRemoved())) throw new Error(`member ${pod} appeared in the member list while its PVCs were about to be wiped: stopping`);
  for (const claim of claims) {
    log.info(`PVC ${claim} holds the data of a member removed from the cluster, which etcd would refuse: deleting it so ${pod} joins with an empty volume`, { action: 'wipe', pvc: claim });
    await deleteClaim(ctx, claim);
  }
}

/** Deletes PVC `claim` and waits until it is gone (its pods must be gone: the API keeps a claim in use). */
async function deleteClaim(ctx: OperationContext, claim: string): Promise<void> {
  const { client, document } = ctx;
  await client.delete(pvcRef(document.namespace, claim), 'Background');
  await until(ctx, `PVC ${claim} to be deleted`, async () => ((await client.read(pvcRef(document.namespace, claim))) ? undefined : true));
}

/** Applies the store rendered for `size` members (its member list, replicas and PDB). */
export type ApplyMembers = (size: number) => Promise<void>;

/**
 * Brings the engine's membership to `spec.size`, one member at a time, each change made only while
 * the cluster has quorum: add as a learner, start its pod (`initial-cluster-state existing`), promote
 * once caught up; or remove the highest member, then its pod.
 */
export async function changeMembership(ctx: OperationContext, endpoints: string[], applyMembers: ApplyMembers, waitRollout: () => Promise<void>, tls?: EtcdClientTls): Promise<void> {
  const { client, document, log } = ctx;
  const { EtcdMembership, nextMembershipStep } = await import('../engines/etcd-membership');
  const names = storeNames(document.spec.name);
  const engine = new EtcdEngine(document.spec.engine as EtcdEngineSpec);
  const engineContext = { spec: document.spec, names, clusterToken: document.clusterToken, initialClusterState: 'existing' as const, namespace: document.namespace };
  const target = Array.from({ length: document.spec.size }, (_, i) => ({ name: podName(names, i), peerURL: engine.peerURL(engineContext, i, document.namespace) }));
  const stsRef = ref('apps/v1', 'StatefulSet', document.namespace, names.statefulSet);
  // Long retries (a learner catching up) renew the Lease as they go.
  const membership: EtcdMembership = new EtcdMembership(endpoints, { onRetry: ctx.keepAlive, ...(tls ? { tls } : {}) });
  const ordinalOf = (m: Member) => m.peerURLs.map((u) => ordinalOfPeerURL(u, names)).find((o) => o !== undefined);
  const show = (members: readonly Member[]) => members.map((m) => {
    const ordinal = ordinalOf(m);
    return `${ordinal === undefined ? m.name || m.id : podName(names, ordinal)}${m.isLearner ? ' (learner)' : ''}`;
  });
  try {
    for (;;) {
      await ctx.keepAlive();
      const members = await membership.list().catch((e: Error) => {
        throw new Error(`could not list the etcd members at ${endpoints.join(', ')}: ${e.message}`);
      });
      const step = nextMembershipStep(members, target);
      const sts = await client.read(stsRef);
      const replicas = sts?.spec?.replicas ?? 0;
      if (!step) {
        log.info(`members: ${show(members).join(', ')}`, { members: show(members) });
        if (replicas !== target.length) {
          await applyMembers(target.length);
          await waitRollout();
        }
        return;
      }
      switch (step.action) {
        case 'add-learner': {
          const ordinal = ordinalOfPeerURL(step.peerURL, names)!;
          if (ordinal < replicas) {
            // Its pod is part of the StatefulSet but etcd does not list it: removed by hand, or lost.
            throw new Error(`member ${step.name} is not in the etcd member list, but its pod is one of the StatefulSet's ${replicas}: ` +
              `replacing a member this way is not automated. Either add it back (etcdctl member add ${step.name} --peer-urls=${step.peerURL}) ` +
              'or delete its pod and PVCs by hand so it joins afresh on the next run.');
          }
          await ctx.progress('Scaling', `adding member ${step.name}: ${members.length} → ${members.length + 1} of ${target.length}`, show(members));
          await wipeRemovedMember(ctx, ordinal, async () => !(await membership.list()).some((m) => m.peerURLs.includes(step.peerURL)));
          const added = await membership.addLearner(step.peerURL);
          log.info(`member ${step.name} registered as a learner (id ${added.id}): it cannot affect quorum until promoted`, { action: 'add-learner', member: step.name });
          // The member list now includes it: its pod starts with the list and state `existing`.
          await applyMembers(Math.max(replicas, ordinal + 1));
          break;
        }
        case 'promote': {
          const learner = members.find((m) => m.isLearner && m.peerURLs.some((u) => target.some((t) => t.peerURL === u)))!;
          const ordinal = ordinalOf(learner)!;
          if (replicas < ordinal + 1) await applyMembers(ordinal + 1);
          await ctx.progress('Scaling', `promoting member ${step.name} once it has caught up`, show(members));
          await membership.promote(learner.id);
          log.info(`member ${step.name} promoted to a voting member`, { action: 'promote', member: step.name });
          await waitRollout();
          break;
        }
        case 'remove': {
          const member = members.find((m) => m.id === step.id)!;
          const ordinal = ordinalOf(member);
          if (ordinal === undefined) throw new Error(`member ${step.id} (${member.peerURLs.join(', ')}) is not one of this store's pods: remove it by hand (etcdctl member remove ${step.id})`);
          await ctx.progress('Scaling', `removing member ${podName(names, ordinal)}: ${members.length} → ${members.length - 1}`, show(members));
          await membership.remove(step.id);
          log.info(`member ${podName(names, ordinal)} removed from the cluster; its PVCs are kept`, { action: 'remove', member: podName(names, ordinal) });
          if (replicas > ordinal) {
            await applyMembers(ordinal);
            await waitRollout();
          }
          break;
        }
      }
    }
  } finally {
    membership.close();
  }
}

/**
 * Waits until member `ordinal` (its client URL is `members[ordinal]`) has applied everything the
 * leader had committed when first asked: caught up, not only ready.
 */
export async function waitCaughtUp(ctx: OperationContext, members: string[], ordinal: number, tls?: EtcdClientTls): Promise<{ memberApplied: number; leaderCommitted: number }> {
  const { EtcdMembership } = await import('../engines/etcd-membership');
  const membership = new EtcdMembership(members, { onRetry: ctx.keepAlive, retryTimeoutMs: ctx.timeoutMs, ...(tls ? { tls } : {}) });
  try {
    return await membership.waitCaughtUp(ordinal);
  } catch (e) {
    throw new Error(`member ${podName(storeNames(ctx.document.spec.name), ordinal)} did not catch up with the leader: ${(e as Error).message}; the upgrade stops here (the next run resumes it)`);
  } finally {
    membership.close();
  }
}

/**
 * Replaces member `ordinal`, whose pod crash-loops on a lost or foreign data directory while the others
 * keep quorum: remove it from the cluster, register its peer URL again as a learner (it cannot affect
 * quorum), delete its claims and its pod so the StatefulSet starts it on an empty volume, which joins
 * as the learner; promote it once caught up. Each step decides from what is live, so a stopped run is
 * finished by the next: a learner whose pod crash-loops still has the old volume (wiped again); one
 * whose pod runs is waited for and promoted. `crashLooping` reads the pod again.
 */
export async function replaceMember(ctx: OperationContext, ordinal: number, endpoints: string[], crashLooping: () => Promise<boolean>, tls?: EtcdClientTls): Promise<void> {
  const { client, document, log } = ctx;
  const { EtcdMembership } = await import('../engines/etcd-membership');
  const names = storeNames(document.spec.name);
  const pod = podName(names, ordinal);
  const engine = new EtcdEngine(document.spec.engine as EtcdEngineSpec);
  const peerURL = engine.peerURL({ spec: document.spec, names, clusterToken: document.clusterToken, initialClusterState: 'existing', namespace: document.namespace }, ordinal, document.namespace);
  const membership = new EtcdMembership(endpoints, { onRetry: ctx.keepAlive, retryTimeoutMs: ctx.timeoutMs, ...(tls ? { tls } : {}) });
  const mine = async () => (await membership.list()).find((m) => m.peerURLs.some((u) => ordinalOfPeerURL(u, names) === ordinal));
  try {
    let member = await mine();
    if (member && !member.isLearner) {
      await ctx.progress('ReplacingMember', `member ${pod} crash-loops on its data: removing it from the cluster`);
      await membership.remove(member.id);
      log.info(`member ${pod} (id ${member.id}) removed from the cluster: its data is lost or foreign`, { action: 'remove', member: pod });
      member = undefined;
    }
    if (!member) {
      member = await membership.addLearner(peerURL);
      log.info(`member ${pod} registered again as a learner (id ${member.id}): it joins with an empty volume and cannot affect quorum until promoted`, { action: 'add-learner', member: pod });
    }
    if (await crashLooping()) {
      await ctx.progress('ReplacingMember', `member ${pod}: deleting its claims and its pod, so it starts on an empty volume`);
      const claims = document.spec.volumeClaimTemplates.map((t) => pvcName(names, t.name, ordinal));
      const old = new Map<string, string | undefined>();
      for (const claim of claims) old.set(claim, (await client.read(pvcRef(document.namespace, claim)))?.metadata.uid as string | undefined);
      for (const claim of claims) {
        if (!old.get(claim)) continue;
        log.info(`PVC ${claim} holds the lost member's data: deleting it (kept by the API until its pod is gone)`, { action: 'wipe', pvc: claim });
        await client.delete(pvcRef(document.namespace, claim), 'Background');
      }
      const podRef = ref('v1', 'Pod', document.namespace, pod);
      await client.delete(podRef, 'Background');
      // The StatefulSet creates a pod's missing claims when it creates the pod; a pod it re-created
      // while the old claim was still being deleted waits for a claim that is gone: deleted again.
      await until(ctx, `member ${pod} to come back on a new volume`, async () => {
        const fresh = await Promise.all(claims.map(async (c) => {
          const live = await client.read(pvcRef(document.namespace, c));
          return !!live && live.metadata.uid !== old.get(c) && !live.metadata.deletionTimestamp;
        }));
        if (fresh.every(Boolean)) return true;
        const current = await client.read(podRef);
        const gone = await Promise.all(claims.map(async (c) => !(await client.read(pvcRef(document.namespace, c)))));
        if (current && !current.metadata.deletionTimestamp && gone.some(Boolean)) await client.delete(podRef, 'Background');
        return undefined;
      });
    }
    await ctx.progress('ReplacingMember', `member ${pod}: promoting it once it has caught up`);
    await membership.promote(member.id);
    log.info(`member ${pod} replaced: promoted to a voting member on a new volume`, { action: 'promote', member: pod });
  } finally {
    membership.close();
  }
}

/**
 * Recovery from quorum loss from the most advanced survivor (etcd's procedure; the plan, with what it
 * loses, is planQuorumRecovery's): stop every member; start the survivor once with --force-new-cluster
 * in a one-off pod on its own volumes, until it serves as a cluster of one; then delete the other
 * members' claims (their old data must never start again: two of them could re-form the old
 * cluster); start the members again; add each lost member back in turn as a learner (the bootstrap ConfigMap listing
 * exactly the current members and the joining one, as etcd requires) and promote it once caught up.
 * `desired` is the store as reconciled (the StatefulSet and the bootstrap ConfigMap among them). Each
 * step can be made again: a stopped run is finished by running it all again from the same survivor
 * (the StatefulSet's mark names it).
 */
export async function recoverFromSurvivor(ctx: OperationContext, desired: readonly KubeObject[], survivor: number, size: number, endpoint: (ordinal: number) => string, clientPort: number, tls?: EtcdClientTls): Promise<void> {
  const { client, document, log } = ctx;
  const { EtcdMembership } = await import('../engines/etcd-membership');
  const { forceNewClusterArgs, rejoinInitialCluster, waitStandalone } = await import('../engines/etcd-recovery');
  const names = storeNames(document.spec.name);
  const ns = document.namespace;
  const sts = desired.find((o) => o.kind === 'StatefulSet')!;
  const bootstrap = desired.find((o) => o.kind === 'ConfigMap' && o.metadata.name === names.bootstrapConfig)!;
  const survivorPod = podName(names, survivor);
  const mark = `quorum → from ${survivorPod}`;
  const marked = (replicas: number) => ({ ...sts, metadata: { ...sts.metadata, annotations: { ...sts.metadata.annotations, [OPERATION_ANNOTATION]: mark } }, spec: { ...sts.spec, replicas } });
  const podRef = (name: string) => ref('v1', 'Pod', ns, name);
  const lost = Array.from({ length: size }, (_, i) => i).filter((i) => i !== survivor);

  // A stopped run that had started the members again (it does so only once the survivor served alone
  // and the lost members' claims were gone) goes on adding them back: stopping a store that may have
  // its quorum again would be a second outage.
  const live = await client.read(ref('apps/v1', 'StatefulSet', ns, sts.metadata.name));
  const started = live?.metadata.annotations?.[OPERATION_ANNOTATION] === mark && (live.spec?.replicas ?? 0) === size;
  if (started) {
    log.info(`resuming the recovery from ${survivorPod}: the members had started again, adding the rest back`, { action: 'resume-add-back', member: survivorPod });
  } else {
    await forceNewCluster();
  }
  await addBack();
  // The store exactly as desired: the full member list, no mark.
  await client.apply(bootstrap);
  await client.apply(sts);
  log.info(`quorum recovered from ${survivorPod}: ${size} members`, { action: 'recovered' });

  async function forceNewCluster(): Promise<void> {
    await ctx.progress('RecoveringQuorum', `quorum lost: stopping every member, then ${survivorPod} alone with --force-new-cluster`);
    await client.apply(marked(0));
    for (let i = 0; i < size; i++) await until(ctx, `member ${podName(names, i)} to stop`, async () => ((await client.read(podRef(podName(names, i)))) ? undefined : true));
    log.info(`every member stopped for the recovery from ${survivorPod}`, { action: 'stop-members' });

    // The survivor, once, with --force-new-cluster: a pod of its own (the flag must act exactly once;
    // again after a stopped run it only says again that the survivor is alone).
    const oneOff = recoveryPodName(names, survivor);
    const template = sts.spec.template;
    const [container, ...rest] = template.spec.containers;
    // One a stopped run left that can no longer serve (it ended: OOM-killed, evicted; or is going) goes first.
    const left = await client.read(podRef(oneOff));
    const ended = !!left && (!!left.metadata.deletionTimestamp || ['Succeeded', 'Failed'].includes(left.status?.phase));
    if (ended) {
      await client.delete(podRef(oneOff), 'Background');
      await until(ctx, `the ended pod ${oneOff} to be gone`, async () => ((await client.read(podRef(oneOff))) ? undefined : true));
    }
    if (!left || ended) {
      await client.create({
        apiVersion: 'v1', kind: 'Pod',
        metadata: { name: oneOff, namespace: ns, labels: { [STORE_LABEL]: document.spec.name } },
        spec: {
          ...template.spec,
          restartPolicy: 'Never',
          containers: [{ ...container, args: forceNewClusterArgs(container.args, survivorPod), readinessProbe: undefined, livenessProbe: undefined, startupProbe: undefined }, ...rest],
          volumes: [...(template.spec.volumes ?? []), ...document.spec.volumeClaimTemplates.map((t) => ({ name: t.name, persistentVolumeClaim: { claimName: pvcName(names, t.name, survivor) } }))],
        },
      });
    }
    log.info(`pod ${oneOff}: ${survivorPod}'s data started with --force-new-cluster`, { action: 'force-new-cluster', member: survivorPod });
    const ip = await until(ctx, `pod ${oneOff} to get an IP`, async () => (await client.read(podRef(oneOff)))?.status?.podIP as string | undefined);
    const url = `${tls ? 'https' : 'http'}://${ip.includes(':') ? `[${ip}]` : ip}:${clientPort}`;
    const alone = await waitStandalone(url, { retryTimeoutMs: ctx.timeoutMs, ...(tls ? { tls } : {}) });
    log.info(`${survivorPod} serves as a cluster of one at revision ${alone.revision} (member id ${alone.id})`, { action: 'standalone', member: survivorPod });
    await client.delete(podRef(oneOff), 'Background');
    await until(ctx, `pod ${oneOff} to be gone`, async () => ((await client.read(podRef(oneOff))) ? undefined : true));

    // Only now, the survivor proven: every other member's claims go (their old data must never start
    // again: two of them could re-form the old cluster; what a stopped run had added back is a copy).
    for (const i of lost) {
      for (const t of document.spec.volumeClaimTemplates) {
        const claim = pvcName(names, t.name, i);
        if (!(await client.read(pvcRef(ns, claim)))) continue;
        await deleteClaim(ctx, claim);
        log.info(`PVC ${claim} deleted: the lost member's old data must not start again`, { action: 'wipe', pvc: claim });
      }
    }
  }

  async function addBack(): Promise<void> {
    // Every member again; the lost ones start empty and wait (crash-looping) until each is added back.
    const membership = new EtcdMembership([endpoint(survivor)], { onRetry: ctx.keepAlive, retryTimeoutMs: ctx.timeoutMs, ...(tls ? { tls } : {}) });
    try {
      const engine = new EtcdEngine(document.spec.engine as EtcdEngineSpec);
      const peerURL = (i: number) => engine.peerURL({ spec: document.spec, names, clusterToken: document.clusterToken, initialClusterState: 'existing', namespace: ns }, i, ns);
      const writeList = async (list: string) => client.apply({ ...bootstrap, data: { ...bootstrap.data, ETCD_INITIAL_CLUSTER: list, ETCD_INITIAL_CLUSTER_STATE: 'existing' } });
      // The survivor alone (its data says so too); then its pod and the others' start.
      if (!started) {
        await writeList(rejoinInitialCluster([], { name: survivorPod, peerURL: peerURL(survivor) }));
        await client.apply(marked(size));
      }
      for (const i of lost) {
        const joining = { name: podName(names, i), peerURL: peerURL(i) };
        // Added back and promoted by a stopped run: a voting member of the new cluster, left alone.
        if ((await membership.list()).some((m) => m.peerURLs.includes(joining.peerURL) && !m.isLearner)) continue;
        await ctx.progress('RecoveringQuorum', `adding ${joining.name} back as a learner`);
        const added = await membership.addLearner(joining.peerURL);
        await writeList(rejoinInitialCluster(await membership.list(), joining));
        // Its pod waited in a crash loop (back-off up to minutes): started again now, with the new list.
        await client.delete(podRef(joining.name), 'Background');
        log.info(`member ${joining.name} added back as a learner (id ${added.id}) on an empty volume`, { action: 'add-learner', member: joining.name });
        await membership.promote(added.id);
        log.info(`member ${joining.name} promoted`, { action: 'promote', member: joining.name });
      }
    } finally {
      membership.close();
    }
  }
}

/**
 * Registers member `ordinal`'s peer URL as the spec renders it, through `endpoint`, the member's own
 * plain-HTTP client URL. Turning TLS on: https, what its pod listens on once it restarts with TLS;
 * until then the member speaks plain HTTP to clients, so this needs no client certificate (CRD mode
 * has none), and the other members already hold the peer certificate to dial it. Turning it back off
 * before the member restarted: http again. Done already: nothing.
 */
export async function registerPeerURL(ctx: OperationContext, ordinal: number, endpoint: string): Promise<void> {
  const { document, log } = ctx;
  const { EtcdMembership } = await import('../engines/etcd-membership');
  const names = storeNames(document.spec.name);
  const engine = new EtcdEngine(document.spec.engine as EtcdEngineSpec);
  const peerURL = engine.peerURL({ spec: document.spec, names, clusterToken: document.clusterToken, initialClusterState: 'existing', namespace: document.namespace }, ordinal, document.namespace);
  const membership = new EtcdMembership([endpoint], { onRetry: ctx.keepAlive });
  try {
    const members = await membership.list().catch((e: Error) => {
      throw new Error(`could not list the etcd members at ${endpoint} (member ${podName(names, ordinal)}, over plain HTTP until it switches to TLS): ${e.message}`);
    });
    const member = members.find((m) => m.peerURLs.some((u) => ordinalOfPeerURL(u, names) === ordinal));
    if (!member) throw new Error(`member ${podName(names, ordinal)} is not in the etcd member list: cannot register its peer URL ${peerURL} (is a membership change unfinished?)`);
    if (member.peerURLs.length === 1 && member.peerURLs[0] === peerURL) return;
    await membership.updatePeerURLs(member.id, [peerURL]);
    log.info(`member ${podName(names, ordinal)}: peer URL ${member.peerURLs.join(', ')} → ${peerURL}`, { action: 'peer-url', member: podName(names, ordinal) });
  } finally {
    membership.close();
  }
}

/**
 * Restore (etcd's procedure): no member may run; every member's data is laid out from the same
 * snapshot with a new cluster token, into a directory of its own (older data stays); then the pods
 * start and form a new logical cluster.
 */
export async function restoreMembers(ctx: OperationContext, store: StoreDefinition, liveStatefulSet: KubeObject | undefined, desiredStatefulSet: KubeObject, options: RestoreOptions = {}): Promise<void> {
  const { client, document, log } = ctx;
  const names = storeNames(document.spec.name);
  const ns = document.namespace;
  const restore = document.spec.restore!;
  await ctx.progress('Restoring', `restoring ${document.spec.size} member(s) from ${restore.claimName}/${restore.snapshot}`);
  const id = shortHash(document.spec.name, restore.claimName, restore.snapshot);
  const prefix = document.spec.name.slice(0, 40);
  const parts = { spec: document.spec, engine: store.engine, names, namespace: ns, context: store.engineContext('existing') };
  // Before any member stops: the snapshot must be there and readable.
  const checkJob = await runJob(ctx, restoreJob(parts, 'check', `${prefix}-check-${id}`), `snapshot ${restore.claimName}/${restore.snapshot} to be checked`, { retryFailed: true });
  if (liveStatefulSet && (liveStatefulSet.spec?.replicas ?? 0) > 0) {
    // What the restore loses, before it loses it: the snapshot's revision against the members' newest.
    const snapshot = await checkedSnapshot(ctx, store, checkJob);
    const liveRevision = await options.liveRevision?.().catch(() => undefined);
    log.info(describeRestorePoint(`${restore.claimName}/${restore.snapshot}`, snapshot, liveRevision), {
      action: 'restore-point', ...(snapshot ? { snapshotRevision: snapshot.revision } : {}), ...(liveRevision !== undefined ? { liveRevision } : {}),
    });
    // Stop every member first; the StatefulSet keeps what it recorded (restored-from unchanged until done).
    const stopped = { ...desiredStatefulSet, metadata: { ...desiredStatefulSet.metadata, annotations: { ...liveStatefulSet.metadata.annotations, ...withoutRestored(desiredStatefulSet.metadata.annotations) } }, spec: { ...desiredStatefulSet.spec, replicas: 0 } };
    await client.apply(stopped);
    log.info(`StatefulSet/${names.statefulSet} scaled to 0 for the restore`, { action: 'stop-members' });
  }
  const selector = labelSelector(selectorLabels(document.spec.name));
  await until(ctx, 'every member pod to stop before the restore', async () =>
    ((await client.list('v1', 'Pod', ns, selector)).length === 0 ? true : undefined));
  // The members' PVCs, from the StatefulSet's own claim templates (it adopts them by name).
  for (let i = 0; i < document.spec.size; i++) {
    for (const t of desiredStatefulSet.spec.volumeClaimTemplates) {
      const name = pvcName(names, t.metadata.name, i);
      if (await client.read(pvcRef(ns, name))) continue;
      await client.create({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name, namespace: ns, labels: t.metadata.labels }, spec: t.spec });
    }
  }
  // One member at a time: every Job mounts the (ReadWriteOnce) backup claim.
  for (let i = 0; i < document.spec.size; i++) {
    await runJob(ctx, restoreJob(parts, i, `${prefix}-restore-${id}-${i}`), `member ${podName(names, i)}'s data to be restored`);
  }
  log.info(`every member's data restored from ${restore.claimName}/${restore.snapshot}`, { action: 'restore' });
}

/** What restoreMembers may ask of the live store. */
export interface RestoreOptions {
  /** The newest revision a live member answers with; undefined (or failing) when none answers. */
  readonly liveRevision?: () => Promise<number | undefined>;
}

/**
 * The restore point, said before any member stops: the revisions after the snapshot's are lost (when
 * the members still answer, how many). Pure.
 */
export function describeRestorePoint(source: string, snapshot: SnapshotInfo | undefined, liveRevision: number | undefined): string {
  if (!snapshot) return `restore point: ${source}, whose revision its check did not report; every write after the snapshot was taken is lost`;
  const at = `restore point: ${source} at revision ${snapshot.revision} (${snapshot.keys} keys, ${snapshot.bytes} bytes)`;
  if (liveRevision === undefined) return `${at}; no member answers, so how many later revisions are lost can't be told: every one after ${snapshot.revision}`;
  const lost = Math.max(0, liveRevision - snapshot.revision);
  return `${at}; the members are at revision ${liveRevision}: ${lost === 0 ? 'no revision is lost' : `${lost} revision${lost === 1 ? '' : 's'} (${snapshot.revision + 1}..${liveRevision}) lost`}`;
}

/** What the snapshot check Job's log says of the snapshot; undefined when the engine, its pod or its log can't tell. */
async function checkedSnapshot(ctx: OperationContext, store: StoreDefinition, job: string): Promise<SnapshotInfo | undefined> {
  const checked = store.engine.snapshots?.checked;
  if (!checked) return undefined;
  try {
    const pods = await ctx.client.list('v1', 'Pod', ctx.document.namespace, `job-name=${job}`);
    const pod = pods.find((p) => p.status?.phase === 'Succeeded');
    // restoreJob's container is `check`, wherever an injected sidecar puts it.
    const container = (pod?.spec?.containers ?? []).find((c: { name: string }) => c.name === 'check')?.name;
    if (!pod || !container) return undefined;
    const output = await ctx.client.podLog(ctx.document.namespace, pod.metadata.name, container);
    return output === undefined ? undefined : checked(output);
  } catch (e) {
    ctx.log.info(`the snapshot check's log could not be read (${(e as Error).message})`);
    return undefined;
  }
}

const withoutRestored = (a: Record<string, string> | undefined) =>
  Object.fromEntries(Object.entries(a ?? {}).filter(([k]) => k !== RESTORED_FROM_ANNOTATION));
