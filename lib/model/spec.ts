// The desired state of one store: its shape (input and normalized) and the defaults. Pure data;
// normalize.ts validates and normalizes it. The construct, the CRD schema and the reconciler all read it.

/** What happens to PVCs, as the spec stores it (PvcRetention's values). */
export type PvcRetentionName = 'Retain' | 'Delete';
/** A StatefulSet's pod management policy, as the spec stores it (PodManagementPolicy's values). */
export type PodManagementPolicyName = 'OrderedReady' | 'Parallel';
/** Pod anti-affinity, as the spec stores it (PodAntiAffinity's values). */
export type AntiAffinityMode = 'soft' | 'hard' | 'none';
/** A PVC access mode, as the spec stores it (AccessMode's values). */
export type AccessModeName = 'ReadWriteOnce' | 'ReadOnlyMany' | 'ReadWriteMany' | 'ReadWriteOncePod';

/** A toleration of a node taint, as Kubernetes writes it (operator defaulted). */
export interface TolerationSpec {
  /** The taint key; absent with operator Exists: every taint. */
  readonly key?: string;
  /** Exists (any value) or Equal (the value below). */
  readonly operator: 'Exists' | 'Equal';
  /** The taint value, with operator Equal. */
  readonly value?: string;
  /** The taint effect tolerated; absent: every effect. */
  readonly effect?: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
  /** With effect NoExecute: how long the pod stays bound after the taint appears. */
  readonly tolerationSeconds?: number;
}

/** A cert-manager issuer: an Issuer in the store's namespace or a ClusterIssuer. */
export interface IssuerRef {
  /** The issuer's name. */
  readonly name: string;
  /**
   * Issuer (in the store's namespace) or ClusterIssuer.
   * @default 'Issuer'
   */
  readonly kind?: 'Issuer' | 'ClusterIssuer';
}

/** Mutual TLS for peers and clients (props and a KVStore resource's spec.tls). */
export interface TlsOptions {
  /**
   * The cert-manager issuer of the store's certificates.
   * @default - a CA of the store's own: a self-signed Issuer, a CA Certificate and a CA Issuer
   */
  readonly issuer?: IssuerRef;
  /**
   * A kubernetes.io/tls Secret you provide (tls.crt, tls.key, ca.crt) with the members' certificate, for
   * both the client and the peer listeners, instead of cert-manager. Needs clientSecret.
   * @default - '<name>-member-tls', issued by cert-manager
   */
  readonly memberSecret?: string;
  /**
   * A kubernetes.io/tls Secret you provide with the client certificate the library's own clients use
   * (reconciler, backup and snapshot Jobs), instead of cert-manager. Needs memberSecret.
   * @default - '<name>-client-tls', issued by cert-manager
   */
  readonly clientSecret?: string;
}

/**
 * TLS with every default applied (a fixed point of normalization: the reconciler normalizes it again).
 * Without the Secrets, cert-manager issues them (`tlsSecrets()` names them).
 */
export interface TlsSpec {
  /** cert-manager's issuer; absent: the store's own CA (or Secrets of the user's). */
  readonly issuer?: {
    /** The issuer's name. */
    readonly name: string;
    /** Issuer (in the store's namespace) or ClusterIssuer. */
    readonly kind: 'Issuer' | 'ClusterIssuer';
  };
  /** The user's Secret with the members' certificate; absent: cert-manager's. */
  readonly memberSecret?: string;
  /** The user's Secret with the library's own clients' certificate; absent: cert-manager's. */
  readonly clientSecret?: string;
}

/** One client of a TLS store and what it may do (props and a KVStore resource's spec.clients). */
export interface ClientAccess {
  /**
   * The client's name: its certificate's common name, so its etcd user, and its Secret
   * `<store>-client-<name>`. A DNS-1123 label; not `root` or `tls`.
   */
  readonly name: string;
  /**
   * Key prefixes it may read.
   * @default - none
   */
  readonly read?: string[];
  /**
   * Key prefixes it may read and write.
   * @default - none
   */
  readonly readWrite?: string[];
}

