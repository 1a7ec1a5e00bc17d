// One reconcile of one store: read what is live → plan → execute under the Lease → result.
import { existsSync, readFileSync } from 'fs';
import type { EtcdEngine } from '../engines/etcd';
import type { EtcdClientTls } from '../engines/etcd-membership';
import { TLS_DIRS, tlsFiles } from '../engines/types';
import { specHash, StoreDocument } from '../model/document';
import { AUTH_ANNOTATION, LAST_ERROR_ANNOTATION, LAST_RECONCILE_TIME_ANNOTATION, OPERATION_ANNOTATION, RESTORED_FROM_ANNOTATION, TLS_TRUST_ANNOTATION } from '../model/metadata';
import { podFqdn, podName, pvcName, reconcilerNames, storeNames, tlsSecrets, tlsTrust } from '../model/names';
import { CONTAINS_ANNOTATION, ID_LABEL, PART_OF_LABEL } from './applyset';
import { KubeClient } from './client';
import { DesiredState, desiredState } from './desired';
import { EventRecorder, EventRegarding, eventForFailure, reconciledEvent } from './events';
import { acquireLease, leaseKeeper, LeaseHeldError, releaseLease } from './lease';
import { Log } from './log';
import { MaintainResult, MaintenanceError, maintainMembers } from './maintain';
import { changeMembership, growClaims, OperationContext, ordinalOfPeerURL, recoverFromSurvivor, registerPeerURL, replaceMember, restoreMembers, sleep, snapshotBefore, until, waitCaughtUp } from './operations';
import { CA_ROTATION_MARK, CaRotation, caRotationRender, crashLooping, intent, mayCrashLoop, podReady, isNoOp, LiveStore, membersMark, ObjectPlan, planObjects, renderAt, RunPlan, TLS_SWITCH_MARK, upgradeRender } from './phases';
import { formatPlan, Plan, Step, upgradeFrom } from './plan';
import { describeRef, groupKind, KubeObject, ObjectRef, refOf } from './types';

/** How one store is reconciled. */
export interface ReconcileOptions {
  /** Make changes the plan would refuse. */
  readonly force?: boolean;
  /** Print the plan, change nothing. */
  readonly dryRun?: boolean;
  /** Lease holder identity (the pod name). */
  readonly holder: string;
  /** @default 120 */
  readonly leaseDurationSeconds?: number;
  /**
   * How long to wait for the store's Lease while another live reconciler holds it, before giving up.
   * @default 0 (give up at once)
   */
  readonly leaseWaitMs?: number;
  /** @default 600000 (10 minutes) */
  readonly rolloutTimeoutMs?: number;
  /** @default 1000 */
  readonly pollMs?: number;
  /**
   * Client endpoints (`http://host:port`) for membership changes.
   * @default - the store's client Service
   */
  readonly etcdEndpoints?: string[];
  /**
   * Force only the store document whose spec hash this is; any other runs without force (a retried
   * older reconciler Job reads the newer document from the ConfigMap).
   * @default - force, if given, applies to any document
   */
  readonly forceSpec?: string;
  /**
   * With TLS: the directory holding the client certificate (tls.crt, tls.key, ca.crt).
   * @default - where the reconciler Job mounts it (/etc/kvstore/client-tls)
   */
  readonly etcdTlsDir?: string;
  /**
   * With TLS: the client certificate itself, read when a step needs it (CRD mode reads the store's
   * `<store>-client-tls` Secret: the operator's pod mounts none).
   * @default - the files in etcdTlsDir
   */
  readonly etcdClientCertificate?: () => Promise<Omit<EtcdClientTls, 'serverName'>>;
  /**
   * One member's plain-HTTP client URL (`http://host:port`), by ordinal: turning TLS on registers each
   * member's https peer URL through the member itself, while it still speaks plain HTTP.
   * @default - the member's DNS name under the headless Service
   */
  readonly etcdMemberEndpoint?: (ordinal: number) => string;
  /**
   * With TLS: the CA certificate the spec's members trust (the member Secret's `ca.crt`), read when
   * recording it and in a CA rotation (CRD mode reads the Secret).
   * @default - the file the GitOps reconciler Job mounts (/etc/kvstore/member-ca/ca.crt)
   */
  readonly etcdMemberCa?: () => Promise<Buffer>;
  /** Called as an operation moves on (CRD mode writes it to the resource's status). */
  readonly onProgress?: (event: ProgressEvent) => Promise<void>;
  /**
   * Maintenance: when a majority of members is gone for good, recover from the most advanced survivor
   * (etcd's --force-new-cluster procedure). Writes acknowledged after its revision may be lost: the
   * plan says so; without this the run refuses, printing the plan.
   * @default false
   */
  readonly recoverQuorumLoss?: boolean;
  /**
   * Record a Kubernetes Event (events.k8s.io/v1) for each step, refusal and failure: best-effort, in
   * the background (see events.ts).
   * @default true (never in a dry run)
   */
  readonly recordEvents?: boolean;
  /**
   * The object the Events are about (CRD mode: the KVStore resource, with its uid).
   * @default - the StatefulSet; before it exists, the ApplySet parent ConfigMap `<store>-applyset`
   */
  readonly eventsRegarding?: EventRegarding;
  /**
   * The clock Events and the GitOps-mode outcome annotations are stamped with (injected by tests).
   * @default - the system clock
   */
  readonly now?: () => Date;
}

/** The field manager of the outcome annotations on the ApplySet parent (see runOutcomeAnnotations). */
export const OUTCOME_FIELD_MANAGER = 'cdk8s-kvstore-reconciler-outcome';

/** How a run ended, for its record (GitOps mode's annotations, CRD mode's status). */
export type RunOutcome = { readonly succeeded: true; readonly changed: boolean } | { readonly succeeded: false; readonly error: string };

/** The longest error a record keeps (the rest is in the run's log). */
export const LAST_ERROR_MAX_LENGTH = 1000;

/**
 * GitOps mode: the outcome annotations the ApplySet parent should carry after a run, or undefined when
 * they are right as they are (pure). A success that changed something, or that clears an error,
 * stamps the time and drops last-error; one that changed nothing and has nothing to clear writes
 * nothing (a no-op run makes no mutating request). A failure keeps the time of the last success and
 * sets last-error (once: the same error again writes nothing).
 */
export function runOutcomeAnnotations(current: Readonly<Record<string, string>>, outcome: RunOutcome, now: Date): Record<string, string> | undefined {
  const time = current[LAST_RECONCILE_TIME_ANNOTATION];
  const error = current[LAST_ERROR_ANNOTATION];
  if (outcome.succeeded) {
    if (!outcome.changed && error === undefined) return undefined;
    return { [LAST_RECONCILE_TIME_ANNOTATION]: now.toISOString() };
  }
  const message = outcome.error.slice(0, LAST_ERROR_MAX_LENGTH);
  if (error === message) return undefined;
  return { ...(time !== undefined ? { [LAST_RECONCILE_TIME_ANNOTATION]: time } : {}), [LAST_ERROR_ANNOTATION]: message };
}

