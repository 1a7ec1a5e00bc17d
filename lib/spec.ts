// The desired state of one store: its schema, defaults, validation, normalized form and stable hash.
// Pure data and pure functions. The construct, the CRD schema and the reconciler all read this file.
import { createHash } from 'crypto';
import Ajv, { ErrorObject } from 'ajv';
import { parseQuantity, QUANTITY_PATTERN } from './quantity';

/** Kubernetes' DNS-1123 label: what names of StatefulSets and volumes must be. */
export const DNS_LABEL_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
/** DNS-1035 label: Service names must also start with a letter, and the store names two Services. */
export const DNS_1035_LABEL_PATTERN = '^[a-z]([-a-z0-9]*[a-z0-9])?$';
const DNS_SUBDOMAIN_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';

/**
 * An OCI image reference: optional registry (host[:port]/), lowercase repository path, optional tag,
 * optional sha256 digest. Uppercase is only legal in the tag.
 */
export const IMAGE_PATTERN =
  '^([a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?/)?[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*' +
  '(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$';

const LABEL_KEY_PATTERN =
  '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$';
const LABEL_VALUE_PATTERN = '^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$';

/**
 * The longest store name. The StatefulSet is named after the store, and the pod label
 * `controller-revision-hash` is `<statefulset>-<10 chars>`, which must fit a 63-character label.
 */
export const MAX_NAME_LENGTH = 52;
/** The largest size of any store; engines may allow fewer members. */
export const MAX_SIZE = 99;

export type PvcRetentionName = 'Retain' | 'Delete';
export type PodManagementPolicyName = 'OrderedReady' | 'Parallel';
export type AntiAffinityMode = 'soft' | 'hard' | 'none';
export type AccessMode = 'ReadWriteOnce' | 'ReadOnlyMany' | 'ReadWriteMany' | 'ReadWriteOncePod';

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
export interface CustomEngineSpec {
  readonly kind: 'custom';
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
  readonly accessModes: AccessMode[];
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
/** Five fields of digits, `*`, ranges, lists and steps, or a macro such as @hourly. */
const CRON_PATTERN = '^(@(yearly|annually|monthly|weekly|daily|hourly)|([0-9*/,-]+ ){4}[0-9*/,-]+)$';
/** A snapshot file name: no directories. */
const SNAPSHOT_FILE_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]*$';
/** Volume names the construct uses itself; PVC templates must not take them. */
export const RESERVED_VOLUME_NAMES: readonly string[] = ['tmp', 'backups'];

/** One thing wrong with a spec, in the user's vocabulary. */
export interface SpecIssue {
  readonly field: string;
  readonly value: unknown;
  /** What is allowed, phrased to follow "must be". */
  readonly allowed: string;
  /** Optional why, appended after the value. */
  readonly reason?: string;
}

/** Formats a value the way the user wrote it: strings quoted, numbers as numbers (NaN stays NaN). */
export function showValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'number') return String(value);
  return JSON.stringify(value);
}

export function formatIssue(storeName: string, issue: SpecIssue): string {
  const reason = issue.reason ? ` (${issue.reason})` : '';
  return `KVStore '${storeName}': ${issue.field} must be ${issue.allowed}, got ${showValue(issue.value)}${reason}`;
}

/** The error a bad spec raises: every issue on its own line. */
export class SpecError extends Error {
  constructor(readonly storeName: string, readonly issues: readonly SpecIssue[]) {
    super(issues.map((i) => formatIssue(storeName, i)).join('\n'));
    this.name = 'SpecError';
  }
}

const labels = { type: 'object', allowed: 'a map of Kubernetes labels', propertyNames: { pattern: LABEL_KEY_PATTERN, allowed: 'a label key (an optional DNS prefix and "/", then up to 63 characters of [A-Za-z0-9-_.])' }, additionalProperties: { type: 'string', pattern: LABEL_VALUE_PATTERN, allowed: 'a label value (up to 63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric)' } };
const stringMap = { type: 'object', allowed: 'a map of strings', additionalProperties: { type: 'string', allowed: 'a string' } };
const quantity = (what: string) => ({ type: 'string', pattern: QUANTITY_PATTERN, allowed: `${what} as a Kubernetes quantity such as 10Gi or 500M (digits with an optional suffix m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi or Ei)` });
const resourceList = { type: 'object', allowed: 'a map of resource names to quantities', additionalProperties: quantity('a quantity') };
const retention = { type: 'string', enum: ['Retain', 'Delete'], allowed: 'Retain or Delete' };

/**
 * The JSON Schema of the user-facing spec (KVStoreSpecInput, engine excluded: each engine checks its
 * own). `allowed` is an annotation keyword: the phrase used in error messages.
 */
