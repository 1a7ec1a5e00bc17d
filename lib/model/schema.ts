// The JSON Schema of the user-facing spec input and the patterns it uses: the one shape the construct,
// the CRD and the reconciler check a spec against. `allowed` phrases each rule for error messages.
// validate.ts checks input against it (through the validator compiled from it ahead of time).
import { BACKUP_FIELDS, CLIENT_FIELDS, defaultsSentence, FieldDoc, RESTORE_FIELDS, SPEC_FIELDS, SpecFieldName, TLS_FIELDS } from './fields';
import { QUANTITY_PATTERN } from './quantity';
import { PATCHABLE_KINDS } from './spec';

/** Kubernetes' DNS-1123 label: what names of StatefulSets and volumes must be. */
export const DNS_LABEL_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
/** DNS-1035 label: Service names must also start with a letter, and the store names two Services. */
export const DNS_1035_LABEL_PATTERN = '^[a-z]([-a-z0-9]*[a-z0-9])?$';
export const DNS_SUBDOMAIN_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';

/** A namespace name: a DNS-1123 label of at most 63 characters. */
export function isNamespaceName(name: string): boolean {
  return name.length <= 63 && new RegExp(DNS_LABEL_PATTERN).test(name);
}

/** An object name such as a Secret's: a DNS-1123 subdomain of at most 253 characters. */
export function isSubdomainName(name: string): boolean {
  return name.length <= 253 && new RegExp(DNS_SUBDOMAIN_PATTERN).test(name);
}

/**
 * An OCI image reference: optional registry (host[:port]/), lowercase repository path, optional tag,
 * optional sha256 digest. Uppercase is only legal in the tag.
 */
export const IMAGE_PATTERN =
  '^([a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?/)?[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*' +
  '(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$';

export const LABEL_KEY_PATTERN =
  '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$';
export const LABEL_VALUE_PATTERN = '^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$';

/** A label key: an optional DNS-subdomain prefix of at most 253 characters and "/", then a name of at most 63. */
export function isLabelKey(key: string): boolean {
  const slash = key.lastIndexOf('/');
  return slash < 254 && new RegExp(LABEL_KEY_PATTERN).test(key);
}

/** A label value: empty, or at most 63 characters of [A-Za-z0-9-_.] starting and ending alphanumeric. */
export function isLabelValue(value: string): boolean {
  return new RegExp(LABEL_VALUE_PATTERN).test(value);
}

/**
 * The longest store name. The StatefulSet is named after the store, and the pod label
 * `controller-revision-hash` is `<statefulset>-<10 chars>`, which must fit a 63-character label.
 */
export const MAX_NAME_LENGTH = 52;
/** The largest size of any store; engines may allow fewer members. */
export const MAX_SIZE = 99;
/** Five fields of digits, `*`, ranges, lists and steps, or a macro such as @hourly. */
export const CRON_PATTERN = '^(@(yearly|annually|monthly|weekly|daily|hourly)|([0-9*/,-]+ ){4}[0-9*/,-]+)$';
/** RFC 6901: "/" then reference tokens; "~" only as ~0 or ~1. */
const JSON_POINTER_PATTERN = '^(/([^~/]|~[01])*)+$';
/** A snapshot file name: no directories. */
const SNAPSHOT_FILE_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]*$';

const labels = { type: 'object', allowed: 'a map of Kubernetes labels', propertyNames: { pattern: LABEL_KEY_PATTERN, allowed: 'a label key (an optional DNS prefix and "/", then up to 63 characters of [A-Za-z0-9-_.])' }, additionalProperties: { type: 'string', pattern: LABEL_VALUE_PATTERN, allowed: 'a label value (up to 63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric)' } };
/** Annotation keys follow the rules of label keys; their values are free strings. */
const annotations = { type: 'object', allowed: 'a map of strings', propertyNames: { pattern: LABEL_KEY_PATTERN, allowed: 'an annotation key (an optional DNS prefix and "/", then up to 63 characters of [A-Za-z0-9-_.], alphanumeric at both ends)' }, additionalProperties: { type: 'string', allowed: 'a string' } };
const quantity = (what: string) => ({ type: 'string', pattern: QUANTITY_PATTERN, allowed: `${what} as a Kubernetes quantity such as 10Gi or 500M (digits with an optional suffix m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi or Ei)` });
const resourceList = { type: 'object', allowed: 'a map of resource names to quantities', additionalProperties: quantity('a quantity') };
const retention = { type: 'string', enum: ['Retain', 'Delete'], allowed: 'Retain or Delete' };
const secretName = { type: 'string', pattern: DNS_SUBDOMAIN_PATTERN, maxLength: 253, allowed: 'a Secret name (a DNS-1123 subdomain)' };

