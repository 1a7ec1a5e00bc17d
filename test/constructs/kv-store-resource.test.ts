// The KVStore resource's typed class (lib/constructs/kv-store-resource.generated.ts, `cdk8s import` of the
// CRD) is public: the construct entry exports every generated type, renamed KvStore* → KVStoreResource*.
import { join } from 'path';
import * as ts from 'typescript';
import * as entry from '../../lib';
import * as generated from '../../lib/constructs/kv-store-resource.generated';
import { RESOURCE_FILE } from '../../scripts/kvstore-resource';

const ROOT = join(__dirname, '..', '..');
const publicName = (name: string) => name.replace(/^KvStore/, 'KVStoreResource');

/** name → the generated declaration it stands for, for the types and values a module exports. */
function exportedDeclarations(program: ts.Program, file: string): Map<string, { name: string; file: string; kind: string }> {
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(join(ROOT, file))!;
  const result = new Map<string, { name: string; file: string; kind: string }>();
  for (const symbol of checker.getExportsOfModule(checker.getSymbolAtLocation(source)!)) {
    const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
    const decl = target.declarations?.[0];
    if (!decl) continue;
    result.set(symbol.getName(), { name: target.getName(), file: decl.getSourceFile().fileName, kind: ts.SyntaxKind[decl.kind] });
  }
  return result;
}

describe('KVStoreResource in the construct entry', () => {
  const program = ts.createProgram([join(ROOT, 'lib/index.ts')], { strict: true, skipLibCheck: true, noEmit: true });
  const fromGenerated = exportedDeclarations(program, RESOURCE_FILE);
  const fromEntry = exportedDeclarations(program, 'lib/index.ts');

  test('exports every generated class, interface and enum as KVStoreResource*, and none of the toJson_ helpers', () => {
    const types = [...fromGenerated].filter(([, d]) => d.kind !== 'FunctionDeclaration').map(([name]) => name);
    expect(types).toEqual(expect.arrayContaining(['KvStore', 'KvStoreProps', 'KvStoreSpec']));
    // On failure: add `KvStoreX as KVStoreResourceX` to the generated-class export of lib/index.ts.
    const missing = types.filter((name) => fromEntry.get(publicName(name))?.name !== name || fromEntry.get(publicName(name))?.file !== join(ROOT, RESOURCE_FILE));
    expect(missing).toEqual([]);
    const helpers = [...fromEntry].filter(([, d]) => d.file === join(ROOT, RESOURCE_FILE) && d.kind === 'FunctionDeclaration').map(([name]) => name);
    expect(helpers).toEqual([]);
  });

  test('exports no generated type under its cdk8s name (KvStoreSpec would sit next to the KVStoreSpec of the model)', () => {
    expect([...fromEntry.keys()].filter((name) => name.startsWith('KvStore'))).toEqual([]);
  });

  test('the exported values are the generated ones', () => {
    expect(entry.KVStoreResource).toBe(generated.KvStore);
    expect(entry.KVStoreResource.GVK).toEqual({ apiVersion: 'kvstore.cdk8s-kvstore.io/v1', kind: 'KVStore' });
    expect(entry.KVStoreResourceSpecEngineKind).toBe(generated.KvStoreSpecEngineKind);
  });
});
