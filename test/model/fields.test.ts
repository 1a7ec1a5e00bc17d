// One source of truth for the fields: lib/model/fields.ts documents every field once; the construct's
// props, the backup/restore options, the spec defaults and the README's props table must agree with it.
// (The JSON schema and so the CRD read their descriptions from it directly.)
import { readFileSync } from 'fs';
import { join } from 'path';
import { Engine } from '../../lib/engines/engine';
import { crdSchema } from '../../lib/constructs/kv-store-crd';
import { DEFAULT_ETCD_VERSION, ETCD_MAX_SIZE } from '../../lib/engines/etcd';
import { BACKUP_FIELDS, CUSTOM_FIELDS, defaultsSentence, ETCD_FIELDS, FieldDoc, RESTORE_FIELDS, SPEC_FIELDS, TLS_FIELDS, CLIENT_FIELDS } from '../../lib/model/fields';
import { MAX_SIZE } from '../../lib/model/schema';
import { normalizeSpec } from '../../lib/model/normalize';
import { interfaceDocs, PropertyDoc } from '../../scripts/interface-docs';
import { README, readmeWithTable } from '../../scripts/readme-props';

const ROOT = join(__dirname, '..', '..');
const KV_STORE = join(ROOT, 'lib', 'constructs', 'kv-store.ts');
const OPTIONS = join(ROOT, 'lib', 'constructs', 'store-options.ts');
const SPEC = join(ROOT, 'lib', 'model', 'spec.ts');

/**
 * Props that are the construct's alone: no spec field (the reconciler is how the spec is applied; the
 * monitoring objects sit in the chart, where the GitOps tool applies them, and a KVStore resource has none).
 */
const PROPS_ONLY = ['reconciler', 'metrics'];

/** What a prop's doc comment must say for a field. */
const expected = (doc: FieldDoc) => ({ summary: doc.propDescription ?? doc.description, default: doc.propDefault ?? doc.default });
const said = (p: PropertyDoc) => ({ summary: p.summary, default: p.default });

function byProp(fields: Record<string, FieldDoc>): Map<string, FieldDoc> {
  return new Map(Object.entries(fields).map(([field, doc]) => [doc.prop ?? field, doc]));
}

describe('KVStoreProps agree with lib/model/fields.ts', () => {
  const props = interfaceDocs(KV_STORE, 'KVStoreProps');
  const fields = byProp(SPEC_FIELDS);

  test('every spec field is a prop, and every prop but the construct\'s own is a spec field', () => {
    expect(props.map((p) => p.name).filter((n) => !PROPS_ONLY.includes(n)).sort()).toEqual([...fields.keys()].sort());
  });

  test.each(props.filter((p) => !PROPS_ONLY.includes(p.name)).map((p) => [p.name, p] as const))('%s: same description and default', (_, prop) => {
    expect(said(prop)).toEqual(expected(fields.get(prop.name)!));
  });
});

describe.each([
  [SPEC, 'BackupOptions', BACKUP_FIELDS],
  [SPEC, 'RestoreOptions', RESTORE_FIELDS],
  [SPEC, 'TlsOptions', TLS_FIELDS],
  [SPEC, 'ClientAccess', CLIENT_FIELDS],
  [SPEC, 'CustomEngineOptions', CUSTOM_FIELDS],
  [join(ROOT, 'lib', 'engines', 'etcd.ts'), 'EtcdOptions', ETCD_FIELDS],
] as const)('%s/%s agree with lib/model/fields.ts', (file, name, table) => {
  const props = interfaceDocs(file, name);
  test('the same fields', () => {
    expect(props.map((p) => p.name).sort()).toEqual(Object.keys(table).sort());
  });
  test.each(props.map((p) => [p.name, p] as const))('%s: same description and default', (_, prop) => {
    expect(said(prop)).toEqual(expected((table as Record<string, FieldDoc>)[prop.name]));
  });
});

