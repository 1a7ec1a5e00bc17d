// The desired state of one store: its shape, defaults, validation and normalized form.
// Pure data and pure functions. The construct, the CRD schema and the reconciler all read this file.
import { backupClaimName } from './names';
import { parseQuantity } from './quantity';
import { schemaIssues } from './schema';
import { SpecError, SpecIssue } from './issues';

export type PvcRetentionName = 'Retain' | 'Delete';
export type PodManagementPolicyName = 'OrderedReady' | 'Parallel';
export type AntiAffinityMode = 'soft' | 'hard' | 'none';
export type AccessModeName = 'ReadWriteOnce' | 'ReadOnlyMany' | 'ReadWriteMany' | 'ReadWriteOncePod';

/** A probe in plain data (serializable into the spec ConfigMap and the CRD). */
export interface ProbeSpec {
  readonly httpGet?: { readonly path: string; readonly port: number | string };
  readonly tcpSocket?: { readonly port: number | string };
  readonly exec?: { readonly command: string[] };
  readonly initialDelaySeconds?: number;
  readonly periodSeconds?: number;
  readonly timeoutSeconds?: number;
  readonly failureThreshold?: number;
}

/** etcd engine settings, as stored in the spec. */
export interface EtcdEngineSpec {
  readonly kind: 'etcd';
  /** etcd version (semver), decides the image tag and the version-dependent flags and probes. */
  readonly version: string;
  /** Backend quota in bytes; derived from the data volume when absent. */
  readonly quotaBackendBytes?: number;
  readonly autoCompactionMode: 'periodic' | 'revision';
  readonly autoCompactionRetention: string;
  /** Name of the volume claim template holding the WAL; absent: the WAL stays in the data dir. */
  readonly walVolume?: string;
  /** Overrides the derived `--initial-cluster-token`. */
  readonly initialClusterToken?: string;
}

/** Bring-your-own-image engine settings, as stored in the spec. */
export interface CustomEngineSpec extends CustomEngineSettings {
  readonly kind: 'custom';
}

/** What a bring-your-own-image engine runs and how its members are probed. */
export interface CustomEngineSettings {
  /** The port clients connect to (named `client` in the pod). */
  readonly clientPort: number;
  /**
   * The port members use among themselves (named `peer`).
   * @default - no peer port: members do not talk to each other
   */
  readonly peerPort?: number;
  /** @default - the image's entrypoint */
  readonly command?: string[];
  /**
   * Arguments; `$(POD_NAME)`, `$(POD_NAMESPACE)`, `$(POD_IP)` and your `env` expand as in Kubernetes.
   * @default - the image's cmd
   */
  readonly args?: string[];
  /** @default - only POD_NAME, POD_NAMESPACE and POD_IP */
  readonly env?: Record<string, string>;
  /** @default - a TCP check of the client port with a 5-minute budget */
  readonly startupProbe?: ProbeSpec;
  /** @default - a TCP check of the client port */
  readonly livenessProbe?: ProbeSpec;
  /** @default - a TCP check of the client port */
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

export type EngineSpec = EtcdEngineSpec | CustomEngineSpec;

export interface VolumeClaimTemplateSpec {
  readonly name: string;
  readonly storage: string;
  readonly storageClassName?: string;
  readonly accessModes: AccessModeName[];
  readonly mountPath: string;
}

export interface TopologySpreadSpec {
  readonly topologyKey: string;
  readonly maxSkew: number;
  readonly whenUnsatisfiable: 'DoNotSchedule' | 'ScheduleAnyway';
}

export type UpdateStrategySpec =
  | { readonly type: 'RollingUpdate'; readonly partition: number }
  | { readonly type: 'OnDelete' };

export interface ResourcesSpec {
  readonly requests?: Record<string, string>;
  readonly limits?: Record<string, string>;
}

/** The normalized desired state of one store: every default applied. */
export interface KVStoreSpec {
  readonly name: string;
  readonly size: number;
  readonly image: string;
  readonly engine: EngineSpec;
  readonly volumeClaimTemplates: VolumeClaimTemplateSpec[];
  readonly persistentVolumeClaimRetentionPolicy: { readonly whenScaled: PvcRetentionName; readonly whenDeleted: PvcRetentionName };
  readonly resources: ResourcesSpec;
  readonly clusterDomain: string;
  readonly labels: Record<string, string>;
  readonly annotations: Record<string, string>;
  readonly podAnnotations: Record<string, string>;
  readonly podAntiAffinity: AntiAffinityMode;
  readonly topologySpreadConstraints: TopologySpreadSpec[];
  readonly updateStrategy: UpdateStrategySpec;
  readonly podManagementPolicy: PodManagementPolicyName;
  readonly networkPolicy: {
    readonly enabled: boolean;
    readonly clientPodLabels: Record<string, string>;
    readonly clientNamespaceLabels?: Record<string, string>;
  };
  readonly runAsUser: number;
  readonly nodeSelector: Record<string, string>;
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

/** What a user may leave out: everything but the name and the engine has a default. */
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
  };
  readonly runAsUser?: number;
  readonly nodeSelector?: Record<string, string>;
  readonly backup?: BackupSpecInput;
  readonly restore?: RestoreSpecInput;
}