export const SPEC_INPUT_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    name: { type: 'string', pattern: DNS_1035_LABEL_PATTERN, maxLength: MAX_NAME_LENGTH, allowed: `a DNS-1035 label (lowercase letters, digits and '-', starting with a letter and ending alphanumeric) of at most ${MAX_NAME_LENGTH} characters` },
    engine: { type: 'object', required: ['kind'], allowed: 'an engine', properties: { kind: { type: 'string', enum: ['etcd', 'custom'], allowed: 'etcd or custom' } } },
    size: { type: 'integer', minimum: 1, maximum: MAX_SIZE, allowed: `an integer from 1 to ${MAX_SIZE}` },
    image: { type: 'string', pattern: IMAGE_PATTERN, allowed: 'an image reference like registry.example.com/team/etcd:v3.5.21 (lowercase repository, no spaces)' },
    storageSize: quantity('a storage size'),
    storageClassName: { type: 'string', pattern: DNS_SUBDOMAIN_PATTERN, allowed: 'a StorageClass name (a DNS-1123 subdomain)' },
    volumeClaimTemplates: {
      type: 'array',
      minItems: 1,
      allowed: 'a non-empty list of volume claim templates',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        allowed: 'a volume claim template',
        properties: {
          name: { type: 'string', pattern: DNS_LABEL_PATTERN, maxLength: 63, allowed: 'a DNS-1123 label of at most 63 characters' },
          storage: quantity('a storage size'),
          storageClassName: { type: 'string', pattern: DNS_SUBDOMAIN_PATTERN, allowed: 'a StorageClass name (a DNS-1123 subdomain)' },
          accessModes: { type: 'array', minItems: 1, items: { type: 'string', enum: ['ReadWriteOnce', 'ReadOnlyMany', 'ReadWriteMany', 'ReadWriteOncePod'], allowed: 'ReadWriteOnce, ReadOnlyMany, ReadWriteMany or ReadWriteOncePod' }, allowed: 'a non-empty list of access modes' },
          mountPath: { type: 'string', pattern: '^/[^:]+$', allowed: 'an absolute path other than / without ":"' },
        },
      },
    },
    persistentVolumeClaimRetentionPolicy: {
      type: 'object',
      additionalProperties: false,
      allowed: 'a retention policy',
      properties: { whenScaled: retention, whenDeleted: retention },
    },
    resources: {
      type: 'object',
      additionalProperties: false,
      allowed: 'resource requests and limits',
      properties: { requests: resourceList, limits: resourceList },
    },
    clusterDomain: { type: 'string', pattern: DNS_SUBDOMAIN_PATTERN, allowed: 'a DNS domain such as cluster.local' },
    labels,
    annotations: stringMap,
    podAnnotations: stringMap,
    podAntiAffinity: { type: 'string', enum: ['soft', 'hard', 'none'], allowed: 'soft, hard or none' },
    topologySpreadConstraints: {
      type: 'array',
      allowed: 'a list of topology spread constraints',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['topologyKey'],
        allowed: 'a topology spread constraint',
        properties: {
          topologyKey: { type: 'string', minLength: 1, allowed: 'a node label key such as topology.kubernetes.io/zone' },
          maxSkew: { type: 'integer', minimum: 1, allowed: 'an integer of at least 1' },
          whenUnsatisfiable: { type: 'string', enum: ['DoNotSchedule', 'ScheduleAnyway'], allowed: 'DoNotSchedule or ScheduleAnyway' },
        },
      },
    },
    updateStrategy: {
      type: 'object',
      required: ['type'],
      additionalProperties: false,
      allowed: 'an update strategy',
      properties: {
        type: { type: 'string', enum: ['RollingUpdate', 'OnDelete'], allowed: 'RollingUpdate or OnDelete' },
        partition: { type: 'integer', minimum: 0, allowed: 'an integer of at least 0' },
      },
    },
    podManagementPolicy: { type: 'string', enum: ['OrderedReady', 'Parallel'], allowed: 'OrderedReady or Parallel' },
    networkPolicy: {
      type: 'object',
      additionalProperties: false,
      allowed: 'network policy settings',
      properties: {
        enabled: { type: 'boolean', allowed: 'true or false' },
        clientPodLabels: labels,
        clientNamespaceLabels: labels,
      },
    },
    runAsUser: { type: 'integer', minimum: 1, allowed: 'a non-root uid (an integer of at least 1)' },
    nodeSelector: labels,
    backup: {
      type: 'object',
      additionalProperties: false,
      allowed: 'backup settings',
      properties: {
        schedule: { type: 'string', pattern: CRON_PATTERN, allowed: 'a cron schedule of five fields such as "0 * * * *", or a macro such as @hourly' },
        keep: { type: 'integer', minimum: 1, maximum: 1000, allowed: 'an integer from 1 to 1000' },
        storage: quantity('a storage size'),
        storageClassName: { type: 'string', pattern: DNS_SUBDOMAIN_PATTERN, allowed: 'a StorageClass name (a DNS-1123 subdomain)' },
        claimName: { type: 'string', pattern: DNS_SUBDOMAIN_PATTERN, maxLength: 253, allowed: 'a PVC name (a DNS-1123 subdomain)' },
        pruneImage: { type: 'string', pattern: IMAGE_PATTERN, allowed: 'an image reference of the kvstore reconciler image' },
      },
    },
    restore: {
      type: 'object',
      additionalProperties: false,
      required: ['snapshot'],
      allowed: 'restore settings with a snapshot',
      properties: {
        snapshot: { type: 'string', pattern: SNAPSHOT_FILE_PATTERN, maxLength: 253, allowed: 'a snapshot file name (letters, digits, ".", "_", "-"; no directories)' },
        claimName: { type: 'string', pattern: DNS_SUBDOMAIN_PATTERN, maxLength: 253, allowed: 'the name of the PVC holding the snapshot (a DNS-1123 subdomain)' },
      },
    },
  },
} as const;