/** A day-2 operation moving on (CRD mode writes it to the resource's status). */
export interface ProgressEvent {
  /** Scaling, Resizing, Restoring, BackingUp, EnablingTls, RotatingCa or Upgrading. */
  readonly operation: string;
  /** What it is doing now. */
  readonly message: string;
  /** The engine's members as last listed, when the operation knows them. */
  readonly members?: readonly string[];
}

/** What one reconcile did. */
export interface ReconcileResult {
  /** The plan it executed (or, for a dry run, would have). */
  readonly plan: Plan;
  /** Mutating requests this reconcile made (0 for a no-op). */
  readonly mutatingRequests: number;
  /** The hash of the normalized spec now applied. */
  readonly specHash: string;
}

/** A plan with refusals: nothing was changed. */
export class RefusedError extends Error {
  constructor(
    /** The plan with its refusals. */
    readonly plan: Plan,
  ) {
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
  // CRD mode: a TLS store's certificates (GitOps mode leaves them to the GitOps tool).
  'Certificate.cert-manager.io': { apiVersion: 'cert-manager.io/v1', kind: 'Certificate' },
  'Issuer.cert-manager.io': { apiVersion: 'cert-manager.io/v1', kind: 'Issuer' },
};

/**
 * What is live of the desired objects, plus every object carrying our ApplySet label (prune
 * candidates) of the kinds desired now or recorded on the live ApplySet parent (a kind no longer
 * desired must still be found to be pruned).
 */
async function readObjects(client: KubeClient, namespace: string, desired: readonly KubeObject[], applySetId: string, log: Log): Promise<KubeObject[]> {
  // One round trip for all of them, not one per object.
  const found = await Promise.all(desired.map((o) => client.read(refOf(o))));
  const live: KubeObject[] = found.flatMap((f, i) => (f ? [{ ...f, apiVersion: desired[i].apiVersion, kind: desired[i].kind }] : []));
  const parent = live.find((o) => o.metadata.labels?.[ID_LABEL] === applySetId);
  const recorded = (parent?.metadata.annotations?.[CONTAINS_ANNOTATION] ?? '').split(',').filter(Boolean);
  const kinds = new Set([...desired.filter((o) => o.metadata.labels?.[PART_OF_LABEL]).map(groupKind), ...recorded]);
  for (const gk of [...kinds].sort()) {
    const type = LISTABLE[gk];
    if (!type) {
      log.info(`not pruning ${gk}: ${gk === 'PersistentVolumeClaim' ? 'claims are never pruned' : 'not a kind a store contains'}`);
      continue;
    }
    for (const item of await client.list(type.apiVersion, type.kind, namespace, `${PART_OF_LABEL}=${applySetId}`)) {
      if (!live.some((l) => groupKind(l) === groupKind(item) && l.metadata.name === item.metadata.name)) live.push(item);
    }
  }
  return live;
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

async function executeStep(ctx: Context, step: Step, n: number, of: number): Promise<void> {
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

async function executeSteps(ctx: Context, steps: readonly Step[]): Promise<void> {
  for (let i = 0; i < steps.length; i++) await executeStep(ctx, steps[i], i + 1, steps.length);
}

function throwIfRefused(p: Plan): void {
  if (p.refusals.length > 0) throw new RefusedError(p);
}

/**
 * One reconcile of one store, as phases: read what is live, plan (pure: see phases.ts), execute
 * under the Lease, report. Reading and planning make no changes; a plan without steps returns before
 * the Lease is taken, so a no-op reconcile makes no mutating request at all.
 *
 * Beyond the plan: etcd membership changes one member at a time (the StatefulSet's replicas follow
 * the member list, never lead it), volume growth, restore, and a snapshot before any of them when
 * backup is on. What is live decides each step, so an interrupted run is finished by the next one.
 */
export class StoreReconciler {
  private readonly stsRef: ObjectRef;
  private readonly bootstrapRef: ObjectRef;
  /** The store as it is once reconciled. */
  private readonly target: DesiredState;
  private readonly targetSts: KubeObject;
  /** The snapshot the spec restores from, if any. */
  private readonly restoredFrom?: string;
  /** Whether force applies to this document (it belongs to the spec it was given for). */
  private readonly force: boolean;

  /** Every line of the run, told to the Event recorder too when there is one. */
  private readonly log: Log;
  /** The run's Events (none for a dry run). */
  private readonly events?: EventRecorder;
  /** The StatefulSet the Events are about, once read; forgotten when a step touches it (a re-create changes its uid). */
  private regardingStatefulSet?: EventRegarding;

  constructor(private readonly document: StoreDocument, private readonly client: KubeClient, log: Log, private readonly options: ReconcileOptions) {
    const names = storeNames(document.spec.name);
    this.stsRef = { apiVersion: 'apps/v1', kind: 'StatefulSet', namespace: document.namespace, name: names.statefulSet };
    if (!options.dryRun && options.recordEvents !== false) {
      const events = new EventRecorder(client, { regarding: () => this.regarding(), reportingInstance: options.holder, log, ...(options.now ? { now: options.now } : {}) });
      const sts = describeRef(this.stsRef);
      this.events = events;
      this.log = log.tap((line) => {
        if (line.fields.object === sts) this.regardingStatefulSet = undefined;
        events.listener(line);
      });
    } else {
      this.log = log;
    }
    this.bootstrapRef = { apiVersion: 'v1', kind: 'ConfigMap', namespace: document.namespace, name: names.bootstrapConfig };
    this.target = desiredState(document, { initialClusterState: 'existing' });
    this.targetSts = this.target.objects.find((o) => groupKind(o) === 'StatefulSet.apps')!;
    this.restoredFrom = this.targetSts.metadata.annotations?.[RESTORED_FROM_ANNOTATION];
    const hash = specHash(document.spec);
    this.force = !!options.force && (options.forceSpec === undefined || options.forceSpec === hash);
    if (options.force && !this.force) {
      this.log.info(`--force was given for spec ${options.forceSpec}; this document is spec ${hash}: running without force`, { action: 'force-ignored', forceSpec: options.forceSpec });
    }
  }

  /**
   * One reconcile (see reconcileOnce), recorded: an Event when it changed something or failed, and in
   * GitOps mode the outcome annotations on the ApplySet parent. Queued Events are flushed before it returns.
   */
  async reconcile(): Promise<ReconcileResult> {
    try {
      const result = await this.reconcileOnce();
      if (result.mutatingRequests > 0) this.events?.record(reconciledEvent(`${this.document.namespace}/${this.document.spec.name}`, result.mutatingRequests));
      await this.recordOutcome({ succeeded: true, changed: result.mutatingRequests > 0 });
      return result;
    } catch (e) {
      // Another run holds the Lease: it records its own steps; this one changed nothing and says so in its log.
      if (!(e instanceof LeaseHeldError)) {
        this.events?.record(eventForFailure(e, 'reconcile'));
        await this.recordOutcome({ succeeded: false, error: (e as Error).message ?? String(e) });
      }
      throw e;
    } finally {
      await this.events?.flush();
    }
  }

  /**
   * The object this run's Events are about: `eventsRegarding` (CRD mode), else the StatefulSet with its
   * uid (so `kubectl describe statefulset` lists them), else the ApplySet parent, else the StatefulSet by
   * name alone (`kubectl get events` still finds those).
   */
  private async regarding(): Promise<EventRegarding> {
    if (this.options.eventsRegarding) return this.options.eventsRegarding;
    if (this.regardingStatefulSet) return this.regardingStatefulSet;
    const sts = await this.client.read(this.stsRef);
    if (sts) return (this.regardingStatefulSet = { ...this.stsRef, uid: sts.metadata.uid as string });
    const parentRef = this.parentRef();
    const parent = await this.client.read(parentRef);
    return parent ? { ...parentRef, uid: parent.metadata.uid as string } : this.stsRef;
  }

  private parentRef(): ObjectRef {
    return { apiVersion: 'v1', kind: 'ConfigMap', namespace: this.document.namespace, name: reconcilerNames(this.document.spec.name).applySetParent };
  }

  /**
   * GitOps mode (no status object): the outcome on the ApplySet parent's annotations (see
   * runOutcomeAnnotations), under a field manager of its own so the parent's own applies keep them.
   * Best-effort: the run's exit code and log are the record that counts. Not before the parent exists.
   */
  private async recordOutcome(outcome: RunOutcome): Promise<void> {
    if (this.options.dryRun || this.document.reconciledBy === 'operator') return;
    const ref = this.parentRef();
    // Best effort, like the Events: a run that failed because the API server is slow must not wait
    // minutes more to say so.
    const client = this.client.bestEffort();
    try {
      const parent = await client.read(ref);
      if (!parent) return;
      const annotations = runOutcomeAnnotations(parent.metadata.annotations ?? {}, outcome, (this.options.now ?? (() => new Date()))());
      if (!annotations) return;
      await client.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: ref.name, namespace: ref.namespace, annotations } }, OUTCOME_FIELD_MANAGER);
    } catch (e) {
      this.log.info(`could not record the run's outcome on ${describeRef(ref)}: ${(e as Error).message}`);
    }
  }

