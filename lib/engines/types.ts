// The engine boundary: what a particular store needs from Kubernetes, independent of etcd.
import type { StoreNames } from '../names';
import type { EngineDefaults, EngineSpec, KVStoreSpec, ProbeSpec, SpecIssue } from '../spec';

/** Environment the construct gives every container, for `$(VAR)` expansion in args. */
export const POD_ENV = {
  name: 'POD_NAME',
  namespace: 'POD_NAMESPACE',
  ip: 'POD_IP',
} as const;

/** What an engine is told to render one store's container. */
export interface EngineContext {
  readonly spec: KVStoreSpec;
  readonly names: StoreNames;
  /** A token unique to this store, stable across synths. */
  readonly clusterToken: string;
  /**
   * `new` for the first bootstrap; `existing` when members join a running cluster (the reconciler
   * sets it while changing membership).
   */
  readonly initialClusterState: 'new' | 'existing';
}

/** The engine's part of the container: the construct adds volumes, security and resources. */
export interface EngineContainer {
  readonly command?: string[];
  readonly args?: string[];
  readonly env: ReadonlyArray<{ readonly name: string; readonly value: string }>;
  readonly startupProbe?: ProbeSpec;
  readonly livenessProbe?: ProbeSpec;
  readonly readinessProbe?: ProbeSpec;
}

/** Problems and advice an engine finds in a spec. */
export interface EngineReport {
  readonly issues: SpecIssue[];
  readonly warnings: string[];
}

/** A store engine. Build one with `Engine.etcd()` or `Engine.custom()`. */
export interface IEngine {
  /** Short name, used as the container name and a label value. */
  readonly name: string;
  /** The engine's settings as plain data (part of the store spec). */
  readonly spec: EngineSpec;
  readonly defaults: EngineDefaults;
  readonly clientPort: number;
  /** Absent when members do not talk to each other. */
  readonly peerPort?: number;
  /** Whether the engine needs a majority of members (sizes the PodDisruptionBudget). */
  readonly quorum: boolean;
  validate(spec: KVStoreSpec): EngineReport;
  container(ctx: EngineContext): EngineContainer;
}
