// The construct entry (the package's main): what a cdk8s app needs to synthesize stores. It loads no
// Kubernetes client, etcd client or retry library; the reconciler has its own entry,
// `cdk8s-kvstore/reconciler`. Only what is named here is public.
export { KVStore, KVStoreProps } from './constructs/kv-store';
export {
  AccessMode, BackupOptions, PodAntiAffinity, PodManagementPolicy, PvcRetention, PvcRetentionPolicy, ResourceRequirements,
  RestoreOptions, RollingUpdateOptions, TopologySpreadOptions, UpdateStrategy, VolumeClaimTemplateOptions, WhenUnsatisfiable,
} from './constructs/store-options';
export { GitOpsProfile, ReconcilerBundle, ReconcilerBundleProps, ReconcilerOptions } from './constructs/reconciler-bundle';
export { KVStoreOperator, KVStoreOperatorProps } from './constructs/kv-store-operator';
export { KVStoreCrd } from './constructs/kv-store-crd';
export { Engine } from './engines/engine';
export { AutoCompactionMode, EtcdOptions } from './engines/etcd';
export { CustomEngineOptions, ProbeOptions } from './engines/custom';
export { IEngine } from './engines/types';
export { SpecError, SpecIssue } from './model/issues';
export { StoreDocument } from './model/document';
export { StoreNames } from './model/names';
export {
  AccessModeName, AntiAffinityMode, BackupSpec, BackupSpecInput, CustomEngineSettings, CustomEngineSpec, EngineSpec, EtcdEngineSpec, KVStoreSpec,
  PodManagementPolicyName, ProbeSpec, PvcRetentionName, ResourcesSpec, RestoreSpec, RestoreSpecInput, TopologySpreadSpec, UpdateStrategySpec,
  VolumeClaimTemplateSpec,
} from './model/spec';
