// CRD mode: reconcile every KVStore resource that changed (generation ≠ observedGeneration) or whose
// objects drifted, and report through the status subresource.
import * as k8s from '@kubernetes/client-node';
import { canonicalJson, StoreDocument, STORE_DOCUMENT_API_VERSION } from '../model/document';
import { KVSTORE_GROUP, KVSTORE_KIND, KVSTORE_PLURAL, KVSTORE_VERSION } from '../model/metadata';
import { clusterToken, selectorLabels, tlsSecrets } from '../model/names';
import { DEFAULT_SIZE, KVStoreSpec } from '../model/spec';
import { KubeClient, KubeError, withRetry } from './client';
import { Log } from './log';
import { ProgressEvent, reconcileStore, ReconcileOptions, RefusedError } from './reconcile';
import { KubeObject } from './types';

export interface Condition {
  readonly type: 'Ready' | 'Progressing' | 'Degraded';
  readonly status: 'True' | 'False' | 'Unknown';
  readonly reason: string;
  readonly message: string;
  readonly lastTransitionTime: string;
  readonly observedGeneration: number;
}

/**
 * The store document of a KVStore resource: its name and namespace come from metadata; a backup
 * without a prune image gets `pruneImage` (the operator's image) when given.
 */
export function documentFromResource(resource: KubeObject, pruneImage?: string): StoreDocument {
  const namespace = resource.metadata.namespace ?? 'default';
  const name = resource.metadata.name;
  const spec = resource.spec ?? {};
  const backup = spec.backup && pruneImage && spec.backup.pruneImage === undefined ? { backup: { ...spec.backup, pruneImage } } : {};
  return {
    apiVersion: STORE_DOCUMENT_API_VERSION,
    kind: 'StoreDocument',
    namespace,
    // Stable per resource; a re-created resource of the same name gets the same token.
    clusterToken: clusterToken(name, `${namespace}/${name}`),
    // The API server applies the CRD's defaults; without them an engine-less spec is etcd.
    spec: { engine: { kind: 'etcd' }, ...spec, ...backup, name } as KVStoreSpec,
    reconciledBy: 'operator',
  };
}

/**
 * A TLS store's client certificate, from its kubernetes.io/tls Secret: the operator's pod mounts no
 * Secret of each store, so it reads the one it needs, when a step talks to etcd.
 */
export async function secretCertificate(client: KubeClient, namespace: string, name: string): Promise<{ ca: Buffer; cert: Buffer; key: Buffer }> {
  const secret = await client.read({ apiVersion: 'v1', kind: 'Secret', namespace, name });
  if (!secret) throw new Error(`the store has TLS: its client certificate Secret ${namespace}/${name} does not exist (yet: cert-manager issues it)`);
  const key = (k: string) => {
    const value = secret.data?.[k];
    if (typeof value !== 'string') throw new Error(`the store has TLS: Secret ${namespace}/${name} has no ${k}`);
    return Buffer.from(value, 'base64');
  };
  return { ca: key('ca.crt'), cert: key('tls.crt'), key: key('tls.key') };
}

/**
 * The next status: conditions keep their lastTransitionTime unless their status flips.
 * `outcome` is what this run found.
 */
export interface Outcome {
  readonly state: 'ready' | 'progressing' | 'degraded';
  readonly reason: string;
  readonly message: string;
}

export function nextStatus(resource: KubeObject, outcome: Outcome, statefulSet: KubeObject | undefined, now: Date, appliedSpecHash?: string, members?: readonly string[]): Record<string, unknown> {
  const specHash = appliedSpecHash ?? resource.status?.specHash;
  const generation = resource.metadata.generation ?? 1;
  const previous: Condition[] = resource.status?.conditions ?? [];
  const condition = (type: Condition['type'], on: boolean): Condition => {
    const status = on ? 'True' : 'False';
    const before = previous.find((c) => c.type === type);
    return {
      type,
      status,
      reason: on || type === 'Ready' ? outcome.reason : 'AsExpected',
      message: on || type === 'Ready' ? outcome.message : '',
      lastTransitionTime: before && before.status === status ? before.lastTransitionTime : now.toISOString(),
      observedGeneration: generation,
    };
  };
  const size = resource.spec?.size ?? DEFAULT_SIZE;
  return {
    observedGeneration: generation,
    replicas: statefulSet?.status?.replicas ?? 0,
    readyReplicas: statefulSet?.status?.readyReplicas ?? 0,
    selector: Object.entries(selectorLabels(resource.metadata.name)).map(([k, v]) => `${k}=${v}`).join(','),
    // The engine's member list while an operation reports it; otherwise the members the spec asks for.
    members: members ? members.map((name) => ({ name })) : Array.from({ length: size }, (_, i) => ({ name: `${resource.metadata.name}-${i}` })),
    ...(specHash ? { specHash } : {}),
    conditions: [
      condition('Ready', outcome.state === 'ready'),
      condition('Progressing', outcome.state === 'progressing'),
      condition('Degraded', outcome.state === 'degraded'),
    ],
  };
}

