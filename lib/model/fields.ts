// The documentation of every field of a store's spec, written once. The JSON schema (and so the CRD's
// `kubectl explain` text) reads it here; the construct's props and the README props table must say
// the same (test/model/fields.test.ts fails when they disagree; `npx projen docs` rewrites the table).
import type { BackupOptions, CustomEngineOptions, EtcdEngineSpec, KVStoreSpecInput, RestoreOptions, TlsOptions, ClientAccess } from './spec';

/** One field's documentation. */
export interface FieldDoc {
  /** What the field is, in the user's words (sentences; the first one is the summary). */
  readonly description: string;
  /** What applies when the field is left out, as the CRD says it ("Defaults to …"); absent for required fields. */
  readonly default?: string;
  /** The construct prop this field comes from, when its name differs. */
  readonly prop?: string;
  /** The prop's `@default` tag, when it differs from `default` (props use the library's enum-like classes). */
  readonly propDefault?: string;
  /** The prop's description, when the prop's type makes it read differently. */
  readonly propDescription?: string;
}

/** Every top-level field of the spec input, and the network policy's three (which are three props). */
export type SpecFieldName = Exclude<keyof KVStoreSpecInput, 'networkPolicy'> | 'networkPolicy.enabled' | 'networkPolicy.clientPodLabels' | 'networkPolicy.clientNamespaceLabels' | 'networkPolicy.egress';

