// CRD mode: reconcile every KVStore resource that changed (generation ≠ observedGeneration) or whose
// objects drifted, or maintain each one's store (`--crd --maintain`), and report through the status
// subresource.
import * as k8s from '@kubernetes/client-node';
import { canonicalJson, StoreDocument, STORE_DOCUMENT_API_VERSION } from '../model/document';
import { OPERATOR_ROLE, OPERATOR_SERVICE_ACCOUNT } from '../constructs/reconciler-rbac';
import { KVSTORE_GROUP, KVSTORE_KIND, KVSTORE_PLURAL, KVSTORE_VERSION, MANAGED_BY, MANAGED_BY_LABEL, NAME_LABEL, RECONCILER_POD_NAME } from '../model/metadata';
import { clusterToken, labelSelector, selectorLabels, tlsSecrets } from '../model/names';
import { DEFAULT_SIZE, KVStoreSpec } from '../model/spec';
import { KubeClient, KubeError, makeApiClient, withRetry } from './client';
import { LeaseHeldError } from './lease';
import type { EventRegarding } from './events';
import { Log } from './log';
import { MaintainResult, MaintenanceError } from './maintain';
import { LAST_ERROR_MAX_LENGTH, maintainStore, ProgressEvent, reconcileStore, ReconcileOptions, RefusedError, RunOutcome } from './reconcile';
import { KubeObject, refOf } from './types';