  private async reconcileOnce(): Promise<ReconcileResult> {
    const before = this.client.counters.mutating;
    let run = await this.planRun();
    this.report(run);
    this.refuseCombined(run);
    throwIfRefused(run.plan);
    if (this.options.dryRun) return this.result(run.plan, before);
    // Whether the store has (or had, by its live StatefulSet's mark) clients whose users are ours.
    const auth = this.authManaged(run.live);
    if (isNoOp(run)) {
      // A changed client list changes no Kubernetes object in GitOps mode: etcd's users may still.
      if (auth && await this.authPending()) await this.underLease(() => this.reconcileAuth());
      await this.recordTrust(run.live.sts);
      return this.result(run.plan, before);
    }

    const executed = await this.underLease(async (keepAlive) => {
      // Someone may have changed things while we waited for the lease: plan again under it.
      run = await this.planRun();
      this.refuseCombined(run);
      throwIfRefused(run.plan);
      // Clients dropped: their users go first, while the StatefulSet still carries the mark that says so.
      if (auth && !this.document.spec.clients) await this.reconcileAuth();
      const done = await this.execute(run, keepAlive);
      // Clients added or changed: once the members run.
      if (auth && this.document.spec.clients) await this.reconcileAuth();
      return done;
    });
    this.log.info(`store ${this.document.spec.name} reconciled`, { store: this.document.spec.name, mutatingRequests: this.client.counters.mutating - before });
    return this.result(executed, before);
  }

  /** Runs `fn` holding the store's Lease (`keepAlive` renews it), and gives it back whatever happens. */
  private async underLease<T>(fn: (keepAlive: () => Promise<void>) => Promise<T>): Promise<T> {
    const lease = { name: this.target.lease, namespace: this.document.namespace, holder: this.options.holder, durationSeconds: this.options.leaseDurationSeconds };
    await acquireLease(this.client, {
      ...lease,
      waitMs: this.options.leaseWaitMs ?? 0,
      pollMs: this.options.pollMs ?? 1000,
      onWait: (holder, expires) => this.log.info(`Lease ${lease.name} is held by ${holder} (until ${expires.toISOString()} unless renewed): waiting for it`, { action: 'lease-wait', holder }),
    });
    const keepAlive = leaseKeeper(this.client, lease);
    // Every write under the Lease is fenced by it, not only those a step renews before.
    const unfenced = this.client.fence;
    this.client.fence = keepAlive;
    try {
      return await fn(keepAlive);
    } finally {
      this.client.fence = unfenced;
      await releaseLease(this.client, lease);
    }
  }

  /**
   * Scheduled maintenance of a live etcd store (see maintainMembers), under the store's Lease: a run
   * waits for a reconcile under way rather than defragmenting members it is restarting.
   */
  async maintain(): Promise<MaintainResult> {
    try {
      return await this.maintainOnce();
    } catch (e) {
      if (!(e instanceof LeaseHeldError)) this.events?.record(eventForFailure(e, 'maintain'));
      throw e;
    } finally {
      await this.events?.flush();
    }
  }

  private async maintainOnce(): Promise<MaintainResult> {
    const { document } = this;
    const sts = document.spec.engine.kind === 'etcd' ? await this.client.read(this.stsRef) : undefined;
    const mark = sts?.metadata.annotations?.[OPERATION_ANNOTATION];
    // Another operation a stopped reconcile left half done: the reconciler finishes it, not maintenance.
    if (mark && !mark.startsWith('quorum → ')) {
      throw new MaintenanceError(`store ${document.namespace}/${document.spec.name}: "${mark}" is under way (the StatefulSet's ${OPERATION_ANNOTATION}): the reconciler finishes it first; no maintenance now`, undefined, 'OperationInProgress');
    }
    if (!sts || ((sts.spec?.replicas ?? 0) === 0 && !mark)) {
      this.log.info(`store ${document.namespace}/${document.spec.name}: no live etcd members to maintain`);
      return { kind: 'none' };
    }
    const tls = await this.clientTls();
    const quotaBackendBytes = (this.target.store.engine as EtcdEngine).quotaBackendBytes(document.spec);
    return this.underLease(async (keepAlive) => {
      // A recovery under way scaled the members to 0: the spec's size then.
      const live = await this.client.read(this.stsRef);
      const endpoints = Array.from({ length: mark ? document.spec.size : live?.spec?.replicas ?? 0 }, (_, i) => this.memberEndpoint(i, !!tls));
      const ctx = this.context(keepAlive);
      if (await this.recoverQuorum(ctx, endpoints, tls)) return { kind: 'quorum-recovery' as const };
      const replaced = await this.replaceLostMembers(ctx, endpoints, tls);
      const done = await maintainMembers({ store: `${document.namespace}/${document.spec.name}`, endpoints, ...(tls ? { tls } : {}), quotaBackendBytes, keepAlive, log: this.log, progress: ctx.operation.progress, retryTimeoutMs: ctx.operation.timeoutMs, healthyWithinMs: Math.min(30_000, ctx.operation.timeoutMs) });
      this.log.info(`store ${document.spec.name} maintained`, { store: document.spec.name, maintenance: done.kind });
      return replaced.length ? { ...done, replaced } : done;
    });
  }

