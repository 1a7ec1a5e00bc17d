// The library version, read from the package.json this file ships in (source or compiled layout).
import { existsSync, readFileSync } from 'fs';
import { dirname, join } from 'path';

function findVersion(): string {
  for (let dir = __dirname; dir !== dirname(dir); dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'cdk8s-kvstore' && pkg.version) return pkg.version;
    }
  }
  throw new Error('cdk8s-kvstore: cannot find its package.json to read the library version');
}

/** The cdk8s-kvstore version: part of the reconciler Job's name, so an upgrade re-runs it. */
export const LIBRARY_VERSION = findVersion();