export interface Condition {
  /** Ready, Progressing, Degraded: what a reconcile found. Maintained: what the last maintenance run did. */
  readonly type: 'Ready' | 'Progressing' | 'Degraded' | 'Maintained';
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
export function documentFromResource(resource: KubeObject, pruneImage?: string, operatorNamespace?: string): StoreDocument {
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
    ...(operatorNamespace && operatorNamespace !== namespace ? { operatorNamespace } : {}),
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

/** The conditions a reconcile writes; any other (Maintained) it keeps as it is. */
const RECONCILE_CONDITIONS: ReadonlyArray<Condition['type']> = ['Ready', 'Progressing', 'Degraded'];

/** The lastTransitionTime of a condition now `status`: the previous one's while its status is the same. */
function transitionTime(previous: readonly Condition[], type: Condition['type'], status: Condition['status'], now: Date): string {
  const before = previous.find((c) => c.type === type);
  return before && before.status === status ? before.lastTransitionTime : now.toISOString();
}

/**
 * The next status: conditions keep their lastTransitionTime unless their status flips.
 * `outcome` is what this run found.
 */
export interface Outcome {
  readonly state: 'ready' | 'progressing' | 'degraded';
  readonly reason: string;
  readonly message: string;
  /**
   * How the run ended, when this is its last status (absent while it runs): a success that changed
   * something, or clears lastError, or is the first, sets lastReconcileTime and drops lastError; a
   * failure sets lastError. Without it both stay as they are.
   */
  readonly run?: RunOutcome;
}

/** lastReconcileTime and lastError after `run` (pure; see Outcome.run). */
function runRecord(previous: Record<string, any> | undefined, run: RunOutcome | undefined, now: Date): Record<string, string> {
  const time: string | undefined = previous?.lastReconcileTime;
  const error: string | undefined = previous?.lastError;
  const record = (t: string | undefined, e: string | undefined) => ({ ...(t !== undefined ? { lastReconcileTime: t } : {}), ...(e !== undefined ? { lastError: e } : {}) });
  if (!run) return record(time, error);
  if (!run.succeeded) return record(time, run.error.slice(0, LAST_ERROR_MAX_LENGTH));
  return record(run.changed || error !== undefined || time === undefined ? now.toISOString() : time, undefined);
}

export function nextStatus(resource: KubeObject, outcome: Outcome, statefulSet: KubeObject | undefined, now: Date, appliedSpecHash?: string, members?: readonly string[]): Record<string, unknown> {
  const specHash = appliedSpecHash ?? resource.status?.specHash;
  const generation = resource.metadata.generation ?? 1;
  const previous: Condition[] = resource.status?.conditions ?? [];
  const condition = (type: Condition['type'], on: boolean): Condition => {
    const status = on ? 'True' : 'False';
    return {
      type,
      status,
      reason: on || type === 'Ready' ? outcome.reason : 'AsExpected',
      message: on || type === 'Ready' ? outcome.message : '',
      lastTransitionTime: transitionTime(previous, type, status, now),
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
    ...runRecord(resource.status, outcome.run, now),
    conditions: [
      condition('Ready', outcome.state === 'ready'),
      condition('Progressing', outcome.state === 'progressing'),
      condition('Degraded', outcome.state === 'degraded'),
      // Written by maintenance runs, not by a reconcile: kept as it is.
      ...previous.filter((c) => !RECONCILE_CONDITIONS.includes(c.type)),
    ],
  };
}

/** What a maintenance run came to, for the resource's Maintained condition. */
export interface MaintenanceOutcome {
  /** True: done (or nothing to do); False: not done, the message says why; Unknown: under way. */
  readonly status: Condition['status'];
  readonly reason: string;
  readonly message: string;
}

const MiB = 2 ** 20;

/** A finished or failed maintenance run as a Maintained condition's status, reason and message. Pure. */
export function maintenanceOutcome(run: { readonly result: MaintainResult } | { readonly error: unknown }): MaintenanceOutcome {
  if ('error' in run) {
    const e = run.error;
    const reason = e instanceof MaintenanceError ? e.reason : e instanceof LeaseHeldError ? 'LeaseHeld' : 'MaintenanceFailed';
    return { status: 'False', reason, message: String((e as Error)?.message ?? e).slice(0, 1000) };
  }
  const { kind, result, replaced } = run.result;
  const defragmented = result?.defragmented ?? [];
  const reclaimed = defragmented.reduce((sum, m) => sum + Math.max(0, m.dbSizeBeforeBytes - m.dbSizeAfterBytes), 0);
  const defragmentedText = `defragmented ${defragmented.map((m) => m.name).join(', ')} (${(reclaimed / MiB).toFixed(1)} MiB reclaimed)`;
  const done: Array<[string, string]> = [];
  if (replaced?.length) done.push(['MemberReplaced', `replaced ${replaced.join(', ')} on an empty volume (its data was lost)`]);
  if (kind === 'quorum-recovery') done.push(['QuorumRecovered', 'quorum recovered from the most advanced survivor, the other members added back on empty volumes (writes acknowledged after the survivor\'s revision may be lost: see the run\'s log)']);
  if (kind === 'nospace-recovery') done.push(['SpaceRecovered', `NOSPACE alarm disarmed after compacting; ${defragmentedText}`]);
  if (kind === 'defragmentation' && defragmented.length > 0) done.push(['Defragmented', defragmentedText]);
  if (done.length > 0) return { status: 'True', reason: done[0][0], message: done.map(([, m]) => m).join('; ') };
  if (kind === 'none') return { status: 'True', reason: 'NoMembers', message: 'no live etcd members to maintain' };
  return { status: 'True', reason: 'NothingToDo', message: 'every member answered and agreed on the leader; none had enough to reclaim' };
}

/**
 * The status with its Maintained condition set to `outcome` (lastTransitionTime kept while its status
 * is the same); everything a reconcile wrote (observedGeneration, members, its conditions) as it was. Pure.
 */
export function maintainedStatus(resource: KubeObject, outcome: MaintenanceOutcome, now: Date): Record<string, unknown> {
  const status: Record<string, any> = resource.status ?? {};
  const previous: Condition[] = status.conditions ?? [];
  const maintained: Condition = {
    type: 'Maintained',
    status: outcome.status,
    reason: outcome.reason,
    message: outcome.message,
    lastTransitionTime: transitionTime(previous, 'Maintained', outcome.status, now),
    observedGeneration: resource.metadata.generation ?? 1,
  };
  const at = previous.findIndex((c) => c.type === 'Maintained');
  return { ...status, conditions: at < 0 ? [...previous, maintained] : previous.map((c, i) => (i === at ? maintained : c)) };
}

/** Whether two statuses say the same thing (ignoring nothing: times only move on transitions). */
function sameStatus(a: unknown, b: unknown): boolean {
  return canonicalJson(a ?? null) === canonicalJson(b ?? null);
}

/** CRD mode: which KVStore resources to reconcile, and how each is reconciled. */
export interface CustomResourceOptions extends ReconcileOptions {
  /** @default - every namespace (or those namespaceSelector selects) */
  readonly namespaces?: readonly string[];
  /**
   * Instead of `namespaces`: the namespaces carrying these labels. The reconciler binds the ClusterRole
   * `kvstore-reconciler` in each (a RoleBinding of that name), removes the bindings it made where a
   * namespace no longer matches, then reconciles the KVStore resources of the selected namespaces.
   * @default - no selector
   */
  readonly namespaceSelector?: Readonly<Record<string, string>>;
  /**
   * The operator's own namespace, where its ServiceAccount lives: the subject of the RoleBindings a
   * namespaceSelector makes, and the owner they are labelled with (required with namespaceSelector);
   * stores in other namespaces admit the operator's pods from it in their NetworkPolicy.
   * @default - none (stores admit the operator's pods from their own namespace only)
   */
  readonly operatorNamespace?: string;
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

/**
 * Labels the RoleBindings a namespace selector makes with the operator's namespace, so that an operator
 * removes only its own (another operator's, or one the chart synthesized, has the same name).
 */
export const BOUND_BY_LABEL = `${KVSTORE_GROUP}/bound-by`;

/** The labels of the RoleBindings the operator of `operatorNamespace` makes. */
export function bindingLabels(operatorNamespace: string): Record<string, string> {
  return { [NAME_LABEL]: RECONCILER_POD_NAME, [MANAGED_BY_LABEL]: MANAGED_BY, [BOUND_BY_LABEL]: operatorNamespace };
}

/** What a namespace selector's run does to RoleBindings, and which namespaces it then reconciles. */
export interface BindingPlan {
  /** Selected namespaces with no RoleBinding `kvstore-reconciler`: bind there. */
  readonly create: string[];
  /** Namespaces holding this operator's RoleBinding that are no longer selected: remove it. */
  readonly remove: string[];
  /** The selected namespaces whose KVStore resources are reconciled. */
  readonly namespaces: string[];
}

/**
 * The pure decision of a namespace selector's run, from the namespaces the selector matched and the
 * RoleBindings listed. Only bindings named `kvstore-reconciler` carrying this operator's labels are its
 * own: any other of that name (synthesized by `namespaces`, made by hand or by another operator) is
 * neither removed nor duplicated. A namespace being deleted is left alone: nothing can be created in it,
 * and its binding goes with it.
 */
export function planBindings(selected: readonly KubeObject[], bindings: readonly KubeObject[], operatorNamespace: string): BindingPlan {
  const active = selected.filter((ns) => ns.status?.phase !== 'Terminating').map((ns) => ns.metadata.name).sort();
  const terminating = new Set(selected.map((ns) => ns.metadata.name).filter((n) => !active.includes(n)));
  const named = bindings.filter((b) => b.metadata.name === OPERATOR_ROLE && b.metadata.namespace !== undefined);
  const ours = named.filter((b) => Object.entries(bindingLabels(operatorNamespace)).every(([k, v]) => b.metadata.labels?.[k] === v));
  const bound = new Set(named.map((b) => b.metadata.namespace!));
  return {
    create: active.filter((n) => !bound.has(n)),
    remove: [...new Set(ours.map((b) => b.metadata.namespace!))].filter((n) => !active.includes(n) && !terminating.has(n)).sort(),
    namespaces: active,
  };
}

/** The RoleBinding that grants the operator's ServiceAccount the store rules in one namespace. */
export function operatorRoleBinding(namespace: string, operatorNamespace: string): KubeObject {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name: OPERATOR_ROLE, namespace, labels: bindingLabels(operatorNamespace) },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: OPERATOR_ROLE },
    subjects: [{ kind: 'ServiceAccount', name: OPERATOR_SERVICE_ACCOUNT, namespace: operatorNamespace }],
  };
}

/**
 * A namespace selector's run: bind the operator in the namespaces that match, unbind it where its
 * binding no longer matches; returns the namespaces to reconcile and those bound just now. `bindings:
 * 'existing'` (maintenance) changes no binding: only the selected namespaces the operator is bound in
 * already are returned (the reconcile run binds the others, and removes what no longer matches).
 */
async function bindSelectedNamespaces(client: KubeClient, log: Log, selector: Readonly<Record<string, string>>, operatorNamespace: string, dryRun: boolean, bindings: 'bind' | 'existing' = 'bind'): Promise<{ namespaces: string[]; bound: string[] }> {
  const selected = await client.list('v1', 'Namespace', '', labelSelector(selector));
  // Across namespaces, only the bindings labelled as this operator's (planBindings checks again).
  const ours = await client.list('rbac.authorization.k8s.io/v1', 'RoleBinding', '', labelSelector(bindingLabels(operatorNamespace)));
  const plan = planBindings(selected, ours, operatorNamespace);
  if (bindings === 'existing') {
    for (const namespace of plan.create) log.info(`namespace ${namespace} matches ${labelSelector(selector)} but the reconciler is not bound there (yet: its next run binds it): skipped`, { namespace });
    return { namespaces: plan.namespaces.filter((n) => !plan.create.includes(n)), bound: [] };
  }
  const would = dryRun ? 'dry run: would have ' : '';
  const bound: string[] = [];
  // Not ours to read: a binding of that name another made (it may bind someone else), or, in a dry
  // run, one not made yet (the operator holds no rights there).
  const skipped = new Set<string>();
  for (const namespace of plan.create) {
    const ref = { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', namespace, name: OPERATOR_ROLE };
    // A binding of that name not labelled as ours: left as it is, whatever it grants.
    if (await client.read(ref)) {
      log.info(`namespace ${namespace}: RoleBinding ${OPERATOR_ROLE} exists and was not made by this operator; left as it is, and the namespace is not reconciled`, { namespace });
      skipped.add(namespace);
      continue;
    }
    if (dryRun) skipped.add(namespace);
    else await client.create(operatorRoleBinding(namespace, operatorNamespace));
    bound.push(namespace);
    log.info(`${would}created RoleBinding ${namespace}/${OPERATOR_ROLE} (namespace matches ${labelSelector(selector)})`, { namespace, binding: 'created' });
  }
  for (const namespace of plan.remove) {
    if (!dryRun) await client.delete({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', namespace, name: OPERATOR_ROLE });
    log.info(`${would}removed RoleBinding ${namespace}/${OPERATOR_ROLE} (namespace no longer matches ${labelSelector(selector)})`, { namespace, binding: 'removed' });
  }
  return { namespaces: plan.namespaces.filter((n) => !skipped.has(n)), bound: dryRun ? [] : bound };
}

/**
 * The KVStore resources of one namespace, or of all (''). Right after the operator bound itself there,
 * the API server's authorizer may not see the binding yet: a 403 is retried for a few seconds then.
 */
async function listResources(client: KubeClient, namespace: string, justBound: boolean, pollMs: number): Promise<KubeObject[]> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await client.list(`${KVSTORE_GROUP}/${KVSTORE_VERSION}`, KVSTORE_KIND, namespace, '');
    } catch (e) {
      if (!(justBound && e instanceof KubeError && e.code === 403 && attempt < 5)) throw e;
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }
}

/**
 * The KVStore resources in scope, sorted by namespace/name, and how many namespaces could not be listed.
 * With a namespace selector a reconcile binds first; maintenance (`bindings: 'existing'`) does not.
 */
async function resourcesInScope(client: KubeClient, log: Log, options: CustomResourceOptions, bindings: 'bind' | 'existing'): Promise<{ resources: KubeObject[]; failed: number }> {
  if (options.namespaceSelector && options.namespaces) throw new Error('namespaces and namespaceSelector cannot be used together: choose one');
  // An empty selector matches every namespace: never a way to say "all".
  if (options.namespaceSelector && Object.keys(options.namespaceSelector).length === 0) throw new Error('namespaceSelector must hold at least one label, got {}');
  if (options.namespaceSelector && !options.operatorNamespace) {
    throw new Error(`namespaceSelector needs operatorNamespace: the namespace of the ServiceAccount ${OPERATOR_SERVICE_ACCOUNT} that its RoleBindings name`);
  }
  const scope: { namespaces: readonly string[]; bound: readonly string[] } = options.namespaceSelector
    ? await bindSelectedNamespaces(client, log, options.namespaceSelector, options.operatorNamespace!, options.dryRun ?? false, bindings)
    : { namespaces: options.namespaces ?? [''], bound: [] };
  // One LIST per namespace the reconciler is bound in (it may read nothing elsewhere), or one across
  // all. A namespace that cannot be listed (403: not bound there after all) fails alone.
  let failed = 0;
  const listed = await Promise.all(scope.namespaces.map((ns) => listResources(client, ns, scope.bound.includes(ns), options.pollMs ?? 1000).catch((e: Error) => {
    failed++;
    log.error(`${ns ? `namespace ${ns}` : 'all namespaces'}: cannot list KVStore resources: ${e.message}`, { namespace: ns });
    return [] as KubeObject[];
  })));
  const resources = listed.flat().sort((a, b) => `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`));
  return { resources, failed };
}

/**
 * Writes a resource's status through the status subresource: `next` computes it from the resource as
 * last read. Optimistic: a 409 means the resource changed meanwhile; it is read again and `next` asked
 * again. A status that says nothing new is not written.
 */
function statusWriter(custom: k8s.CustomObjectsApi, client: KubeClient, resource: KubeObject): (next: (current: KubeObject) => Record<string, unknown>) => Promise<void> {
  const namespace = resource.metadata.namespace ?? 'default';
  const ref = `${KVSTORE_KIND}/${resource.metadata.name}`;
  const kvRef = { apiVersion: `${KVSTORE_GROUP}/${KVSTORE_VERSION}`, kind: KVSTORE_KIND, namespace, name: resource.metadata.name };
  let latest = resource;
  return async (next) => {
    for (let attempt = 0; attempt < 3; attempt++) {
      const current = attempt === 0 ? latest : await client.read(kvRef);
      if (!current) return;
      const status = next(current);
      if (sameStatus(status, current.status)) return;
      client.counters.mutating++;
      try {
        const written = await withRetry('update status of', ref, () => custom.replaceNamespacedCustomObjectStatus({
          group: KVSTORE_GROUP, version: KVSTORE_VERSION, plural: KVSTORE_PLURAL, namespace, name: resource.metadata.name,
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
}

/** With TLS the operator reads the Secrets it needs: the client certificate, and the members' CA. */
function storeSecrets(client: KubeClient, document: StoreDocument): Pick<ReconcileOptions, 'etcdClientCertificate' | 'etcdMemberCa'> {
  if (!document.spec.tls) return {};
  const secrets = tlsSecrets(document.spec);
  return {
    etcdClientCertificate: () => secretCertificate(client, document.namespace, secrets.client),
    etcdMemberCa: async () => (await secretCertificate(client, document.namespace, secrets.member)).ca,
  };
}

/** A run's Events are about its KVStore resource (`kubectl describe kvstore` matches them by uid). */
function regarding(resource: KubeObject): EventRegarding {
  return { ...refOf(resource), namespace: resource.metadata.namespace ?? 'default', uid: resource.metadata.uid as string | undefined };
}

/** Reconciles every KVStore resource in scope; returns how many failed (the process exit code follows it). */
export async function reconcileResources(kubeConfig: k8s.KubeConfig, client: KubeClient, log: Log, options: CustomResourceOptions): Promise<ResourcesResult> {
  const custom = makeApiClient(kubeConfig, k8s.CustomObjectsApi, 30_000);
  const now = options.now ?? (() => new Date());
  const scope = await resourcesInScope(client, log, options, 'bind');
  let failed = scope.failed;
  let reconciled = 0;
  for (const resource of scope.resources) {
    const document = documentFromResource(resource, options.pruneImage, options.operatorNamespace);
    const eventsRegarding = regarding(resource);
    const write = statusWriter(custom, client, resource);
    const writeStatus = async (outcome: Outcome, statefulSet: KubeObject | undefined, appliedSpecHash?: string, members?: readonly string[]) => {
      // A dry run changes nothing, status included (it would record a spec as applied that was not).
      if (options.dryRun) return;
      await write((current) => nextStatus(current, outcome, statefulSet, now(), appliedSpecHash, members));
    };
    const readStatefulSet = () => client.read({ apiVersion: 'apps/v1', kind: 'StatefulSet', namespace: document.namespace, name: document.spec.name });
    try {
      // Each step of a day-2 operation shows in status as Progressing, with the members as listed.
      const onProgress = async (event: ProgressEvent) => {
        await writeStatus({ state: 'progressing', reason: event.operation, message: event.message }, await readStatefulSet(), undefined, event.members);
      };
      const result = await reconcileStore(document, client, log, { ...options, onProgress, eventsRegarding, ...storeSecrets(client, document) });
      const sts = await readStatefulSet();
      const ready = sts && (sts.status?.readyReplicas ?? 0) === (sts.spec?.replicas ?? 0);
      const run: RunOutcome = { succeeded: true, changed: result.mutatingRequests > 0 };
      await writeStatus(ready
        ? { state: 'ready', reason: 'Reconciled', message: `${sts.status?.readyReplicas ?? 0}/${sts.spec?.replicas ?? 0} members ready`, run }
        : { state: 'progressing', reason: 'RollingOut', message: 'waiting for members to become ready', run }, sts, result.specHash);
      reconciled++;
    } catch (e) {
      // Another run (the maintenance CronJob, a slower pass) holds the store's Lease: not a failure of
      // the store; the next pass reconciles it. Nothing is recorded, as the run that holds it records its own.
      if (e instanceof LeaseHeldError) {
        log.info(`${document.namespace}/${document.spec.name}: ${e.message}; the next pass reconciles it`, { store: document.spec.name });
        continue;
      }
      failed++;
      log.error(`${document.namespace}/${document.spec.name}: ${(e as Error).message}`, { store: document.spec.name });
      // The store may well be running: report its members as they are.
      const sts = await readStatefulSet().catch(() => undefined);
      const message = (e as Error).message.slice(0, LAST_ERROR_MAX_LENGTH);
      await writeStatus({ state: 'degraded', reason: e instanceof RefusedError ? 'Refused' : 'ReconcileFailed', message, run: { succeeded: false, error: message } }, sts)
        .catch((statusError) => log.error(`could not write status: ${(statusError as Error).message}`));
    }
  }
  return { reconciled, failed };
}

/** How a CRD-mode maintenance run went. */
export interface MaintainResourcesResult {
  /** Stores maintained (or found with nothing to do); their Maintained condition is True. */
  readonly maintained: number;
  /** Stores whose maintenance failed or was refused (their Maintained condition is False and says why). */
  readonly failed: number;
}

/**
 * Maintains the store of every KVStore resource in scope (`kvstore-reconcile --crd --maintain`), as
 * `--store --maintain` maintains one (see StoreReconciler.maintain), one store after another: one failing
 * does not stop the others. Each resource's Maintained condition says how its run went (Unknown with
 * the operation while one runs); nothing else in its status changes. Stores of another engine are
 * left alone. With a namespace selector, only the namespaces the reconciler is bound in already.
 */
export async function maintainResources(kubeConfig: k8s.KubeConfig, client: KubeClient, log: Log, options: CustomResourceOptions): Promise<MaintainResourcesResult> {
  // Maintenance decides from etcd as it goes: there is no plan to show without acting on it.
  if (options.dryRun) throw new Error('maintenance has no dry run: a run decides each step from what etcd answers as it goes');
  const custom = makeApiClient(kubeConfig, k8s.CustomObjectsApi, 30_000);
  const now = options.now ?? (() => new Date());
  const scope = await resourcesInScope(client, log, options, 'existing');
  let failed = scope.failed;
  let maintained = 0;
  for (const resource of scope.resources) {
    const document = documentFromResource(resource, options.pruneImage, options.operatorNamespace);
    const store = `${document.namespace}/${document.spec.name}`;
    if (document.spec.engine.kind !== 'etcd') {
      log.info(`${store}: a ${document.spec.engine.kind} store: maintenance is for etcd stores only; skipped`, { store: document.spec.name });
      continue;
    }
    const write = statusWriter(custom, client, resource);
    const writeOutcome = (outcome: MaintenanceOutcome) => write((current) => maintainedStatus(current, outcome, now()));
    try {
      // A status write that fails while members are being replaced does not stop the replacement.
      const onProgress = (event: ProgressEvent) => writeOutcome({ status: 'Unknown', reason: event.operation, message: event.message })
        .catch((e) => log.error(`${store}: could not write status: ${(e as Error).message}`));
      const result = await maintainStore(document, client, log, { ...options, onProgress, eventsRegarding: regarding(resource), ...storeSecrets(client, document) });
      await writeOutcome(maintenanceOutcome({ result }));
      maintained++;
    } catch (e) {
      failed++;
      log.error(`${store}: ${(e as Error).message}`, { store: document.spec.name });
      await writeOutcome(maintenanceOutcome({ error: e }))
        .catch((statusError) => log.error(`${store}: could not write status: ${(statusError as Error).message}`));
    }
  }
  return { maintained, failed };
}