describe('the CRD says what fields.ts says', () => {
  const spec = (crdSchema().properties as any).spec.properties;
  const says = (node: any, doc: FieldDoc) => ({ starts: node.description.startsWith(doc.description), defaults: node.description.endsWith(defaultsSentence(doc)) });
  test.each(Object.entries(SPEC_FIELDS).filter(([f]) => f !== 'name'))('spec.%s', (field, doc) => {
    const [parent, child] = field.split('.');
    expect(says(child ? spec[parent].properties[child] : spec[parent], doc)).toEqual({ starts: true, defaults: true });
  });
  test.each([...Object.entries(BACKUP_FIELDS).map(([f, d]) => ['backup', f, d] as const), ...Object.entries(RESTORE_FIELDS).map(([f, d]) => ['restore', f, d] as const)])('spec.%s.%s', (parent, field, doc) => {
    expect(says(spec[parent].properties[field], doc)).toEqual({ starts: true, defaults: true });
  });
  test.each([...Object.entries(ETCD_FIELDS).map(([f, d]) => ['etcd', f, d] as const), ...Object.entries(CUSTOM_FIELDS).map(([f, d]) => ['custom', f, d] as const)])('spec.engine.%s: %s', (engine, field, doc) => {
    const node = spec.engine.properties[field];
    expect({ starts: node.description.startsWith(`(${engine}) ${doc.description}`), defaults: node.description.endsWith(defaultsSentence(doc)) }).toEqual({ starts: true, defaults: true });
  });
  test('the limits fields.ts writes as numbers are the library\'s', () => {
    expect(SPEC_FIELDS.size.description).toContain(`at most ${ETCD_MAX_SIZE}`);
    expect(CUSTOM_FIELDS.maxSize.default).toBe(String(MAX_SIZE));
    expect(ETCD_FIELDS.version.default).toBe(`'${DEFAULT_ETCD_VERSION}'`);
  });
});

describe('defaults written as values are what normalization applies', () => {
  const spec = normalizeSpec({ name: 'orders', engine: Engine.etcd().spec, backup: { pruneImage: 'r:1' } }, Engine.etcd().defaults);
  const value = (doc: FieldDoc) => JSON.parse(doc.default!.replace(/^'(.*)'( \(.*\))?$/, '"$1"'));
  test.each([
    ['size', spec.size],
    ['storageSize', spec.volumeClaimTemplates[0].storage],
    ['clusterDomain', spec.clusterDomain],
    ['podAntiAffinity', spec.podAntiAffinity],
    ['networkPolicy.enabled', spec.networkPolicy.enabled],
    ['runAsUser', spec.runAsUser],
  ] as const)('%s', (field, actual) => {
    expect(value(SPEC_FIELDS[field])).toEqual(actual);
  });
  test.each([
    ['schedule', spec.backup!.schedule],
    ['keep', spec.backup!.keep],
  ] as const)('backup.%s', (field, actual) => {
    expect(value(BACKUP_FIELDS[field])).toEqual(actual);
  });
});

describe('the README', () => {
  test('its props table is the one generated from KVStoreProps (run `npx projen docs` to rewrite it)', () => {
    const readme = readFileSync(README, 'utf8');
    expect(readme).toBe(readmeWithTable(readme));
  });
});

describe('the public props and options are documented the aws-cdk way', () => {
  const interfaces: Array<[string, string]> = [
    [KV_STORE, 'KVStoreProps'],
    ...['VolumeClaimTemplateOptions', 'TopologySpreadOptions', 'PvcRetentionPolicy', 'ResourceRequirements', 'RollingUpdateOptions']
      .map((n) => [OPTIONS, n] as [string, string]),
    [SPEC, 'BackupOptions'],
    [SPEC, 'RestoreOptions'],
    [join(ROOT, 'lib', 'constructs', 'reconciler-bundle.ts'), 'ReconcilerOptions'],
    [join(ROOT, 'lib', 'constructs', 'kv-store-operator.ts'), 'KVStoreOperatorProps'],
    [join(ROOT, 'lib', 'engines', 'etcd.ts'), 'EtcdOptions'],
    [SPEC, 'CustomEngineOptions'],
    [SPEC, 'ProbeSpec'],
  ];
  test.each(interfaces.map(([file, name]) => [name, file] as const))('%s: every optional prop has a description and a @default', (name, file) => {
    const missing = interfaceDocs(file, name).filter((p) => p.optional && (!p.default || !p.summary)).map((p) => p.name);
    expect(missing).toEqual([]);
  });
});