/** A client with every default applied. */
export interface ClientSpec {
  /** The client's name (its certificate's common name and etcd user). */
  readonly name: string;
  /** Key prefixes it may read. */
  readonly read: string[];
  /** Key prefixes it may read and write. */
  readonly readWrite: string[];
}

/** The kinds of object a store synthesizes, which `patches` may target. */
export const PATCHABLE_KINDS = ['StatefulSet', 'Service', 'ConfigMap', 'PodDisruptionBudget', 'NetworkPolicy', 'CronJob', 'PersistentVolumeClaim'] as const;

/** One RFC 6902 JSON Patch operation. */
export interface JsonPatchOperationSpec {
  /**
   * add, remove, replace, move or copy. No test: the reconciler renders the same objects at other
   * sizes and states, where a test that held at synth could fail half-way through an operation.
   */
  readonly op: 'add' | 'remove' | 'replace' | 'move' | 'copy';
  /** A JSON Pointer into the object, such as /spec/template/spec/hostNetwork. */
  readonly path: string;
  /** The value (add, replace). */
  readonly value?: unknown;
  /** The source pointer (move, copy). */
  readonly from?: string;
}

/** JSON Patch operations applied to the store's objects of one kind (and name), in both modes. */
export interface ObjectPatchSpec {
  /** The kind of the objects patched. */
  readonly kind: typeof PATCHABLE_KINDS[number];
  /** The name of the one object patched; absent: every object of that kind. */
  readonly name?: string;
  /** The operations, applied in order. */
  readonly ops: JsonPatchOperationSpec[];
}

/** A probe in plain data (serializable into the spec ConfigMap and the CRD). */
export interface ProbeSpec {
  /**
   * An HTTP GET check.
   * @default - none
   */
  readonly httpGet?: {
    /** The HTTP path. */
    readonly path: string;
    /** A port number or the name of a container port. */
    readonly port: number | string;
  };
  /**
   * A TCP connect check.
   * @default - none
   */
  readonly tcpSocket?: {
    /** A port number or the name of a container port. */
    readonly port: number | string;
  };
  /**
   * A command check.
   * @default - none
   */
  readonly exec?: {
    /** The command and its arguments. */
    readonly command: string[];
  };
  /**
   * Seconds after the container starts before the first check.
   * @default - Kubernetes' (0)
   */
  readonly initialDelaySeconds?: number;
  /**
   * Seconds between checks.
   * @default - Kubernetes' (10)
   */
  readonly periodSeconds?: number;
  /**
   * Seconds a check may take.
   * @default - Kubernetes' (1)
   */
  readonly timeoutSeconds?: number;
  /**
   * Failed checks in a row before the probe fails.
   * @default - Kubernetes' (3)
   */
  readonly failureThreshold?: number;
}

/** etcd engine settings, as stored in the spec. */
export interface EtcdEngineSpec {
  /** `etcd`. */
  readonly kind: 'etcd';
  /** etcd version (semver), decides the image tag and the version-dependent flags and probes. */
  readonly version: string;
  /** Backend quota in bytes; derived from the data volume when absent. */
  readonly quotaBackendBytes?: number;
  /** `--auto-compaction-mode`. */
  readonly autoCompactionMode: 'periodic' | 'revision';
  /** `--auto-compaction-retention`. */
  readonly autoCompactionRetention: string;
  /** Name of the volume claim template holding the WAL; absent: the WAL stays in the data dir. */
  readonly walVolume?: string;
  /** Overrides the derived `--initial-cluster-token`. */
  readonly initialClusterToken?: string;
}

/** Bring-your-own-image engine settings, as stored in the spec. */
export interface CustomEngineSpec extends CustomEngineOptions {
  /** `custom`. */
  readonly kind: 'custom';
}

