// The pure phases of a reconcile: what the live store means for this run, and desired + live → plan.
import { StoreDefinition } from '../constructs/store-definition';
import type { RenderOptions } from '../constructs/store-objects';
import { EtcdTlsStage, etcdTlsStage, liveEtcdVersion } from '../engines/etcd';
import { TLS_SWITCH_PHASE } from '../engines/types';
import type { StoreDocument } from '../model/document';
import { ENGINE_VERSION_ANNOTATION, OPERATION_ANNOTATION, RESTORED_FROM_ANNOTATION, TLS_TRUST_ANNOTATION } from '../model/metadata';
import { tlsSecrets, tlsTrust } from '../model/names';
import { CONTAINS_ANNOTATION, ID_LABEL } from './applyset';
import { DesiredState, desiredState } from './desired';
import { plan, Plan, upgradeFrom, upgradeMark } from './plan';
import { KubeObject } from './types';

/**
 * The store's own objects. The bootstrap ConfigMap outlives a StatefulSet deleted for a re-create,
 * so a run stopped between the delete and the create still knows the cluster exists, how many
 * members it has and what it was restored from.
 */
export interface LiveStore {
  readonly sts?: KubeObject;
  /** Only etcd stores have one. */
  readonly bootstrap?: KubeObject;
}

export function bootstrapped(live: LiveStore): boolean {
  return !!live.sts || live.bootstrap?.data?.ETCD_INITIAL_CLUSTER_STATE === 'existing';
}

export function liveSize(live: LiveStore): number {
  return live.sts?.spec?.replicas ?? String(live.bootstrap?.data?.ETCD_INITIAL_CLUSTER ?? '').split(',').filter(Boolean).length;
}

/** Whether the store still has to be restored from `restoredFrom` (the snapshot the spec names). */
export function restoring(live: LiveStore, restoredFrom: string | undefined): boolean {
  const liveRestoredFrom = live.sts ? live.sts.metadata.annotations?.[RESTORED_FROM_ANNOTATION] : live.bootstrap?.metadata.annotations?.[RESTORED_FROM_ANNOTATION];
  return !!restoredFrom && liveRestoredFrom !== restoredFrom;
}

export interface MembershipChange {
  readonly from: number;
  /** The StatefulSet carries the operation mark: a stopped run's change is being resumed. */
  readonly inProgress: boolean;
}

/**
 * The membership change a run has to make, from what is live: the StatefulSet's replicas (or, while
 * it is being re-created, the bootstrap ConfigMap's member count) and its operation mark.
 */
export function membershipChange(document: StoreDocument, live: LiveStore, isRestoring: boolean): MembershipChange | undefined {
  const size = liveSize(live);
  if (!bootstrapped(live) || isRestoring || document.spec.engine.kind !== 'etcd' || size < 1) return undefined;
  const inProgress = (live.sts?.metadata.annotations?.[OPERATION_ANNOTATION] ?? '').startsWith(MEMBERS_MARK);
  return size !== document.spec.size || inProgress ? { from: size, inProgress } : undefined;
}

const MEMBERS_MARK = 'members → ';

/** Marks the StatefulSet while members change, so a run stopped in the middle is resumed. */
export function membersMark(document: StoreDocument): string {
  return `${MEMBERS_MARK}${document.spec.size}`;
}

/** Marks the StatefulSet while a live store turns TLS on, so a run stopped in the middle is resumed. */
export const TLS_SWITCH_MARK = 'tls → on';

/**
 * A live etcd store turning TLS on, member by member: first every member gets the peer certificate
 * (plain listeners still), then from the highest ordinal down each member's peer URL is registered as
 * https and its pod restarts with TLS listeners (a StatefulSet partition at that ordinal).
 */
export interface TlsSwitch {
  /** The live template's stage: `off` (not started), the first phase, or `on` (members switching). */
  readonly from: EtcdTlsStage;
  /** Members from this ordinal up run with TLS already (the live partition; the live size if none). */
  readonly switchedFrom: number;
}