/** Scheduled snapshots, as a user writes them. */
export interface BackupSpecInput {
  /** @default '0 * * * *' (hourly) */
  readonly schedule?: string;
  /** Snapshots kept. @default 24 */
  readonly keep?: number;
  /** Size of the backup PVC the construct creates. @default - the store's storageSize (none with claimName) */
  readonly storage?: string;
  /** @default - the store's storageClassName */
  readonly storageClassName?: string;
  /**
   * The backup PVC's name. Without `storage` it names an existing PVC the construct does not create.
   * @default '<name>-backups', created
   */
  readonly claimName?: string;
  /**
   * The image that prunes old snapshots: this package's reconciler image.
   * @default - the construct's reconciler image; required otherwise
   */
  readonly pruneImage?: string;
}

/** A restore, as a user writes it. */
export interface RestoreSpecInput {
  /** The snapshot's file name in the claim (the backup CronJob writes `<store>-backup-<n>.db`). */
  readonly snapshot: string;
  /** The PVC holding it. @default - this store's backup claim */
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
export const RESERVED_VOLUME_NAMES: readonly string[] = ['tmp', 'backups'];

/** Drops keys whose value is undefined, recursively (TypeScript props often carry them). */
function compact<T>(value: T): T {
  if (Array.isArray(value)) return value.map(compact) as T;
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = compact(v);
    return out as T;
  }
  return value;
}

/** Checks the shape of an input spec against SPEC_INPUT_SCHEMA. */
/** Rules that span fields, on an already-defaulted spec. */
function crossFieldIssues(spec: KVStoreSpec, input: KVStoreSpecInput): SpecIssue[] {
  const issues: SpecIssue[] = [];
  if (input.storageSize !== undefined && parseQuantity(input.storageSize) === 0) {
    issues.push({ field: 'storageSize', value: input.storageSize, allowed: 'a storage size greater than zero' });
  }
  const names = new Set<string>();
  const paths = new Set<string>();
  spec.volumeClaimTemplates.forEach((t, i) => {
    const field = `volumeClaimTemplates[${i}]`;
    if (names.has(t.name)) {
      issues.push({ field: `${field}.name`, value: t.name, allowed: 'unique among the volume claim templates', reason: 'each template becomes one PVC per member' });
    }
    if (RESERVED_VOLUME_NAMES.includes(t.name)) {
      issues.push({ field: `${field}.name`, value: t.name, allowed: `a name other than ${RESERVED_VOLUME_NAMES.join(' or ')}`, reason: 'the pod or its backup and restore Jobs already have a volume of that name' });
    }
    if (paths.has(t.mountPath)) {
      issues.push({ field: `${field}.mountPath`, value: t.mountPath, allowed: 'unique among the volume claim templates' });
    }
    if (t.mountPath === '/tmp') {
      issues.push({ field: `${field}.mountPath`, value: t.mountPath, allowed: 'a path other than /tmp', reason: 'the pod mounts its scratch volume there' });
    }
    names.add(t.name);
    paths.add(t.mountPath);
    if (input.volumeClaimTemplates?.[i]?.storage !== undefined && parseQuantity(t.storage) === 0) {
      issues.push({ field: `${field}.storage`, value: t.storage, allowed: 'a storage size greater than zero' });
    }
  });
  if (spec.updateStrategy.type === 'RollingUpdate' && spec.updateStrategy.partition > spec.size) {
    issues.push({ field: 'updateStrategy.partition', value: spec.updateStrategy.partition, allowed: `an integer from 0 to size (${spec.size})` });
  }
  if (input.restore && input.restore.claimName === undefined && !input.backup) {
    issues.push({ field: 'restore.claimName', value: undefined, allowed: 'the PVC holding the snapshot (it defaults to this store\'s backup claim only when backup is set)' });
  }
  const { requests = {}, limits = {} } = spec.resources;
  for (const [resource, limit] of Object.entries(limits)) {
    const request = requests[resource];
    if (request !== undefined && parseQuantity(limit)! < parseQuantity(request)!) {
      issues.push({ field: `resources.limits.${resource}`, value: limit, allowed: `at least the request (${request})` });
    }
  }
  return issues;
}