/** Options of `Engine.custom()`: what a bring-your-own-image engine runs and how its members are probed. */
export interface CustomEngineOptions {
  /**
   * The port clients connect to (named client in the pod); required with the custom engine.
   */
  readonly clientPort: number;
  /**
   * The port members use among themselves (named peer), other than the client port.
   * @default - no peer port: members do not talk to each other
   */
  readonly peerPort?: number;
  /**
   * The container's command.
   * @default - the image's entrypoint
   */
  readonly command?: string[];
  /**
   * The container's arguments; $(POD_NAME), $(POD_NAMESPACE), $(POD_IP) and env expand as in Kubernetes.
   * @default - the image's cmd
   */
  readonly args?: string[];
  /**
   * Extra environment variables of the container. Plain values end up in the synthesized YAML (and in
   * a KVStore resource): put secrets in secretEnv.
   * @default - only POD_NAME, POD_NAMESPACE and POD_IP
   */
  readonly env?: Record<string, string>;
  /**
   * Environment variables from keys of Secrets in the store's namespace: the value never appears in
   * the synthesized YAML, a ConfigMap or a KVStore resource.
   * @default - none
   */
  readonly secretEnv?: Record<string, SecretKeyRef>;
  /**
   * The startup probe.
   * @default - a TCP check of the client port with a 5-minute budget
   */
  readonly startupProbe?: ProbeSpec;
  /**
   * The liveness probe.
   * @default - a TCP check of the client port
   */
  readonly livenessProbe?: ProbeSpec;
  /**
   * The readiness probe.
   * @default - a TCP check of the client port
   */
  readonly readinessProbe?: ProbeSpec;
  /**
   * The largest supported size.
   * @default 99
   */
  readonly maxSize?: number;
  /**
   * Whether a majority of members must stay up; sizes the PodDisruptionBudget.
   * @default true
   */
  readonly quorum?: boolean;
}

/** The engine's settings, told apart by `kind`. */
export type EngineSpec = EtcdEngineSpec | CustomEngineSpec;

/** One PVC template with every default applied. */
export interface VolumeClaimTemplateSpec {
  /** The template name: PVCs are `<name>-<store>-<ordinal>`. */
  readonly name: string;
  /** The size of each PVC. */
  readonly storage: string;
  /** The StorageClass; absent: the cluster's default. */
  readonly storageClassName?: string;
  /** How the volumes may be mounted. */
  readonly accessModes: AccessModeName[];
  /** Where the container mounts the volume. */
  readonly mountPath: string;
}

/** One topology spread constraint with every default applied. */
export interface TopologySpreadSpec {
  /** The node label whose values are the domains. */
  readonly topologyKey: string;
  /** How much the member counts of two domains may differ. */
  readonly maxSkew: number;
  /** What the scheduler does with a member that would break the skew. */
  readonly whenUnsatisfiable: 'DoNotSchedule' | 'ScheduleAnyway';
}

/** A StatefulSet update strategy, as the spec stores it. */
export type UpdateStrategySpec =
  | {
    /** Replace pods from the highest ordinal down. */
    readonly type: 'RollingUpdate';
    /** Ordinals below it keep the old template. */
    readonly partition: number;
  }
  | {
    /** Replace pods only when they are deleted. */
    readonly type: 'OnDelete';
  };

/** Container resources, as Kubernetes quantities by resource name. */
export interface ResourcesSpec {
  /** What the scheduler reserves. */
  readonly requests?: Record<string, string>;
  /** What the container may use at most. */
  readonly limits?: Record<string, string>;
}