/** The TLS switch a run has to make (or resume), from the live StatefulSet's template and mark. */
export function tlsSwitch(document: StoreDocument, live: LiveStore, isRestoring: boolean): TlsSwitch | undefined {
  const sts = live.sts;
  if (!sts || !document.spec.tls || document.spec.engine.kind !== 'etcd' || isRestoring) return undefined;
  const from = etcdTlsStage(sts.spec?.template?.spec?.containers?.[0]?.args ?? []);
  if (from === 'on' && sts.metadata.annotations?.[OPERATION_ANNOTATION] !== TLS_SWITCH_MARK) return undefined;
  const replicas = sts.spec?.replicas ?? 0;
  return { from, switchedFrom: from === 'on' ? Math.min(replicas, sts.spec?.updateStrategy?.rollingUpdate?.partition ?? 0) : replicas };
}

/** Where a TLS switch stands, as render options: the first phase, or TLS on from `partition` up. */
export function tlsSwitchRender(change: TlsSwitch): Pick<RenderOptions, 'tlsPhase' | 'partition' | 'operation'> {
  return change.from === 'on'
    ? { partition: change.switchedFrom, operation: TLS_SWITCH_MARK }
    : { tlsPhase: TLS_SWITCH_PHASE, partition: 0, operation: TLS_SWITCH_MARK };
}

/** Marks the StatefulSet while a CA rotation runs. */
export const CA_ROTATION_MARK = 'trust → rotating';

/**
 * A live TLS store whose spec trusts another CA than its members (another issuer, the store's own CA
 * again, other Secrets): a CA rotation. etcd does not reload its trusted CA, so it goes in phases, each
 * a rolling restart: (1) every member trusts both CAs (the `<store>-trust` bundle the reconciler
 * writes) and still presents its old certificate; (2) every member presents its new certificate; (3)
 * every member trusts the new CA alone.
 */
export interface CaRotation {
  /** What the members trusted before (`own-ca`, `Issuer/corp`, `secret/...`). */
  readonly from: string;
  /** What the spec trusts. */
  readonly to: string;
  /** The member Secret the live members mount. */
  readonly liveSecret: string;
  /** Where the live members stand: not started, trusting both (old certificate), or presenting the new certificate. */
  readonly stage: 'old' | 'both' | 'both-new-leaf';
}

const liveMemberSecret = (sts: KubeObject): string | undefined =>
  (sts.spec?.template?.spec?.volumes ?? []).find((v: any) => v.name === 'tls')?.secret?.secretName;

/** The CA rotation a run has to make (or resume), from the live StatefulSet's trust annotation and member Secret. */
export function caRotation(document: StoreDocument, live: LiveStore, isRestoring: boolean): CaRotation | undefined {
  const sts = live.sts;
  if (!sts || !document.spec.tls || document.spec.engine.kind !== 'etcd' || isRestoring) return undefined;
  const liveTrust = sts.metadata.annotations?.[TLS_TRUST_ANNOTATION];
  const to = tlsTrust(document.spec)!;
  const liveSecret = liveMemberSecret(sts);
  if (!liveTrust || liveTrust === to || !liveSecret) return undefined;
  const [from, next] = liveTrust.split('+');
  // Trusting both of two others than the spec's: refused by the plan (one rotation at a time).
  if (next !== undefined && next !== to) return undefined;
  const stage = next === undefined ? 'old' : liveSecret === tlsSecrets(document.spec).member ? 'both-new-leaf' : 'both';
  return { from, to, liveSecret, stage };
}

/** Where a CA rotation stands, as render options: the live phase (the plan changes no member). */
export function caRotationRender(r: CaRotation, phase: CaRotation['stage'] = r.stage, newSecret?: string): Pick<RenderOptions, 'caRotation' | 'partition' | 'operation'> {
  return {
    caRotation: {
      memberSecret: phase === 'both-new-leaf' ? newSecret ?? r.liveSecret : r.liveSecret,
      trust: phase === 'old' ? r.from : `${r.from}+${r.to}`,
      bundle: phase !== 'old',
    },
    partition: 0,
    operation: CA_ROTATION_MARK,
  };
}

