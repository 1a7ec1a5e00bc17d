// Validation and normalization of a store's spec input: the schema, the rules that span fields, and
// every default applied. Pure.
import { SpecError, SpecIssue } from './issues';
import { COMPONENT_LABEL, MANAGED_BY_LABEL, STORE_LABEL } from './metadata';
import { backupClaimName, selectorLabels } from './names';
import { parseQuantity } from './quantity';
import { isNamespaceName } from './schema';
import { schemaIssues } from './validate';
import { DEFAULT_RECONCILER_IMAGE } from './version';
import {
  BackupSpec, BackupOptions, DEFAULT_BACKUP_KEEP, DEFAULT_BACKUP_SCHEDULE, DEFAULT_CLUSTER_DOMAIN, DEFAULT_MOUNT_ROOT, DEFAULT_RUN_AS_USER,
  DEFAULT_SIZE, DEFAULT_STORAGE_SIZE, EngineDefaults, KVStoreSpec, KVStoreSpecInput, ObjectPatchSpec, RESERVED_VOLUME_NAMES, TlsOptions, TlsSpec,
} from './spec';
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

/** The namespace a store is placed in: Kubernetes requires a DNS-1123 label of at most 63 characters. */
export function namespaceIssues(namespace: string | undefined): SpecIssue[] {
  if (namespace === undefined || isNamespaceName(namespace)) return [];
  return [{ field: 'namespace', value: namespace, allowed: 'a DNS-1123 label (lowercase letters, digits and \'-\', starting and ending alphanumeric) of at most 63 characters' }];
}

/** "a, b or c". */
function orList(items: string[]): string {
  return items.length > 1 ? `${items.slice(0, -1).join(', ')} or ${items[items.length - 1]}` : items.join('');
}

/**
 * Label keys the library sets itself, and why: a user label of the same key would be overwritten
 * on some objects and not others.
 */
function libraryLabels(storeName: string): Record<string, string> {
  return {
    ...Object.fromEntries(Object.keys(selectorLabels(storeName)).map((key) => [key, 'it selects the store\'s pods'])),
    [MANAGED_BY_LABEL]: 'the library sets it on every object',
    [COMPONENT_LABEL]: 'the library sets it to the engine on every object of the store',
    [STORE_LABEL]: 'the library sets it on the store\'s Job pods, which its NetworkPolicy admits',
  };
}

