// The construct entry (the package's main): what a cdk8s app needs to synthesize stores. It loads no
// Kubernetes client, etcd client or retry library; the reconciler has its own entry,
// `cdk8s-kvstore/reconciler`. Only what is named here is public.
export { KVStore, KVStoreProps } from './constructs/kv-store';
export {
  AccessMode, PodAntiAffinity, PodManagementPolicy, PvcRetention, PvcRetentionPolicy, ResourceRequirements,
  RollingUpdateOptions, TopologySpreadOptions, UpdateStrategy, VolumeClaimTemplateOptions, WhenUnsatisfiable,
} from './constructs/store-options';
export { GitOpsProfile, ReconcilerOptions } from './constructs/reconciler-bundle';
// A type only: KVStore creates the bundle (`store.reconciler`); it cannot be built on its own.
export type { ReconcilerBundle } from './constructs/reconciler-bundle';
export { KVStoreOperator, KVStoreOperatorProps } from './constructs/kv-store-operator';
export { KVStoreCrd } from './constructs/kv-store-crd';
export { Engine } from './engines/engine';
export { AutoCompactionMode, EtcdOptions } from './engines/etcd';
export { IEngine } from './engines/types';
export { SpecError, SpecIssue } from './model/issues';
export { StoreDocument } from './model/document';
export { StoreNames } from './model/names';
export { DEFAULT_RECONCILER_IMAGE } from './model/version';
export {
  AccessModeName, AntiAffinityMode, BackupOptions, BackupSpec, CustomEngineOptions, CustomEngineSpec, EngineSpec, EtcdEngineSpec, KVStoreSpec,
  PodManagementPolicyName, ProbeSpec, PvcRetentionName, ResourcesSpec, RestoreOptions, RestoreSpec, TopologySpreadSpec, UpdateStrategySpec,
  VolumeClaimTemplateSpec,
} from './model/spec';