/** The PVC the construct creates for a store's snapshots. */
function normalizeBackup(input: KVStoreSpecInput, b: BackupSpecInput, storageSize: string): BackupSpec {
  const issues: SpecIssue[] = [];
  if (b.pruneImage === undefined) {
    issues.push({ field: 'backup.pruneImage', value: undefined, allowed: 'set to the kvstore reconciler image (or set reconciler, whose image is the default)', reason: 'it deletes the snapshots beyond backup.keep' });
  }
  if (b.claimName !== undefined && b.storage === undefined && b.storageClassName !== undefined) {
    issues.push({ field: 'backup.storageClassName', value: b.storageClassName, allowed: 'left out when backup.claimName names an existing PVC (no backup.storage)', reason: 'the construct only creates a PVC it is given a size for' });
  }
  if (issues.length > 0) throw new SpecError(input.name, issues);
  const pruneImage = b.pruneImage!;
  const creates = b.claimName === undefined || b.storage !== undefined;
  return {
    schedule: b.schedule ?? DEFAULT_BACKUP_SCHEDULE,
    keep: b.keep ?? DEFAULT_BACKUP_KEEP,
    claimName: b.claimName ?? backupClaimName(input.name),
    // A claim named without a size exists already; otherwise the construct creates it.
    ...(creates ? { storage: b.storage ?? storageSize } : {}),
    ...(creates && (b.storageClassName ?? input.storageClassName) !== undefined ? { storageClassName: b.storageClassName ?? input.storageClassName } : {}),
    pruneImage,
  };
}

/**
 * Validates an input spec and applies every default. Throws a SpecError naming the store, each bad
 * field, the value received and what is allowed.
 */
export function normalizeSpec(rawInput: KVStoreSpecInput, defaults: EngineDefaults): KVStoreSpec {
  const input = compact(rawInput);
  const storeName = typeof input.name === 'string' && input.name ? input.name : '(unnamed)';
  const issues = schemaIssues(input);
  if (input.image === undefined && defaults.image === undefined) {
    issues.push({ field: 'image', value: undefined, allowed: 'set: this engine has no default image' });
  }
  if (issues.length > 0) throw new SpecError(storeName, issues);

  const storageSize = input.storageSize ?? DEFAULT_STORAGE_SIZE;
  const templates = input.volumeClaimTemplates ?? [{ name: 'data' }];
  const spec: KVStoreSpec = {
    name: input.name,
    size: input.size ?? DEFAULT_SIZE,
    image: (input.image ?? defaults.image)!,
    engine: input.engine,
    volumeClaimTemplates: templates.map((t) => ({
      name: t.name,
      storage: t.storage ?? storageSize,
      ...((t.storageClassName ?? input.storageClassName) !== undefined ? { storageClassName: t.storageClassName ?? input.storageClassName } : {}),
      accessModes: t.accessModes ?? ['ReadWriteOnce'],
      // Without trailing slashes, so "/tmp/" and "/tmp" compare equal.
      mountPath: (t.mountPath ?? `${DEFAULT_MOUNT_ROOT}/${t.name}`).replace(/(.)\/+$/, '$1'),
    })),
    persistentVolumeClaimRetentionPolicy: {
      whenScaled: input.persistentVolumeClaimRetentionPolicy?.whenScaled ?? 'Retain',
      whenDeleted: input.persistentVolumeClaimRetentionPolicy?.whenDeleted ?? 'Retain',
    },
    resources: input.resources ?? { requests: { cpu: '100m', memory: '256Mi' } },
    clusterDomain: input.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN,
    labels: input.labels ?? {},
    annotations: input.annotations ?? {},
    podAnnotations: input.podAnnotations ?? {},
    podAntiAffinity: input.podAntiAffinity ?? 'soft',
    topologySpreadConstraints: (input.topologySpreadConstraints ?? []).map((c) => ({
      topologyKey: c.topologyKey,
      maxSkew: c.maxSkew ?? 1,
      whenUnsatisfiable: c.whenUnsatisfiable ?? 'ScheduleAnyway',
    })),
    updateStrategy: input.updateStrategy?.type === 'OnDelete'
      ? { type: 'OnDelete' }
      : { type: 'RollingUpdate', partition: input.updateStrategy?.partition ?? 0 },
    podManagementPolicy: input.podManagementPolicy ?? defaults.podManagementPolicy,
    networkPolicy: {
      enabled: input.networkPolicy?.enabled ?? true,
      clientPodLabels: input.networkPolicy?.clientPodLabels ?? { [`${input.name}-client`]: 'true' },
      ...(input.networkPolicy?.clientNamespaceLabels ? { clientNamespaceLabels: input.networkPolicy.clientNamespaceLabels } : {}),
    },
    runAsUser: input.runAsUser ?? DEFAULT_RUN_AS_USER,
    nodeSelector: input.nodeSelector ?? {},
    ...(input.backup ? { backup: normalizeBackup(input, input.backup, storageSize) } : {}),
    ...(input.restore ? { restore: { snapshot: input.restore.snapshot, claimName: input.restore.claimName ?? input.backup?.claimName ?? backupClaimName(input.name) } } : {}),
  };
  const crossIssues = crossFieldIssues(spec, input);
  if (crossIssues.length > 0) throw new SpecError(storeName, crossIssues);
  return spec;
}

