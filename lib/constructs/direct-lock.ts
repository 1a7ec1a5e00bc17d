// The store lock: what each store's live members were started with that a direct-mode store cannot
// change, recorded at synthesis in a file the user commits (as package-lock.json, or the CDK's
// cdk.context.json). A synthesis sees only the code, and `cdk8s synth` deletes the previous output
// before the app runs, so this file is the only memory of what is live a synthesis can have.
//
// Direct mode (no reconciler) refuses a size or TLS change against the lock; GitOps mode records the
// spec without checking (its reconciler changes a live store step by step), so a store that later
// leaves the reconciler is checked against the size it was given last.
import { existsSync, readFileSync, writeFileSync } from 'fs';
import * as path from 'path';
import type { IConstruct } from 'constructs';
import type { SpecIssue } from '../model/issues';

/** The context key (`app.node.setContext`) naming the lock file; `false` turns the lock off. */
export const LOCK_FILE_CONTEXT = 'cdk8s-kvstore:lockFile';
/** The environment variable naming the lock file (`off` turns it off) when the context doesn't. */
export const LOCK_FILE_ENV = 'KVSTORE_LOCK_FILE';
/** The lock's name under `cdk8s synth`, in the directory it runs in (the app's, beside cdk8s.yaml). */
export const DEFAULT_LOCK_FILE = 'kvstore.lock.json';

/** What the lock records of one store. */
export interface LockedStore {
  readonly size: number;
  readonly tls: boolean;
}

interface LockFile {
  readonly comment: string;
  readonly stores: Record<string, LockedStore>;
}

const COMMENT = 'Written by cdk8s-kvstore at synthesis: the size and TLS each store was last synthesized with, '
  + 'which a store without a reconciler cannot change while live. Commit this file. README: "Direct mode".';

/**
 * The lock file for a synthesis, or undefined when the lock is off: the context key, else the
 * environment variable, else `kvstore.lock.json` in the working directory when the cdk8s CLI runs the
 * app (it sets CDK8S_OUTDIR). Off otherwise, so an app's unit tests (`Testing.app()`, many stores and
 * sizes in one process) write nothing.
 */
export function lockFilePath(scope: IConstruct, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const context: unknown = scope.node.tryGetContext(LOCK_FILE_CONTEXT);
  if (context === false || context === 'off') return undefined;
  if (typeof context === 'string' && context !== '') return path.resolve(context);
  const fromEnv = env[LOCK_FILE_ENV];
  if (fromEnv === 'off') return undefined;
  if (fromEnv) return path.resolve(fromEnv);
  return env.CDK8S_OUTDIR ? path.resolve(DEFAULT_LOCK_FILE) : undefined;
}

/** The lock's key of a store: where it lives. */
export function lockKey(namespace: string | undefined, name: string): string {
  return namespace ? `${namespace}/${name}` : name;
}

/**
 * Why a direct-mode store's spec can't be what it is, given what the lock recorded of its live members
 * (none: a store the lock has not seen, taken as new). Pure.
 */
export function lockIssues(key: string, file: string, locked: LockedStore | undefined, now: LockedStore): SpecIssue[] {
  if (!locked) return [];
  const escape = `if the store's data may go (it isn't live yet, or you delete its PVCs first), remove "${key}" from ${file} and synthesize again`;
  const issues: SpecIssue[] = [];
  if (now.size !== locked.size) {
    issues.push({
      field: 'size',
      value: now.size,
      allowed: `${locked.size}, the size ${file} records for this store (a different size needs reconciler)`,
      reason: 'without the reconciler nothing changes etcd\'s membership: '
        + (now.size > locked.size
          ? `${locked.size} → ${now.size} starts members etcd never registered, which cannot join; `
          : `${locked.size} → ${now.size} leaves the removed members voting${2 * now.size <= locked.size ? ', which loses quorum' : ''}; `)
        + `give the store a reconciler to resize it member by member, or ${escape}`,
    });
  }
  if (now.tls !== locked.tls) {
    issues.push({
      field: 'tls',
      value: now.tls ? 'on' : 'off',
      allowed: `${locked.tls ? 'on' : 'off'}, as ${file} records for this store${locked.tls ? '' : ' (turning it on needs reconciler)'}`,
      reason: now.tls
        ? `one rolling update would leave every member registered at an http peer URL it no longer serves; give the store a reconciler to switch it member by member, or ${escape}`
        : `the members are registered at https peer URLs and would serve plain http; ${escape}`,
    });
  }
  return issues;
}

/** The lock's entries (none when the file doesn't exist). Throws, naming the file, when it isn't a lock. */
export function readLock(file: string): Record<string, LockedStore> {
  if (!existsSync(file)) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not the kvstore lock (${(e as Error).message}); restore it from version control`);
  }
  const stores = (parsed as Partial<LockFile> | null)?.stores;
  if (typeof stores !== 'object' || stores === null) throw new Error(`${file}: not the kvstore lock (no "stores" object); restore it from version control`);
  for (const [key, entry] of Object.entries(stores)) {
    const e = entry as Partial<LockedStore> | null;
    if (!Number.isInteger(e?.size) || typeof e?.tls !== 'boolean') {
      throw new Error(`${file}: entry "${key}" must be { "size": <integer>, "tls": <boolean> }, got ${JSON.stringify(entry)}`);
    }
  }
  return stores as Record<string, LockedStore>;
}

/** Records one store, leaving the others; keys sorted, so the file is the same whatever the order of stores. */
export function writeLockEntry(file: string, key: string, entry: LockedStore): void {
  const stores = { ...readLock(file), [key]: { size: entry.size, tls: entry.tls } };
  const sorted = Object.fromEntries(Object.keys(stores).sort().map((k) => [k, stores[k]]));
  const text = `${JSON.stringify({ comment: COMMENT, stores: sorted } satisfies LockFile, undefined, 2)}\n`;
  if (existsSync(file) && readFileSync(file, 'utf8') === text) return;
  writeFileSync(file, text);
}

/** The file's name as the user would type it: relative to the working directory when inside it. */
export function displayPath(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : file;
}
