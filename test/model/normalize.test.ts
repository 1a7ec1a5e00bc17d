// The spec: defaults, canonical form, hash, and one test per validation rule.
import { createHash } from 'crypto';
import { readFileSync } from 'fs';
import { join } from 'path';
import { Engine } from '../../lib/engines/engine';
import { canonicalJson, specHash } from '../../lib/model/document';
import { SpecError } from '../../lib/model/issues';
import { namespaceIssues, normalizeSpec } from '../../lib/model/normalize';
import { EngineDefaults, KVStoreSpec, KVStoreSpecInput } from '../../lib/model/spec';
import { DEFAULT_RECONCILER_IMAGE } from '../../lib/model/version';

const DEFAULTS: EngineDefaults = { image: 'x/etcd:v1', podManagementPolicy: 'Parallel' };
const ETCD = Engine.etcd().spec;

/** A valid input for store 'orders', with `extra` on top. */
function normalize(extra: Partial<KVStoreSpecInput> = {}, defaults: EngineDefaults = DEFAULTS): KVStoreSpec {
  return normalizeSpec({ name: 'orders', engine: ETCD, ...extra }, defaults);
}

/** Like `normalize`, for data TypeScript would refuse (as a KVStore resource from YAML may carry). */
function normalizeUntyped(extra: Record<string, unknown>): KVStoreSpec {
  return normalizeSpec({ name: 'orders', engine: ETCD, ...extra } as unknown as KVStoreSpecInput, DEFAULTS);
}

/** The message normalizeSpec throws, or a failure if it does not throw. */
function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error, got none');
}

/** Reverses key order at every level: same data, different insertion order. */
function reversedKeys<T>(value: T): T {
  if (Array.isArray(value)) return value.map(reversedKeys) as T;
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).reverse().map((k) => [k, reversedKeys((value as Record<string, unknown>)[k])])) as T;
  }
  return value;
}

describe('normalizeSpec defaults', () => {
  test('applies every default to a minimal input', () => {
    expect(normalize()).toStrictEqual({
      name: 'orders',
      size: 3,
      image: 'x/etcd:v1',
      engine: ETCD,
      volumeClaimTemplates: [
        { name: 'data', storage: '10Gi', accessModes: ['ReadWriteOnce'], mountPath: '/var/lib/kvstore/data' },
      ],
      persistentVolumeClaimRetentionPolicy: { whenScaled: 'Retain', whenDeleted: 'Retain' },
      resources: { requests: { cpu: '100m', memory: '256Mi' } },
      clusterDomain: 'cluster.local',
      labels: {},
      annotations: {},
      podAnnotations: {},
      podAntiAffinity: 'soft',
      topologySpreadConstraints: [],
      updateStrategy: { type: 'RollingUpdate', partition: 0 },
      podManagementPolicy: 'Parallel',
      networkPolicy: { enabled: true, clientPodLabels: { 'orders-client': 'true' }, egress: false },
      runAsUser: 65532,
      nodeSelector: {},
      tolerations: [],
      imagePullSecrets: [],
      patches: [],
    });
  });

  test('a toleration\'s operator defaults to Equal, as in Kubernetes', () => {
    expect(normalize({ tolerations: [{ key: 'dedicated', value: 'kv', effect: 'NoSchedule' }, { operator: 'Exists' }, { key: 'k', operator: 'Exists', value: '' }] }).tolerations).toStrictEqual([
      { key: 'dedicated', value: 'kv', effect: 'NoSchedule', operator: 'Equal' },
      { operator: 'Exists' },
      { key: 'k', operator: 'Exists', value: '' },
    ]);
  });

  test('takes podManagementPolicy from the engine defaults', () => {
    expect(normalize({}, { image: 'x/kv:v1', podManagementPolicy: 'OrderedReady' }).podManagementPolicy).toBe('OrderedReady');
  });

  test('an explicit podManagementPolicy wins over the engine default', () => {
    expect(normalize({ podManagementPolicy: 'OrderedReady' }).podManagementPolicy).toBe('OrderedReady');
  });

  test('an explicit image wins over the engine default', () => {
    expect(normalize({ image: 'registry.example.com:5000/team/etcd:v3.5.21' }).image).toBe('registry.example.com:5000/team/etcd:v3.5.21');
  });

  test('drops keys whose value is undefined, as typed props carry them', () => {
    expect(normalize({ size: undefined, storageSize: undefined, labels: undefined })).toStrictEqual(normalize());
  });

  test('a rolling update keeps its partition', () => {
    expect(normalize({ updateStrategy: { type: 'RollingUpdate', partition: 2 } }).updateStrategy).toStrictEqual({ type: 'RollingUpdate', partition: 2 });
  });

  test('OnDelete carries no partition', () => {
    expect(normalize({ updateStrategy: { type: 'OnDelete' } }).updateStrategy).toStrictEqual({ type: 'OnDelete' });
  });

  test('topology spread constraints default maxSkew 1 and ScheduleAnyway', () => {
    expect(normalize({ topologySpreadConstraints: [{ topologyKey: 'topology.kubernetes.io/zone' }] }).topologySpreadConstraints)
      .toStrictEqual([{ topologyKey: 'topology.kubernetes.io/zone', maxSkew: 1, whenUnsatisfiable: 'ScheduleAnyway' }]);
  });

  test('network policy client namespace labels are kept, client pod labels still defaulted', () => {
    expect(normalize({ networkPolicy: { clientNamespaceLabels: { team: 'shop' } } }).networkPolicy).toStrictEqual({
      enabled: true,
      clientPodLabels: { 'orders-client': 'true' },
      clientNamespaceLabels: { team: 'shop' },
      egress: false,
    });
  });
});

