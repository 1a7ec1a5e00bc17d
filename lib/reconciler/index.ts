// The reconciler entry, `cdk8s-kvstore/reconciler`: what kvstore-reconcile runs. It adds the runtime the
// construct entry never loads (the Kubernetes client, the etcd client, retries); those are optional
// peer dependencies that the reconciler image installs.
export { parseStoreDocument, StoreDocument } from '../model/document';
export { KubeClient, KubeError } from './client';
export { reconcileResources, CustomResourceOptions } from './custom-resources';
export { desiredState, DesiredState } from './desired';
export { Log } from './log';
export { formatPlan, plan, Plan, Step } from './plan';
export { pruneSnapshots } from './prune';
export { reconcileStore, ReconcileOptions, ReconcileResult, RefusedError, ProgressEvent } from './reconcile';