/** Whether two statuses say the same thing (ignoring nothing: times only move on transitions). */
function sameStatus(a: unknown, b: unknown): boolean {
  return canonicalJson(a ?? null) === canonicalJson(b ?? null);
}

/** CRD mode: which KVStore resources to reconcile, and how each is reconciled. */
export interface CustomResourceOptions extends ReconcileOptions {
  /** @default - every namespace */
  readonly namespaces?: readonly string[];
  /**
   * The backup prune image of resources whose spec.backup names none: the operator's own image.
   * @default - DEFAULT_RECONCILER_IMAGE
   */
  readonly pruneImage?: string;
  /**
   * The clock status conditions are stamped with (injected by tests).
   * @default - the system clock
   */
  readonly now?: () => Date;
}

/** How a CRD-mode run went. */
export interface ResourcesResult {
  /** Resources reconciled without an error. */
  readonly reconciled: number;
  /** Resources whose reconcile failed (their status says why). */
  readonly failed: number;
}

/** Reconciles every KVStore resource in scope; returns how many failed (the process exit code follows it). */
export async function reconcileResources(kubeConfig: k8s.KubeConfig, client: KubeClient, log: Log, options: CustomResourceOptions): Promise<ResourcesResult> {
  const custom = kubeConfig.makeApiClient(k8s.CustomObjectsApi);
  const now = options.now ?? (() => new Date());
  // One LIST per namespace the reconciler is bound in (it may read nothing elsewhere), or one across all.
  const resources = (await Promise.all((options.namespaces ?? ['']).map((ns) => client.list(`${KVSTORE_GROUP}/${KVSTORE_VERSION}`, KVSTORE_KIND, ns, '')))).flat();
  let failed = 0;
  let reconciled = 0;
  for (const resource of resources.sort((a, b) => `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`))) {
    const document = documentFromResource(resource, options.pruneImage);
    const ref = `${KVSTORE_KIND}/${resource.metadata.name}`;
    const kvRef = { apiVersion: `${KVSTORE_GROUP}/${KVSTORE_VERSION}`, kind: KVSTORE_KIND, namespace: document.namespace, name: resource.metadata.name };
    // Optimistic: a 409 means the resource changed during the run; re-read and write again.
    let latest = resource;
    const writeStatus = async (outcome: Outcome, statefulSet: KubeObject | undefined, appliedSpecHash?: string, members?: readonly string[]) => {
      // A dry run changes nothing, status included (it would record a spec as applied that was not).
      if (options.dryRun) return;
      for (let attempt = 0; attempt < 3; attempt++) {
        const current = attempt === 0 ? latest : await client.read(kvRef);
        if (!current) return;
        const status = nextStatus(current, outcome, statefulSet, now(), appliedSpecHash, members);
        if (sameStatus(status, current.status)) return;
        client.counters.mutating++;
        try {
          const written = await withRetry('update status of', ref, () => custom.replaceNamespacedCustomObjectStatus({
            group: KVSTORE_GROUP, version: KVSTORE_VERSION, plural: KVSTORE_PLURAL, namespace: document.namespace, name: resource.metadata.name,
            body: { ...current, status },
          }));
          latest = written as KubeObject;
          return;
        } catch (e) {
          if (!(e instanceof KubeError && e.code === 409)) throw e;
        }
      }
      throw new Error(`${ref}: status kept conflicting (409) after 3 attempts`);
    };
    const readStatefulSet = () => client.read({ apiVersion: 'apps/v1', kind: 'StatefulSet', namespace: document.namespace, name: document.spec.name });
    try {
      // Each step of a day-2 operation shows in status as Progressing, with the members as listed.
      const onProgress = async (event: ProgressEvent) => {
        await writeStatus({ state: 'progressing', reason: event.operation, message: event.message }, await readStatefulSet(), undefined, event.members);
      };
      const etcdClientCertificate = document.spec.tls ? () => secretCertificate(client, document.namespace, tlsSecrets(document.spec).client) : undefined;
      const result = await reconcileStore(document, client, log, { ...options, onProgress, ...(etcdClientCertificate ? { etcdClientCertificate } : {}) });
      const sts = await readStatefulSet();
      const ready = sts && (sts.status?.readyReplicas ?? 0) === (sts.spec?.replicas ?? 0);
      await writeStatus(ready
        ? { state: 'ready', reason: 'Reconciled', message: `${sts.status?.readyReplicas ?? 0}/${sts.spec?.replicas ?? 0} members ready` }
        : { state: 'progressing', reason: 'RollingOut', message: 'waiting for members to become ready' }, sts, result.specHash);
      reconciled++;
    } catch (e) {
      failed++;
      log.error(`${document.namespace}/${document.spec.name}: ${(e as Error).message}`, { store: document.spec.name });
      // The store may well be running: report its members as they are.
      const sts = await readStatefulSet().catch(() => undefined);
      await writeStatus({ state: 'degraded', reason: e instanceof RefusedError ? 'Refused' : 'ReconcileFailed', message: (e as Error).message.slice(0, 1000) }, sts)
        .catch((statusError) => log.error(`could not write status: ${(statusError as Error).message}`));
    }
  }
  return { reconciled, failed };
}