describe('normalizeSpec volume claim templates', () => {
  test('a template inherits storageSize and storageClassName from the store', () => {
    const spec = normalize({ storageSize: '20Gi', storageClassName: 'fast-ssd', volumeClaimTemplates: [{ name: 'data' }] });
    expect(spec.volumeClaimTemplates).toStrictEqual([
      { name: 'data', storage: '20Gi', storageClassName: 'fast-ssd', accessModes: ['ReadWriteOnce'], mountPath: '/var/lib/kvstore/data' },
    ]);
  });

  test('a template keeps its own storage, class, access modes and mount path', () => {
    const spec = normalize({
      storageSize: '20Gi',
      storageClassName: 'fast-ssd',
      volumeClaimTemplates: [
        { name: 'data' },
        { name: 'wal', storage: '5Gi', storageClassName: 'nvme', accessModes: ['ReadWriteOncePod'], mountPath: '/wal' },
      ],
    });
    expect(spec.volumeClaimTemplates[1]).toStrictEqual(
      { name: 'wal', storage: '5Gi', storageClassName: 'nvme', accessModes: ['ReadWriteOncePod'], mountPath: '/wal' },
    );
  });

  test('each template defaults its mount path under /var/lib/kvstore', () => {
    const spec = normalize({ volumeClaimTemplates: [{ name: 'data' }, { name: 'wal' }] });
    expect(spec.volumeClaimTemplates.map((t) => t.mountPath)).toStrictEqual(['/var/lib/kvstore/data', '/var/lib/kvstore/wal']);
  });

  test('no storageClassName key when neither store nor template sets one', () => {
    const [data] = normalize({ volumeClaimTemplates: [{ name: 'data' }] }).volumeClaimTemplates;
    expect(Object.keys(data)).not.toContain('storageClassName');
  });
});