/** Rules that span fields, on an already-defaulted spec. */
function crossFieldIssues(spec: KVStoreSpec, input: KVStoreSpecInput): SpecIssue[] {
  const issues: SpecIssue[] = [];
  const reserved = libraryLabels(spec.name);
  for (const key of Object.keys(spec.labels).filter((k) => reserved[k] !== undefined)) {
    issues.push({ field: 'labels key', value: key, allowed: `a key other than ${orList(Object.keys(reserved))}`, reason: reserved[key] });
  }
  if (input.storageSize !== undefined && parseQuantity(input.storageSize) === 0) {
    issues.push({ field: 'storageSize', value: input.storageSize, allowed: 'a storage size greater than zero' });
  }
  // Kubernetes' own toleration rules, so they fail here rather than at apply.
  spec.tolerations.forEach((t, i) => {
    const field = `tolerations[${i}]`;
    if (t.operator === 'Exists' && t.value !== undefined && t.value !== '') {
      issues.push({ field: `${field}.value`, value: t.value, allowed: 'left out with operator Exists', reason: 'Exists tolerates every value of the key' });
    }
    if (t.operator === 'Equal' && t.key === undefined) {
      issues.push({ field: `${field}.key`, value: undefined, allowed: 'set with operator Equal (or operator Exists to tolerate every taint)' });
    }
    if (t.tolerationSeconds !== undefined && t.effect !== 'NoExecute') {
      issues.push({ field: `${field}.tolerationSeconds`, value: t.tolerationSeconds, allowed: 'left out unless effect is NoExecute', reason: 'only a NoExecute taint evicts a running pod' });
    }
  });
  if (spec.networkPolicy.egress && !spec.networkPolicy.enabled) {
    issues.push({ field: 'networkPolicy.egress', value: true, allowed: 'used with the NetworkPolicy on (networkPolicy.enabled)', reason: 'egress rules belong to the NetworkPolicies it turns off' });
  }
  if (spec.clients && spec.tls && (spec.tls.memberSecret !== undefined || spec.tls.clientSecret !== undefined)) {
    issues.push({ field: 'clients', value: input.clients, allowed: 'used with certificates from cert-manager (no tls.memberSecret or tls.clientSecret)', reason: "each client's certificate is issued by cert-manager, and the reconciler must be the etcd user root" });
  }
  if (spec.clients && !spec.tls) {
    issues.push({ field: 'clients', value: input.clients, allowed: 'used together with tls', reason: "a client is known by its certificate's common name" });
  }
  (spec.clients ?? []).forEach((c, i) => {
    if (c.name === 'root' || c.name === 'tls') {
      issues.push({ field: `clients[${i}].name`, value: c.name, allowed: 'a name other than root or tls', reason: "root is the library's own clients (the reconciler and backups), whose Secret is <store>-client-tls" });
    }
    if (spec.clients!.findIndex((o) => o.name === c.name) < i) issues.push({ field: `clients[${i}].name`, value: c.name, allowed: 'a name not listed before' });
    if (c.read.length + c.readWrite.length === 0) issues.push({ field: `clients[${i}]`, value: input.clients![i], allowed: 'a client with read or readWrite prefixes', reason: 'a client that may do nothing needs no certificate' });
    // One range, one permission: a read prefix inside a read-write one (or the other way) says two things of the same keys.
    for (const r of c.read) {
      const w = c.readWrite.find((p) => p.startsWith(r) || r.startsWith(p));
      if (w !== undefined) issues.push({ field: `clients[${i}].read`, value: r, allowed: `a prefix that does not overlap readWrite prefix ${JSON.stringify(w)}`, reason: 'the same keys would be both read-only and writable' });
    }
  });
  spec.imagePullSecrets.forEach((name, i) => {
    if (spec.imagePullSecrets.indexOf(name) < i) issues.push({ field: `imagePullSecrets[${i}]`, value: name, allowed: 'a Secret not listed before', reason: 'Kubernetes keys the list by name and refuses duplicates' });
  });
  spec.patches.forEach((patch, i) => patch.ops.forEach((op, j) => {
    const field = `patches[${i}].ops[${j}]`;
    if (['add', 'replace'].includes(op.op) && op.value === undefined) issues.push({ field: `${field}.value`, value: undefined, allowed: `set for op ${op.op}` });
    if (['move', 'copy'].includes(op.op) && op.from === undefined) issues.push({ field: `${field}.from`, value: undefined, allowed: `set for op ${op.op}` });
  }));
  const names = new Set<string>();
  const paths = new Set<string>();
  spec.volumeClaimTemplates.forEach((t, i) => {
    const field = `volumeClaimTemplates[${i}]`;
    if (names.has(t.name)) {
      issues.push({ field: `${field}.name`, value: t.name, allowed: 'unique among the volume claim templates', reason: 'each template becomes one PVC per member' });
    }
    if (RESERVED_VOLUME_NAMES.includes(t.name)) {
      issues.push({ field: `${field}.name`, value: t.name, allowed: `a name other than ${RESERVED_VOLUME_NAMES.slice(0, -1).join(', ')} or ${RESERVED_VOLUME_NAMES[RESERVED_VOLUME_NAMES.length - 1]}`, reason: 'the pod or its backup and restore Jobs already have a volume of that name' });
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

/** Where the certificates come from: cert-manager (the store's own CA or the user's issuer), or Secrets the user names. */
function normalizeTls(storeName: string, tls: TlsOptions): TlsSpec {
  const secrets = tls.memberSecret !== undefined || tls.clientSecret !== undefined;
  const issues: SpecIssue[] = [];
  if (secrets && (tls.memberSecret === undefined || tls.clientSecret === undefined)) {
    const missing = tls.memberSecret === undefined ? 'memberSecret' : 'clientSecret';
    issues.push({ field: `tls.${missing}`, value: undefined, allowed: `set together with tls.${missing === 'memberSecret' ? 'clientSecret' : 'memberSecret'}`, reason: 'with Secrets of your own there is no cert-manager to issue the other' });
  }
  if (secrets && tls.issuer) {
    issues.push({ field: 'tls.issuer', value: tls.issuer, allowed: 'left out with tls.memberSecret and tls.clientSecret', reason: 'your Secrets replace cert-manager' });
  }
  if (issues.length) throw new SpecError(storeName, issues);
  if (secrets) return { memberSecret: tls.memberSecret!, clientSecret: tls.clientSecret! };
  return tls.issuer ? { issuer: { name: tls.issuer.name, kind: tls.issuer.kind ?? 'Issuer' } } : {};
}

/** The PVC the construct creates for a store's snapshots. */
function normalizeBackup(input: KVStoreSpecInput, b: BackupOptions, storageSize: string): BackupSpec {
  const issues: SpecIssue[] = [];
  if (b.claimName !== undefined && b.storage === undefined && b.storageClassName !== undefined) {
    issues.push({ field: 'backup.storageClassName', value: b.storageClassName, allowed: 'left out when backup.claimName names an existing PVC (no backup.storage)', reason: 'the construct only creates a PVC it is given a size for' });
  }
  if (issues.length > 0) throw new SpecError(input.name, issues);
  const pruneImage = b.pruneImage ?? DEFAULT_RECONCILER_IMAGE;
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
      egress: input.networkPolicy?.egress ?? false,
    },
    runAsUser: input.runAsUser ?? DEFAULT_RUN_AS_USER,
    nodeSelector: input.nodeSelector ?? {},
    tolerations: (input.tolerations ?? []).map((t) => ({ ...t, operator: t.operator ?? 'Equal' })),
    imagePullSecrets: input.imagePullSecrets ?? [],
    ...(input.priorityClassName !== undefined ? { priorityClassName: input.priorityClassName } : {}),
    patches: (input.patches ?? []) as ObjectPatchSpec[],
    ...(input.tls ? { tls: normalizeTls(input.name, input.tls) } : {}),
    ...(input.clients ? { clients: input.clients.map((c) => ({ name: c.name, read: c.read ?? [], readWrite: c.readWrite ?? [] })) } : {}),
    ...(input.backup ? { backup: normalizeBackup(input, input.backup, storageSize) } : {}),
    ...(input.restore ? { restore: { snapshot: input.restore.snapshot, claimName: input.restore.claimName ?? input.backup?.claimName ?? backupClaimName(input.name) } } : {}),
  };
  const crossIssues = crossFieldIssues(spec, input);
  if (crossIssues.length > 0) throw new SpecError(storeName, crossIssues);
  return spec;
}
