// The reconciler entry, `cdk8s-kvstore/reconciler`: what kvstore-reconcile runs. It adds the runtime the
// construct entry never loads (the Kubernetes client, the etcd client, retries); those are optional
// peer dependencies that the reconciler image installs.
export { EtcdClientTls } from '../engines/etcd-membership';
export { parseStoreDocument } from '../model/document';
export { Counters, KubeClient, RetryOptions } from './client';
export { maintainResources, MaintainResourcesResult, reconcileResources, CustomResourceOptions, ResourcesResult } from './custom-resources';
export { EventRegarding } from './events';
export { Log, LogFields, LogLine, LogListener } from './log';
export {
  ClaimGrowth, Change, CreateStep, Plan, PruneStep, RecreateStep, Refusal, ResizeStep, Step, UpdateStep, WaitRolloutStep,
} from './plan';
export { PruneOptions, pruneSnapshots } from './prune';
export { maintainStore, reconcileStore, ReconcileOptions, ReconcileResult, RefusedError, ProgressEvent } from './reconcile';
export { MaintainResult, MaintenanceError, MaintenanceFailure } from './maintain';
export { DefragmentedMember, MaintenanceResult } from '../engines/etcd-maintenance';
export { KubeObject, ObjectRef } from './types';