  /**
   * Quorum lost for good (see planQuorumRecovery: fewer than a majority answer, none sees a leader):
   * with recoverQuorumLoss, recovered from the most advanced survivor (see recoverFromSurvivor), else
   * refused with the plan and what it would lose. Returns whether it recovered; throws when it cannot.
   */
  private async recoverQuorum(ctx: Context, endpoints: string[], tls: EtcdClientTls | undefined): Promise<boolean> {
    const { document, log } = this;
    const names = storeNames(document.spec.name);
    const live = await this.client.read(this.stsRef);
    const recover = (survivor: number) => recoverFromSurvivor(ctx.operation, this.target.objects, survivor, endpoints.length, (i) => endpoints[i], this.target.store.engine.clientPort, tls);
    // A recovery a stopped run began: made again from the same survivor (every step can be).
    const resumed = /^quorum → from (.+)$/.exec(live?.metadata.annotations?.[OPERATION_ANNOTATION] ?? '')?.[1];
    if (resumed) {
      const survivor = endpoints.findIndex((_, i) => podName(names, i) === resumed);
      if (survivor < 0) throw new MaintenanceError(`store ${document.namespace}/${document.spec.name}: a recovery from ${resumed} is under way, but it is not one of the ${endpoints.length} members`);
      log.info(`resuming the recovery of quorum from ${resumed}`, { action: 'recover-quorum', member: resumed });
      await recover(survivor);
      await waitRollout(ctx, this.stsRef);
      return true;
    }
    const { describeRecoveryPlan, planQuorumRecovery, probeMembers } = await import('../engines/etcd-recovery');
    const members = endpoints.map((endpoint, i) => ({ name: podName(names, i), endpoint }));
    const planNow = async () => planQuorumRecovery({
      members: members.map((m) => m.name),
      probes: await probeMembers(members, tls ? { tls } : {}),
      allowDataLoss: !!this.options.recoverQuorumLoss,
      source: 'survivor',
    });
    let plan = await planNow();
    if (plan.outcome === 'not-needed' || plan.outcome === 'wait') return false;
    // Not on one look: the same answer again after several election timeouts (1 s by default).
    await sleep(QUORUM_RECHECK_MS);
    const again = await planNow();
    if (again.outcome !== plan.outcome || (again.procedure?.source === 'survivor' && plan.procedure?.source === 'survivor' && again.procedure.survivor.name !== plan.procedure.survivor.name)) {
      log.info(`quorum looked lost, then not the same ${QUORUM_RECHECK_MS / 1000} s later (${again.reason}): nothing done`);
      return false;
    }
    plan = again;
    for (const line of describeRecoveryPlan(plan)) log.info(line);
    const refuse = (why: string) => new MaintenanceError(`store ${document.namespace}/${document.spec.name}: quorum lost, not recovered: ${why}`, undefined, 'QuorumLost');
    if (plan.outcome !== 'recover' || plan.procedure?.source !== 'survivor') {
      throw refuse(plan.reason + (plan.outcome === 'refused' ? ' (allow it with reconciler.maintenance.recoverQuorumLoss, or once with kvstore-reconcile --maintain --recover-quorum-loss and a kubeconfig that may create pods; or restore the newest snapshot with restore and force)' : ''));
    }
    // Gone for good, by Kubernetes too: every silent member's pod crash-loops, or its claim is gone or Lost.
    const pods = await this.memberPods(members.length);
    for (const silent of plan.quorum.silent) {
      const i = members.findIndex((m) => m.name === silent.name);
      const pod = pods[i];
      const claims = await Promise.all(document.spec.volumeClaimTemplates.map((t) => this.client.read({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: document.namespace, name: pvcName(names, t.name, i) })));
      const claimGone = claims.some((c) => !c || c.status?.phase === 'Lost');
      if (!crashLooping(pod) && !claimGone) {
        throw refuse(`${silent.name} does not answer (${silent.error}) but is not gone for good: its pod is ${pod ? `${pod.status?.phase ?? 'unknown'}, not crash-looping` : 'missing'} and its claims are there; it may come back (a node restarting, a partition). Nothing was changed.`);
      }
    }
    // The members run what the spec renders: a recovery restarts them from it.
    const desiredSts = this.targetSts;
    const image = (o?: KubeObject) => o?.spec?.template?.spec?.containers?.[0]?.image;
    if ((live?.spec?.replicas ?? 0) !== document.spec.size || image(live) !== image(desiredSts)) {
      throw refuse(`the spec (size ${document.spec.size}, image ${image(desiredSts)}) is not what the members run (${live?.spec?.replicas ?? 0} members, image ${image(live)}): put the spec back to what they run first. Nothing was changed.`);
    }
    const procedure = plan.procedure;
    const survivor = members.findIndex((m) => m.name === procedure.survivor.name);
    log.info(`recovering quorum from ${members[survivor].name}: ${procedure.dataLoss.statement}`, { action: 'recover-quorum', member: members[survivor].name });
    await recover(survivor);
    await waitRollout(ctx, this.stsRef);
    return true;
  }


  /**
   * The member pods by ordinal; one that may crash-loop (see mayCrashLoop) is read again until it is
   * seen waiting out its back-off (crashLooping), for 15 s at most: between two failed starts it runs
   * for a moment.
   */
  /** Member `ordinal`'s pod. */
  private memberPodRef(ordinal: number): ObjectRef {
    return { apiVersion: 'v1', kind: 'Pod', namespace: this.document.namespace, name: podName(storeNames(this.document.spec.name), ordinal) };
  }

  private async memberPods(count: number, only?: ReadonlySet<number>): Promise<Array<KubeObject | undefined>> {
    const read = (i: number) => this.client.read(this.memberPodRef(i));
    let pods = await Promise.all(Array.from({ length: count }, (_, i) => read(i)));
    const unsure = (p: KubeObject | undefined, i: number) => (!only || only.has(i)) && mayCrashLoop(p) && !crashLooping(p);
    for (const deadline = Date.now() + 15_000; pods.some(unsure) && Date.now() < deadline;) {
      await sleep(250);
      pods = await Promise.all(pods.map((p, i) => (unsure(p, i) ? read(i) : p)));
    }
    return pods;
  }