export const SPEC_FIELDS: { readonly [K in SpecFieldName]-?: FieldDoc } = {
  'name': {
    description: 'The store name: names the StatefulSet, the Services and (through the StatefulSet) the PVCs. A DNS-1035 label of at most 52 characters.',
    propDefault: '- the construct id',
  },
  'size': {
    description: 'Number of members (StatefulSet replicas); etcd allows at most 7. The reconciler changes a live etcd store\'s size one member at a time.',
    propDescription: 'Number of members (StatefulSet replicas); etcd allows at most 7. A live etcd store changes size only through the reconciler (members are added and removed one at a time); without it, a change of a live store\'s size is refused at synth time against the store lock (kvstore.lock.json).',
    default: '3',
  },
  'storageSize': {
    description: "Size of each member's volumes, as a Kubernetes quantity.",
    default: "'10Gi'",
  },
  'image': {
    description: 'The container image: required with the custom engine, optional with etcd.',
    default: "- the engine's pinned image (gcr.io/etcd-development/etcd:v<engine.version> for etcd)",
    prop: 'containerImage',
  },
  'engine': {
    description: 'The engine: etcd or a bring-your-own-image custom engine. Each field applies to the engine named by kind; the reconciler applies the engine defaults and checks the rest.',
    propDescription: 'The engine: what runs in the members and how they bootstrap.',
    default: '- etcd (kind etcd)',
    propDefault: 'Engine.etcd()',
  },
  'storageClassName': {
    description: 'StorageClass of the volumes.',
    default: "- the cluster's default StorageClass",
  },
  'volumeClaimTemplates': {
    description: "PVC templates in order; the first holds the engine's data.",
    default: "- one template named 'data'",
  },
  'persistentVolumeClaimRetentionPolicy': {
    description: 'Whether PVCs are kept when the store shrinks or is deleted.',
    default: '- Retain when scaled down, Retain when deleted',
  },
  'resources': {
    description: 'Container resources.',
    default: '- requests cpu 100m and memory 256Mi, no limits',
  },
  'clusterDomain': {
    description: "The cluster's DNS domain, used in member DNS names.",
    default: "'cluster.local'",
  },
  'labels': {
    description: 'Extra labels on every object and pod.',
    default: '- none',
  },
  'annotations': {
    description: 'Extra annotations on every object.',
    default: '- none',
  },
  'podAnnotations': {
    description: 'Annotations on the pods.',
    default: '- none',
  },
  'podAntiAffinity': {
    description: 'How members are kept on separate nodes.',
    default: "'soft'",
    propDefault: 'PodAntiAffinity.SOFT',
  },
  'topologySpreadConstraints': {
    description: 'How members spread over topology domains.',
    default: '- none',
  },
  'updateStrategy': {
    description: 'How pods are replaced when the template changes.',
    default: '- RollingUpdate with partition 0',
    propDefault: 'UpdateStrategy.rollingUpdate()',
  },
  'podManagementPolicy': {
    description: 'How the StatefulSet creates and scales pods.',
    default: "- the engine's (Parallel for etcd, OrderedReady for custom)",
  },
  'networkPolicy.enabled': {
    description: 'Emit a NetworkPolicy admitting peer traffic only between members and client traffic only on the client port from clientPodLabels pods.',
    default: 'true',
    prop: 'networkPolicy',
  },
  'networkPolicy.clientPodLabels': {
    description: 'Labels of the pods allowed to connect as clients.',
    default: "- `{ '<name>-client': 'true' }`",
    prop: 'clientPodLabels',
  },
  'networkPolicy.clientNamespaceLabels': {
    description: 'Labels of the namespaces clients may come from.',
    default: "- only the store's own namespace",
    prop: 'clientNamespaceLabels',
  },
  'networkPolicy.egress': {
    description: "Restrict egress too, for namespaces that deny egress by default: members may reach DNS and each other; the store's Jobs DNS and the members' client port, and its reconciler also the API server (TCP 443 and 6443, any address: the API server's address is not known at synth time).",
    default: 'false',
    prop: 'networkPolicyEgress',
  },
  'runAsUser': {
    description: 'The uid (and gid) the containers run as.',
    default: '65532',
  },
  'nodeSelector': {
    description: 'Node labels the pods require.',
    default: '- none',
  },
  'tolerations': {
    description: 'Node taints the pods tolerate: the members and the backup, snapshot and restore Jobs (which must reach the nodes that hold the volumes).',
    default: '- none',
  },
  'imagePullSecrets': {
    description: 'Names of Secrets (kubernetes.io/dockerconfigjson) holding credentials for the registries of every image the store pulls: members and Jobs.',
    default: '- none',
  },
  'priorityClassName': {
    description: 'The PriorityClass of the members (not of the Jobs), so that they are not preempted before less important pods.',
    default: '- the cluster default',
  },
  'patches': {
    description: "RFC 6902 JSON patches applied to the synthesized objects of one kind (and name), for what the props don't cover. Part of the spec, so the reconciler applies them too (GitOps and CRD mode). Patches that change an object's identity, replicas, selector, serviceName, podManagementPolicy, volume claim templates or the pod template's selector labels are refused.",
    default: '- none',
  },
  'tls': {
    description: "Mutual TLS: https on the client and peer ports with client certificates required on both, health and metrics on a plain-HTTP port of their own (2381). Certificates from cert-manager (the store's own CA, or your issuer) or from Secrets you provide. Needs the chart's namespace.",
    default: '- plain HTTP, no authentication (TLS needs cert-manager or certificates you provide)',
  },
  'clients': {
    description: "Who may do what, by key prefix: each client gets its own certificate (Secret <name>-client-<client>, common name = the client's name) and the reconciler creates its etcd user and role and turns etcd authentication on (the library's own clients are the user root). Changing the list changes only what changed. Needs tls and the reconciler.",
    default: "- no authentication: every certificate of the store's CA has full access",
  },
  'backup': {
    description: 'Scheduled snapshots (etcdctl snapshot save against the client Service) into a PVC, the oldest pruned beyond keep. With the reconciler, it also takes a snapshot before every membership change, resize and restore.',
    default: '- no backups',
  },
  'restore': {
    description: "Restore every member from one snapshot file in a PVC: the reconciler builds a new logical cluster holding the snapshot's data (a live store's old data stays on the PVCs, in another directory; replacing a live store's data needs force). Needs the reconciler.",
    default: '- no restore',
  },
};

/** The backup settings' fields. */
export const BACKUP_FIELDS: { readonly [K in keyof BackupOptions]-?: FieldDoc } = {
  schedule: { description: 'Cron schedule of the backup CronJob.', default: "'0 * * * *' (hourly)" },
  keep: { description: 'How many scheduled snapshots to keep.', default: '24' },
  storage: { description: 'Size of the backup PVC the construct creates. Each snapshot is as large as the database: the default claim holds keep snapshots only while the database stays under storageSize / keep; the synth warns when a storage or keep you set cannot hold keep snapshots of a database at its quota.', default: "- the store's storageSize (none with claimName)" },
  storageClassName: { description: 'StorageClass of the backup PVC.', default: "- the store's storageClassName" },
  claimName: { description: 'The backup PVC\'s name. Without storage it names an existing PVC the construct does not create.', default: "'<name>-backups', created" },
  pruneImage: { description: "The image that prunes old snapshots: this package's reconciler image.", default: "- the store's reconciler image, else DEFAULT_RECONCILER_IMAGE" },
};