describe('canonicalJson', () => {
  test('sorts keys at every level and keeps array order', () => {
    expect(canonicalJson({ b: 1, a: { d: [{ y: 1, x: 2 }, 3], c: null } })).toBe('{"a":{"c":null,"d":[{"x":2,"y":1},3]},"b":1}');
  });

  test('does not depend on key insertion order', () => {
    expect(canonicalJson({ name: 'orders', size: 3, labels: { b: '2', a: '1' } }))
      .toBe(canonicalJson({ labels: { a: '1', b: '2' }, size: 3, name: 'orders' }));
  });

  test('drops keys whose value is undefined', () => {
    expect(canonicalJson({ a: undefined, b: 1 })).toBe('{"b":1}');
  });
});

describe('specHash', () => {
  test('is 10 hex characters of the sha256 of the canonical JSON', () => {
    const spec = normalize();
    const expected = createHash('sha256').update(canonicalJson(spec)).digest('hex').slice(0, 10);
    expect(specHash(spec)).toBe(expected);
    expect(specHash(spec)).toMatch(/^[0-9a-f]{10}$/);
  });

  test('honours the requested length', () => {
    const spec = normalize();
    expect(specHash(spec, 16)).toHaveLength(16);
    expect(specHash(spec, 16).startsWith(specHash(spec))).toBe(true);
  });

  test('is stable: equal inputs give equal hashes', () => {
    expect(specHash(normalize({ size: 5 }))).toBe(specHash(normalize({ size: 5 })));
  });

  test('ignores key order', () => {
    const spec = normalize({ labels: { team: 'shop', tier: 'db' } });
    expect(specHash(reversedKeys(spec))).toBe(specHash(spec));
  });

  test('changes when the size changes', () => {
    expect(specHash(normalize({ size: 5 }))).not.toBe(specHash(normalize({ size: 3 })));
  });

  test('changes when the storage size changes', () => {
    expect(specHash(normalize({ storageSize: '20Gi' }))).not.toBe(specHash(normalize()));
  });
});