/**
 * A live etcd store moving to another version (the plan refuses the steps etcd does not support): the
 * StatefulSet takes the new template with its partition at the live size (no member restarts), then
 * from the highest ordinal down each member restarts on the new version (partition = its ordinal) and
 * must be ready and caught up with the leader before the next.
 */
export interface VersionUpgrade {
  /** The version the members ran before the upgrade began. */
  readonly from: string;
  /** The spec's version. */
  readonly to: string;
  /** Members from this ordinal up run `to` already (the live partition; the live size at the start). */
  readonly upgradedFrom: number;
}

/** The version upgrade a run has to make (or resume), from the live StatefulSet's version and operation mark. */
export function versionUpgrade(document: StoreDocument, live: LiveStore, isRestoring: boolean): VersionUpgrade | undefined {
  const sts = live.sts;
  if (!sts || document.spec.engine.kind !== 'etcd' || isRestoring) return undefined;
  // The version the spec resolves to (a KVStore resource may leave it to the default).
  const engine = StoreDefinition.fromDocument(document).engine.spec;
  if (engine.kind !== 'etcd') return undefined;
  const to = engine.version;
  const replicas = sts.spec?.replicas ?? 0;
  const mark = sts.metadata.annotations?.[OPERATION_ANNOTATION];
  const markedFrom = upgradeFrom(mark);
  if (markedFrom !== undefined) {
    // Resumed at the live partition; towards another version than the mark's, every member moves again.
    const resumed = mark === upgradeMark(markedFrom, to);
    return { from: markedFrom, to, upgradedFrom: resumed ? Math.min(replicas, sts.spec?.updateStrategy?.rollingUpdate?.partition ?? 0) : replicas };
  }
  const running = liveEtcdVersion(sts.metadata.annotations?.[ENGINE_VERSION_ANNOTATION], sts.spec?.template?.spec?.containers?.[0]?.image);
  return running && running !== to ? { from: running, to, upgradedFrom: replicas } : undefined;
}

/** Where a version upgrade stands, as render options: the new template, members from `partition` up on it. */
export function upgradeRender(u: VersionUpgrade, partition = u.upgradedFrom): Pick<RenderOptions, 'partition' | 'operation'> {
  return { partition, operation: upgradeMark(u.from, u.to) };
}