const ajv = new Ajv({ allErrors: true, verbose: true, strict: true });
ajv.addKeyword({ keyword: 'allowed', schemaType: 'string' });
const validateInput = ajv.compile(SPEC_INPUT_SCHEMA);

/** "/volumeClaimTemplates/1/storage" → "volumeClaimTemplates[1].storage". */
function fieldOf(instancePath: string, child?: string): string {
  const parts = instancePath.split('/').slice(1);
  if (child !== undefined) parts.push(child);
  return parts.reduce((acc, p) => (/^[0-9]+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

function issueFromAjv(e: ErrorObject): SpecIssue {
  const allowed = (e.parentSchema as { allowed?: string } | undefined)?.allowed ?? `valid (${e.message})`;
  switch (e.keyword) {
    case 'required':
      return { field: fieldOf(e.instancePath, (e.params as { missingProperty: string }).missingProperty), value: undefined, allowed: 'set' };
    case 'additionalProperties': {
      const known = Object.keys((e.parentSchema as { properties?: object }).properties ?? {});
      const extra = (e.params as { additionalProperty: string }).additionalProperty;
      return { field: fieldOf(e.instancePath, extra), value: e.data && (e.data as Record<string, unknown>)[extra], allowed: `absent: it is not a known field (known: ${known.join(', ')})` };
    }
    case 'propertyNames': {
      const name = (e.params as { propertyName: string }).propertyName;
      return { field: `${fieldOf(e.instancePath)} key`, value: name, allowed: (e.schema as { allowed: string }).allowed };
    }
    default:
      return { field: fieldOf(e.instancePath) || 'spec', value: e.data, allowed };
  }
}

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
export function schemaIssues(input: unknown): SpecIssue[] {
  if (validateInput(input)) return [];
  // propertyNames failures also report a generic error on the object itself: keep the specific one.
  const errors = (validateInput.errors ?? []).filter((e) => (e as ErrorObject & { propertyName?: string }).propertyName === undefined);
  const seen = new Set<string>();
  return errors.map(issueFromAjv).filter((i) => {
    const key = `${i.field}|${i.allowed}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

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
export function backupClaimName(storeName: string): string {
  return `${storeName}-backups`;
}

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

/** JSON with object keys sorted at every level: the same spec always gives the same text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.keys(value).sort().filter((k) => (value as Record<string, unknown>)[k] !== undefined);
    return `{${entries.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** A stable short hash of a spec (hex): equal specs hash equally whatever their key order. */
export function specHash(spec: KVStoreSpec, length = 10): string {
  return createHash('sha256').update(canonicalJson(spec)).digest('hex').slice(0, length);
}

/**
 * Everything the reconciler needs to re-synthesize a store exactly as the construct did: the
 * normalized spec, the namespace and the resolved cluster token (derived from the construct path,
 * which the reconciler cannot know). Carried by the spec ConfigMap as canonical JSON.
 */
export interface StoreDocument {
  readonly apiVersion: 'kvstore.cdk8s-kvstore.io/v1';
  readonly kind: 'StoreDocument';
  readonly namespace: string;
  readonly clusterToken: string;
  readonly spec: KVStoreSpec;
}

/** Parses and checks the envelope of a store document (the spec itself is validated by the construct). */
export function parseStoreDocument(text: string): StoreDocument {
  const doc = JSON.parse(text) as StoreDocument;
  if (doc?.apiVersion !== 'kvstore.cdk8s-kvstore.io/v1' || doc.kind !== 'StoreDocument') {
    throw new Error(`not a store document: expected apiVersion kvstore.cdk8s-kvstore.io/v1 and kind StoreDocument, got ${JSON.stringify(doc?.apiVersion)} ${JSON.stringify(doc?.kind)}`);
  }
  for (const field of ['namespace', 'clusterToken'] as const) {
    if (typeof doc[field] !== 'string' || !doc[field]) throw new Error(`store document: ${field} must be a non-empty string, got ${showValue(doc[field])}`);
  }
  if (!doc.spec || typeof doc.spec !== 'object') throw new Error('store document: spec is missing');
  return doc;
}
