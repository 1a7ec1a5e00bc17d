// The plan: desired + live objects → ordered steps, or refusals. Pure: no I/O, tested without a cluster.
import { etcdTlsStage, etcdVersionStep, liveEtcdVersion } from '../engines/etcd';
import { TLS_SWITCH_PHASE } from '../engines/types';
import { AUTH_ANNOTATION, ENGINE_ANNOTATION, ENGINE_VERSION_ANNOTATION, OPERATION_ANNOTATION, RESTORED_FROM_ANNOTATION, TLS_TRUST_ANNOTATION } from '../model/metadata';
import { parseQuantity } from '../model/quantity';
import { PART_OF_LABEL } from './applyset';
import { describeRef, groupKind, KubeObject, ObjectRef, refOf } from './types';

/** One thing a plan does, told apart by `action`. */
export type Step = CreateStep | UpdateStep | RecreateStep | ResizeStep | WaitRolloutStep | PruneStep;

/** Create an object that is not live. */
export interface CreateStep {
  /** `create`. */
  readonly action: 'create';
  /** The object as desired. */
  readonly object: KubeObject;
}

/** Apply an object whose fields differ. */
export interface UpdateStep {
  /** `update`. */
  readonly action: 'update';
  /** The object as desired. */
  readonly object: KubeObject;
  /** The fields that differ. */
  readonly changes: readonly Change[];
}

/** Delete with orphan propagation (pods and PVCs stay) and create again: immutable fields, forced. */
export interface RecreateStep {
  /** `recreate`. */
  readonly action: 'recreate';
  /** The object as desired. */
  readonly object: KubeObject;
  /** The fields that differ. */
  readonly changes: readonly Change[];
}

/**
 * Grow volumes: raise every existing PVC's request, then delete the StatefulSet with orphan
 * propagation and create it with the new templates (its pods keep running and are adopted).
 */
export interface ResizeStep {
  /** `resize`. */
  readonly action: 'resize';
  /** The StatefulSet as desired. */
  readonly object: KubeObject;
  /** The fields that differ. */
  readonly changes: readonly Change[];
  /** The templates that grow. */
  readonly claims: readonly ClaimGrowth[];
}

/** Wait until the StatefulSet has rolled out. */
export interface WaitRolloutStep {
  /** `wait-rollout`. */
  readonly action: 'wait-rollout';
  /** The StatefulSet. */
  readonly ref: ObjectRef;
}

/** Delete an object of the ApplySet that is no longer desired (never a PVC). */
export interface PruneStep {
  /** `prune`. */
  readonly action: 'prune';
  /** The object. */
  readonly ref: ObjectRef;
}

/** One volume claim template growing. */
export interface ClaimGrowth {
  /** The volume claim template. */
  readonly template: string;
  /** The size now. */
  readonly from: string;
  /** The size wanted. */
  readonly to: string;
}

/** One field that differs between live and desired. */
export interface Change {
  /** The field's path (`spec.replicas`). */
  readonly path: string;
  /** The live value. */
  readonly from: unknown;
  /** The desired value. */
  readonly to: unknown;
}

/** A change the plan will not make unless forced: it would lose data or needs a re-create. */
export interface Refusal {
  /** The object. */
  readonly ref: ObjectRef;
  /** The field. */
  readonly field: string;
  /** The live value. */
  readonly from: unknown;
  /** The desired value. */
  readonly to: unknown;
  /** Why it is refused. */
  readonly reason: string;
  /** False when not even force may make this change. */
  readonly forceable?: boolean;
}

/** What a reconcile will do: ordered steps, or refusals (then nothing is done). */
export interface Plan {
  /** The steps, in order. */
  readonly steps: readonly Step[];
  /** Changes refused. */
  readonly refusals: readonly Refusal[];
  /** Objects already as desired. */
  readonly unchanged: readonly ObjectRef[];
}

