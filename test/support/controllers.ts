// Test support: the pure decisions of the StatefulSet and Job controllers the cluster simulator runs
// (cluster-simulator.ts does the I/O): the objects they create, revisions, status, and the next step.
// Rules follow kube-controller-manager's statefulset and job controllers (pkg/controller/...).
import { createHash } from 'crypto';
import type { KubeObject } from './api-server';

type Json = Record<string, any>;

export const POD_NAME_LABEL = 'statefulset.kubernetes.io/pod-name';
export const POD_INDEX_LABEL = 'apps.kubernetes.io/pod-index';
export const REVISION_LABEL = 'controller-revision-hash';

/** JSON with object keys sorted, so equal objects hash equally whatever their key order. */
function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    return `{${Object.keys(v).sort().filter((k) => (v as Json)[k] !== undefined).map((k) => `${JSON.stringify(k)}:${stableJson((v as Json)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** The revision of a pod template: `<sts>-<10 characters of its hash>`, the controller-revision-hash label. */
export function revisionName(stsName: string, template: unknown): string {
  return `${stsName}-${createHash('sha256').update(stableJson(template)).digest('hex').slice(0, 10)}`;
}

/** The ordinal of a StatefulSet's pod (`<sts>-<n>`), or undefined when the name is not one of its pods. */
export function ordinalOf(stsName: string, podName: string): number | undefined {
  const m = /^(.*)-(0|[1-9][0-9]*)$/.exec(podName);
  return m && m[1] === stsName ? Number(m[2]) : undefined;
}

/** The claim a StatefulSet pod gets from one volumeClaimTemplate. */
export function claimName(templateName: string, podName: string): string {
  return `${templateName}-${podName}`;
}

/**
 * The spec a StatefulSet pod runs: the template's spec with the pod's hostname, the governing Service
 * as subdomain, and one persistentVolumeClaim volume per claim template (replacing a template volume
 * of the same name).
 */
export function statefulSetPodSpec(stsSpec: Json, template: Json, podName: string): Json {
  const claims: Json[] = (stsSpec.volumeClaimTemplates ?? []).map((t: Json) => ({
    name: t.metadata.name,
    persistentVolumeClaim: { claimName: claimName(t.metadata.name, podName) },
  }));
  const volumes = [...(template.spec.volumes ?? []).filter((v: Json) => !claims.some((c) => c.name === v.name)), ...claims];
  return { ...template.spec, hostname: podName, subdomain: stsSpec.serviceName, ...(volumes.length > 0 ? { volumes } : {}) };
}

/** The ownerReference a controller puts on what it creates or adopts. */
export function controllerRef(owner: KubeObject): Json {
  return { apiVersion: owner.apiVersion, kind: owner.kind, name: owner.metadata.name, uid: owner.metadata.uid, controller: true, blockOwnerDeletion: true };
}

/** The uid of the object's controller (the ownerReference with controller: true), if any. */
export function controllerUid(obj: KubeObject): string | undefined {
  return (obj.metadata.ownerReferences ?? []).find((r: Json) => r.controller)?.uid;
}

/**
 * What a controller makes from its owner's template (a pod template or a Job template): the template's
 * labels and annotations with the controller's own added, in the owner's namespace, owned by it.
 */
function fromTemplate(owner: KubeObject, apiVersion: string, kind: string, name: string, template: Json, added: { labels?: Json; annotations?: Json }): KubeObject {
  const annotations = { ...template.metadata?.annotations, ...added.annotations };
  return {
    apiVersion,
    kind,
    metadata: {
      name,
      namespace: owner.metadata.namespace,
      labels: { ...template.metadata?.labels, ...added.labels },
      ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
      ownerReferences: [controllerRef(owner)],
    },
    spec: template.spec,
  };
}

/** The Pod object the StatefulSet controller creates for one ordinal from one revision's template. */
export function statefulSetPod(sts: KubeObject, template: Json, revision: string, ordinal: number): KubeObject {
  const name = `${sts.metadata.name}-${ordinal}`;
  const pod = fromTemplate(sts, 'v1', 'Pod', name, template, { labels: { [POD_NAME_LABEL]: name, [POD_INDEX_LABEL]: String(ordinal), [REVISION_LABEL]: revision } });
  return { ...pod, spec: statefulSetPodSpec(sts.spec, template, name), status: { phase: 'Pending' } };
}

/**
 * The claims of one StatefulSet pod, bound at once with the capacity they request. Labelled with the
 * selector's labels; owned by the StatefulSet when whenDeleted is Delete, so the garbage collector
 * removes them with it.
 */
export function statefulSetClaims(sts: KubeObject, ordinal: number): KubeObject[] {
  const pod = `${sts.metadata.name}-${ordinal}`;
  const deleteWithSet = sts.spec.persistentVolumeClaimRetentionPolicy?.whenDeleted === 'Delete';
  return (sts.spec.volumeClaimTemplates ?? []).map((t: Json) => ({
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      name: claimName(t.metadata.name, pod),
      namespace: sts.metadata.namespace,
      labels: { ...t.metadata.labels, ...sts.spec.selector?.matchLabels },
      ...(deleteWithSet ? { ownerReferences: [controllerRef(sts)] } : {}),
    },
    spec: t.spec,
    status: boundStatus(t.spec),
  }));
}

/** What binding a claim sets: phase Bound and the requested capacity (every claim binds here). */
export function boundStatus(claimSpec: Json): Json {
  return { phase: 'Bound', accessModes: claimSpec.accessModes ?? ['ReadWriteOnce'], capacity: { storage: claimSpec.resources?.requests?.storage } };
}

/** What the StatefulSet controller knows of one of its pods, from the Pod object. */
export interface PodView {
  readonly name: string;
  readonly ordinal: number;
  readonly revision: string;
  /** Running and condition Ready True. */
  readonly ready: boolean;
  /** When Ready last became True (ms since epoch), for availableReplicas. */
  readonly readySince?: number;
  /** metadata.deletionTimestamp is set. */
  readonly terminating: boolean;
}

/** A Pod object as the StatefulSet controller sees it. */
export function podView(stsName: string, pod: KubeObject): PodView | undefined {
  const ordinal = ordinalOf(stsName, pod.metadata.name!);
  if (ordinal === undefined) return undefined;
  const ready = (pod.status?.conditions ?? []).find((c: Json) => c.type === 'Ready');
  const isReady = pod.status?.phase === 'Running' && ready?.status === 'True';
  return {
    name: pod.metadata.name!,
    ordinal,
    revision: pod.metadata.labels?.[REVISION_LABEL] ?? '',
    ready: isReady,
    readySince: isReady && ready.lastTransitionTime ? Date.parse(ready.lastTransitionTime) : undefined,
    terminating: !!pod.metadata.deletionTimestamp,
  };
}

export type StatefulSetStep =
  | { readonly action: 'create'; readonly ordinal: number; readonly revision: string }
  | { readonly action: 'delete'; readonly pod: string; readonly reason: 'scale-down' | 'update' };

/**
 * What the StatefulSet controller does next, given its pods: create missing ordinals (Parallel: all at
 * once; OrderedReady: the lowest, once every lower one is Ready), delete ordinals >= replicas highest
 * first (OrderedReady: one at a time while the others are Ready), then, under RollingUpdate with every
 * pod Ready, delete the highest pod at or above the partition still on an old revision, one at a time
 * (it comes back on the update revision). A pod that is terminating blocks its ordinal until it is gone.
 */
export function nextStatefulSetSteps(sts: KubeObject, pods: readonly PodView[], currentRevision: string, updateRevision: string): StatefulSetStep[] {
  const replicas = sts.spec.replicas ?? 1;
  const ordered = (sts.spec.podManagementPolicy ?? 'OrderedReady') === 'OrderedReady';
  const strategy = sts.spec.updateStrategy?.type ?? 'RollingUpdate';
  const partition = strategy === 'RollingUpdate' ? sts.spec.updateStrategy?.rollingUpdate?.partition ?? 0 : 0;
  const byOrdinal = new Map(pods.map((p) => [p.ordinal, p]));
  const healthy = (p: PodView | undefined) => !!p && p.ready && !p.terminating;
  const steps: StatefulSetStep[] = [];

  for (let i = 0; i < replicas; i++) {
    const pod = byOrdinal.get(i);
    if (!pod) {
      steps.push({ action: 'create', ordinal: i, revision: strategy === 'RollingUpdate' && i < partition ? currentRevision : updateRevision });
      if (ordered) return steps;
    } else if (ordered && !healthy(pod)) {
      return steps;
    }
  }

  const condemned = pods.filter((p) => p.ordinal >= replicas).sort((a, b) => b.ordinal - a.ordinal);
  const setHealthy = Array.from({ length: replicas }, (_, i) => byOrdinal.get(i)).every(healthy);
  for (const pod of condemned) {
    if (pod.terminating) {
      if (ordered) return steps;
      continue;
    }
    if (ordered && !setHealthy) return steps;
    steps.push({ action: 'delete', pod: pod.name, reason: 'scale-down' });
    if (ordered) return steps;
  }

  if (strategy !== 'RollingUpdate' || steps.length > 0 || !setHealthy || condemned.length > 0) return steps;
  for (let i = replicas - 1; i >= partition; i--) {
    const pod = byOrdinal.get(i)!;
    if (pod.revision !== updateRevision) return [{ action: 'delete', pod: pod.name, reason: 'update' }];
  }
  return steps;
}

/**
 * The StatefulSet's status from its pods, as the controller writes it: replicas counts every pod,
 * terminating ones too (so a scale-down shows until its pods are gone), current and updated counts
 * leave terminating pods out, zero counts are omitted where the API omits them, and a finished
 * RollingUpdate makes the update revision current.
 */
export function statefulSetStatus(sts: KubeObject, pods: readonly PodView[], currentRevision: string, updateRevision: string, now: number): Json {
  const live = pods.filter((p) => !p.terminating);
  const minReadyMs = (sts.spec.minReadySeconds ?? 0) * 1000;
  const replicas = pods.length;
  const ready = pods.filter((p) => p.ready).length;
  const available = pods.filter((p) => p.ready && (p.readySince ?? 0) + minReadyMs <= now).length;
  const updated = live.filter((p) => p.revision === updateRevision).length;
  const done = (sts.spec.updateStrategy?.type ?? 'RollingUpdate') === 'RollingUpdate' && updated === replicas && ready === replicas;
  const current = done ? updated : live.filter((p) => p.revision === currentRevision).length;
  const counts: Json = { readyReplicas: ready, currentReplicas: current, updatedReplicas: updated };
  return {
    observedGeneration: sts.metadata.generation,
    replicas,
    ...Object.fromEntries(Object.entries(counts).filter(([, v]) => v > 0)),
    availableReplicas: available,
    currentRevision: done ? updateRevision : currentRevision,
    updateRevision,
    collisionCount: 0,
  };
}

/** Labels the Job controller puts on its pods (with those the API server adds to the template). */
export function jobPodLabels(job: KubeObject): Record<string, string> {
  const name = job.metadata.name!;
  const uid = job.metadata.uid!;
  return { 'job-name': name, 'batch.kubernetes.io/job-name': name, 'controller-uid': uid, 'batch.kubernetes.io/controller-uid': uid };
}

/** The Pod object the Job controller creates for one attempt. */
export function jobPod(job: KubeObject, suffix: string): KubeObject {
  const pod = fromTemplate(job, 'v1', 'Pod', `${job.metadata.name}-${suffix}`, job.spec.template, { labels: jobPodLabels(job) });
  return { ...pod, status: { phase: 'Pending' } };
}

/** The Job the CronJob controller creates for one scheduled time, named by the minute. */
export function cronJobJob(cronJob: KubeObject, scheduled: Date): KubeObject {
  const name = `${cronJob.metadata.name}-${Math.floor(scheduled.getTime() / 60_000)}`;
  return fromTemplate(cronJob, 'batch/v1', 'Job', name, cronJob.spec.jobTemplate, { annotations: { 'batch.kubernetes.io/cronjob-scheduled-timestamp': scheduled.toISOString() } });
}
