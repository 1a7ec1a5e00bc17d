// Stable names of everything a store creates. They are contract: PVC names derive from the
// StatefulSet name, so changing any of these orphans data.
import { createHash } from 'crypto';
import type { KVStoreSpec } from './spec';

/** Names of the Kubernetes objects of one store. */
export interface StoreNames {
  /** The StatefulSet: its pods are `<statefulSet>-<ordinal>`. */
  readonly statefulSet: string;
  /** Headless Service: peer discovery and the pods' DNS names. */
  readonly headlessService: string;
  /** ClusterIP Service clients connect to. */
  readonly clientService: string;
  /** The PodDisruptionBudget. */
  readonly podDisruptionBudget: string;
  /** The NetworkPolicy. */
  readonly networkPolicy: string;
  /** With egress restricted: the NetworkPolicy of the store's Jobs. */
  readonly jobsNetworkPolicy: string;
  /** With egress restricted in GitOps mode: the reconciler Job's way to the API server. */
  readonly reconcilerNetworkPolicy: string;
  /** ConfigMap of the settings that change with membership (etcd's initial cluster). */
  readonly bootstrapConfig: string;
  /** TLS: the self-signed cert-manager Issuer that signs the store's own CA. */
  readonly selfSignedIssuer: string;
  /** TLS: the store's own CA (its Certificate, Secret and the Issuer that signs with it). */
  readonly ca: string;
  /** TLS: the members' certificate (Certificate and Secret). */
  readonly memberTls: string;
  /** TLS: the library's own clients' certificate (Certificate and Secret). */
  readonly clientTls: string;
  /**
   * TLS, with a reconciler: the ConfigMap holding the CA certificate(s) the members trust (`ca.crt`),
   * which the reconciler keeps; during a CA rotation, old and new, and the members trust it.
   */
  readonly trustBundle: string;
}

export function storeNames(storeName: string): StoreNames {
  return {
    statefulSet: storeName,
    headlessService: `${storeName}-peers`,
    clientService: storeName,
    podDisruptionBudget: storeName,
    networkPolicy: storeName,
    jobsNetworkPolicy: `${storeName}-jobs`,
    reconcilerNetworkPolicy: `${storeName}-reconciler-egress`,
    bootstrapConfig: `${storeName}-bootstrap`,
    selfSignedIssuer: `${storeName}-selfsigned`,
    ca: `${storeName}-ca`,
    memberTls: `${storeName}-member-tls`,
    clientTls: `${storeName}-client-tls`,
    trustBundle: `${storeName}-trust`,
  };
}

/** The pod (and member) name of one ordinal. */
export function podName(names: StoreNames, ordinal: number): string {
  return `${names.statefulSet}-${ordinal}`;
}

/** `<sts>-<i>.<headless>.<namespace>.svc.<domain>`: the stable DNS name of one member. */
export function podFqdn(names: StoreNames, ordinal: number, namespace: string, clusterDomain: string): string {
  return `${podName(names, ordinal)}.${names.headlessService}.${namespace}.svc.${clusterDomain}`;
}

/** `<template>-<sts>-<i>`: the PVC the StatefulSet controller creates for one ordinal. */
export function pvcName(names: StoreNames, template: string, ordinal: number): string {
  return `${template}-${names.statefulSet}-${ordinal}`;
}

/**
 * `--initial-cluster-token`: the store name and a short hash of `seed` (for the construct: namespace and
 * construct path; for a KVStore resource: namespace and name). Unique per store, stable across synths.
 */
export function clusterToken(storeName: string, seed: string): string {
  return `${storeName}-${createHash('sha256').update(seed).digest('hex').slice(0, 8)}`;
}

/** `k=v,k2=v2`: labels as a label selector string. */
export function labelSelector(labels: Readonly<Record<string, string>>): string {
  return Object.keys(labels).sort().map((k) => `${k}=${labels[k]}`).join(',');
}

/**
 * Ordinals whose PVCs the reconciler may grow (and, for etcd, wipe): every ordinal the store can
 * have, at least etcd's largest size, so claims retained from a larger size are included.
 */
export function claimOrdinals(size: number, minimum: number): number[] {
  return Array.from({ length: Math.max(size, minimum) }, (_, i) => i);
}

/** The labels that select a store's pods. Immutable once the StatefulSet exists: keep them minimal. */
export function selectorLabels(storeName: string): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'kvstore',
    'app.kubernetes.io/instance': storeName,
  };
}

/** The PVC the construct creates for a store's snapshots. */
export function backupClaimName(storeName: string): string {
  return `${storeName}-backups`;
}

/** The scheduled backup CronJob. */
export function backupCronJobName(names: StoreNames): string {
  return `${names.statefulSet}-backup`;
}

/**
 * Scheduled snapshots are named after their Job, `<store>-backup-<minutes since the epoch>.db`; pruning
 * matches exactly that and the pre-operation snapshots (so hand-made ones and other stores' on a
 * shared claim are never pruned).
 */
export function snapshotPrefix(names: StoreNames): string {
  return `${backupCronJobName(names)}-`;
}

/** Snapshots before operations are named after their Job too: `<store>-pre-<8 hex digits>[-<attempt>].db`. */
export function preOperationSnapshotPrefix(names: StoreNames): string {
  return `${names.statefulSet}-pre-`;
}

/** Names of the reconciler's objects for one store: contract, like the store's names. */
export interface ReconcilerNames {
  /** The spec ConfigMap holding the store document (GitOps mode). */
  readonly configMap: string;
  readonly serviceAccount: string;
  readonly role: string;
  readonly roleBinding: string;
  /** The Lease one reconciler holds while it changes the store. */
  readonly lease: string;
  /** The ApplySet parent ConfigMap. */
  readonly applySetParent: string;
}