export interface PlanOptions {
  /** Turn refusals into forced changes (immutable fields by orphan re-create). */
  readonly force?: boolean;
  /** The ApplySet id: live objects carrying it but no longer desired are pruned. */
  readonly applySetId: string;
  /**
   * Let a replicas change through as an update: the caller changes membership around it (or the
   * members were laid out for the new size by a restore).
   */
  readonly replicasManaged?: boolean;
}

/**
 * Apply order: what others refer to first (cert-manager's Issuers before the Certificates they sign,
 * the Certificates before the pods that mount their Secrets); the StatefulSet after its Services.
 */
const RANK: Record<string, number> = {
  'ConfigMap': 0,
  'ServiceAccount': 1,
  'Issuer.cert-manager.io': 2,
  'Certificate.cert-manager.io': 2,
  'Service': 3,
  'StatefulSet.apps': 4,
  'PodDisruptionBudget.policy': 5,
  'NetworkPolicy.networking.k8s.io': 6,
  'PersistentVolumeClaim': 7,
  'CronJob.batch': 8,
};
// Stable sort: within a rank, render order (the self-signed Issuer, the CA, its Issuer, the leaves).
const rank = (o: { apiVersion: string; kind: string }) => RANK[groupKind(o)] ?? 9;

/** Kinds never pruned, whatever their labels: they hold data. */
const NEVER_PRUNED = new Set(['PersistentVolumeClaim']);

/** StatefulSet spec fields the API lets change; everything else answers 422. */
const MUTABLE_STS_FIELDS = new Set(['replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy', 'minReadySeconds', 'revisionHistoryLimit']);

const isMap = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/**
 * Where `desired` is not contained in `live`: the fields we set that differ. Fields only the live
 * object has (API defaults, other managers' fields) are not differences.
 */
export function differences(desired: unknown, live: unknown, path = ''): Change[] {
  if (isMap(desired)) {
    if (!isMap(live)) return [{ path, from: live, to: desired }];
    return Object.keys(desired).sort().flatMap((k) => differences(desired[k], live[k], path ? `${path}.${k}` : k));
  }
  if (Array.isArray(desired)) {
    if (!Array.isArray(live) || live.length !== desired.length) return [{ path, from: live, to: desired }];
    return desired.flatMap((d, i) => differences(d, live[i], `${path}[${i}]`));
  }
  if (desired === live) return [];
  // The API rewrites quantities into canonical form (cpu 1000m → 1, 1024Gi → 1Ti): equal values are equal.
  if (QUANTITY_PATH.test(path) && typeof desired === 'string' && typeof live === 'string' &&
      parseQuantity(desired) !== undefined && parseQuantity(desired) === parseQuantity(live)) return [];
  return [{ path, from: live, to: desired }];
}

/** Paths whose values are Kubernetes quantities. */
const QUANTITY_PATH = /(resources\.(requests|limits)\.[^.]+|\.storage)$/;

/** The parts of an object the reconciler sets: labels, annotations and everything outside metadata and status. */
function owned(o: KubeObject): Record<string, unknown> {
  const { metadata, status: _status, apiVersion: _a, kind: _k, ...rest } = o;
  return { metadata: { labels: metadata.labels ?? {}, annotations: metadata.annotations ?? {} }, ...rest };
}

