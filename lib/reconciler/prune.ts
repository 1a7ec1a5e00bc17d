// Snapshot retention: the backup CronJob's second container runs `kvstore-reconcile --prune-snapshots`.
import { readdirSync, statSync, unlinkSync } from 'fs';
import { join } from 'path';

/**
 * Deletes all but the newest `keep` snapshot files (`<prefix>*.db`) in `dir`, newest by modification
 * time (then by name). Other files, including other stores' snapshots and partial `.part` files of a
 * running save, are left alone. Returns the names deleted, oldest first.
 */
export function pruneSnapshots(dir: string, prefix: string, keep: number): string[] {
  if (!Number.isInteger(keep) || keep < 1) throw new Error(`--keep must be an integer of at least 1, got ${keep}`);
  const snapshots = readdirSync(dir)
    .filter((f) => f.startsWith(prefix) && f.endsWith('.db'))
    .map((f) => ({ f, mtime: statSync(join(dir, f)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime || b.f.localeCompare(a.f));
  const doomed = snapshots.slice(keep).map((s) => s.f).reverse();
  for (const f of doomed) unlinkSync(join(dir, f));
  return doomed;
}
