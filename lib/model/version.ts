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

/**
 * Where the release workflow (.github/workflows/release.yml) pushes the reconciler image, built from
 * this package's Dockerfile and tagged with the package version.
 */
export const RECONCILER_IMAGE_REPOSITORY = 'ghcr.io/cdk8s-kvstore/kvstore-reconciler';

/**
 * The reconciler image of this library version: what `reconciler.image`, `KVStoreOperator`'s `image`
 * and `backup.pruneImage` default to. Build and pin your own (see the README) to run an image you control.
 */
export const DEFAULT_RECONCILER_IMAGE = `${RECONCILER_IMAGE_REPOSITORY}:${LIBRARY_VERSION}`;