function statefulSetRefusals(desired: KubeObject, live: KubeObject, options: PlanOptions): { refusals: Refusal[]; growth: ClaimGrowth[] } {
  const growth: ClaimGrowth[] = [];
  const ref = refOf(desired);
  const refusals: Refusal[] = [];
  const refuse = (field: string, from: unknown, to: unknown, reason: string, forceable = true) =>
    refusals.push({ ref, field, from, to, reason, ...(forceable ? {} : { forceable: false }) });
  const d = desired.spec ?? {};
  const l = live.spec ?? {};

  const fromEngine = live.metadata.annotations?.[ENGINE_ANNOTATION];
  const toEngine = desired.metadata.annotations?.[ENGINE_ANNOTATION];
  if (fromEngine && toEngine && fromEngine !== toEngine) {
    refuse(`metadata.annotations.${ENGINE_ANNOTATION}`, fromEngine, toEngine, 'changing the engine cannot keep the data: the new engine cannot read the old one\'s files');
  }
  // A version change is an upgrade member by member (the reconciler's, highest ordinal first): only
  // the steps etcd supports, from what the members run (during an upgrade, from both the version they
  // came from, which the operation mark names, and the one they are moving to).
  if (toEngine === 'etcd' && fromEngine === 'etcd') {
    const to = desired.metadata.annotations?.[ENGINE_VERSION_ANNOTATION];
    const running = liveEtcdVersion(live.metadata.annotations?.[ENGINE_VERSION_ANNOTATION], l.template?.spec?.containers?.[0]?.image);
    const upgrading = upgradeFrom(live.metadata.annotations?.[OPERATION_ANNOTATION]);
    const auth = !!(desired.metadata.annotations?.[AUTH_ANNOTATION] ?? live.metadata.annotations?.[AUTH_ANNOTATION]);
    if (upgrading && to === upgrading) {
      // Back to where an upgrade under way came from: some members still run it, so the cluster
      // version has not moved, which is when etcd lets members go back; force says you know that.
      const step = etcdVersionStep(upgrading, running ?? upgrading, { auth });
      if (step.allowed && step.kind === 'minor') {
        refuse(`metadata.annotations.${ENGINE_VERSION_ANNOTATION}`, running, to, `going back to ${to} during its upgrade to ${running}: etcd allows it only while some member still runs ${to} (the cluster version has not moved on), which is the case until the upgrade finishes; set force to roll the upgraded members back`);
      }
    } else {
      for (const from of [...new Set([upgrading, running])]) {
        if (!from || !to || from === to) continue;
        const step = etcdVersionStep(from, to, { auth });
        if (!step.allowed) refuse(`metadata.annotations.${ENGINE_VERSION_ANNOTATION}`, from, to, `${step.reason}; not even force makes this change`, false);
      }
    }
  }
  // Turning TLS on goes member by member (TlsSwitch: peer certificates everywhere first, then each
  // member's listeners), never in one rolling update, which would split the cluster half-way: a
  // template may only move one phase on, or back from the first phase (no member speaks TLS yet).
  const stageOf = (o: KubeObject) => etcdTlsStage(o.spec?.template?.spec?.containers?.[0]?.args ?? []);
  const [fromTls, toTls] = [stageOf(live), stageOf(desired)];
  if (toEngine === 'etcd' && fromEngine === 'etcd' && fromTls !== toTls && !(fromTls === 'off' && toTls === TLS_SWITCH_PHASE) && !(fromTls === TLS_SWITCH_PHASE && toTls === 'off')) {
    refuse('spec.tls', fromTls, toTls, fromTls === 'on'
      ? 'turning TLS off for a live store is not supported: clients and members would lose the protection they rely on half-way; create a new store without TLS and restore a snapshot into it; not even force makes this change'
      : 'a live store turns TLS on member by member (the reconciler\'s TLS switch), not in one rolling update; not even force makes this change',
    false);
  }
  // etcd does not reload its trusted CA: a CA rotation goes through a bundle of both, one phase at a
  // time (the reconciler's CA rotation): old → old+new → new, never old → new in one rolling update.
  const fromTrust = live.metadata.annotations?.[TLS_TRUST_ANNOTATION];
  const toTrust = desired.metadata.annotations?.[TLS_TRUST_ANNOTATION];
  const rotationStep = (a: string, b: string) => b === `${a}+${b.split('+')[1]}` || (a.includes('+') && a.endsWith(`+${b}`));
  if (fromTrust && toTrust && fromTrust !== toTrust && !rotationStep(fromTrust, toTrust)) {
    refuse(`metadata.annotations.${TLS_TRUST_ANNOTATION}`, fromTrust, toTrust,
      'changing what the members trust (the CA, tls.issuer or tls.memberSecret) of a live store goes through the reconciler\'s CA rotation (a bundle of both CAs, one phase at a time; etcd does not reload its trusted CA); a rotation under way finishes before another starts; not even force makes this change',
      false);
  }
  const fromRestore = live.metadata.annotations?.[RESTORED_FROM_ANNOTATION];
  const toRestore = desired.metadata.annotations?.[RESTORED_FROM_ANNOTATION];
  if (fromRestore !== toRestore) {
    refuse(`metadata.annotations.${RESTORED_FROM_ANNOTATION}`, fromRestore, toRestore, toRestore
      ? 'restoring replaces the live data with the snapshot\'s: writes since the snapshot are lost (the current data stays on the PVCs, in its own directory)'
      : 'without restore the members would go back to the data they had before the restore, and could not rejoin the restored cluster; not even force makes this change',
    !!toRestore);
  }
  if (toEngine === 'etcd' && d.replicas !== l.replicas && !options.replicasManaged) {
    refuse('spec.replicas', l.replicas, d.replicas, 'etcd members must be registered with (or removed from) the cluster one at a time before their pods change: the membership procedure does that');
  }

  const dTemplates: any[] = d.volumeClaimTemplates ?? [];
  const lTemplates: any[] = l.volumeClaimTemplates ?? [];
  const names = (ts: any[]) => ts.map((t) => t.metadata?.name);
  if (JSON.stringify(names(dTemplates)) !== JSON.stringify(names(lTemplates))) {
    refuse('spec.volumeClaimTemplates', names(lTemplates), names(dTemplates), 'volume claim templates are immutable; adding, removing or renaming one orphans or loses member data');
  } else {
    dTemplates.forEach((t, i) => {
      const from = lTemplates[i].spec?.resources?.requests?.storage;
      const to = t.spec?.resources?.requests?.storage;
      const field = `spec.volumeClaimTemplates[${i}].spec.resources.requests.storage`;
      if (parseQuantity(from) !== parseQuantity(to)) {
        const grow = (parseQuantity(to) ?? 0) > (parseQuantity(from) ?? 0);
        if (grow) growth.push({ template: t.metadata?.name, from, to });
        else refuse(field, from, to, 'storage cannot shrink: PVCs only grow, and a smaller template would not fit the data already written');
      }
      const { resources: _dr, ...dRest } = t.spec ?? {};
      const { resources: _lr, ...lRest } = lTemplates[i].spec ?? {};
      for (const c of differences(dRest, lRest, `spec.volumeClaimTemplates[${i}].spec`)) {
        refuse(c.path, c.from, c.to, 'volume claim templates are immutable');
      }
    });
  }
  for (const field of Object.keys({ ...d, ...l }).sort()) {
    if (MUTABLE_STS_FIELDS.has(field) || field === 'volumeClaimTemplates') continue;
    if (differences(d[field], l[field]).length > 0 && d[field] !== undefined) {
      refuse(`spec.${field}`, l[field], d[field], `spec.${field} is immutable (the API answers 422): changing it means deleting and re-creating the StatefulSet`);
    }
  }
  return { refusals, growth };
}

