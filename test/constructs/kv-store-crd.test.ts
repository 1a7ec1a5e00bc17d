// The KVStore CRD: upstream-valid, structural, derived from the spec schema, committed output current.
import { readFileSync } from 'fs';
import { join } from 'path';
import Ajv from 'ajv';
import { Testing } from 'cdk8s';
import {
  KVStoreResource, KVStoreResourceSpecEngineKind, KVStoreResourceSpecEngineReadinessProbeTcpSocketPort,
  KVStoreResourceSpecPersistentVolumeClaimRetentionPolicyWhenDeleted,
} from '../../lib';
import { crdSchema, JsonSchema, KVStoreCrd } from '../../lib/constructs/kv-store-crd';
import { KVSTORE_GROUP, KVSTORE_KIND, KVSTORE_PLURAL, KVSTORE_VERSION } from '../../lib/model/metadata';
import { SPEC_INPUT_SCHEMA } from '../../lib/model/schema';
import { Engine } from '../../lib/engines/engine';
import { StoreDefinition } from '../../lib/constructs/store-definition';
import { KVStoreSpecInput } from '../../lib/model/spec';
import { CRD_FILE, crdYaml } from '../../scripts/crd';
import { importedResourceSource, RESOURCE_FILE } from '../../scripts/kvstore-resource';
import { find, Manifest, synth, testChart } from '../support/manifests';
import { nextStatus } from '../../lib/reconciler/custom-resources';

const ROOT = join(__dirname, '..', '..');

function crdManifest(): Manifest {
  const chart = testChart();
  new KVStoreCrd(chart, 'KVStore');
  return find(synth(chart), 'CustomResourceDefinition');
}

/** Every schema node below `node` (itself included), with its path. */
function schemaNodes(node: JsonSchema, path = '$'): Array<[string, JsonSchema]> {
  const children: Array<[string, JsonSchema]> = [];
  for (const [name, child] of Object.entries((node.properties ?? {}) as Record<string, JsonSchema>)) children.push([`${path}.${name}`, child]);
  if (node.items) children.push([`${path}[]`, node.items as JsonSchema]);
  if (node.additionalProperties && typeof node.additionalProperties === 'object') children.push([`${path}.*`, node.additionalProperties as JsonSchema]);
  ((node.anyOf ?? []) as JsonSchema[]).forEach((alt, i) => children.push([`${path}|${i}`, alt]));
  return [[path, node], ...children.flatMap(([p, c]) => schemaNodes(c, p))];
}

/** An ajv validator for the CRD schema that behaves like the API server: defaults applied first. */
function crdValidator() {
  const ajv = new Ajv({ allErrors: true, strict: true, useDefaults: true });
  for (const keyword of ['x-kubernetes-int-or-string', 'x-kubernetes-validations', 'x-kubernetes-list-type', 'x-kubernetes-list-map-keys', 'x-kubernetes-preserve-unknown-fields']) {
    ajv.addKeyword({ keyword });
  }
  ajv.addFormat('date-time', /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/);
  return ajv.compile(crdSchema());
}

const validateResource = crdValidator();

/** A KVStore resource named orders with `spec`, after the API server's defaulting, or the errors. */
function admit(spec: Record<string, unknown>): { ok: boolean; resource: any; errors: string[] } {
  const resource = structuredClone({ apiVersion: `${KVSTORE_GROUP}/${KVSTORE_VERSION}`, kind: KVSTORE_KIND, metadata: { name: 'orders' }, spec });
  const ok = validateResource(resource);
  return { ok, resource, errors: (validateResource.errors ?? []).map((e) => `${e.instancePath} ${e.message}`) };
}

/** Whether the construct's path (spec validation, then the engine's) accepts `spec` for store orders. */
function constructAccepts(spec: Record<string, unknown>): boolean {
  try {
    const input = { name: 'orders', ...spec } as unknown as KVStoreSpecInput;
    StoreDefinition.resolve(input, Engine.fromSpec(input.engine));
    return true;
  } catch {
    return false;
  }
}

const ETCD = Engine.etcd().spec;

