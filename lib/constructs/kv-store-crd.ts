// The KVStore CustomResourceDefinition: its OpenAPI schema derived from SPEC_INPUT_SCHEMA, and the construct.
import { Construct } from 'constructs';
import type { ICustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';
import type { IJSONSchemaProps } from 'kubernetes-models/apiextensions.k8s.io/v1/JSONSchemaProps';
import { CUSTOM_FIELDS, defaultsSentence, ETCD_FIELDS, FieldDoc } from '../model/fields';
import { KVSTORE_CRD_NAME, KVSTORE_GROUP, KVSTORE_KIND, KVSTORE_PLURAL, KVSTORE_VERSION } from '../model/metadata';
import { MAX_SIZE, SPEC_INPUT_SCHEMA } from '../model/schema';
import { CustomEngineSpec, DEFAULT_SIZE, EtcdEngineSpec } from '../model/spec';
import { clusterScoped, kubeObject } from './kube';

/** A JSON Schema node, in the plain JSON form that appears in YAML. */
export type JsonSchema = { readonly [keyword: string]: unknown };

/** Keywords a Kubernetes structural schema keeps as they are. */
const KEPT_KEYWORDS: readonly string[] = [
  'type', 'enum', 'pattern', 'minimum', 'maximum', 'minLength', 'maxLength', 'minItems', 'required',
  'description', 'default', 'format', 'x-kubernetes-int-or-string', 'x-kubernetes-validations',
  'x-kubernetes-list-type', 'x-kubernetes-list-map-keys', 'x-kubernetes-preserve-unknown-fields',
];

/**
 * One spec-style node (with `allowed`) → a structural schema node. `allowed` becomes (part of) the
 * description; `propertyNames` and `additionalProperties: false` have no structural counterpart
 * (unknown fields are pruned by the API server; label keys are checked by the reconciler). Any other
 * keyword throws, so a keyword added to the spec cannot silently vanish from the CRD.
 */
function toStructural(node: JsonSchema, path: string, doc?: string): JsonSchema {
  const out: Record<string, unknown> = {};
  for (const [keyword, value] of Object.entries(node)) {
    switch (keyword) {
      case 'allowed':
      case 'propertyNames':
        break;
      case 'properties':
        out.properties = Object.fromEntries(Object.entries(value as Record<string, JsonSchema>)
          .map(([name, child]) => [name, toStructural(child, `${path}.${name}`)]));
        break;
      case 'items':
        out.items = toStructural(value as JsonSchema, `${path}[]`);
        break;
      case 'anyOf':
        out.anyOf = (value as JsonSchema[]).map((alternative, i) => toStructural(alternative, `${path}|${i}`));
        break;
      case 'additionalProperties':
        if (value !== false) out.additionalProperties = toStructural(value as JsonSchema, `${path}.*`);
        break;
      default:
        if (!KEPT_KEYWORDS.includes(keyword)) {
          throw new Error(`crdSchema: keyword '${keyword}' at ${path} has no structural-schema counterpart`);
        }
        out[keyword] = value;
    }
  }
  // Objects with declared fields describe themselves; "Must be a retention policy." would add nothing.
  const rule = node.allowed !== undefined && node.properties === undefined ? `Must be ${node.allowed}.` : undefined;
  // "Defaults to …" goes last: `cdk8s import` turns the rest of that line into the @default tag.
  const [about, defaults] = ((doc ?? node.description ?? '') as string).split(/ ?(?=Defaults to )/);
  const description = [about, rule, defaults].filter((s) => s).join(' ');
  if (description) out.description = description;
  return out;
}

/** Kubernetes' IntOrString form (as kubebuilder writes it): `cdk8s import` makes it a class with fromNumber/fromString. */
const intOrStringPort: JsonSchema = {
  'x-kubernetes-int-or-string': true,
  anyOf: [{ type: 'integer' }, { type: 'string' }],
  allowed: 'a port number or the name of a container port',
};
const seconds = (what: string): JsonSchema => ({ type: 'integer', minimum: 0, allowed: `${what} (an integer of at least 0)` });

/** A probe, as ProbeSpec in lib/model/spec.ts. */
const probe = (which: string): JsonSchema => ({
  type: 'object',
  allowed: `a ${which} probe`,
  properties: {
    httpGet: {
      type: 'object', required: ['path', 'port'], allowed: 'an HTTP GET check',
      properties: { path: { type: 'string', allowed: 'an HTTP path' }, port: intOrStringPort },
    },
    tcpSocket: { type: 'object', required: ['port'], allowed: 'a TCP check', properties: { port: intOrStringPort } },
    exec: {
      type: 'object', required: ['command'], allowed: 'a command check',
      properties: { command: { ...strings, allowed: 'a command and its arguments' } },
    },
    initialDelaySeconds: seconds('a delay in seconds'),
    periodSeconds: seconds('a period in seconds'),
    timeoutSeconds: seconds('a timeout in seconds'),
    failureThreshold: { type: 'integer', minimum: 0, allowed: 'a count (an integer of at least 0)' },
  },
});

/**
 * Each engine's fields. Typed against the spec interfaces: a field added there and not here (or
 * the other way round) fails to compile. Only type-level constraints: engine rules such as the
 * supported etcd versions stay in the engines, and the reconciler reports them in status.
 */
type EngineFields<T> = { readonly [K in Exclude<keyof T, 'kind'>]-?: JsonSchema };

const ETCD_SHAPES: EngineFields<EtcdEngineSpec> = {
  version: { type: 'string', allowed: 'an etcd version written as MAJOR.MINOR.PATCH' },
  quotaBackendBytes: { type: 'integer', minimum: 1, allowed: 'an integer from 1 to 80% of the data volume' },
  autoCompactionMode: { type: 'string', enum: ['periodic', 'revision'], allowed: 'periodic or revision' },
  autoCompactionRetention: { type: 'string', allowed: 'a number, optionally followed by h, m or s (periodic) such as 1h, or a revision count' },
  walVolume: { type: 'string', allowed: 'the name of a volume claim template after the first' },
  initialClusterToken: { type: 'string', allowed: 'letters, digits, ".", "_" and "-"' },
};

const port = (rest = ''): JsonSchema => ({ type: 'integer', minimum: 1, maximum: 65535, allowed: `a port number from 1 to 65535${rest}` });
const strings: JsonSchema = { type: 'array', items: { type: 'string' }, allowed: 'a list of strings' };

const CUSTOM_SHAPES: EngineFields<CustomEngineSpec> = {
  clientPort: { ...port() },
  peerPort: { ...port(' other than the client port') },
  command: { ...strings },
  args: { ...strings },
  env: { type: 'object', additionalProperties: { type: 'string' }, allowed: 'a map of environment variable names to values' },
  secretEnv: {
    type: 'object',
    allowed: 'a map of environment variable names to Secret keys',
    additionalProperties: {
      type: 'object', required: ['secretName', 'key'], allowed: 'a Secret key reference (secretName, key)',
      properties: { secretName: { type: 'string', allowed: 'a Secret name' }, key: { type: 'string', allowed: 'a key of the Secret' } },
    },
  },
  startupProbe: probe('startup'),
  livenessProbe: probe('liveness'),
  readinessProbe: probe('readiness'),
  maxSize: { type: 'integer', minimum: 1, maximum: MAX_SIZE, allowed: `an integer from 1 to ${MAX_SIZE}` },
  quorum: { type: 'boolean', allowed: 'true or false' },
};

/** The spec's engine node plus every engine's fields in one object (a structural schema has no oneOf of types). */
function engineSchema(): JsonSchema {
  const base = SPEC_INPUT_SCHEMA.properties.engine;
  const fields: Record<string, JsonSchema> = { ...base.properties };
  const documented = (engine: string, shapes: Record<string, JsonSchema>, docs: Record<string, FieldDoc>) =>
    Object.entries(shapes).map(([name, schema]) => [name, { ...schema, description: [`(${engine})`, docs[name].description, defaultsSentence(docs[name])].filter(Boolean).join(' ') }] as const);
  for (const [name, schema] of [...documented('etcd', ETCD_SHAPES, ETCD_FIELDS), ...documented('custom', CUSTOM_SHAPES, CUSTOM_FIELDS)]) {
    if (name in fields) throw new Error(`crdSchema: engine field '${name}' is declared twice`);
    fields[name] = schema;
  }
  return {
    ...base,
    default: { kind: 'etcd' },
    properties: { ...fields, kind: { ...base.properties.kind, default: 'etcd' } },
    'x-kubernetes-validations': [
      { rule: "self.kind != 'custom' || has(self.clientPort)", message: 'engine.clientPort is required when engine.kind is custom' },
    ],
  };
}

/** A CEL string literal. */
const cel = (s: string) => JSON.stringify(s);

const condition: JsonSchema = {
  type: 'object',
  required: ['type', 'status'],
  properties: {
    type: { type: 'string', description: 'Ready, Progressing or Degraded (a reconcile), or Maintained (the operator\'s maintenance).' },
    status: { type: 'string', enum: ['True', 'False', 'Unknown'] },
    reason: { type: 'string', description: 'A CamelCase reason for the last transition.' },
    message: { type: 'string', description: 'Human-readable details.' },
    lastTransitionTime: { type: 'string', format: 'date-time' },
    observedGeneration: { type: 'integer', minimum: 0, description: 'The metadata.generation the condition was set for.' },
  },
};

const STATUS_SCHEMA: JsonSchema = {
  type: 'object',
  description: 'Observed state, written by the reconciler.',
  properties: {
    replicas: { type: 'integer', minimum: 0, description: 'Members the StatefulSet runs (the scale subresource reads it).' },
    readyReplicas: { type: 'integer', minimum: 0, description: 'Members that are ready.' },
    selector: { type: 'string', description: "The pods' label selector in string form (the scale subresource reads it)." },
    observedGeneration: { type: 'integer', minimum: 0, description: 'The metadata.generation this status describes.' },
    members: {
      type: 'array',
      description: 'The engine\'s members as the engine reports them.',
      items: {
        type: 'object',
        required: ['name'],
        properties: {
          name: { type: 'string' },
          id: { type: 'string', description: 'The engine\'s member id (hex for etcd).' },
          role: { type: 'string', description: 'leader, follower or learner.' },
          healthy: { type: 'boolean' },
        },
      },
    },
    conditions: {
      type: 'array',
      description: 'Standard conditions: Ready, Progressing, Degraded.',
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['type'],
      items: condition,
    },
    specHash: { type: 'string', description: 'The hash of the normalized spec last applied.' },
    lastReconcileTime: {
      type: 'string',
      format: 'date-time',
      description: 'When the last successful reconcile that changed something (or cleared lastError) ended; a run with nothing to do leaves it.',
    },
    lastError: { type: 'string', description: 'The error of the last failed reconcile (at most 1000 characters); removed by the next successful one.' },
  },
};

/**
 * The CRD's openAPIV3Schema, derived from SPEC_INPUT_SCHEMA: `spec` is the input schema without
 * `name` (the resource's metadata.name is the store name, checked by a CEL rule with the same
 * pattern and length), as a Kubernetes structural schema. Pure.
 */
export function crdSchema(): JsonSchema {
  const { name, ...fields } = SPEC_INPUT_SCHEMA.properties;
  const specFields: Record<string, JsonSchema> = { ...fields, engine: engineSchema() };
  const properties = Object.fromEntries(Object.entries(specFields).map(([field, schema]) => [
    field,
    toStructural(schema, `spec.${field}`),
  ]));
  // size gets a default: the scale subresource fails on a resource without .spec.size.
  properties.size = { ...properties.size, default: DEFAULT_SIZE };
  const required = SPEC_INPUT_SCHEMA.required.filter((r) => r !== 'name');
  return {
    type: 'object',
    description: `A replicated key-value store (etcd by default). metadata.name is the store name: ${name.allowed}.`,
    required: ['spec'],
    properties: {
      spec: {
        type: 'object',
        description: 'The desired state of the store.',
        ...(required.length ? { required } : {}),
        properties,
        'x-kubernetes-validations': [
          { rule: "has(self.image) || !has(self.engine) || self.engine.kind != 'custom'", message: 'image is required when engine.kind is custom', fieldPath: '.image' },
        ],
      },
      status: STATUS_SCHEMA,
    },
    'x-kubernetes-validations': [{
      rule: `self.metadata.name.size() <= ${name.maxLength} && self.metadata.name.matches(${cel(name.pattern)})`,
      message: `metadata.name must be ${name.allowed}`,
    }],
  };
}

/**
 * The KVStore CustomResourceDefinition (`kvstores.kvstore.cdk8s-kvstore.io`): namespaced, one
 * served and stored version, status and scale subresources (`kubectl scale kvstore/orders
 * --replicas=5` sets `.spec.size`).
 * @see https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/
 */
export class KVStoreCrd extends Construct {
  /** `kvstores.kvstore.cdk8s-kvstore.io`. */
  readonly crdName = KVSTORE_CRD_NAME;
  /** `kvstore.cdk8s-kvstore.io/v1`: what KVStore resources carry. */
  readonly apiVersion = `${KVSTORE_GROUP}/${KVSTORE_VERSION}`;
  /** `KVStore`. */
  readonly kind = KVSTORE_KIND;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    clusterScoped(kubeObject<ICustomResourceDefinition>(this, 'Resource', { apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition' }, {
      metadata: { name: KVSTORE_CRD_NAME },
      spec: {
        group: KVSTORE_GROUP,
        scope: 'Namespaced',
        names: {
          kind: KVSTORE_KIND,
          listKind: `${KVSTORE_KIND}List`,
          plural: KVSTORE_PLURAL,
          singular: KVSTORE_KIND.toLowerCase(),
          shortNames: ['kvs'],
        },
        versions: [{
          name: KVSTORE_VERSION,
          served: true,
          storage: true,
          schema: { openAPIV3Schema: crdSchema() as IJSONSchemaProps },
          subresources: {
            status: {},
            scale: { specReplicasPath: '.spec.size', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' },
          },
          additionalPrinterColumns: [
            { name: 'Size', type: 'integer', jsonPath: '.spec.size', description: 'Desired members' },
            { name: 'Ready', type: 'integer', jsonPath: '.status.readyReplicas', description: 'Ready members' },
            { name: 'Engine', type: 'string', jsonPath: '.spec.engine.kind' },
            { name: 'Status', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status', description: 'The Ready condition' },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
        }],
      },
    }));
  }
}