describe('normalizeSpec validation', () => {
  test('throws a SpecError carrying the store name and the issues', () => {
    const error = errorOf(() => normalize({ size: 0 }));
    expect(error).toBeInstanceOf(SpecError);
    expect((error as SpecError).storeName).toBe('orders');
    expect((error as SpecError).issues).toStrictEqual([{ field: 'size', value: 0, allowed: 'an integer from 1 to 99' }]);
  });

  test.each([
    [0, '0'],
    [-1, '-1'],
    [2.5, '2\\.5'],
    [NaN, 'NaN'],
    [100, '100'],
  ])('fails on size %p', (size, shown) => {
    expect(() => normalize({ size })).toThrow(new RegExp(`^KVStore 'orders': size must be an integer from 1 to 99, got ${shown}$`));
  });

  test('accepts size 99', () => {
    expect(normalize({ size: 99 }).size).toBe(99);
  });

  test.each(['10Gb', '-1Gi', ''])('fails on storageSize %j', (storageSize) => {
    expect(() => normalize({ storageSize })).toThrow(new RegExp(
      `^KVStore 'orders': storageSize must be a storage size as a Kubernetes quantity such as 10Gi or 500M \\(digits with an optional suffix m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi or Ei\\), got "${storageSize}"$`,
    ));
  });

  test('fails on storageSize 0, naming the field the user wrote', () => {
    expect(() => normalize({ storageSize: '0' }))
      .toThrow(/^KVStore 'orders': storageSize must be a storage size greater than zero, got "0"$/);
  });

  test('fails on a template storage of 0', () => {
    expect(() => normalize({ volumeClaimTemplates: [{ name: 'data', storage: '0Gi' }] }))
      .toThrow(/^KVStore 'orders': volumeClaimTemplates\[0\]\.storage must be a storage size greater than zero, got "0Gi"$/);
  });

  test('fails on a mountPath of /tmp/ (trailing slashes do not hide a collision)', () => {
    expect(() => normalize({ volumeClaimTemplates: [{ name: 'data', mountPath: '/tmp/' }] }))
      .toThrow(/volumeClaimTemplates\[0\]\.mountPath must be a path other than \/tmp, got "\/tmp"/);
  });

  test.each(['', 'Etcd:latest', 'etcd latest'])('fails on image %j', (image) => {
    expect(() => normalize({ image })).toThrow(new RegExp(
      `^KVStore 'orders': image must be an image reference like registry\\.example\\.com/team/etcd:v3\\.5\\.21 \\(lowercase repository, no spaces\\), got "${image}"$`,
    ));
  });

  test('accepts an uppercase tag and a digest', () => {
    const image = `quay.io/coreos/etcd:V3.5.21@sha256:${'a'.repeat(64)}`;
    expect(normalize({ image }).image).toBe(image);
  });

  test('fails on a name that is not a DNS-1123 label', () => {
    expect(() => normalizeSpec({ name: 'My_Store', engine: ETCD }, DEFAULTS)).toThrow(
      /^KVStore 'My_Store': name must be a DNS-1[0-9]+ label \(lowercase letters, digits and '-', .*\) of at most 52 characters, got "My_Store"$/,
    );
  });

  test('fails on a name of 53 characters', () => {
    const name = 'a'.repeat(53);
    expect(() => normalizeSpec({ name, engine: ETCD }, DEFAULTS)).toThrow(
      new RegExp(`^KVStore '${name}': name must be .* of at most 52 characters, got "${name}"$`),
    );
  });

  test('accepts a name of 52 characters', () => {
    const name = 'a'.repeat(52);
    expect(normalizeSpec({ name, engine: ETCD }, DEFAULTS).name).toBe(name);
  });

  // The store name becomes Service names, which Kubernetes checks as DNS-1035 labels (first character a letter).
  test('fails on a name starting with a digit', () => {
    expect(() => normalizeSpec({ name: '1orders', engine: ETCD }, DEFAULTS)).toThrow(/^KVStore '1orders': name must be .+, got "1orders"$/);
  });

  test('fails on duplicate volume claim template names', () => {
    expect(() => normalize({ volumeClaimTemplates: [{ name: 'data' }, { name: 'data', mountPath: '/other' }] })).toThrow(
      /^KVStore 'orders': volumeClaimTemplates\[1\]\.name must be unique among the volume claim templates, got "data" \(each template becomes one PVC per member\)$/,
    );
  });

  test('fails on a volume claim template named tmp', () => {
    expect(() => normalize({ volumeClaimTemplates: [{ name: 'tmp' }] })).toThrow(
      /^KVStore 'orders': volumeClaimTemplates\[0\]\.name must be a name other than tmp, backups, tls or client-tls, got "tmp" \(the pod or its backup and restore Jobs already have a volume of that name\)$/,
    );
  });

  test('fails on duplicate mount paths', () => {
    expect(() => normalize({ volumeClaimTemplates: [{ name: 'data', mountPath: '/d' }, { name: 'wal', mountPath: '/d' }] })).toThrow(
      /^KVStore 'orders': volumeClaimTemplates\[1\]\.mountPath must be unique among the volume claim templates, got "\/d"$/,
    );
  });

  test('fails on mount path /tmp', () => {
    expect(() => normalize({ volumeClaimTemplates: [{ name: 'data', mountPath: '/tmp' }] })).toThrow(
      /^KVStore 'orders': volumeClaimTemplates\[0\]\.mountPath must be a path other than \/tmp, got "\/tmp" \(the pod mounts its scratch volume there\)$/,
    );
  });

  test('fails on a relative mount path', () => {
    expect(() => normalize({ volumeClaimTemplates: [{ name: 'data', mountPath: 'data' }] })).toThrow(
      /^KVStore 'orders': volumeClaimTemplates\[0\]\.mountPath must be an absolute path other than \/ without ":", got "data"$/,
    );
  });

  test.each(['whenScaled', 'whenDeleted'])('fails on retention %s Keep', (when) => {
    expect(() => normalizeUntyped({ persistentVolumeClaimRetentionPolicy: { [when]: 'Keep' } })).toThrow(
      new RegExp(`^KVStore 'orders': persistentVolumeClaimRetentionPolicy\\.${when} must be Retain or Delete, got "Keep"$`),
    );
  });

  test('fails on an unknown field, listing the known ones', () => {
    expect(() => normalizeUntyped({ sise: 3 })).toThrow(
      /^KVStore 'orders': sise must be absent: it is not a known field \(known: name, engine, size, image, storageSize, .*, nodeSelector, tolerations, imagePullSecrets, priorityClassName, patches, tls, clients, backup, restore\), got 3$/,
    );
  });

  test('fails on an unknown access mode', () => {
    expect(() => normalizeUntyped({ volumeClaimTemplates: [{ name: 'data', accessModes: ['ReadWriteSometimes'] }] })).toThrow(
      /^KVStore 'orders': volumeClaimTemplates\[0\]\.accessModes\[0\] must be ReadWriteOnce, ReadOnlyMany, ReadWriteMany or ReadWriteOncePod, got "ReadWriteSometimes"$/,
    );
  });

  test('fails on an empty access mode list', () => {
    expect(() => normalize({ volumeClaimTemplates: [{ name: 'data', accessModes: [] }] })).toThrow(
      /^KVStore 'orders': volumeClaimTemplates\[0\]\.accessModes must be a non-empty list of access modes, got \[\]$/,
    );
  });

  test('fails on a partition above the size', () => {
    expect(() => normalize({ size: 3, updateStrategy: { type: 'RollingUpdate', partition: 4 } })).toThrow(
      /^KVStore 'orders': updateStrategy\.partition must be an integer from 0 to size \(3\), got 4$/,
    );
  });

  test('accepts a partition equal to the size', () => {
    expect(normalize({ size: 3, updateStrategy: { type: 'RollingUpdate', partition: 3 } }).updateStrategy).toStrictEqual({ type: 'RollingUpdate', partition: 3 });
  });

  test('fails on a limit below its request', () => {
    expect(() => normalize({ resources: { requests: { memory: '256Mi' }, limits: { memory: '128Mi' } } })).toThrow(
      /^KVStore 'orders': resources\.limits\.memory must be at least the request \(256Mi\), got "128Mi"$/,
    );
  });

  test('compares limits and requests as quantities, not strings', () => {
    expect(normalize({ resources: { requests: { cpu: '500m' }, limits: { cpu: '1' } } }).resources.limits).toStrictEqual({ cpu: '1' });
  });

  test('fails on an invalid label key', () => {
    expect(() => normalize({ labels: { 'bad key': 'x' } })).toThrow(
      /KVStore 'orders': labels key must be a label key \(an optional DNS prefix and "\/", then up to 63 characters of \[A-Za-z0-9-_.\]\), got "bad key"/,
    );
  });

  test('reports an invalid label key once', () => {
    expect(errorOf(() => normalize({ labels: { 'bad key': 'x' } })).message.split('\n')).toHaveLength(1);
  });

  test('fails on an invalid label value', () => {
    expect(() => normalize({ labels: { tier: 'bad value!' } })).toThrow(
      /^KVStore 'orders': labels\.tier must be a label value \(up to 63 characters of \[A-Za-z0-9-_.\], starting and ending alphanumeric\), got "bad value!"$/,
    );
  });

  test('fails on a label key the library sets, each one reported with why', () => {
    const lines = errorOf(() => normalize({ labels: { 'app.kubernetes.io/instance': 'x', 'team': 'shop', 'app.kubernetes.io/managed-by': 'helm' } })).message.split('\n');
    const allowed = 'a key other than app.kubernetes.io/name, app.kubernetes.io/instance, app.kubernetes.io/managed-by, app.kubernetes.io/component or kvstore.cdk8s-kvstore.io/store';
    expect(lines).toStrictEqual([
      `KVStore 'orders': labels key must be ${allowed}, got "app.kubernetes.io/instance" (it selects the store's pods)`,
      `KVStore 'orders': labels key must be ${allowed}, got "app.kubernetes.io/managed-by" (the library sets it on every object)`,
    ]);
  });

  test('other keys of the app.kubernetes.io prefix are the user\'s', () => {
    expect(normalize({ labels: { 'app.kubernetes.io/part-of': 'shop', 'app.kubernetes.io/version': '3' } }).labels)
      .toStrictEqual({ 'app.kubernetes.io/part-of': 'shop', 'app.kubernetes.io/version': '3' });
  });

  test.each(['annotations', 'podAnnotations'] as const)('fails on an invalid %s key', (field) => {
    expect(() => normalize({ [field]: { 'bad key': 'x' } })).toThrow(
      new RegExp(`^KVStore 'orders': ${field} key must be an annotation key \\(.*alphanumeric at both ends\\), got "bad key"$`),
    );
    expect(() => normalize({ [field]: { [`${'a'.repeat(63)}x`]: 'x' } })).toThrow(/key must be an annotation key/);
  });

  test('annotation keys follow label keys; their values are free strings', () => {
    const annotations = { 'example.com/owner': 'Team Shop <shop@example.com>', 'a_b.c-d': '', [`${'a'.repeat(63)}`]: '{"json": true}' };
    expect(normalize({ annotations, podAnnotations: annotations })).toMatchObject({ annotations, podAnnotations: annotations });
  });

  test('fails without an image when the engine has no default image', () => {
    expect(() => normalize({}, { podManagementPolicy: 'Parallel' })).toThrow(
      /^KVStore 'orders': image must be set: this engine has no default image, got nothing$/,
    );
  });

  test('reports every issue, one line each', () => {
    const lines = errorOf(() => normalize({ size: 0, image: '', storageSize: '10Gb' })).message.split('\n');
    expect(lines).toHaveLength(3);
    expect(lines).toEqual(expect.arrayContaining([
      expect.stringMatching(/^KVStore 'orders': size must be .*, got 0$/),
      expect.stringMatching(/^KVStore 'orders': image must be .*, got ""$/),
      expect.stringMatching(/^KVStore 'orders': storageSize must be .*, got "10Gb"$/),
    ]));
  });

  test('reports every cross-field issue, one line each', () => {
    const lines = errorOf(() => normalize({ volumeClaimTemplates: [{ name: 'tmp', mountPath: '/tmp' }] })).message.split('\n');
    expect(lines).toStrictEqual([
      "KVStore 'orders': volumeClaimTemplates[0].name must be a name other than tmp, backups, tls or client-tls, got \"tmp\" (the pod or its backup and restore Jobs already have a volume of that name)",
      "KVStore 'orders': volumeClaimTemplates[0].mountPath must be a path other than /tmp, got \"/tmp\" (the pod mounts its scratch volume there)",
    ]);
  });
});

