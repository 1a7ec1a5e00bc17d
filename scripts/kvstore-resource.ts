// Writes lib/constructs/kv-store-resource.generated.ts: the KVStore resource's typed class (KvStore,
// KvStoreProps and the spec types) as `cdk8s import` generates it from the committed CRD (crd/kvstore.yaml,
// written by scripts/crd.ts first), with two additions: a header line, and doc comments on the members of
// the int-or-string classes (fromNumber, fromString, value), which cdk8s leaves undocumented and API.md's
// typedoc run (validation.notDocumented, warnings as errors) would refuse. Everything else is cdk8s's bytes
// (its `@schema` tags are declared to typedoc in tsdoc.json).
// lib/index.ts exports the types renamed KvStore* → KVStoreResource*.
// Run by `npx projen codegen`; test/constructs/kv-store-crd.test.ts fails while the committed file differs.
import { execFileSync } from 'child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { CRD_FILE } from './crd';

const ROOT = join(__dirname, '..');

/** Where the generated class lives, relative to the repository root. */
export const RESOURCE_FILE = 'lib/constructs/kv-store-resource.generated.ts';

/** What `cdk8s import crd/kvstore.yaml` generates (one TypeScript module), unchanged. */
export function cdk8sImport(): string {
  const out = mkdtempSync(join(tmpdir(), 'kvstore-import-'));
  try {
    // Run outside the repository so the CLI finds no cdk8s.yaml to record the import in.
    execFileSync(join(ROOT, 'node_modules/.bin/cdk8s'),
      ['import', join(ROOT, CRD_FILE), '--output', join(out, 'imports'), '--language', 'typescript', '--save', 'false', '--check-upgrade', 'false'],
      { cwd: out, stdio: 'pipe' });
    const files = readdirSync(join(out, 'imports'));
    if (files.length !== 1) throw new Error(`cdk8s import wrote ${files.length} files, expected one: ${files.join(', ')}`);
    return readFileSync(join(out, 'imports', files[0]), 'utf8');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

const HEADER = '// Written by scripts/kvstore-resource.ts (`npx projen codegen`): do not edit by hand.\n';

/**
 * cdk8s's output with doc comments on the int-or-string classes' members. Matches the exact lines cdk8s
 * writes: if a cdk8s upgrade changes them, nothing is added and `npx projen docs` names the members.
 */
export function documented(source: string): string {
  return HEADER + source
    .replace(/^( *)(public static fromNumber\(value: number\))/gm, '$1/** An int-or-string value holding a number. */\n$1$2')
    .replace(/^( *)(public static fromString\(value: string\))/gm, '$1/** An int-or-string value holding a string. */\n$1$2')
    .replace(/^( *)(private constructor\(public readonly value: number \| string\))/gm, '$1/** @param value The value, a number or a string, as it is written into the manifest. */\n$1$2');
}

/** The generated module's text, exactly as committed. */
export function importedResourceSource(): string {
  return documented(cdk8sImport());
}

if (require.main === module) {
  writeFileSync(join(ROOT, RESOURCE_FILE), importedResourceSource());
  process.stdout.write(`wrote ${RESOURCE_FILE}\n`);
}