const VALID_SPEC = {
  size: 3,
  image: 'gcr.io/etcd-development/etcd:v3.5.21',
  engine: { ...ETCD, quotaBackendBytes: 2 * 2 ** 30 },
  storageSize: '20Gi',
  storageClassName: 'fast-ssd',
  volumeClaimTemplates: [{ name: 'data' }, { name: 'wal', storage: '5Gi', accessModes: ['ReadWriteOnce'], mountPath: '/var/lib/kvstore/wal' }],
  persistentVolumeClaimRetentionPolicy: { whenScaled: 'Delete', whenDeleted: 'Retain' },
  resources: { requests: { cpu: '250m', memory: '512Mi' }, limits: { memory: '1Gi' } },
  labels: { 'team.example.com/owner': 'orders' },
  annotations: { note: 'anything goes' },
  podAntiAffinity: 'hard',
  topologySpreadConstraints: [{ topologyKey: 'topology.kubernetes.io/zone', maxSkew: 1, whenUnsatisfiable: 'DoNotSchedule' }],
  updateStrategy: { type: 'RollingUpdate', partition: 1 },
  podManagementPolicy: 'Parallel',
  networkPolicy: { enabled: true, clientPodLabels: { 'orders-client': 'true' } },
  runAsUser: 1000,
  nodeSelector: { 'kubernetes.io/os': 'linux' },
};

const CUSTOM_SPEC = {
  size: 1,
  image: 'docker.io/library/redis:7.2',
  engine: {
    kind: 'custom',
    clientPort: 6379,
    args: ['--port', '6379'],
    env: { MODE: 'standalone' },
    readinessProbe: { tcpSocket: { port: 'client' }, periodSeconds: 5 },
    livenessProbe: { httpGet: { path: '/health', port: 6379 } },
    startupProbe: { exec: { command: ['redis-cli', 'ping'] }, failureThreshold: 30 },
    quorum: false,
  },
};