  /**
   * Members whose pods crash-loop on lost or foreign data (see crashLooping), and a replacement a
   * stopped run left half done (a learner of ours): each replaced in turn (see replaceMember), only
   * while the members left keep quorum without it. A snapshot first when backup is on. Returns the
   * pods of the members it replaced.
   */
  private async replaceLostMembers(ctx: Context, endpoints: string[], tls: EtcdClientTls | undefined): Promise<string[]> {
    const { document } = this;
    const names = storeNames(document.spec.name);
    const { EtcdMembership } = await import('../engines/etcd-membership');
    const membership = new EtcdMembership(endpoints, { onRetry: ctx.keepAlive, ...(tls ? { tls } : {}) });
    let members;
    try {
      members = await membership.list();
    } finally {
      membership.close();
    }
    const ordinalOf = (m: { peerURLs: readonly string[] }) => m.peerURLs.map((u) => ordinalOfPeerURL(u, names)).find((o) => o !== undefined);
    const resumed = members.filter((m) => m.isLearner).map(ordinalOf).filter((o): o is number => o !== undefined && o < endpoints.length);
    // A pod of the StatefulSet whose member etcd does not list (a replacement stopped after the
    // removal, or removed by hand): its data is a removed member's, never valid again.
    const listed = new Set(members.map(ordinalOf));
    const missing = endpoints.map((_, i) => i).filter((i) => !listed.has(i));
    // Voting members only are looked at closely: the others are in hand already.
    const pods = await this.memberPods(endpoints.length, new Set(members.filter((m) => !m.isLearner).map(ordinalOf).filter((o): o is number => o !== undefined)));
    const lost = pods.flatMap((p, i) => (crashLooping(p) && listed.has(i) && !resumed.includes(i) ? [i] : []));
    const todo = [...new Set([...resumed, ...lost, ...missing])].sort((a, b) => b - a);
    if (todo.length === 0) return [];
    const voting = members.filter((m) => !m.isLearner);
    const healthy = voting.filter((m) => { const o = ordinalOf(m); return o !== undefined && podReady(pods[o]); }).length;
    const needed = Math.floor((voting.length - (lost.length ? 1 : 0)) / 2) + 1;
    if (healthy < needed) {
      throw new Error(`store ${document.namespace}/${document.spec.name}: member(s) ${todo.map((i) => podName(names, i)).join(', ')} crash-loop, but only ${healthy} of ${voting.length} voting members are ready: ` +
        `replacing one needs ${needed} healthy members to keep quorum; nothing was changed. If the majority is gone for good, this is a quorum loss (see "Recovery from quorum loss" in the README).`);
    }
    await snapshotBefore(ctx.operation, this.target.objects, `replacing member ${podName(names, todo[0])}`, `${this.target.store.specHash}/${todo.join(',')}/${pods[todo[0]]?.metadata.uid ?? ''}`);
    for (const ordinal of todo) {
      const why = missing.includes(ordinal) ? 'etcd does not list it' : resumed.includes(ordinal) ? 'a replacement left it a learner' : `its pod crash-loops: ${restartsOf(pods[ordinal])} restarts`;
      this.log.info(`member ${podName(names, ordinal)} is lost (${why}): replacing it`, { action: 'replace', member: podName(names, ordinal) });
      const wipe = missing.includes(ordinal) ? async () => true : async () => mayCrashLoop(await this.client.read(this.memberPodRef(ordinal)));
      await replaceMember(ctx.operation, ordinal, endpoints.filter((_, i) => i !== ordinal), wipe, tls);
      await waitRollout(ctx, this.stsRef);
    }
    return todo.map((i) => podName(names, i));
  }

  private authManaged(live: LiveStore): boolean {
    const { spec } = this.document;
    return !!spec.tls && spec.engine.kind === 'etcd' && (spec.clients !== undefined || live.sts?.metadata.annotations?.[AUTH_ANNOTATION] !== undefined);
  }

  /** Whether a TLS etcd store's users and roles differ from its clients (reads them with the root certificate). */
  private async authPending(): Promise<boolean> {
    const { planAuth, readAuth } = await import('../engines/etcd-auth');
    return this.withAuthClient(async (c) => planAuth(await readAuth(c), this.document.spec.clients).some((s) => s.action !== 'enable'));
  }

  /** A TLS etcd store: its clients' users and roles, and authentication on (or off again without clients). */
  private async reconcileAuth(): Promise<void> {
    const { reconcileAuth } = await import('../engines/etcd-auth');
    await this.withAuthClient((c) => reconcileAuth(c, this.document.spec.clients, (line) => this.log.info(`auth: ${line}`, { action: 'auth' })));
  }

  private async withAuthClient<T>(fn: (c: import('etcd3').Etcd3) => Promise<T>): Promise<T> {
    const tls = (await this.clientTls())!;
    const { authClient } = await import('../engines/etcd-auth');
    const client = authClient(this.options.etcdEndpoints ?? [`https://${this.target.store.clientEndpoint}`], tls);
    try {
      return await fn(client);
    } finally {
      client.close();
    }
  }

  /** The store's own objects: what is live of them decides how to render. */
  async readLive(): Promise<LiveStore> {
    // Only etcd stores have a bootstrap ConfigMap (and only theirs may the reconciler read).
    const etcd = this.document.spec.engine.kind === 'etcd';
    const [sts, bootstrap] = await Promise.all([this.client.read(this.stsRef), etcd ? this.client.read(this.bootstrapRef) : undefined]);
    return { sts, bootstrap };
  }

  /** Reads what is live and plans this run against it; changes nothing. */
  async planRun(): Promise<RunPlan> {
    const live = await this.readLive();
    const decided = intent(this.document, live, this.restoredFrom);
    // A restore lays the members out for the new size, so replicas may change with it.
    return { ...decided, live, ...(await this.planAgainst(decided.desired, decided.restoring)) };
  }

  /**
   * Executes a run under the Lease, in order: a snapshot first, the restore, the plan's steps, the
   * membership change, the finish, the exact ApplySet parent. Returns the plan whose steps it ran.
   */
  async execute(run: RunPlan, keepAlive: () => Promise<void>): Promise<Plan> {
    // A membership change of a TLS store needs the client certificate: fail before anything changed without it.
    const tls = run.change || run.upgrade ? await this.clientTls() : undefined;
    // A CA rotation needs the record of the CA the members trust now: fail before anything changed without it.
    const recorded = run.rotation ? await this.trustRecord(run.rotation) : undefined;
    const ctx = this.context(keepAlive);
    await this.snapshotFirst(ctx, run);
    const planned = run.restoring ? await this.restore(ctx, run) : run.plan;
    if (run.tlsReverted) await this.revertPeerURLs(ctx, run);
    // A CA rotation keeps the old cert-manager objects until done (the finish prunes them): with
    // cert-manager's owner references a pruned Certificate would take the Secret the members mount.
    await executeSteps(ctx, run.rotation ? planned.steps.filter((s) => !(s.action === 'prune' && s.ref.apiVersion.startsWith('cert-manager.io/'))) : planned.steps);
    if (run.change) await this.changeMembers(ctx, run, tls);
    if (run.tls) await this.switchTls(ctx, run);
    if (run.upgrade) await this.upgradeMembers(ctx, run, tls);
    const rotatedTo = run.rotation ? await this.rotateCa(ctx, run, recorded!) : undefined;
    const finished = await this.finish(ctx);
    await this.applyExactParent(finished.exactParent);
    // What the members trust from now on: the next rotation's old CA.
    if (rotatedTo) await this.writeTrust(rotatedTo);
    else await this.recordTrust();
    return planned;
  }