/** The TLS settings' fields. */
export const TLS_FIELDS: { readonly [K in keyof TlsOptions]-?: FieldDoc } = {
  issuer: { description: "The cert-manager issuer of the store's certificates.", default: "- a CA of the store's own: a self-signed Issuer, a CA Certificate and a CA Issuer" },
  memberSecret: { description: "A kubernetes.io/tls Secret you provide (tls.crt, tls.key, ca.crt) with the members' certificate, for both the client and the peer listeners, instead of cert-manager. Needs clientSecret.", default: "- '<name>-member-tls', issued by cert-manager" },
  clientSecret: { description: "A kubernetes.io/tls Secret you provide with the client certificate the library's own clients use (reconciler, backup and snapshot Jobs), instead of cert-manager. Needs memberSecret.", default: "- '<name>-client-tls', issued by cert-manager" },
};

/** A client's fields. */
export const CLIENT_FIELDS: { readonly [K in keyof ClientAccess]-?: FieldDoc } = {
  name: { description: "The client's name: its certificate's common name, so its etcd user, and its Secret `<store>-client-<name>`. A DNS-1123 label; not `root` or `tls`." },
  read: { description: 'Key prefixes it may read.', default: '- none' },
  readWrite: { description: 'Key prefixes it may read and write.', default: '- none' },
};

/** The restore settings' fields. */
export const RESTORE_FIELDS: { readonly [K in keyof RestoreOptions]-?: FieldDoc } = {
  snapshot: { description: 'The snapshot\'s file name in the claim (the backup CronJob writes <store>-backup-<n>.db).' },
  claimName: { description: 'The PVC holding the snapshot.', default: "- this store's backup claim" },
};

/** The etcd engine's options (`Engine.etcd()`, a KVStore resource's spec.engine with kind etcd). */
export const ETCD_FIELDS: { readonly [K in Exclude<keyof EtcdEngineSpec, 'kind'>]-?: FieldDoc } = {
  version: {
    description: 'The etcd version. Decides the image tag and the probes: 3.5.11 and later serve /livez and /readyz, older versions only /health.',
    default: "'3.5.21'",
  },
  quotaBackendBytes: {
    description: '--quota-backend-bytes. Must stay at most 80% of the data volume.',
    default: '- half of the data volume, at most 8 GiB',
  },
  autoCompactionMode: {
    description: '--auto-compaction-mode.',
    default: "'periodic'",
    propDefault: 'AutoCompactionMode.PERIODIC',
  },
  autoCompactionRetention: {
    description: '--auto-compaction-retention: a duration (periodic) or a revision count (revision).',
    default: "'1h'",
  },
  walVolume: {
    description: 'The volume claim template that holds the write-ahead log (--wal-dir).',
    default: "- a template named 'wal' if there is one (other than the first), else the data dir",
  },
  initialClusterToken: {
    description: '--initial-cluster-token.',
    default: '- the store name and a hash of its namespace and construct path (or resource name)',
  },
};

/** The bring-your-own-image engine's options (`Engine.custom()`, spec.engine with kind custom). */
export const CUSTOM_FIELDS: { readonly [K in keyof CustomEngineOptions]-?: FieldDoc } = {
  clientPort: { description: 'The port clients connect to (named client in the pod); required with the custom engine.' },
  peerPort: { description: 'The port members use among themselves (named peer), other than the client port.', default: '- no peer port: members do not talk to each other' },
  command: { description: "The container's command.", default: "- the image's entrypoint" },
  args: { description: "The container's arguments; $(POD_NAME), $(POD_NAMESPACE), $(POD_IP) and env expand as in Kubernetes.", default: "- the image's cmd" },
  env: { description: 'Extra environment variables of the container. Plain values end up in the synthesized YAML (and in a KVStore resource): put secrets in secretEnv.', default: '- only POD_NAME, POD_NAMESPACE and POD_IP' },
  secretEnv: { description: "Environment variables from keys of Secrets in the store's namespace: the value never appears in the synthesized YAML, a ConfigMap or a KVStore resource.", default: '- none' },
  startupProbe: { description: 'The startup probe.', default: '- a TCP check of the client port with a 5-minute budget' },
  livenessProbe: { description: 'The liveness probe.', default: '- a TCP check of the client port' },
  readinessProbe: { description: 'The readiness probe.', default: '- a TCP check of the client port' },
  maxSize: { description: 'The largest supported size.', default: '99' },
  quorum: { description: 'Whether a majority of members must stay up; sizes the PodDisruptionBudget.', default: 'true' },
};

/** `Defaults to …` as the CRD says it: the `@default` text without its leading "- ", quotes or backticks. */
export function defaultsSentence(doc: FieldDoc): string {
  if (doc.default === undefined) return '';
  const text = doc.default.replace(/^- /, '').replace(/'([^']*)'/g, '$1').replace(/`/g, '');
  return `Defaults to ${text}.`;
}