describe('KVStoreCrd', () => {
  test('validates against the upstream CustomResourceDefinition schema', () => {
    expect(() => crdManifest()).not.toThrow();
  });

  test('is the namespaced kvstores.kvstore.cdk8s-kvstore.io with one served and stored version', () => {
    const crd = crdManifest();
    expect(crd.apiVersion).toBe('apiextensions.k8s.io/v1');
    expect(crd.metadata.name).toBe('kvstores.kvstore.cdk8s-kvstore.io');
    expect(crd.spec.group).toBe('kvstore.cdk8s-kvstore.io');
    expect(crd.spec.scope).toBe('Namespaced');
    expect(crd.spec.names).toEqual({ kind: 'KVStore', listKind: 'KVStoreList', plural: KVSTORE_PLURAL, singular: 'kvstore', shortNames: ['kvs'] });
    expect(crd.spec.versions.map((v: any) => [v.name, v.served, v.storage])).toEqual([['v1', true, true]]);
  });

  test('has the status subresource and a scale subresource on .spec.size', () => {
    expect(crdManifest().spec.versions[0].subresources).toEqual({
      status: {},
      scale: { specReplicasPath: '.spec.size', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' },
    });
  });

  test('prints Size, Ready, Engine, Status and Age', () => {
    const columns = crdManifest().spec.versions[0].additionalPrinterColumns;
    expect(columns.map((c: any) => [c.name, c.type, c.jsonPath])).toEqual([
      ['Size', 'integer', '.spec.size'],
      ['Ready', 'integer', '.status.readyReplicas'],
      ['Engine', 'string', '.spec.engine.kind'],
      ['Status', 'string', '.status.conditions[?(@.type=="Ready")].status'],
      ['Age', 'date', '.metadata.creationTimestamp'],
    ]);
  });

  test('carries crdSchema() unchanged as its openAPIV3Schema', () => {
    expect(crdManifest().spec.versions[0].schema.openAPIV3Schema).toStrictEqual(JSON.parse(JSON.stringify(crdSchema())));
  });
});

describe('committed generated files', () => {
  test(`${CRD_FILE} is what scripts/crd.ts writes now`, () => {
    const committed = readFileSync(join(ROOT, CRD_FILE), 'utf8');
    // On failure: npx ts-node --transpile-only scripts/crd.ts
    expect(committed).toBe(crdYaml());
  });

  test(`${RESOURCE_FILE} is what cdk8s import generates from the committed CRD`, () => {
    // On failure: npx ts-node --transpile-only scripts/kvstore-resource.ts
    expect(readFileSync(join(ROOT, RESOURCE_FILE), 'utf8')).toBe(importedResourceSource());
  }, 60_000);
});

describe('crdSchema', () => {
  const schema = crdSchema();
  const nodes = schemaNodes(schema);

  test('is structural: every node has a type, or is an int-or-string of integer and string, or a value of any type', () => {
    const untyped = nodes.filter(([, n]) => n.type === undefined && n['x-kubernetes-int-or-string'] !== true && n['x-kubernetes-preserve-unknown-fields'] !== true).map(([p]) => p);
    expect(untyped).toEqual([]);
    // The one value of any JSON type: a patch operation's value (structural schemas allow no type there).
    expect(nodes.filter(([, n]) => n['x-kubernetes-preserve-unknown-fields'] === true).map(([p]) => p)).toEqual(['$.spec.patches[].ops[].value']);
    for (const [path, node] of nodes.filter(([, n]) => n['x-kubernetes-int-or-string'] === true)) {
      expect({ path, type: node.type, anyOf: node.anyOf }).toEqual({ path, type: undefined, anyOf: [{ type: 'integer' }, { type: 'string' }] });
    }
  });

  test('has no keyword Kubernetes rejects or does not know', () => {
    const offending = nodes.flatMap(([path, n]) => [
      ...(n.additionalProperties === false ? [`${path}: additionalProperties false`] : []),
      ...(n.properties !== undefined && n.additionalProperties !== undefined ? [`${path}: properties with additionalProperties`] : []),
      ...['propertyNames', 'allowed', '$ref', 'oneOf', 'patternProperties'].filter((k) => k in n).map((k) => `${path}: ${k}`),
    ]);
    expect(offending).toEqual([]);
  });

  test('has spec and status at the top level, spec required', () => {
    expect(Object.keys(schema.properties as object).sort()).toEqual(['spec', 'status']);
    expect(schema.required).toEqual(['spec']);
  });

  test('spec has every field of the input schema but name, with the same constraints', () => {
    const { name, ...inputFields } = SPEC_INPUT_SCHEMA.properties;
    expect(name).toBeDefined();
    const spec = (schema.properties as Record<string, JsonSchema>).spec;
    expect(Object.keys(spec.properties as object).sort()).toEqual(Object.keys(inputFields).sort());
    const compared = ['type', 'enum', 'pattern', 'minimum', 'maximum', 'minLength', 'maxLength', 'minItems', 'required'];
    const compare = (source: JsonSchema, target: JsonSchema, path: string): void => {
      for (const k of compared) expect({ path, [k]: target[k] }).toEqual({ path, [k]: source[k] });
      if (source.allowed && !source.properties) expect({ path, description: target.description }).toEqual({ path, description: expect.stringContaining(`Must be ${source.allowed}.`) });
      for (const [n, child] of Object.entries((source.properties ?? {}) as Record<string, JsonSchema>)) {
        compare(child, (target.properties as Record<string, JsonSchema>)[n], `${path}.${n}`);
      }
      if (source.items) compare(source.items as JsonSchema, target.items as JsonSchema, `${path}[]`);
      if (typeof source.additionalProperties === 'object') compare(source.additionalProperties as JsonSchema, target.additionalProperties as JsonSchema, `${path}.*`);
    };
    for (const [field, source] of Object.entries(inputFields)) compare(source, (spec.properties as Record<string, JsonSchema>)[field], field);
  });

  test('types the engine as kind (default etcd) plus the etcd and custom fields', () => {
    const engine = ((schema.properties as any).spec.properties.engine) as any;
    expect(engine.properties.kind).toMatchObject({ type: 'string', enum: ['etcd', 'custom'], default: 'etcd' });
    expect(Object.keys(engine.properties).sort()).toEqual([
      'args', 'autoCompactionMode', 'autoCompactionRetention', 'clientPort', 'command', 'env', 'initialClusterToken', 'kind',
      'livenessProbe', 'maxSize', 'peerPort', 'quorum', 'quotaBackendBytes', 'readinessProbe', 'secretEnv', 'startupProbe', 'version', 'walVolume',
    ]);
    expect(engine.properties.readinessProbe.properties.httpGet.properties.port['x-kubernetes-int-or-string']).toBe(true);
    expect(engine['x-kubernetes-validations']).toEqual([expect.objectContaining({ rule: "self.kind != 'custom' || has(self.clientPort)" })]);
  });

  test('documents that image is optional with etcd', () => {
    const image = (schema.properties as any).spec.properties.image;
    expect((schema.properties as any).spec.required).toBeUndefined();
    expect(image.description).toMatch(/optional with etcd/);
    expect((schema.properties as any).spec['x-kubernetes-validations']).toEqual([
      expect.objectContaining({ rule: "has(self.image) || !has(self.engine) || self.engine.kind != 'custom'" }),
    ]);
  });

  test('checks metadata.name with the spec name rule in CEL', () => {
    const { maxLength, pattern } = SPEC_INPUT_SCHEMA.properties.name;
    expect(schema['x-kubernetes-validations']).toEqual([expect.objectContaining({
      rule: `self.metadata.name.size() <= ${maxLength} && self.metadata.name.matches(${JSON.stringify(pattern)})`,
    })]);
  });

  test('status has the fields the reconciler and the scale subresource use', () => {
    const status = (schema.properties as any).status;
    expect(Object.keys(status.properties).sort()).toEqual(['conditions', 'lastError', 'lastReconcileTime', 'members', 'observedGeneration', 'readyReplicas', 'replicas', 'selector', 'specHash']);
    expect(status.properties.selector.type).toBe('string');
    expect(status.properties.replicas.type).toBe('integer');
    const condition = status.properties.conditions.items;
    expect(condition.properties.status.enum).toEqual(['True', 'False', 'Unknown']);
    expect(condition.properties.lastTransitionTime).toEqual({ type: 'string', format: 'date-time' });
    expect(Object.keys(status.properties.members.items.properties).sort()).toEqual(['healthy', 'id', 'name', 'role']);
  });
});

describe('the CRD admits what the construct admits', () => {
  test.each([
    ['an etcd store with every field', VALID_SPEC],
    ['a custom engine with int-or-string probe ports', CUSTOM_SPEC],
    ['the smallest etcd store', { engine: ETCD }],
  ])('accepts %s', (_, spec) => {
    expect(admit(spec).errors).toEqual([]);
    expect(constructAccepts(spec)).toBe(true);
  });

  test('defaults what the scale subresource and the engine need, as the API server would', () => {
    expect(admit({}).resource.spec).toEqual({ size: 3, engine: { kind: 'etcd' } });
    expect(admit({ engine: { version: '3.6.0' } }).resource.spec.engine).toEqual({ kind: 'etcd', version: '3.6.0' });
  });

  test('accepts a status as the reconciler writes it', () => {
    const resource = structuredClone({
      metadata: { name: 'orders' },
      spec: { engine: ETCD },
      status: {
        replicas: 3, readyReplicas: 2, selector: 'app.kubernetes.io/name=kvstore,app.kubernetes.io/instance=orders', observedGeneration: 4,
        specHash: '0123456789',
        members: [{ name: 'orders-0', id: '8e9e05c52164694d', role: 'leader', healthy: true }],
        conditions: [{ type: 'Ready', status: 'False', reason: 'MembersNotReady', message: '2/3 ready', lastTransitionTime: '2025-01-01T00:00:00Z', observedGeneration: 4 }],
      },
    });
    expect(validateResource(resource)).toBe(true);
    expect(validateResource({ ...resource, status: { conditions: [{ type: 'Ready', status: 'Maybe' }] } })).toBe(false);
  });

  test('accepts the status nextStatus() really builds, in every state', () => {
    const resource = { apiVersion: `${KVSTORE_GROUP}/${KVSTORE_VERSION}`, kind: KVSTORE_KIND, metadata: { name: 'orders', generation: 2 }, spec: { size: 3, engine: ETCD } };
    const sts = { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'orders' }, spec: { replicas: 3 }, status: { replicas: 3, readyReplicas: 3 } };
    for (const state of ['ready', 'progressing', 'degraded'] as const) {
      const status = nextStatus(resource, { state, reason: 'R', message: 'm' }, state === 'degraded' ? undefined : sts, new Date('2026-01-01T00:00:00Z'), '0123456789');
      expect({ state, ok: validateResource(structuredClone({ ...resource, status })), errors: validateResource.errors ?? null }).toEqual({ state, ok: true, errors: null });
    }
  });
});