  /**
   * Turning TLS on moves every member twice; it is not combined with another operation that moves
   * them (each would have to know the other's half-way states). Refused before anything changed.
   */
  private refuseCombined(run: RunPlan): void {
    this.refuseCombinedUpgrade(run);
    if (!run.tls && !run.rotation) return;
    const what = run.tls ? 'turning TLS on' : 'a CA rotation';
    // Dropping clients changes etcd's users first, with the client certificate, which the new CA
    // already signed: the members do not take it before the rotation.
    const droppedClients = run.rotation && !this.document.spec.clients && this.authManaged(run.live);
    const other = run.change ? `a membership change (${run.change.from} → ${this.document.spec.size})`
      : run.plan.steps.some((s) => s.action === 'resize') ? 'a volume resize'
        : run.tls && run.rotation ? 'a change of what the members trust'
          : droppedClients ? 'dropping clients' : undefined;
    if (other) {
      throw new Error(`store ${this.document.namespace}/${this.document.spec.name}: ${what} and ${other} in one change is refused; nothing was changed. ` +
        `Make them one after the other: first the other change with ${run.tls ? 'TLS' : 'the trust'} as it is live, then ${run.tls ? 'TLS' : 'the new trust'}.`);
    }
  }

  /** A version upgrade restarts every member: alone, or refused before anything changed. */
  private refuseCombinedUpgrade(run: RunPlan): void {
    if (!run.upgrade) return;
    const other = run.change ? `a membership change (${run.change.from} → ${this.document.spec.size})`
      : run.plan.steps.some((s) => s.action === 'resize') ? 'a volume resize'
        : run.tls ? 'turning TLS on' : run.rotation ? 'a CA rotation' : undefined;
    if (other) {
      throw new Error(`store ${this.document.namespace}/${this.document.spec.name}: an etcd upgrade (${run.upgrade.from} → ${run.upgrade.to}) and ${other} in one change is refused; nothing was changed. ` +
        `Make them one after the other: first the other change with version ${run.upgrade.from}, then the upgrade.`);
    }
  }

  /** The CA certificate(s) the spec's members trust: the member Secret's ca.crt. */
  private async memberCa(): Promise<Buffer> {
    if (this.options.etcdMemberCa) return this.options.etcdMemberCa();
    const file = tlsFiles(TLS_DIRS.memberCa).ca;
    try {
      return readFileSync(file);
    } catch (e) {
      throw new Error(`the store has TLS: cannot read the members' CA in ${file} (${(e as Error).message}); mount the member Secret's ca.crt there`);
    }
  }

  private trustRef(): ObjectRef {
    return { apiVersion: 'v1', kind: 'ConfigMap', namespace: this.document.namespace, name: storeNames(this.document.spec.name).trustBundle };
  }

