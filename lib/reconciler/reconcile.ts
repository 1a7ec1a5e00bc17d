// One reconcile of one store: desired (re-synthesized) → live → plan → execute → done.
import type { StoreDocument } from '../model/document';
import { OPERATION_ANNOTATION, RESTORED_FROM_ANNOTATION } from '../model/metadata';
import { storeNames } from '../model/names';
import { CONTAINS_ANNOTATION, ID_LABEL, PART_OF_LABEL } from './applyset';
import { KubeClient } from './client';
import { DesiredState, desiredState } from './desired';
import { acquireLease, leaseKeeper, releaseLease } from './lease';
import { Log } from './log';
import { changeMembership, growClaims, OperationContext, restoreMembers, sleep, snapshotBefore, until } from './operations';
import { formatPlan, Plan, plan, Step } from './plan';
import { describeRef, groupKind, KubeObject, ObjectRef, refOf } from './types';

export interface ReconcileOptions {
  /** Make changes the plan would refuse. */
  readonly force?: boolean;
  /** Print the plan, change nothing. */
  readonly dryRun?: boolean;
  /** Lease holder identity (the pod name). */
  readonly holder: string;
  /** @default 120 */
  readonly leaseDurationSeconds?: number;
  /** @default 600000 (10 minutes) */
  readonly rolloutTimeoutMs?: number;
  /** @default 1000 */
  readonly pollMs?: number;
  /**
   * Client endpoints (`http://host:port`) for membership changes.
   * @default - the store's client Service
   */
  readonly etcdEndpoints?: string[];
  /** Called as an operation moves on (CRD mode writes it to the resource's status). */
  readonly onProgress?: (event: ProgressEvent) => Promise<void>;
}

export interface ProgressEvent {
  /** Scaling, Resizing, Restoring or BackingUp. */
  readonly operation: string;
  readonly message: string;
  /** The engine's members as last listed, when the operation knows them. */
  readonly members?: readonly string[];
}

export interface ReconcileResult {
  readonly plan: Plan;
  /** Mutating requests this reconcile made (0 for a no-op). */
  readonly mutatingRequests: number;
  /** The hash of the normalized spec now applied. */
  readonly specHash: string;
}

/** A plan with refusals: nothing was changed. */
export class RefusedError extends Error {
  constructor(readonly plan: Plan) {
    super(`refused ${plan.refusals.length} change(s); nothing was changed (set force to override):\n${formatPlan(plan).filter((l) => l.startsWith('  !')).join('\n')}`);
    this.name = 'RefusedError';
  }
}