describe('the CRD rejects what the construct rejects', () => {
  test.each<[string, Record<string, unknown>]>([
    ['size 0', { size: 0 }],
    ['size 2.5', { size: 2.5 }],
    ['size above the maximum', { size: 100 }],
    ["storageSize '10Gb'", { storageSize: '10Gb' }],
    ['an engine kind that is not etcd or custom', { engine: { ...ETCD, kind: 'redis' } }],
    ['a retention that is not Retain or Delete', { persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Keep' } }],
    ['an image with uppercase in the repository', { image: 'Registry/Etcd:v3' }],
    ['no volume claim templates', { volumeClaimTemplates: [] }],
    ['an unknown access mode', { volumeClaimTemplates: [{ name: 'data', accessModes: ['ReadWriteSometimes'] }] }],
    ['a bad resource quantity', { resources: { requests: { cpu: 'lots' } } }],
    ['a bad label value', { labels: { team: 'not valid!' } }],
    ['root', { runAsUser: 0 }],
    ['an unknown anti-affinity', { podAntiAffinity: 'always' }],
    ['an update strategy without type', { updateStrategy: { partition: 1 } }],
  ])('rejects %s', (_, extra) => {
    const spec = { engine: ETCD, ...extra };
    expect(admit(spec).ok).toBe(false);
    expect(constructAccepts(spec)).toBe(false);
  });

  test('rejects a custom engine port out of range and a non-integer probe port', () => {
    expect(admit({ ...CUSTOM_SPEC, engine: { ...CUSTOM_SPEC.engine, clientPort: 70000 } }).ok).toBe(false);
    expect(admit({ ...CUSTOM_SPEC, engine: { ...CUSTOM_SPEC.engine, readinessProbe: { tcpSocket: { port: 1.5 } } } }).ok).toBe(false);
  });
});

describe('the generated KVStoreResource class', () => {
  test('declares a KVStore resource the CRD admits', () => {
    // GIVEN
    const chart = testChart('shop');
    // WHEN
    new KVStoreResource(chart, 'orders', {
      metadata: { name: 'orders' },
      spec: {
        size: 5,
        storageSize: '20Gi',
        engine: {
          kind: KVStoreResourceSpecEngineKind.CUSTOM,
          clientPort: 6379,
          readinessProbe: { tcpSocket: { port: KVStoreResourceSpecEngineReadinessProbeTcpSocketPort.fromString('client') } },
        },
        image: 'docker.io/library/redis:7.2',
        persistentVolumeClaimRetentionPolicy: { whenDeleted: KVStoreResourceSpecPersistentVolumeClaimRetentionPolicyWhenDeleted.DELETE },
      },
    });
    // THEN
    const [resource] = Testing.synth(chart);
    expect(resource).toEqual({
      apiVersion: 'kvstore.cdk8s-kvstore.io/v1',
      kind: 'KVStore',
      metadata: { name: 'orders', namespace: 'shop' },
      spec: {
        size: 5,
        storageSize: '20Gi',
        engine: { kind: 'custom', clientPort: 6379, readinessProbe: { tcpSocket: { port: 'client' } } },
        image: 'docker.io/library/redis:7.2',
        persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Delete' },
      },
    });
    expect(validateResource(structuredClone(resource))).toBe(true);
    expect(constructAccepts(resource.spec)).toBe(true);
  });
});