const SHAPE = {
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
    annotations,
    podAnnotations: annotations,
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
        egress: { type: 'boolean', allowed: 'true or false' },
      },
    },
    runAsUser: { type: 'integer', minimum: 1, allowed: 'a non-root uid (an integer of at least 1)' },
    nodeSelector: labels,
    tolerations: {
      type: 'array',
      allowed: 'a list of tolerations',
      items: {
        type: 'object',
        additionalProperties: false,
        allowed: 'a toleration',
        properties: {
          key: { type: 'string', pattern: LABEL_KEY_PATTERN, allowed: 'a taint key (a label key)' },
          operator: { type: 'string', enum: ['Exists', 'Equal'], allowed: 'Exists or Equal' },
          value: { type: 'string', pattern: LABEL_VALUE_PATTERN, allowed: 'a taint value (a label value)' },
          effect: { type: 'string', enum: ['NoSchedule', 'PreferNoSchedule', 'NoExecute'], allowed: 'NoSchedule, PreferNoSchedule or NoExecute' },
          tolerationSeconds: { type: 'integer', minimum: 0, allowed: 'an integer of at least 0' },
        },
      },
    },
    imagePullSecrets: {
      type: 'array',
      allowed: 'a list of Secret names',
      items: secretName,
    },
    priorityClassName: { type: 'string', pattern: DNS_SUBDOMAIN_PATTERN, maxLength: 253, allowed: 'a PriorityClass name (a DNS-1123 subdomain)' },
    patches: {
      type: 'array',
      allowed: 'a list of object patches',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['kind', 'ops'],
        allowed: 'an object patch (kind, optional name, ops)',
        properties: {
          kind: { type: 'string', enum: [...PATCHABLE_KINDS], allowed: `the kind of an object the store synthesizes (${PATCHABLE_KINDS.slice(0, -1).join(', ')} or ${PATCHABLE_KINDS[PATCHABLE_KINDS.length - 1]})` },
          name: { type: 'string', pattern: DNS_SUBDOMAIN_PATTERN, maxLength: 253, allowed: 'an object name (a DNS-1123 subdomain)' },
          ops: {
            type: 'array',
            minItems: 1,
            allowed: 'a non-empty list of JSON Patch operations',
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['op', 'path'],
              allowed: 'a JSON Patch operation (op, path, value or from)',
              properties: {
                op: { type: 'string', enum: ['add', 'remove', 'replace', 'move', 'copy'], allowed: 'add, remove, replace, move or copy (no test: the reconciler renders the objects at other sizes and states too)' },
                path: { type: 'string', pattern: JSON_POINTER_PATTERN, allowed: 'a JSON Pointer such as /spec/template/spec/hostAliases (starting with "/")' },
                value: { 'x-kubernetes-preserve-unknown-fields': true, allowed: 'any JSON value' },
                from: { type: 'string', pattern: JSON_POINTER_PATTERN, allowed: 'a JSON Pointer (starting with "/")' },
              },
            },
          },
        },
      },
    },
    tls: {
      type: 'object',
      additionalProperties: false,
      allowed: 'TLS settings',
      properties: {
        issuer: {
          type: 'object',
          additionalProperties: false,
          required: ['name'],
          allowed: 'a cert-manager issuer reference (name, kind)',
          properties: {
            name: { type: 'string', pattern: DNS_SUBDOMAIN_PATTERN, maxLength: 253, allowed: 'an issuer name (a DNS-1123 subdomain)' },
            kind: { type: 'string', enum: ['Issuer', 'ClusterIssuer'], allowed: 'Issuer or ClusterIssuer' },
          },
        },
        memberSecret: secretName,
        clientSecret: secretName,
      },
    },
    clients: {
      type: 'array',
      allowed: 'a list of clients',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        allowed: 'a client (name, read, readWrite)',
        properties: {
          name: { type: 'string', pattern: DNS_LABEL_PATTERN, maxLength: 40, allowed: 'a DNS-1123 label of at most 40 characters' },
          read: { type: 'array', allowed: 'a list of key prefixes', items: { type: 'string', minLength: 1, allowed: 'a non-empty key prefix' } },
          readWrite: { type: 'array', allowed: 'a list of key prefixes', items: { type: 'string', minLength: 1, allowed: 'a non-empty key prefix' } },
        },
      },
    },
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

/** A property node with its documentation from SPEC_FIELDS (description and "Defaults to …"). */
function documented<T extends object>(node: T, doc: FieldDoc): T {
  return { ...node, description: [doc.description, defaultsSentence(doc)].filter(Boolean).join(' ') };
}

/**
 * The JSON Schema of the user-facing spec (KVStoreSpecInput, engine excluded: each engine checks its
 * own), every field documented from SPEC_FIELDS. `allowed` is an annotation keyword: the phrase used
 * in error messages.
 */
export const SPEC_INPUT_SCHEMA: typeof SHAPE = {
  ...SHAPE,
  properties: Object.fromEntries(Object.entries(SHAPE.properties).map(([field, node]) => {
    if (field === 'networkPolicy') {
      return [field, { ...node, description: 'The NetworkPolicy admitting peers and clients.', properties: documentedAll(SHAPE.properties.networkPolicy.properties, (sub) => SPEC_FIELDS[`networkPolicy.${sub}` as SpecFieldName]) }];
    }
    const parent = documented(node, SPEC_FIELDS[field as SpecFieldName]);
    if (field === 'backup') return [field, { ...parent, properties: documentedAll(SHAPE.properties.backup.properties, (sub) => BACKUP_FIELDS[sub as keyof typeof BACKUP_FIELDS]) }];
    if (field === 'restore') return [field, { ...parent, properties: documentedAll(SHAPE.properties.restore.properties, (sub) => RESTORE_FIELDS[sub as keyof typeof RESTORE_FIELDS]) }];
    if (field === 'clients') return [field, { ...parent, items: { ...SHAPE.properties.clients.items, properties: documentedAll(SHAPE.properties.clients.items.properties, (sub) => CLIENT_FIELDS[sub as keyof typeof CLIENT_FIELDS]) } }];
    if (field === 'tls') return [field, { ...parent, properties: documentedAll(SHAPE.properties.tls.properties, (sub) => TLS_FIELDS[sub as keyof typeof TLS_FIELDS]) }];
    return [field, parent];
  })) as unknown as typeof SHAPE.properties,
};

function documentedAll(properties: object, docOf: (name: string) => FieldDoc): object {
  return Object.fromEntries(Object.entries(properties).map(([name, child]) => [name, documented(child, docOf(name))]));
}