/** The API versions the reconciler lists group kinds at (those a store can contain). */
const LISTABLE: Record<string, { apiVersion: string; kind: string }> = {
  'ConfigMap': { apiVersion: 'v1', kind: 'ConfigMap' },
  'Service': { apiVersion: 'v1', kind: 'Service' },
  'StatefulSet.apps': { apiVersion: 'apps/v1', kind: 'StatefulSet' },
  'PodDisruptionBudget.policy': { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget' },
  'NetworkPolicy.networking.k8s.io': { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy' },
  'CronJob.batch': { apiVersion: 'batch/v1', kind: 'CronJob' },
};

/**
 * What is live of the desired objects, plus every object carrying our ApplySet label (prune
 * candidates) of the kinds desired now or recorded on the live ApplySet parent (a kind no longer
 * desired must still be found to be pruned).
 */
async function readLive(client: KubeClient, namespace: string, desired: readonly KubeObject[], applySetId: string, log: Log): Promise<KubeObject[]> {
  // One round trip for all of them, not one per object.
  const found = await Promise.all(desired.map((o) => client.read(refOf(o))));
  const live: KubeObject[] = found.flatMap((f, i) => (f ? [{ ...f, apiVersion: desired[i].apiVersion, kind: desired[i].kind }] : []));
  const parent = live.find((o) => o.metadata.labels?.[ID_LABEL] === applySetId);
  const recorded = (parent?.metadata.annotations?.[CONTAINS_ANNOTATION] ?? '').split(',').filter(Boolean);
  const kinds = new Set([...desired.filter((o) => o.metadata.labels?.[PART_OF_LABEL]).map(groupKind), ...recorded]);
  for (const gk of [...kinds].sort()) {
    const type = LISTABLE[gk];
    if (!type) {
      log.info(`not pruning ${gk}: not a kind a store contains`);
      continue;
    }
    for (const item of await client.list(type.apiVersion, type.kind, namespace, `${PART_OF_LABEL}=${applySetId}`)) {
      if (!live.some((l) => groupKind(l) === groupKind(item) && l.metadata.name === item.metadata.name)) live.push(item);
    }
  }
  return live;
}

/** The desired ApplySet parent listing also the kinds the live parent records (or itself if none are missing). */
export function widenParent(parent: KubeObject, live: readonly KubeObject[], applySetId: string): KubeObject {
  const current = live.find((o) => o.metadata.labels?.[ID_LABEL] === applySetId);
  const recorded = (current?.metadata.annotations?.[CONTAINS_ANNOTATION] ?? '').split(',').filter(Boolean);
  const wanted = (parent.metadata.annotations?.[CONTAINS_ANNOTATION] ?? '').split(',').filter(Boolean);
  const union = [...new Set([...wanted, ...recorded])].sort();
  if (union.length === wanted.length) return parent;
  return { ...parent, metadata: { ...parent.metadata, annotations: { ...parent.metadata.annotations, [CONTAINS_ANNOTATION]: union.join(',') } } };
}

/** Rolled out: the controller has seen this generation and every replica is updated and ready. */
export function rolledOut(sts: KubeObject): boolean {
  const status = sts.status ?? {};
  const replicas = sts.spec?.replicas ?? 1;
  // Ordinals below the partition keep the old template on purpose.
  const partition = sts.spec?.updateStrategy?.rollingUpdate?.partition ?? 0;
  return (status.observedGeneration ?? 0) >= (sts.metadata.generation ?? 1)
    && (status.readyReplicas ?? 0) === replicas
    && (sts.spec?.updateStrategy?.type === 'OnDelete' || (status.updatedReplicas ?? 0) >= Math.max(0, replicas - partition));
}

/** What executing a step needs; `keepAlive` renews the Lease during long waits. */
interface Context {
  readonly client: KubeClient;
  readonly options: ReconcileOptions;
  readonly log: Log;
  readonly keepAlive: () => Promise<void>;
  readonly operation: OperationContext;
}

/** Delete with orphan propagation (pods keep running, PVCs stay), wait until gone, create again: it adopts the pods. */
async function recreate(ctx: Context, object: KubeObject): Promise<void> {
  const ref = refOf(object);
  await ctx.client.delete(ref, 'Orphan');
  await until(ctx.operation, `${describeRef(ref)} to be deleted`, async () => ((await ctx.client.read(ref)) ? undefined : true));
  await ctx.client.apply(object);
}

async function waitRollout({ client, options, log, keepAlive }: Context, ref: ObjectRef): Promise<void> {
  const deadline = Date.now() + (options.rolloutTimeoutMs ?? 600_000);
  for (;;) {
    await keepAlive();
    const sts = await client.read(ref);
    if (sts && rolledOut(sts)) return;
    if (Date.now() > deadline) {
      const s = sts?.status ?? {};
      throw new Error(`${describeRef(ref)} did not roll out in time: ${s.readyReplicas ?? 0}/${sts?.spec?.replicas ?? '?'} ready, ${s.updatedReplicas ?? 0} updated, observed generation ${s.observedGeneration ?? 0} of ${sts?.metadata.generation ?? '?'}`);
    }
    log.info(`waiting for ${describeRef(ref)}: ${sts?.status?.readyReplicas ?? 0}/${sts?.spec?.replicas ?? '?'} ready`);
    await sleep(options.pollMs ?? 1000);
  }
}

async function execute(ctx: Context, step: Step, n: number, of: number): Promise<void> {
  const { client, log } = ctx;
  if (step.action === 'resize') {
    await growClaims(ctx.operation, step.claims);
    await recreate(ctx, step.object);
    log.step(n, of, `resized ${describeRef(refOf(step.object))}: ${step.claims.map((c) => `${c.template} ${c.from} → ${c.to}`).join(', ')}; re-created, pods adopted`, { action: 'resize', object: describeRef(refOf(step.object)) });
    return;
  }
  await ctx.keepAlive();
  switch (step.action) {
    case 'create':
      await client.apply(step.object);
      log.step(n, of, `created ${describeRef(refOf(step.object))}`, { action: 'create', object: describeRef(refOf(step.object)) });
      return;
    case 'update':
      await client.apply(step.object);
      log.step(n, of, `updated ${describeRef(refOf(step.object))} (${step.changes.map((c) => c.path).join(', ')})`, { action: 'update', object: describeRef(refOf(step.object)), changes: step.changes.map((c) => c.path) });
      return;
    case 'recreate':
      await recreate(ctx, step.object);
      log.step(n, of, `re-created ${describeRef(refOf(step.object))} (orphaned pods adopted)`, { action: 'recreate', object: describeRef(refOf(step.object)) });
      return;
    case 'wait-rollout':
      await waitRollout(ctx, step.ref);
      log.step(n, of, `${describeRef(step.ref)} rolled out`, { action: 'wait-rollout', object: describeRef(step.ref) });
      return;
    case 'prune':
      await client.delete(step.ref, 'Background');
      log.step(n, of, `pruned ${describeRef(step.ref)}`, { action: 'prune', object: describeRef(step.ref) });
      return;
  }
}

/** The document with `size` members (a step of a membership change). */
function withSize(document: StoreDocument, size: number): StoreDocument {
  return size === document.spec.size ? document : { ...document, spec: { ...document.spec, size } };
}

/**
 * The membership change a run has to make, from what is live: the StatefulSet's replicas (or, while
 * it is being re-created, the bootstrap ConfigMap's member count) and its operation mark.
 */
function membershipChange(document: StoreDocument, live: { bootstrapped: boolean; size: number; sts?: KubeObject }, restoring: boolean): { from: number; inProgress: boolean } | undefined {
  if (!live.bootstrapped || restoring || document.spec.engine.kind !== 'etcd' || live.size < 1) return undefined;
  const inProgress = !!live.sts?.metadata.annotations?.[OPERATION_ANNOTATION];
  return live.size !== document.spec.size || inProgress ? { from: live.size, inProgress } : undefined;
}

/**
 * Reconciles one store. Reading and planning make no changes; a plan without steps returns before
 * the lease is taken, so a no-op reconcile makes no mutating request at all.
 *
 * Beyond the plan: etcd membership changes one member at a time (the StatefulSet's replicas follow
 * the member list, never lead it), volume growth, restore, and a snapshot before any of them when
 * backup is on. What is live decides each step, so an interrupted run is finished by the next one.
 */
export async function reconcileStore(document: StoreDocument, client: KubeClient, log: Log, options: ReconcileOptions): Promise<ReconcileResult> {
  const before = client.counters.mutating;
  const names = storeNames(document.spec.name);
  const stsRef: ObjectRef = { apiVersion: 'apps/v1', kind: 'StatefulSet', namespace: document.namespace, name: names.statefulSet };
  const bootstrapRef: ObjectRef = { apiVersion: 'v1', kind: 'ConfigMap', namespace: document.namespace, name: names.bootstrapConfig };
  const target = desiredState(document, { initialClusterState: 'existing' });
  const targetSts = target.objects.find((o) => groupKind(o) === 'StatefulSet.apps')!;
  const restoredFrom = targetSts.metadata.annotations?.[RESTORED_FROM_ANNOTATION];

  // What is live decides how to render. The bootstrap ConfigMap outlives a StatefulSet deleted for a
  // re-create, so a run stopped between the delete and the create still knows the cluster exists,
  // how many members it has and what it was restored from.
  let liveSts: KubeObject | undefined;
  let liveBootstrap: KubeObject | undefined;
  const readStore = async () => {
    // Only etcd stores have one (and only theirs may the reconciler read).
    const etcd = document.spec.engine.kind === 'etcd';
    [liveSts, liveBootstrap] = await Promise.all([client.read(stsRef), etcd ? client.read(bootstrapRef) : undefined]);
  };
  await readStore();
  const bootstrapped = () => !!liveSts || liveBootstrap?.data?.ETCD_INITIAL_CLUSTER_STATE === 'existing';
  const liveSize = () => liveSts?.spec?.replicas ?? String(liveBootstrap?.data?.ETCD_INITIAL_CLUSTER ?? '').split(',').filter(Boolean).length;
  const liveRestoredFrom = () => liveSts?.metadata.annotations?.[RESTORED_FROM_ANNOTATION] ?? (liveSts ? undefined : liveBootstrap?.metadata.annotations?.[RESTORED_FROM_ANNOTATION]);
  const restoring = () => !!restoredFrom && liveRestoredFrom() !== restoredFrom;
  // Marks the StatefulSet while members change, so a run stopped in the middle is resumed.
  const membersMark = `members → ${document.spec.size}`;
  const renderFor = (size: number, operation?: string): DesiredState =>
    desiredState(withSize(document, size), { initialClusterState: bootstrapped() ? 'existing' : 'new', operation });

  // The ApplySet parent must list every kind the set may still contain until pruning is done, or
  // an interrupted prune would leave objects no later run looks for: apply the union first and the
  // exact list after the prunes.
  let exactParent: KubeObject | undefined;
  const planFor = async (desired: DesiredState, replicasManaged = false) => {
    const live = await readLive(client, document.namespace, desired.objects, desired.applySetId, log);
    const [parent, ...rest] = desired.objects;
    const widened = widenParent(parent, live, desired.applySetId);
    exactParent = widened === parent ? undefined : parent;
    return plan([widened, ...rest], live, { force: options.force, applySetId: desired.applySetId, replicasManaged });
  };
  const planNow = async () => {
    await readStore();
    const change = membershipChange(document, { bootstrapped: bootstrapped(), size: liveSize(), sts: liveSts }, restoring());
    // A membership change runs around the plan: plan at the live size, change members after.
    const desired = change ? renderFor(change.from, membersMark) : renderFor(document.spec.size);
    return { p: await planFor(desired, restoring()), change };
  };

  let { p, change } = await planNow();
  log.info(`store ${document.namespace}/${document.spec.name}`, { store: document.spec.name, namespace: document.namespace });
  for (const line of formatPlan(p)) log.info(line);
  if (restoring()) log.info(`  ⟲ restore every member from ${restoredFrom} (a new logical cluster), then start them`);
  if (change) log.info(`  ⇅ members ${change.from} → ${document.spec.size}${change.inProgress ? ' (resuming)' : ''}: one at a time, ${change.from < document.spec.size ? 'each added as a learner, started, promoted once caught up' : 'each removed from the cluster before its pod'}`);
  if (p.refusals.length > 0) throw new RefusedError(p);
  const noOp = p.steps.length === 0 && !exactParent && !change && !restoring();
  if (noOp || options.dryRun) return { plan: p, mutatingRequests: client.counters.mutating - before, specHash: target.store.specHash };

  const lease = { name: target.lease, namespace: document.namespace, holder: options.holder, durationSeconds: options.leaseDurationSeconds };
  await acquireLease(client, lease);
  try {
    // Someone may have changed things while we waited for the lease: plan again under it.
    ({ p, change } = await planNow());
    if (p.refusals.length > 0) throw new RefusedError(p);
    const keepAlive = leaseKeeper(client, lease);
    const operation: OperationContext = {
      client, log, document, keepAlive,
      progress: async (op, message, members) => {
        log.info(`${op}: ${message}`, { operation: op });
        await options.onProgress?.({ operation: op, message, ...(members ? { members } : {}) });
      },
      timeoutMs: options.rolloutTimeoutMs ?? 600_000,
      pollMs: options.pollMs ?? 1000,
    };
    const ctx: Context = { client, options, log, keepAlive, operation };

    const resizing = p.steps.some((s) => s.action === 'resize');
    if (liveSts && (change || resizing || restoring())) {
      const what = restoring() ? `restore from ${restoredFrom}` : change ? `members ${change.from} → ${document.spec.size}` : 'resize';
      // Best effort before a restore: it is how a store that cannot answer any more is brought back.
      await snapshotBefore(operation, target.objects, what, `${target.store.specHash}/${liveSts.metadata.uid ?? ''}/${liveSts.metadata.generation ?? 0}`, { bestEffort: restoring() });
    }
    if (restoring()) {
      await restoreMembers(operation, target.store, liveSts, targetSts);
      ({ p } = await planNow());
      if (p.refusals.length > 0) throw new RefusedError(p);
    }
    const steps = p.steps;
    for (let i = 0; i < steps.length; i++) await execute(ctx, steps[i], i + 1, steps.length);

    if (change) {
      const applyMembers = async (size: number) => {
        const mp = await planFor(renderFor(size, membersMark), true);
        if (mp.refusals.length > 0) throw new RefusedError(mp);
        const changes = mp.steps.filter((s) => s.action === 'create' || s.action === 'update');
        for (let i = 0; i < changes.length; i++) await execute(ctx, changes[i], i + 1, changes.length);
      };
      const endpoints = options.etcdEndpoints ?? [`http://${target.store.clientEndpoint}`];
      await changeMembership(operation, endpoints, applyMembers, () => waitRollout(ctx, stsRef));
    }
    // Finish: the store exactly as desired (bootstrap state `existing`, no operation mark).
    const final = await planFor(desiredState(document, { initialClusterState: 'existing' }));
    if (final.refusals.length > 0) throw new RefusedError(final);
    for (let i = 0; i < final.steps.length; i++) await execute(ctx, final.steps[i], i + 1, final.steps.length);
    if (exactParent) {
      await client.apply(exactParent);
      log.info(`ApplySet ${describeRef(refOf(exactParent))} now lists ${exactParent.metadata.annotations?.[CONTAINS_ANNOTATION]}`);
    }
  } finally {
    await releaseLease(client, lease);
  }
  log.info(`store ${document.spec.name} reconciled`, { store: document.spec.name, mutatingRequests: client.counters.mutating - before });
  return { plan: p, mutatingRequests: client.counters.mutating - before, specHash: target.store.specHash };
}
