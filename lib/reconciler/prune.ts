// Snapshot retention: the backup CronJob's second container runs `kvstore-reconcile --prune-snapshots`.
import { readdirSync, statSync, unlinkSync } from 'fs';
import { join } from 'path';

/**
 * Deletes all but the newest `keep` scheduled snapshots in `dir` — files named `<prefix><digits>.db`,
 * as the CronJob's Jobs name them — newest by modification time (then by name). Everything else is
 * left alone: other stores' snapshots, those taken before operations, hand-made ones, partial `.part`
 * files of a running save, and `keepFiles` (the snapshot a restore reads). Returns the names deleted,
 * oldest first.
 */
export function pruneSnapshots(dir: string, prefix: string, keep: number, keepFiles: readonly string[] = []): string[] {
  if (!Number.isInteger(keep) || keep < 1) throw new Error(`--keep must be an integer of at least 1, got ${keep}`);
  const scheduled = (f: string) => f.startsWith(prefix) && /^[0-9]+\.db$/.test(f.slice(prefix.length));
  const snapshots = readdirSync(dir)
    .filter((f) => scheduled(f) && !keepFiles.includes(f))
    .map((f) => ({ f, mtime: statSync(join(dir, f)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime || b.f.localeCompare(a.f));
  const doomed = snapshots.slice(keep).map((s) => s.f).reverse();
  for (const f of doomed) unlinkSync(join(dir, f));
  return doomed;
}