/** The normalized desired state of one store: every default applied. */
export interface KVStoreSpec {
  /** The store name. */
  readonly name: string;
  /** Number of members. */
  readonly size: number;
  /** The container image. */
  readonly image: string;
  /** The engine's settings. */
  readonly engine: EngineSpec;
  /** PVC templates in order, every default applied. */
  readonly volumeClaimTemplates: VolumeClaimTemplateSpec[];
  /** Whether PVCs are kept when the store shrinks or is deleted. */
  readonly persistentVolumeClaimRetentionPolicy: {
    /** When the store shrinks. */
    readonly whenScaled: PvcRetentionName;
    /** When the StatefulSet is deleted. */
    readonly whenDeleted: PvcRetentionName;
  };
  /** Container resources. */
  readonly resources: ResourcesSpec;
  /** The cluster's DNS domain. */
  readonly clusterDomain: string;
  /** Extra labels on every object and pod. */
  readonly labels: Record<string, string>;
  /** Extra annotations on every object. */
  readonly annotations: Record<string, string>;
  /** Annotations on the pods. */
  readonly podAnnotations: Record<string, string>;
  /** How members are kept on separate nodes. */
  readonly podAntiAffinity: AntiAffinityMode;
  /** How members spread over topology domains. */
  readonly topologySpreadConstraints: TopologySpreadSpec[];
  /** How pods are replaced. */
  readonly updateStrategy: UpdateStrategySpec;
  /** How the StatefulSet creates and scales pods. */
  readonly podManagementPolicy: PodManagementPolicyName;
  /** The NetworkPolicy and who it admits. */
  readonly networkPolicy: {
    /** Whether the NetworkPolicy is synthesized. */
    readonly enabled: boolean;
    /** Labels of the pods admitted as clients. */
    readonly clientPodLabels: Record<string, string>;
    /** Labels of the namespaces clients may come from; absent: the store's own. */
    readonly clientNamespaceLabels?: Record<string, string>;
    /** Whether egress is restricted too (for namespaces that deny egress by default). */
    readonly egress: boolean;
  };
  /** The uid (and gid) the containers run as. */
  readonly runAsUser: number;
  /** Node labels the pods require. */
  readonly nodeSelector: Record<string, string>;
  /** Taints the store's pods (members and Jobs) tolerate. */
  readonly tolerations: TolerationSpec[];
  /** Secrets with registry credentials for every image the store's pods pull. */
  readonly imagePullSecrets: string[];
  /** The members' PriorityClass; absent: the cluster default. */
  readonly priorityClassName?: string;
  /** JSON patches applied to the rendered objects. */
  readonly patches: ObjectPatchSpec[];
  /** Mutual TLS; absent: plain HTTP. */
  readonly tls?: TlsSpec;
  /** Clients and their access (etcd authentication on); absent: every certificate of the CA has full access. */
  readonly clients?: ClientSpec[];
  /** Scheduled snapshots; absent when backups are off. */
  readonly backup?: BackupSpec;
  /** The snapshot every member was (or is to be) restored from; absent for a store that never was. */
  readonly restore?: RestoreSpec;
}

/** Scheduled snapshots of a store into a PVC, oldest pruned beyond `keep`. */
export interface BackupSpec {
  /** Cron schedule of the backup CronJob. */
  readonly schedule: string;
  /** How many snapshots to keep. */
  readonly keep: number;
  /** The PVC snapshots are written to. */
  readonly claimName: string;
  /** Size of the PVC, which the construct creates; absent when `claimName` names an existing PVC. */
  readonly storage?: string;
  /** The StorageClass of the PVC the construct creates; absent: the cluster default. */
  readonly storageClassName?: string;
  /** The image that prunes old snapshots (this package's reconciler image). */
  readonly pruneImage: string;
}

/** Restore every member from one snapshot file: a new logical cluster with the snapshot's data. */
export interface RestoreSpec {
  /** The snapshot's file name in the claim. */
  readonly snapshot: string;
  /** The PVC holding the snapshot. */
  readonly claimName: string;
}