  /** Writes `<store>-trust` (the CA certificates the members trust) unless it holds exactly that. */
  private async writeTrust(pem: string): Promise<void> {
    if (pemBlocks(pem).length === 0) throw new Error(`ConfigMap ${this.trustRef().name}: refusing to record a trust bundle without a certificate`);
    const live = await this.client.read(this.trustRef());
    if (live?.data?.['ca.crt'] === pem) return;
    const { name, namespace } = this.trustRef();
    await this.client.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace, labels: this.target.store.labels }, data: { 'ca.crt': pem } });
    this.log.info(`ConfigMap ${name}: the members trust ${pemBlocks(pem).length} CA certificate(s)`, { action: 'trust' });
  }

  /**
   * Outside a rotation, a TLS etcd store's `<store>-trust` records the CA its members trust (the
   * spec's, which the live members trust too): a later rotation trusts it beside the new one. A run
   * that cannot read the CA (not issued yet) records nothing.
   */
  private async recordTrust(live?: KubeObject): Promise<void> {
    const { spec } = this.document;
    if (!spec.tls || spec.engine.kind !== 'etcd' || this.options.dryRun) return;
    // A no-op run passes the StatefulSet it read; after changes it is read again.
    const sts = live ?? await this.client.read(this.stsRef);
    // Not while a rotation runs (its bundle is the record then), nor for a spec the members do not run.
    if (sts?.metadata.annotations?.[TLS_TRUST_ANNOTATION] !== tlsTrust(spec) || sts?.metadata.annotations?.[OPERATION_ANNOTATION] === CA_ROTATION_MARK) return;
    let ca: string;
    try {
      ca = normalizePem((await this.memberCa()).toString('utf8'));
    } catch (e) {
      this.log.info(`not recording the members' CA: ${(e as Error).message}`);
      return;
    }
    if (ca) await this.writeTrust(ca);
  }

  /**
   * A CA rotation (see CaRotation): the bundle of the recorded CA and the spec's, then every member
   * trusting both with its old certificate, then with its new one (the plan's finish trusts the new
   * CA alone). Each phase is a rolling restart; a stopped run resumes at the live phase. Returns the
   * new CA, to record once done.
   */
  /** The CA certificate(s) recorded as what the members trust, which a rotation needs. */
  private async trustRecord(r: CaRotation): Promise<string> {
    const { document } = this;
    const names = storeNames(document.spec.name);
    const recorded = (await this.client.read(this.trustRef()))?.data?.['ca.crt'];
    if (!recorded || pemBlocks(recorded).length === 0) {
      throw new Error(`store ${document.namespace}/${document.spec.name}: no record of the CA the members trust (ConfigMap ${names.trustBundle}, which the reconciler writes on each run of a TLS store): ` +
        `cannot rotate from ${r.from} to ${r.to}; nothing was changed. Put the settings back, let one run record it, then change them again; or write the members' CA into ${names.trustBundle} (key ca.crt) yourself.`);
    }
    return recorded;
  }

  private async rotateCa(ctx: Context, run: RunPlan, recorded: string): Promise<string> {
    const r = run.rotation!;
    const { document } = this;
    if (!this.options.etcdMemberCa && !existsSync(tlsFiles(TLS_DIRS.memberCa).ca)) {
      throw new Error(`a CA rotation needs the members' new CA: mount the member Secret's ca.crt at ${TLS_DIRS.memberCa} (the reconciler Job does); nothing was rotated`);
    }
    // The Secret may not be issued yet (CRD mode applied its Certificate just now).
    const next = await until(ctx.operation, `the members' new CA (${tlsSecrets(document.spec).member}: is it issued?)`, async () => {
      const pem = normalizePem((await this.memberCa().catch(() => Buffer.from(''))).toString('utf8'));
      return pem || undefined;
    });
    const bundle = mergePem(recorded, next);
    const names = storeNames(document.spec.name);
    const sts = (phase?: CaRotation['stage']) => this.statefulSetAt(run, phase
      ? caRotationRender(r, phase, tlsSecrets(document.spec).member)
      : { partition: 0, operation: CA_ROTATION_MARK });
    const phases: Array<[CaRotation['stage'] | undefined, string]> = [
      ['both', 'every member trusts both CAs, still with its old certificate'],
      ['both-new-leaf', 'every member presents its new certificate, trusting both CAs'],
      // Rolled here, whatever the spec's update strategy: with OnDelete the finish would restart none.
      [undefined, 'every member trusts the new CA alone'],
    ];
    const order: Array<CaRotation['stage'] | undefined> = ['old', 'both', 'both-new-leaf', undefined];
    // A stopped run may have left a phase's restart half done: it finishes before the next begins.
    await waitRollout(ctx, this.stsRef);
    for (const [phase, what] of phases) {
      if (order.indexOf(r.stage) >= order.indexOf(phase)) continue;
      await ctx.operation.progress('RotatingCa', `${r.from} → ${r.to}: ${what} (a rolling restart)`);
      await ctx.keepAlive();
      // Again before each phase: written once, it may have been overwritten since (never by a run of
      // this spec, which sees the mark; written here, it costs nothing when unchanged).
      if (phase) await this.writeTrust(bundle);
      await this.client.apply(sts(phase));
      await waitRollout(ctx, this.stsRef);
      this.log.info(`CA rotation ${r.from} → ${r.to}: ${what}`, { action: 'ca-rotation', phase: phase ?? 'new' });
    }
    this.log.info(`ConfigMap ${names.trustBundle}: the new CA is the record from now on`);
    return next;
  }

  /**
   * The TLS switch's second phase (the first, peer certificates on every member, was the plan's
   * rollout): from the highest ordinal down, register the member's peer URL as https, then let its pod
   * (and only its: the partition) restart with TLS listeners, and wait until every member is ready.
   * A stopped run resumes at the live partition.
   */
  private async switchTls(ctx: Context, run: RunPlan): Promise<void> {
    const { document } = this;
    const size = document.spec.size;
    const names = storeNames(document.spec.name);
    const sts = (partition: number) => this.statefulSetAt(run, { partition, operation: TLS_SWITCH_MARK });
    await waitRollout(ctx, this.stsRef);
    for (let i = Math.min(run.tls!.switchedFrom, size) - 1; i >= 0; i--) {
      const pod = podName(names, i);
      await ctx.operation.progress('EnablingTls', `member ${pod}: peer URL to https, then its pod restarts with TLS (${size - i} of ${size})`);
      await registerPeerURL(ctx.operation, i, this.memberEndpoint(i));
      await ctx.keepAlive();
      await this.client.apply(sts(i));
      await waitRollout(ctx, this.stsRef);
      this.log.info(`member ${pod} speaks TLS (peers and clients)`, { action: 'tls-on', member: pod });
    }
  }

  /**
   * A version upgrade (see VersionUpgrade; the plan has applied the new template with the partition at
   * the live size): from the highest ordinal down, the member's pod restarts on the new version (the
   * partition at its ordinal), and the next waits until every member is ready and this one has applied
   * everything the leader had committed. A stopped run resumes at the live partition.
   */
  private async upgradeMembers(ctx: Context, run: RunPlan, tls: EtcdClientTls | undefined): Promise<void> {
    const u = run.upgrade!;
    const { document } = this;
    const size = document.spec.size;
    const names = storeNames(document.spec.name);
    const members = Array.from({ length: size }, (_, i) => this.memberEndpoint(i, !!tls));
    await waitRollout(ctx, this.stsRef);
    for (let i = Math.min(u.upgradedFrom, size) - 1; i >= 0; i--) {
      const pod = podName(names, i);
      await ctx.operation.progress('Upgrading', `member ${pod}: etcd ${u.from} → ${u.to} (${size - i} of ${size}), then ready and caught up before the next`);
      await ctx.keepAlive();
      await this.client.apply(this.statefulSetAt(run, upgradeRender(u, i)));
      await waitRollout(ctx, this.stsRef);
      const { memberApplied, leaderCommitted } = await waitCaughtUp(ctx.operation, members, i, tls);
      this.log.info(`member ${pod} runs etcd ${u.to}, caught up (applied index ${memberApplied}, leader had committed ${leaderCommitted})`, { action: 'upgrade', member: pod, version: u.to });
    }
  }

  /** The StatefulSet alone, rendered at the spec's size for a phase of an operation that rolls members itself. */
  private statefulSetAt(run: RunPlan, options: Parameters<typeof renderAt>[3]): KubeObject {
    return renderAt(this.document, run.live, this.document.spec.size, options).objects.find((o) => groupKind(o) === 'StatefulSet.apps')!;
  }

  /**
   * Member `ordinal`'s client URL (etcdMemberEndpoint, else its DNS name under the headless Service):
   * plain HTTP, or https for a member that speaks TLS.
   */
  private memberEndpoint(ordinal: number, tls = false): string {
    const names = storeNames(this.document.spec.name);
    const url = this.options.etcdMemberEndpoint?.(ordinal) ?? `http://${podFqdn(names, ordinal, this.document.namespace, this.document.spec.clusterDomain)}:${this.target.store.engine.clientPort}`;
    return tls ? url.replace(/^http:/, 'https:') : url;
  }

  /**
   * `tls` dropped while the switch is in its first phase: a run stopped between registering a member's
   * https peer URL and restarting its pod left it registered where it does not listen yet. Every
   * member's peer URL goes back to http first (each still speaks plain HTTP), then the plan rolls
   * the members back.
   */
  private async revertPeerURLs(ctx: Context, run: RunPlan): Promise<void> {
    const replicas = run.live.sts?.spec?.replicas ?? 0;
    await ctx.operation.progress('EnablingTls', `tls dropped during the switch's first phase: every member's peer URL back to http`);
    for (let i = 0; i < replicas; i++) await registerPeerURL(ctx.operation, i, this.memberEndpoint(i));
  }

  private async planAgainst(desired: DesiredState, replicasManaged = false): Promise<ObjectPlan> {
    const live = await readObjects(this.client, this.document.namespace, desired.objects, desired.applySetId, this.log);
    return planObjects(desired, live, { force: this.force, replicasManaged });
  }

  private report(run: RunPlan): void {
    const { document, log } = this;
    log.info(`store ${document.namespace}/${document.spec.name}`, { store: document.spec.name, namespace: document.namespace });
    for (const line of formatPlan(run.plan)) log.info(line);
    if (run.restoring) log.info(`  ⟲ restore every member from ${this.restoredFrom} (a new logical cluster), then start them`);
    const change = run.change;
    if (run.tls) {
      const how = run.tls.from === 'on' ? `resuming below member ${run.tls.switchedFrom}`
        : `${run.tls.from === 'off' ? 'the peer certificate on every member (a rolling restart)' : 'the peer certificate is on every member'}, then from the highest ordinal down each member's peer URL to https and its pod restarted with TLS`;
      log.info(`  ⇄ TLS on, member by member: ${how}`);
    }
    if (run.rotation) log.info(`  ⟳ CA rotation ${run.rotation.from} → ${run.rotation.to}, rolling restarts: trust both CAs, then the new certificates, then the new CA alone${run.rotation.stage === 'old' ? '' : ` (resuming: ${run.rotation.stage === 'both' ? 'members trust both' : 'members present the new certificate'})`}`);
    if (run.upgrade) log.info(`  ⇡ etcd ${run.upgrade.from} → ${run.upgrade.to}, member by member from the highest ordinal, each ready and caught up before the next${run.upgrade.upgradedFrom < (run.live.sts?.spec?.replicas ?? 0) ? ` (resuming below member ${run.upgrade.upgradedFrom})` : ''}`);
    if (run.tlsReverted) log.info('  ⇄ TLS dropped during the switch\'s first phase: every member\'s peer URL back to http, then the members back to plain HTTP');
    if (change) log.info(`  ⇅ members ${change.from} → ${document.spec.size}${change.inProgress ? ' (resuming)' : ''}: one at a time, ${change.from < document.spec.size ? 'each added as a learner, started, promoted once caught up' : 'each removed from the cluster before its pod'}`);
  }

  private context(keepAlive: () => Promise<void>): Context {
    const { client, log, document, options } = this;
    const operation: OperationContext = {
      client, log, document, keepAlive,
      progress: async (op, message, members) => {
        log.info(`${op}: ${message}`, { operation: op });
        await options.onProgress?.({ operation: op, message, ...(members ? { members } : {}) });
      },
      timeoutMs: options.rolloutTimeoutMs ?? 600_000,
      pollMs: options.pollMs ?? 1000,
    };
    return { client, options, log, keepAlive, operation };
  }

  private async snapshotFirst(ctx: Context, run: RunPlan): Promise<void> {
    const sts = run.live.sts;
    const resizing = run.plan.steps.some((s) => s.action === 'resize');
    if (!sts || !(run.change || resizing || run.restoring || run.upgrade)) return;
    // An upgrade under way (its mark is live) had its snapshot before its first member moved.
    if (run.upgrade && !run.change && !resizing && !run.restoring && upgradeFrom(sts.metadata.annotations?.[OPERATION_ANNOTATION])) return;
    const what = run.restoring ? `restore from ${this.restoredFrom}` : run.change ? `members ${run.change.from} → ${this.document.spec.size}`
      : run.upgrade ? `etcd ${run.upgrade.from} → ${run.upgrade.to}` : 'resize';
    // Best effort before a restore: it is how a store that cannot answer any more is brought back.
    await snapshotBefore(ctx.operation, this.target.objects, what, `${this.target.store.specHash}/${sts.metadata.uid ?? ''}/${sts.metadata.generation ?? 0}`, { bestEffort: run.restoring });
  }

  /** Restores every member, then plans again: the restore changed what is live. */
  private async restore(ctx: Context, run: RunPlan): Promise<Plan> {
    const replicas = run.live.sts?.spec?.replicas ?? 0;
    // The newest revision any member answers with: what the restore rolls back from (etcd only).
    const liveRevision = async (): Promise<number | undefined> => {
      if (this.document.spec.engine.kind !== 'etcd' || replicas === 0) return undefined;
      const tls = await this.clientTls();
      const { probeMembers } = await import('../engines/etcd-recovery');
      const members = Array.from({ length: replicas }, (_, i) => ({ name: podName(storeNames(this.document.spec.name), i), endpoint: this.memberEndpoint(i, !!tls) }));
      const revisions = (await probeMembers(members, { ...(tls ? { tls } : {}), callTimeoutMs: 3000 })).flatMap((p) => (p.reachable ? [p.revision] : []));
      return revisions.length ? Math.max(...revisions) : undefined;
    };
    await restoreMembers(ctx.operation, this.target.store, run.live.sts, this.targetSts, { liveRevision });
    const after = await this.planRun();
    throwIfRefused(after.plan);
    return after.plan;
  }

  /** With TLS, the client certificate (etcdClientCertificate, else etcdTlsDir, else where the reconciler Job mounts it). */
  private async clientTls(): Promise<EtcdClientTls | undefined> {
    if (!this.document.spec.tls) return undefined;
    const serverName = this.target.store.clientHost;
    if (this.options.etcdClientCertificate) return { ...(await this.options.etcdClientCertificate()), serverName };
    return readClientTls(this.options.etcdTlsDir ?? TLS_DIRS.client, serverName);
  }

  private async changeMembers(ctx: Context, run: RunPlan, tls: EtcdClientTls | undefined): Promise<void> {
    const mark = membersMark(this.document);
    const applyMembers = async (size: number) => {
      const { plan: p } = await this.planAgainst(renderAt(this.document, run.live, size, { operation: mark }), true);
      throwIfRefused(p);
      await executeSteps(ctx, p.steps.filter((s) => s.action === 'create' || s.action === 'update'));
    };
    const endpoints = this.options.etcdEndpoints ?? [`${tls ? 'https' : 'http'}://${this.target.store.clientEndpoint}`];
    await changeMembership(ctx.operation, endpoints, applyMembers, () => waitRollout(ctx, this.stsRef), tls);
  }

  /** The store exactly as desired: bootstrap state `existing`, no operation mark. */
  private async finish(ctx: Context): Promise<ObjectPlan> {
    const final = await this.planAgainst(desiredState(this.document, { initialClusterState: 'existing' }));
    throwIfRefused(final.plan);
    await executeSteps(ctx, final.plan.steps);
    return final;
  }

  private async applyExactParent(parent: KubeObject | undefined): Promise<void> {
    if (!parent) return;
    await this.client.apply(parent);
    this.log.info(`ApplySet ${describeRef(refOf(parent))} now lists ${parent.metadata.annotations?.[CONTAINS_ANNOTATION]}`);
  }

  private result(p: Plan, before: number): ReconcileResult {
    return { plan: p, mutatingRequests: this.client.counters.mutating - before, specHash: this.target.store.specHash };
  }
}

