// The engine boundary: what a particular store needs from Kubernetes, independent of etcd.
import type { SpecIssue } from '../model/issues';
import type { StoreNames } from '../model/names';
import type { EngineDefaults, EngineSpec, KVStoreSpec, ProbeSpec } from '../model/spec';

/** Environment the construct gives every container, for `$(VAR)` expansion in args. */
export const POD_ENV = {
  name: 'POD_NAME',
  namespace: 'POD_NAMESPACE',
  ip: 'POD_IP',
} as const;

/** Where TLS Secrets are mounted: the members' own certificate, and the library's clients' one. */
export const TLS_DIRS = {
  member: '/etc/kvstore/tls',
  client: '/etc/kvstore/client-tls',
  /** A CA rotation's trust bundle (the `<store>-trust` ConfigMap), in the members. */
  trust: '/etc/kvstore/trust',
  /** The member Secret's `ca.crt` alone, in the GitOps reconciler Job: the CA the spec's members trust. */
  memberCa: '/etc/kvstore/member-ca',
} as const;

/** The keys of a kubernetes.io/tls Secret (cert-manager's, with the CA) that TLS needs. */
export const TLS_SECRET_KEYS = ['tls.crt', 'tls.key', 'ca.crt'] as const;

/** The files of a mounted kubernetes.io/tls Secret. */
export function tlsFiles(dir: string): { cert: string; key: string; ca: string } {
  return { cert: `${dir}/tls.crt`, key: `${dir}/tls.key`, ca: `${dir}/ca.crt` };
}

/**
 * A volume of a TLS Secret, mounted as a directory (no subPath: a renewed certificate reaches running
 * pods), readable by the pod's group only. Its keys are listed: a Secret without one of them (a CA
 * Secret without ca.crt) fails the mount, and the pod's events name the key ("references non-existent
 * secret key: ca.crt"), rather than starting a process that cannot verify anyone.
 */
export function tlsSecretVolume(name: string, secretName: string) {
  return { name, secret: { secretName, defaultMode: 0o440, items: TLS_SECRET_KEYS.map((key) => ({ key, path: key })) } };
}

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
  /**
   * The namespace, when the chart has one. With it, membership-dependent settings can be rendered
   * literally into the store's bootstrap ConfigMap (ConfigMap values get no `$(VAR)` expansion).
   */
  readonly namespace?: string;
  /**
   * Turning TLS on for a live store, first phase (TLS_SWITCH_PHASE): the listeners stay plain HTTP and
   * the member certificate is loaded, so every member can dial the peers that switch to https next.
   * @default - TLS as the spec says
   */
  readonly tlsPhase?: typeof TLS_SWITCH_PHASE;
  /**
   * A CA rotation under way: the members trust the CA bundle (old and new CA, from the `<store>-trust`
   * ConfigMap mounted at TLS_DIRS.trust) instead of their Secret's `ca.crt`.
   * @default false
   */
  readonly trustBundle?: boolean;
}

/** The first phase of turning TLS on for a live store: see EngineContext.tlsPhase. */
export const TLS_SWITCH_PHASE = 'peer-certificates';

/** An environment variable: a plain value, or a key of a Secret. */
export type EngineEnvVar =
  | { readonly name: string; readonly value: string }
  | { readonly name: string; readonly valueFrom: { readonly secretKeyRef: { readonly name: string; readonly key: string } } };

/** The engine's part of the container: the construct adds volumes, security and resources. */
export interface EngineContainer {
  readonly command?: string[];
  readonly args?: string[];
  readonly env: readonly EngineEnvVar[];
  /**
   * Settings that change with membership, which the construct puts in the store's bootstrap ConfigMap
   * and loads with `envFrom`: changing them reaches the next pod that starts without rolling the others.
   */
  readonly bootstrapEnv?: Readonly<Record<string, string>>;
  readonly startupProbe?: ProbeSpec;
  readonly livenessProbe?: ProbeSpec;
  readonly readinessProbe?: ProbeSpec;
}

/** Problems and advice an engine finds in a spec. */
export interface EngineReport {
  readonly issues: SpecIssue[];
  readonly warnings: string[];
}

/**
 * A store engine: what runs in the members and how they bootstrap. Build one with `Engine.etcd()` or
 * `Engine.custom()`; the members marked internal are the library's, not for implementations of your own.
 */
export interface IEngine {
  /** Short name, used as the container name and a label value. */
  readonly name: string;
  /** The engine's settings as plain data (part of the store spec). */
  readonly spec: EngineSpec;
  /** The port clients connect to. */
  readonly clientPort: number;
  /** The port members talk to each other on; absent when they do not. */
  readonly peerPort?: number;
  /** Whether the engine needs a majority of members (sizes the PodDisruptionBudget). */
  readonly quorum: boolean;
  /**
   * The plain-HTTP port that serves health and metrics (never keys), always on; the port named `metrics`
   * on the container and the headless Service. Absent: the engine has none, so nothing can scrape it,
   * and no TLS support either (the probes of a TLS store need a listener without client certificates).
   */
  readonly metricsPort?: number;
  /** @internal What the engine contributes to the spec's defaults. */
  readonly defaults: EngineDefaults;
  /** @internal The engine's rules on a normalized spec. */
  validate(spec: KVStoreSpec): EngineReport;
  /** @internal The engine's part of the member container. */
  container(ctx: EngineContext): EngineContainer;
  /** @internal Snapshot save and restore; absent when the engine cannot take snapshots. */
  readonly snapshots?: ISnapshots;
}

/** A command run in the engine's image (by a backup or restore Job). */
export interface EngineCommand {
  readonly command: string[];
  readonly args: string[];
  readonly env: ReadonlyArray<{ readonly name: string; readonly value: string }>;
}

/** What a snapshot holds, as its check reports it. */
export interface SnapshotInfo {
  /** The store's revision when the snapshot was taken: restoring it loses every later revision. */
  readonly revision: number;
  /** Keys in it (etcd counts its own internal keys too). */
  readonly keys: number;
  /** Its size in bytes. */
  readonly bytes: number;
}

/** How an engine saves a snapshot of a running store and restores members from one. */
export interface ISnapshots {
  /** Saves a snapshot of the store reachable at `endpoint` (host:port) into `file` (over TLS with the client certificate when the spec has TLS). */
  save(spec: KVStoreSpec, endpoint: string, file: string): EngineCommand;
  /** Checks that `file` is a readable snapshot (before any member is stopped for a restore). */
  check(file: string): EngineCommand;
  /** What the check's output (its container log) says of the snapshot; undefined when it can't tell. */
  checked?(output: string): SnapshotInfo | undefined;
  /** Lays out member `ordinal`'s data from `file` where `container()` will look for it. */
  restore(ctx: EngineContext, ordinal: number, file: string): EngineCommand;
  /** The largest snapshot a store of `spec` can give (its database at its quota), if the engine knows it. */
  largestBytes?(spec: KVStoreSpec): number;
}
