// Snapshot retention: the backup CronJob's second container runs `kvstore-reconcile --prune-snapshots`.
import { readdirSync, statSync, unlinkSync } from 'fs';
import { join } from 'path';

/** What to prune in a snapshot directory. */
export interface PruneOptions {
  /** Scheduled snapshots are `<prefix><digits>.db` (the backup CronJob's Jobs name them so). */
  readonly prefix: string;
  /**
   * Snapshots taken before operations are `<preOperationPrefix><8 hex digits>[-<attempt>].db`; without
   * it they are left alone (a CronJob synthesized by an older version passes none).
   */
  readonly preOperationPrefix?: string;
  /** How many to keep of all those together, newest first. */
  readonly keep: number;
  /** Files never to delete whatever their age (the snapshot a restore reads). */
  readonly keepFiles?: readonly string[];
}

/**
 * Deletes all but the newest `keep` of this store's scheduled and pre-operation snapshots in `dir`,
 * newest by modification time (then by name): one pool, so the backup claim never holds more than
 * `keep` snapshots of the store. Everything else is left alone: other stores' snapshots, hand-made
 * ones, partial `.part` files of a running save, and `keepFiles`. Returns the names deleted, oldest first.
 */
export function pruneSnapshots(dir: string, options: PruneOptions): string[] {
  const { prefix, preOperationPrefix, keep, keepFiles = [] } = options;
  if (!Number.isInteger(keep) || keep < 1) throw new Error(`--keep must be an integer of at least 1, got ${keep}`);
  const scheduled = (f: string) => f.startsWith(prefix) && /^[0-9]+\.db$/.test(f.slice(prefix.length));
  const preOperation = (f: string) => preOperationPrefix !== undefined && f.startsWith(preOperationPrefix)
    && /^[0-9a-f]{8}(-[0-9]+)?\.db$/.test(f.slice(preOperationPrefix.length));
  const snapshots = readdirSync(dir)
    .filter((f) => (scheduled(f) || preOperation(f)) && !keepFiles.includes(f))
    .map((f) => ({ f, mtime: statSync(join(dir, f)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime || b.f.localeCompare(a.f));
  const doomed = snapshots.slice(keep).map((s) => s.f).reverse();
  for (const f of doomed) unlinkSync(join(dir, f));
  return doomed;
}