/** Scheduled maintenance of one store: see StoreReconciler.maintain. */
export async function maintainStore(document: StoreDocument, client: KubeClient, log: Log, options: ReconcileOptions): Promise<MaintainResult> {
  return new StoreReconciler(document, client, log, options).maintain();
}

/** Reconciles one store: see StoreReconciler. */
export async function reconcileStore(document: StoreDocument, client: KubeClient, log: Log, options: ReconcileOptions): Promise<ReconcileResult> {
  return new StoreReconciler(document, client, log, options).reconcile();
}

/** The client certificate of a TLS store, read from a mounted kubernetes.io/tls Secret. */
function readClientTls(dir: string, serverName: string): EtcdClientTls {
  const files = tlsFiles(dir);
  try {
    return { ca: readFileSync(files.ca), cert: readFileSync(files.cert), key: readFileSync(files.key), serverName };
  } catch (e) {
    throw new Error(`the store has TLS: cannot read its client certificate in ${dir} (${(e as Error).message}); mount the <store>-client-tls Secret there or pass --etcd-tls-dir`);
  }
}

/** The PEM blocks of a bundle, each ending in a newline. */
function pemBlocks(pem: string): string[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).map((b) => `${b.trim()}\n`);
}

/** A bundle as the reconciler writes it: its certificates, one after another. */
function normalizePem(pem: string): string {
  return pemBlocks(pem).join('');
}

/** Both bundles' certificates, each once, the first's first. */
export function mergePem(a: string, b: string): string {
  return [...new Set([...pemBlocks(a), ...pemBlocks(b)])].join('');
}

/** How long a quorum loss must look the same before a recovery: several election timeouts (1 s by default). */
const QUORUM_RECHECK_MS = 5000;

/** How often a pod's engine container restarted. */
function restartsOf(pod: KubeObject | undefined): number {
  return pod?.status?.containerStatuses?.[0]?.restartCount ?? 0;
}
