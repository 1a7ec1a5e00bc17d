// The layers (ARCHITECTURE.md): model → engines → constructs → reconciler → apps, imports only go
// downward, no cycles (runtime or type-only), and the construct entry loads no runtime it doesn't need.
import { execFileSync } from 'child_process';
import { readdirSync, readFileSync, statSync } from 'fs';
import { dirname, join, relative, resolve } from 'path';
import * as ts from 'typescript';

const ROOT = join(__dirname, '..');

/** Each layer and what it may import from this repository. */
const LAYERS: Record<string, readonly string[]> = {
  'lib/model': ['lib/model'],
  'lib/engines': ['lib/model', 'lib/engines'],
  'lib/constructs': ['lib/model', 'lib/engines', 'lib/constructs'],
  // The desired-state renderer re-synthesizes through the constructs: that is the point of the reconciler.
  'lib/reconciler': ['lib/model', 'lib/engines', 'lib/constructs', 'lib/reconciler'],
  'apps': ['lib', 'lib/model', 'lib/engines', 'lib/constructs', 'lib/reconciler', 'apps'],
};

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((f) => {
    const path = join(dir, f);
    return statSync(join(ROOT, path)).isDirectory() ? sources(path) : f.endsWith('.ts') ? [path] : [];
  });
}

/** Every relative import (type-only ones too) of a file, as repository paths. */
function imports(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(join(ROOT, file), 'utf8'), true, true);
  return info.importedFiles.map((i) => i.fileName).filter((f) => f.startsWith('.')).map((spec) => {
    const base = relative(ROOT, resolve(ROOT, dirname(file), spec));
    for (const candidate of [`${base}.ts`, join(base, 'index.ts')]) {
      try {
        if (statSync(join(ROOT, candidate)).isFile()) return candidate;
      } catch { /* try the next form */ }
    }
    throw new Error(`${file}: cannot resolve ${spec}`);
  });
}

const files = [...sources('lib'), ...sources('apps')];
const graph = new Map(files.map((f) => [f, imports(f)]));
const layerOf = (file: string) => (file === 'lib/index.ts' ? 'lib' : file.split('/').slice(0, file.startsWith('lib/') ? 2 : 1).join('/'));

test('every source file is in a layer', () => {
  expect(files.filter((f) => f !== 'lib/index.ts' && !(layerOf(f) in LAYERS))).toEqual([]);
});

test('imports only go downward', () => {
  const upward = [...graph].flatMap(([file, deps]) => {
    const allowed = LAYERS[layerOf(file)] ?? ['lib/model', 'lib/engines', 'lib/constructs'];
    return deps.filter((d) => !allowed.includes(layerOf(d))).map((d) => `${file} → ${d}`);
  });
  expect(upward).toEqual([]);
});

test('no import cycles, runtime or type-only', () => {
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const visit = (file: string, path: string[]) => {
    if (state.get(file) === 'done') return;
    if (state.get(file) === 'open') {
      cycles.push([...path.slice(path.indexOf(file)), file].join(' → '));
      return;
    }
    state.set(file, 'open');
    for (const dep of graph.get(file) ?? []) visit(dep, [...path, file]);
    state.set(file, 'done');
  };
  for (const file of files) visit(file, []);
  expect(cycles).toEqual([]);
});

/**
 * The packages a module loads when required, from require.cache in a fresh Node process. ts-node compiles
 * the sources; what it loads itself is loaded (by compiling a file without imports) before the count starts.
 */
function loadedPackages(entry: string): string[] {
  const script = [
    `require(${JSON.stringify(join(ROOT, 'lib/model/quantity.ts'))});`,
    'const before = new Set(Object.keys(require.cache));',
    `require(${JSON.stringify(join(ROOT, entry))});`,
    'const loaded = Object.keys(require.cache).filter((f) => !before.has(f));',
    'const packages = new Set(loaded.map((f) => /node_modules\\/((@[^/]+\\/)?[^/]+)/.exec(f)).filter(Boolean).map((m) => m[1]));',
    'process.stdout.write(JSON.stringify([...packages].sort()));',
  ].join('');
  return JSON.parse(execFileSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script], { cwd: ROOT, encoding: 'utf8' })) as string[];
}

describe('entries', () => {
  test('the construct entry loads cdk8s and constructs and nothing else (no cdk8s-plus: any version of it may sit beside)', () => {
    expect(loadedPackages('lib/index.ts')).toEqual(['cdk8s', 'constructs']);
  });

  test('the reconciler entry loads the Kubernetes client, and its etcd operations the etcd client (so the check above can tell)', () => {
    expect(loadedPackages('lib/reconciler/index.ts')).toContain('@kubernetes/client-node');
    expect(loadedPackages('lib/engines/etcd-membership.ts')).toEqual(expect.arrayContaining(['etcd3', 'cockatiel']));
  });
});