/** Whether a pod's Ready condition is true. */
export function podReady(pod: KubeObject | undefined): boolean {
  return (pod?.status?.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True');
}

/** Restarts after which a member that keeps failing counts as lost (its data gone or foreign), not slow. */
export const LOST_AFTER_RESTARTS = 3;

/**
 * Whether a member's pod crash-loops: not ready, in the kubelet's CrashLoopBackOff, its engine
 * container restarted at least LOST_AFTER_RESTARTS times, the last time after failing by itself (a
 * non-zero exit that is no SIGKILL or SIGTERM, nor out of memory). What etcd does on a lost or
 * foreign data directory ("tocommit is out of range", "member already bootstrapped", "cluster ID
 * mismatch"): it exits at once, every time. A pod still starting, or one the kubelet has not run yet,
 * is not lost.
 */
export function crashLooping(pod: KubeObject | undefined): boolean {
  // Waiting out the kubelet's back-off now, not starting or running (restartCount only ever grows).
  return mayCrashLoop(pod) && pod!.status.containerStatuses[0].state?.waiting?.reason === 'CrashLoopBackOff';
}

/**
 * crashLooping but for the state it is in right now: not ready, restarted LOST_AFTER_RESTARTS times,
 * the last time after failing by itself. A pod between two failed starts is running for a moment:
 * look again (crashLooping) before deciding.
 */
export function mayCrashLoop(pod: KubeObject | undefined): boolean {
  if (!pod || pod.metadata.deletionTimestamp) return false;
  const engine = (pod.status?.containerStatuses ?? [])[0];
  if (podReady(pod) || !engine) return false;
  const last = engine.lastState?.terminated;
  // Killed from outside (out of memory, a liveness or startup probe: SIGKILL 137, SIGTERM 143) is no
  // sign of lost data: its volume may hold the only copy of something.
  if (!last || last.exitCode === 0 || last.exitCode === 137 || last.exitCode === 143 || last.reason === 'OOMKilled') return false;
  return (engine.restartCount ?? 0) >= LOST_AFTER_RESTARTS;
}

/** The store rendered with `size` members, for a cluster that is bootstrapped or not yet. */
export function renderAt(document: StoreDocument, live: LiveStore, size: number, options: Omit<RenderOptions, 'initialClusterState' | 'toolOwned'> = {}): DesiredState {
  const sized = size === document.spec.size ? document : { ...document, spec: { ...document.spec, size } };
  return desiredState(sized, { initialClusterState: bootstrapped(live) ? 'existing' : 'new', ...options });
}

/** What a run sets out to do, decided from the live store before any object is read. */
export interface Intent {
  /**
   * What to plan against: a membership change runs around the plan, so it is planned at the live
   * size; a TLS switch at its live phase.
   */
  readonly desired: DesiredState;
  readonly change?: MembershipChange;
  readonly tls?: TlsSwitch;
  /** A CA rotation to make or resume. */
  readonly rotation?: CaRotation;
  /** A version upgrade to make or resume. */
  readonly upgrade?: VersionUpgrade;
  /** `tls` dropped while the live members are in the switch's first phase: their peer URLs go back to http first. */
  readonly tlsReverted?: boolean;
  readonly restoring: boolean;
}

export function intent(document: StoreDocument, live: LiveStore, restoredFrom: string | undefined): Intent {
  const isRestoring = restoring(live, restoredFrom);
  const change = membershipChange(document, live, isRestoring);
  const tls = tlsSwitch(document, live, isRestoring);
  // Both at once is refused by the reconciler before anything changes; planned as the membership change.
  const rotation = caRotation(document, live, isRestoring);
  const upgrade = versionUpgrade(document, live, isRestoring);
  const desired = change ? renderAt(document, live, change.from, { operation: membersMark(document) })
    : tls ? renderAt(document, live, document.spec.size, tlsSwitchRender(tls))
      : rotation ? renderAt(document, live, document.spec.size, caRotationRender(rotation))
        : upgrade ? renderAt(document, live, document.spec.size, upgradeRender(upgrade))
          : renderAt(document, live, document.spec.size);
  const reverted = !document.spec.tls && !!live.sts && document.spec.engine.kind === 'etcd'
    && etcdTlsStage(live.sts.spec?.template?.spec?.containers?.[0]?.args ?? []) === TLS_SWITCH_PHASE;
  return { desired, change, restoring: isRestoring, ...(tls ? { tls } : {}), ...(rotation ? { rotation } : {}), ...(upgrade ? { upgrade } : {}), ...(reverted ? { tlsReverted: true } : {}) };
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

export interface ObjectPlan {
  readonly plan: Plan;
  /**
   * The exact ApplySet parent, to apply once prunes are done, when the planned one lists more kinds.
   * Until pruning is done the parent must list every kind the set may still contain, or an
   * interrupted prune would leave objects no later run looks for.
   */
  readonly exactParent?: KubeObject;
}

export function planObjects(desired: DesiredState, live: readonly KubeObject[], options: { force?: boolean; replicasManaged?: boolean }): ObjectPlan {
  const [parent, ...rest] = desired.objects;
  const widened = widenParent(parent, live, desired.applySetId);
  const p = plan([widened, ...rest], live, { force: options.force, applySetId: desired.applySetId, replicasManaged: options.replicasManaged ?? false });
  return { plan: p, exactParent: widened === parent ? undefined : parent };
}

/** A run's plan: the intent and the object plan, made from one read of what is live. */
export interface RunPlan extends Intent, ObjectPlan {
  readonly live: LiveStore;
}

/** Nothing to do: the run returns before taking the Lease, making no mutating request. */
export function isNoOp(run: RunPlan): boolean {
  return run.plan.steps.length === 0 && !run.exactParent && !run.change && !run.tls && !run.rotation && !run.upgrade && !run.restoring;
}