export function reconcilerNames(storeName: string): ReconcilerNames {
  return {
    configMap: `${storeName}-kvstore-spec`,
    serviceAccount: `${storeName}-reconciler`,
    role: `${storeName}-reconciler`,
    roleBinding: `${storeName}-reconciler`,
    lease: `${storeName}-reconciler`,
    applySetParent: `${storeName}-applyset`,
  };
}

/** The one-off pod that starts a quorum-loss survivor (member `ordinal`) with --force-new-cluster. */
export function recoveryPodName(names: StoreNames, ordinal: number): string {
  return `${names.statefulSet}-recover-${ordinal}`;
}

/** GitOps mode's scheduled maintenance CronJob (defragmentation, NOSPACE recovery, replacing a lost member). */
export function maintenanceCronJobName(storeName: string): string {
  return `${storeName}-maintenance`;
}

/** The Job of one spec. Job names end up in the pods' `job-name` label, which must fit 63 characters. */
export function reconcileJobName(storeName: string, jobHash: string): string {
  const job = `${storeName}-reconcile-${jobHash}`;
  return job.length <= 63 ? job : `${storeName}-${jobHash}`;
}

/** One object a store creates in its namespace, by kind and name. */
export interface StoreObjectRef {
  readonly kind: string;
  readonly name: string;
}

/** What, besides its spec, decides which objects a store creates. */
export interface StoreObjectsOptions {
  /** The engine loads its membership settings from the bootstrap ConfigMap (etcd, with a namespace). */
  readonly bootstrapConfig: boolean;
  /** GitOps mode: the reconciler bundle is synthesized too (its Job's name changes with the spec, so it is left out). */
  readonly reconciler: boolean;
}

/**
 * The objects a store creates in its namespace, the StatefulSet first: two stores in one namespace
 * must share none, or one overwrites the other's.
 */
export function storeObjects(spec: KVStoreSpec, options: StoreObjectsOptions): StoreObjectRef[] {
  const names = storeNames(spec.name);
  const objects: StoreObjectRef[] = [
    { kind: 'StatefulSet', name: names.statefulSet },
    { kind: 'Service', name: names.headlessService },
    { kind: 'Service', name: names.clientService },
    { kind: 'PodDisruptionBudget', name: names.podDisruptionBudget },
  ];
  if (spec.networkPolicy.enabled) objects.push({ kind: 'NetworkPolicy', name: names.networkPolicy });
  if (spec.networkPolicy.enabled && spec.networkPolicy.egress) objects.push({ kind: 'NetworkPolicy', name: names.jobsNetworkPolicy });
  if (spec.networkPolicy.enabled && spec.networkPolicy.egress && options.reconciler) objects.push({ kind: 'NetworkPolicy', name: names.reconcilerNetworkPolicy });
  if (spec.tls && tlsSecrets(spec).certManager) {
    objects.push({ kind: 'Certificate', name: tlsSecrets(spec).member }, { kind: 'Certificate', name: names.clientTls });
    if (!spec.tls.issuer) objects.push({ kind: 'Issuer', name: names.selfSignedIssuer }, { kind: 'Certificate', name: names.ca }, { kind: 'Issuer', name: names.ca });
    for (const c of spec.clients ?? []) objects.push({ kind: 'Certificate', name: clientCertName(names, c.name) });
  }
  if (options.bootstrapConfig) objects.push({ kind: 'ConfigMap', name: names.bootstrapConfig });
  if (spec.backup) {
    objects.push({ kind: 'CronJob', name: backupCronJobName(names) });
    // A claim given without a size exists already, and stores may share it.
    if (spec.backup.storage !== undefined) objects.push({ kind: 'PersistentVolumeClaim', name: spec.backup.claimName });
  }
  if (options.reconciler) {
    const reconciler = reconcilerNames(spec.name);
    objects.push(
      { kind: 'ConfigMap', name: reconciler.configMap },
      { kind: 'ServiceAccount', name: reconciler.serviceAccount },
      { kind: 'Role', name: reconciler.role },
      { kind: 'RoleBinding', name: reconciler.roleBinding },
    );
  }
  return objects;
}

/** The Secrets a TLS store mounts, and whether cert-manager issues them (else the user provides both). */
export function tlsSecrets(spec: KVStoreSpec): { member: string; client: string; certManager: boolean } {
  const names = storeNames(spec.name);
  const tls = spec.tls ?? {};
  if (tls.memberSecret !== undefined && tls.clientSecret !== undefined) return { member: tls.memberSecret, client: tls.clientSecret, certManager: false };
  // Under an issuer of the user's, the member Secret's name carries the issuer: changing the issuer
  // makes cert-manager issue a new Secret beside the one the live members mount, instead of
  // re-issuing that one from a CA their peers do not trust (etcd does not reload its trusted CA).
  const member = tls.issuer ? `${names.memberTls}-${createHash('sha256').update(tlsTrust(spec)!).digest('hex').slice(0, 8)}` : names.memberTls;
  return { member, client: names.clientTls, certManager: true };
}

/** A client's Certificate and Secret: `<store>-client-<client>`. */
export function clientCertName(names: StoreNames, client: string): string {
  return `${names.statefulSet}-client-${client}`;
}

/** What a TLS store's members trust, as recorded on its StatefulSet. */
export function tlsTrust(spec: KVStoreSpec): string | undefined {
  if (!spec.tls) return undefined;
  if (spec.tls.memberSecret !== undefined) return `secret/${spec.tls.memberSecret}`;
  return spec.tls.issuer ? `${spec.tls.issuer.kind}/${spec.tls.issuer.name}` : 'own-ca';
}
