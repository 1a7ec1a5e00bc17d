// The labels, annotations, field manager and API group every layer shares: the construct writes them,
// the reconciler reads them. Contract: changing one orphans what live objects carry.

/** The API group of the KVStore custom resource and of this library's annotations. */
export const KVSTORE_GROUP = 'kvstore.cdk8s-kvstore.io';
export const KVSTORE_VERSION = 'v1';
export const KVSTORE_KIND = 'KVStore';
export const KVSTORE_PLURAL = 'kvstores';
/** `<plural>.<group>`: the only name the API server accepts for the CRD. */
export const KVSTORE_CRD_NAME = `${KVSTORE_PLURAL}.${KVSTORE_GROUP}`;

/** Kubernetes' recommended labels. */
export const NAME_LABEL = 'app.kubernetes.io/name';
export const INSTANCE_LABEL = 'app.kubernetes.io/instance';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const COMPONENT_LABEL = 'app.kubernetes.io/component';
/** The component label value of the CRD-mode reconciler's pods. */
export const OPERATOR_COMPONENT = 'operator';
/** The `app.kubernetes.io/managed-by` value of everything this library synthesizes. */
export const MANAGED_BY = 'cdk8s-kvstore';

/** The `app.kubernetes.io/name` of the CRD-mode reconciler's pods (KVStoreOperator). */
export const RECONCILER_POD_NAME = 'kvstore-reconciler';
/** Label on a store's Jobs (reconciler, snapshot, restore) naming the store: its NetworkPolicy admits them. */
export const STORE_LABEL = `${KVSTORE_GROUP}/store`;

/** Annotation on the StatefulSet naming the engine kind. */
export const ENGINE_ANNOTATION = `${KVSTORE_GROUP}/engine`;
/**
 * Annotation on an etcd store's StatefulSet: the engine version its members run (or, during an
 * upgrade, are moving to). The reconciler refuses version steps etcd does not support.
 */
export const ENGINE_VERSION_ANNOTATION = `${KVSTORE_GROUP}/engine-version`;
/** Annotation on the StatefulSet of a restored store: `<claim>/<snapshot>` its members were restored from. */
export const RESTORED_FROM_ANNOTATION = `${KVSTORE_GROUP}/restored-from`;
/** Annotation on the StatefulSet while the reconciler changes membership. */
export const OPERATION_ANNOTATION = `${KVSTORE_GROUP}/operation`;
/** On the StatefulSet of a store with clients: the reconciler manages etcd's users (and turns auth off when they go). */
export const AUTH_ANNOTATION = `${KVSTORE_GROUP}/auth`;
/**
 * On a TLS store's StatefulSet: what its members trust (`own-ca`, `<Issuer|ClusterIssuer>/<name>` or
 * `secret/<member Secret>`). etcd does not reload its trusted CA, so the reconciler refuses a change.
 */
export const TLS_TRUST_ANNOTATION = `${KVSTORE_GROUP}/tls-trust`;
/**
 * GitOps mode, on the ApplySet parent ConfigMap `<store>-applyset`: when the last successful run that
 * changed something ended (RFC 3339); a run with nothing to do leaves it (CRD mode: status.lastReconcileTime).
 */
export const LAST_RECONCILE_TIME_ANNOTATION = `${KVSTORE_GROUP}/last-reconcile-time`;
/** GitOps mode, beside LAST_RECONCILE_TIME_ANNOTATION: the last failed run's error; removed by a successful run. */
export const LAST_ERROR_ANNOTATION = `${KVSTORE_GROUP}/last-error`;
/** Annotation holding a hash of what the reconciler last applied to an object. */
export const APPLIED_HASH_ANNOTATION = `${KVSTORE_GROUP}/applied-hash`;

/** The field manager of the reconciler's server-side applies. */
export const FIELD_MANAGER = 'cdk8s-kvstore-reconciler';

/** Annotations that stop GitOps tools from deleting a PVC when it leaves the manifests. */
export const KEEP_PVC_ANNOTATIONS: Readonly<Record<string, string>> = {
  'argocd.argoproj.io/sync-options': 'Delete=false',
  'kustomize.toolkit.fluxcd.io/prune': 'disabled',
};