describe('tolerations, registry credentials, priority, patches', () => {
  test.each([
    [{ tolerations: [{ key: 'a', operator: 'Exists' as const, value: 'x' }] }, /^KVStore 'orders': tolerations\[0\]\.value must be left out with operator Exists, got "x" \(Exists tolerates every value of the key\)$/],
    [{ tolerations: [{ value: 'x' }] }, /^KVStore 'orders': tolerations\[0\]\.key must be set with operator Equal \(or operator Exists to tolerate every taint\), got nothing$/],
    [{ tolerations: [{ key: 'a', effect: 'NoSchedule' as const, tolerationSeconds: 30 }] }, /^KVStore 'orders': tolerations\[0\]\.tolerationSeconds must be left out unless effect is NoExecute, got 30/],
    [{ tolerations: [{ key: 'a', effect: 'NoRun' as any }] }, /^KVStore 'orders': tolerations\[0\]\.effect must be NoSchedule, PreferNoSchedule or NoExecute, got "NoRun"$/],
    [{ imagePullSecrets: ['regcred', 'other', 'regcred'] }, /^KVStore 'orders': imagePullSecrets\[2\] must be a Secret not listed before, got "regcred" \(Kubernetes keys the list by name and refuses duplicates\)$/],
    [{ patches: [{ kind: 'StatefulSet', ops: [{ op: 'test' as any, path: '/spec/replicas', value: 3 }] }] }, /^KVStore 'orders': patches\[0\]\.ops\[0\]\.op must be add, remove, replace, move or copy \(no test: .*\), got "test"$/],
    [{ imagePullSecrets: ['Registry Creds'] }, /^KVStore 'orders': imagePullSecrets\[0\] must be a Secret name \(a DNS-1123 subdomain\), got "Registry Creds"$/],
    [{ priorityClassName: 'High_Priority' }, /^KVStore 'orders': priorityClassName must be a PriorityClass name \(a DNS-1123 subdomain\), got "High_Priority"$/],
    [{ patches: [{ kind: 'Deployment', ops: [{ op: 'add' as const, path: '/x', value: 1 }] }] }, /^KVStore 'orders': patches\[0\]\.kind must be the kind of an object the store synthesizes \(StatefulSet, Service, .* or PersistentVolumeClaim\), got "Deployment"$/],
    [{ patches: [{ kind: 'StatefulSet', ops: [] }] }, /^KVStore 'orders': patches\[0\]\.ops must be a non-empty list of JSON Patch operations, got \[\]$/],
    [{ patches: [{ kind: 'StatefulSet', ops: [{ op: 'add' as const, path: 'spec/x', value: 1 }] }] }, /^KVStore 'orders': patches\[0\]\.ops\[0\]\.path must be a JSON Pointer such as .*, got "spec\/x"$/],
    [{ patches: [{ kind: 'StatefulSet', ops: [{ op: 'replace' as const, path: '/spec/x' }] }] }, /^KVStore 'orders': patches\[0\]\.ops\[0\]\.value must be set for op replace, got nothing$/],
    [{ patches: [{ kind: 'StatefulSet', ops: [{ op: 'copy' as const, path: '/spec/x' }] }] }, /^KVStore 'orders': patches\[0\]\.ops\[0\]\.from must be set for op copy, got nothing$/],
  ])('refuses %j', (extra, message) => {
    expect(() => normalize(extra)).toThrow(message);
  });

  test('the new fields are a fixed point (the reconciler normalizes a normalized spec again)', () => {
    for (const extra of [
      { tls: {}, clients: [{ name: 'api', read: ['a/'] }], networkPolicy: { egress: true } },
      { tls: { issuer: { name: 'corp' } } },
      { tls: { memberSecret: 'm', clientSecret: 'c' } },
      { tolerations: [{ key: 'k', value: 'v' }], imagePullSecrets: ['r'], priorityClassName: 'p', patches: [{ kind: 'Service', ops: [{ op: 'add' as const, path: '/x', value: { a: 1 } }] }] },
    ]) {
      const once = normalize(extra);
      const { name: _n, engine: _e, ...rest } = once;
      expect(normalize(JSON.parse(JSON.stringify(rest)))).toStrictEqual(once);
    }
  });

  test('keeps what is valid as given', () => {
    const patches = [{ kind: 'StatefulSet', name: 'orders', ops: [{ op: 'add' as const, path: '/spec/template/spec/hostAliases', value: [{ ip: '10.0.0.1', hostnames: ['db'] }] }] }];
    expect(normalize({ imagePullSecrets: ['regcred'], priorityClassName: 'high', patches })).toMatchObject({ imagePullSecrets: ['regcred'], priorityClassName: 'high', patches });
  });
});