/** The operation mark of a version upgrade under way: `version <from> → <to>`. */
export const upgradeMark = (from: string, to: string) => `version ${from} → ${to}`;

/** The version an upgrade under way started from, by its operation mark. */
export function upgradeFrom(mark: string | undefined): string | undefined {
  return /^version ([0-9.]+) → /.exec(mark ?? '')?.[1];
}

/** Whether a refusal can be forced by re-creating the StatefulSet (immutable fields only). */
function needsRecreate(r: Refusal): boolean {
  return r.field.startsWith('spec.') && r.field !== 'spec.replicas';
}


/** One key per object identity (group, kind, namespace, name), for lookups in linear time. */
const keyOf = (o: KubeObject) => `${groupKind(o)}|${o.metadata.namespace ?? ''}|${o.metadata.name}`;

export function plan(desired: readonly KubeObject[], live: readonly KubeObject[], options: PlanOptions): Plan {
  const steps: Step[] = [];
  const refusals: Refusal[] = [];
  const unchanged: ObjectRef[] = [];
  const ordered = [...desired].sort((a, b) => rank(a) - rank(b));
  const liveByKey = new Map(live.map((l) => [keyOf(l), l]));
  const desiredKeys = new Set(desired.map(keyOf));

  for (const object of ordered) {
    const current = liveByKey.get(keyOf(object));
    if (!current) {
      steps.push({ action: 'create', object });
      if (groupKind(object) === 'StatefulSet.apps') steps.push({ action: 'wait-rollout', ref: refOf(object) });
      continue;
    }
    const changes = differences(owned(object), owned(current));
    if (changes.length === 0) {
      unchanged.push(refOf(object));
      continue;
    }
    if (groupKind(object) === 'StatefulSet.apps') {
      const { refusals: found, growth } = statefulSetRefusals(object, current, options);
      if (found.length > 0 && (!options.force || found.some((r) => r.forceable === false))) {
        refusals.push(...found);
        continue;
      }
      if (growth.length > 0) steps.push({ action: 'resize', object, changes, claims: growth });
      else steps.push({ action: found.some(needsRecreate) ? 'recreate' : 'update', object, changes });
      steps.push({ action: 'wait-rollout', ref: refOf(object) });
      continue;
    }
    if (object.kind === 'PersistentVolumeClaim') {
      const from = current.spec?.resources?.requests?.storage;
      const to = object.spec?.resources?.requests?.storage;
      if ((parseQuantity(to) ?? 0) < (parseQuantity(from) ?? 0)) {
        refusals.push({ ref: refOf(object), field: 'spec.resources.requests.storage', from, to, reason: 'storage cannot shrink: PVCs only grow' });
        continue;
      }
    }
    steps.push({ action: 'update', object, changes });
  }

  const prunable = live
    .filter((l) => l.metadata.labels?.[PART_OF_LABEL] === options.applySetId)
    .filter((l) => !NEVER_PRUNED.has(l.kind))
    .filter((l) => !desiredKeys.has(keyOf(l)))
    .sort((a, b) => rank(b) - rank(a) || a.metadata.name.localeCompare(b.metadata.name));
  for (const l of prunable) steps.push({ action: 'prune', ref: refOf(l) });

  return { steps, refusals, unchanged };
}