/** What a user may leave out: everything but the name and the engine has a default (each field documented in fields.ts). */
export interface KVStoreSpecInput {
  readonly name: string;
  readonly engine: EngineSpec;
  readonly size?: number;
  readonly image?: string;
  readonly storageSize?: string;
  readonly storageClassName?: string;
  readonly volumeClaimTemplates?: Array<Partial<VolumeClaimTemplateSpec> & { readonly name: string }>;
  readonly persistentVolumeClaimRetentionPolicy?: { readonly whenScaled?: PvcRetentionName; readonly whenDeleted?: PvcRetentionName };
  readonly resources?: ResourcesSpec;
  readonly clusterDomain?: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
  readonly podAnnotations?: Record<string, string>;
  readonly podAntiAffinity?: AntiAffinityMode;
  readonly topologySpreadConstraints?: Array<Partial<TopologySpreadSpec> & { readonly topologyKey: string }>;
  readonly updateStrategy?: { readonly type: 'RollingUpdate'; readonly partition?: number } | { readonly type: 'OnDelete' };
  readonly podManagementPolicy?: PodManagementPolicyName;
  readonly networkPolicy?: {
    readonly enabled?: boolean;
    readonly clientPodLabels?: Record<string, string>;
    readonly clientNamespaceLabels?: Record<string, string>;
    readonly egress?: boolean;
  };
  readonly runAsUser?: number;
  readonly nodeSelector?: Record<string, string>;
  readonly tolerations?: Array<Partial<TolerationSpec>>;
  readonly imagePullSecrets?: string[];
  readonly priorityClassName?: string;
  readonly patches?: Array<Omit<ObjectPatchSpec, 'kind'> & { readonly kind: string }>;
  readonly tls?: TlsOptions;
  readonly clients?: ClientAccess[];
  readonly backup?: BackupOptions;
  readonly restore?: RestoreOptions;
}

/** A key of a Secret in the store's namespace. */
export interface SecretKeyRef {
  /** The Secret's name. */
  readonly secretName: string;
  /** The key in the Secret's data. */
  readonly key: string;
}

/** Scheduled snapshots into a PVC, the oldest pruned beyond `keep` (props and a KVStore resource's spec.backup). */
export interface BackupOptions {
  /**
   * Cron schedule of the backup CronJob.
   * @default '0 * * * *' (hourly)
   */
  readonly schedule?: string;
  /**
   * How many scheduled snapshots to keep.
   * @default 24
   */
  readonly keep?: number;
  /**
   * Size of the backup PVC the construct creates. Each snapshot is as large as the database: the
   * default claim holds keep snapshots only while the database stays under storageSize / keep; the
   * synth warns when a storage or keep you set cannot hold keep snapshots of a database at its quota.
   * @default - the store's storageSize (none with claimName)
   */
  readonly storage?: string;
  /**
   * StorageClass of the backup PVC.
   * @default - the store's storageClassName
   */
  readonly storageClassName?: string;
  /**
   * The backup PVC's name. Without storage it names an existing PVC the construct does not create.
   * @default '<name>-backups', created
   */
  readonly claimName?: string;
  /**
   * The image that prunes old snapshots: this package's reconciler image.
   * @default - the store's reconciler image, else DEFAULT_RECONCILER_IMAGE
   */
  readonly pruneImage?: string;
}

/** Restore every member from one snapshot file: a new logical cluster holding the snapshot's data. */
export interface RestoreOptions {
  /**
   * The snapshot's file name in the claim (the backup CronJob writes <store>-backup-<n>.db).
   */
  readonly snapshot: string;
  /**
   * The PVC holding the snapshot.
   * @default - this store's backup claim
   */
  readonly claimName?: string;
}

/** What the engine contributes to the defaults. */
export interface EngineDefaults {
  readonly image?: string;
  readonly podManagementPolicy: PodManagementPolicyName;
}

export const DEFAULT_SIZE = 3;
export const DEFAULT_STORAGE_SIZE = '10Gi';
export const DEFAULT_CLUSTER_DOMAIN = 'cluster.local';
export const DEFAULT_MOUNT_ROOT = '/var/lib/kvstore';
/** The conventional non-root uid of distroless images ("nonroot"). */
export const DEFAULT_RUN_AS_USER = 65532;
/** Hourly snapshots, the last day of them kept. */
export const DEFAULT_BACKUP_SCHEDULE = '0 * * * *';
export const DEFAULT_BACKUP_KEEP = 24;
/** Volume names the construct uses itself; PVC templates must not take them. */
export const RESERVED_VOLUME_NAMES: readonly string[] = ['tmp', 'backups', 'tls', 'client-tls'];