describe('backup and restore', () => {
  const backup = { pruneImage: 'registry.example.com/kvstore-reconciler:1' };

  test('backup defaults: hourly, 24 kept, a <name>-backups claim sized like the store', () => {
    expect(normalize({ storageSize: '5Gi', backup }).backup).toEqual({
      schedule: '0 * * * *', keep: 24, claimName: 'orders-backups', storage: '5Gi', pruneImage: backup.pruneImage,
    });
  });

  test('an existing claim is used as it is: no size, no class', () => {
    expect(normalize({ storageClassName: 'fast', backup: { ...backup, claimName: 'shared-backups' } }).backup).toEqual({
      schedule: '0 * * * *', keep: 24, claimName: 'shared-backups', pruneImage: backup.pruneImage,
    });
  });

  test('the normalized backup is a fixed point (the reconciler normalizes it again)', () => {
    for (const b of [backup, { ...backup, claimName: 'shared' }, { ...backup, claimName: 'mine', storage: '3Gi', storageClassName: 'fast' }]) {
      const once = normalize({ backup: b });
      expect(normalize({ backup: once.backup, restore: { snapshot: 's.db' } }).backup).toEqual(once.backup);
    }
  });

  test('restore defaults to the backup claim', () => {
    expect(normalize({ backup, restore: { snapshot: 'orders-backup-123.db' } }).restore).toEqual({ snapshot: 'orders-backup-123.db', claimName: 'orders-backups' });
    expect(normalize({ backup: { ...backup, claimName: 'shared' }, restore: { snapshot: 's.db' } }).restore).toEqual({ snapshot: 's.db', claimName: 'shared' });
  });

  test('fails on a schedule that is not cron', () => {
    expect(() => normalize({ backup: { ...backup, schedule: 'every hour' } })).toThrow(
      /^KVStore 'orders': backup\.schedule must be a cron schedule of five fields such as "0 \* \* \* \*", or a macro such as @hourly, got "every hour"$/,
    );
  });

  test('fails on keep 0', () => {
    expect(() => normalize({ backup: { ...backup, keep: 0 } })).toThrow(/^KVStore 'orders': backup\.keep must be an integer from 1 to 1000, got 0$/);
  });

  test('backup: {} needs nothing else: the prune image defaults to the reconciler image of this library version', () => {
    const version = (JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
    expect(normalize({ backup: {} }).backup!.pruneImage).toBe(`ghcr.io/cdk8s-kvstore/kvstore-reconciler:${version}`);
    expect(DEFAULT_RECONCILER_IMAGE).toBe(`ghcr.io/cdk8s-kvstore/kvstore-reconciler:${version}`);
  });

  test('fails on a storage class for an existing claim', () => {
    expect(() => normalize({ backup: { ...backup, claimName: 'x', storageClassName: 'fast' } })).toThrow(/^KVStore 'orders': backup\.storageClassName must be left out when backup\.claimName names an existing PVC \(no backup\.storage\), got "fast"/);
  });

  test('fails on a snapshot path with directories', () => {
    expect(() => normalize({ backup, restore: { snapshot: '../etc/passwd' } })).toThrow(/^KVStore 'orders': restore\.snapshot must be a snapshot file name .*, got "\.\.\/etc\/passwd"$/);
  });

  test('fails on a restore without a claim when there is no backup', () => {
    expect(() => normalize({ restore: { snapshot: 's.db' } })).toThrow(/^KVStore 'orders': restore\.claimName must be the PVC holding the snapshot .*, got nothing$/);
  });
});

describe('namespaceIssues', () => {
  test.each(['Bad_NS', 'shop.prod', '-shop', 'shop-', 'a'.repeat(64), ''])('fails on %p', (namespace) => {
    expect(namespaceIssues(namespace)).toStrictEqual([{
      field: 'namespace',
      value: namespace,
      allowed: "a DNS-1123 label (lowercase letters, digits and '-', starting and ending alphanumeric) of at most 63 characters",
    }]);
  });

  test.each([undefined, 'shop', 'team-1', '0', 'a'.repeat(63)])('passes %p', (namespace) => {
    expect(namespaceIssues(namespace)).toStrictEqual([]);
  });
});