const show = (v: unknown) => {
  const text = v === undefined ? '(none)' : JSON.stringify(v);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
};

/** The plan as a diff-like text, one line per step and per changed field. */
export function formatPlan(p: Plan): string[] {
  const count = (a: Step['action']) => p.steps.filter((s) => s.action === a).length;
  const resizes = count('resize') ? `, ${count('resize')} to resize` : '';
  const lines = [`plan: ${count('create')} to create, ${count('update')} to update, ${count('recreate')} to re-create${resizes}, ${count('prune')} to prune, ${p.unchanged.length} unchanged, ${p.refusals.length} refused`];
  for (const s of p.steps) {
    switch (s.action) {
      case 'create': lines.push(`  + ${describeRef(refOf(s.object))}`); break;
      case 'prune': lines.push(`  - ${describeRef(s.ref)}`); break;
      case 'wait-rollout': lines.push(`  … wait for ${describeRef(s.ref)} to roll out`); break;
      case 'resize':
        lines.push(`  ⇑ ${describeRef(refOf(s.object))} resize (grow each PVC, delete with orphan propagation, create)`);
        for (const c of s.claims) lines.push(`      volume ${c.template}: ${c.from} → ${c.to}`);
        for (const c of s.changes.filter((x) => !x.path.startsWith('spec.volumeClaimTemplates'))) lines.push(`      ${c.path}: ${show(c.from)} → ${show(c.to)}`);
        break;
      default:
        lines.push(`  ${s.action === 'recreate' ? '±' : '~'} ${describeRef(refOf(s.object))}${s.action === 'recreate' ? ' (delete with orphan propagation, create)' : ''}`);
        for (const c of s.changes) lines.push(`      ${c.path}: ${show(c.from)} → ${show(c.to)}`);
    }
  }
  for (const r of p.refusals) lines.push(`  ! ${describeRef(r.ref)} ${r.field}: ${show(r.from)} → ${show(r.to)} refused: ${r.reason}`);
  return lines;
}
