// Snapshot retention (the backup CronJob's prune container), directly and through the CLI.
import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { main } from '../../apps/reconcile';
import { pruneSnapshots } from '../../lib/reconciler/prune';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kvstore-prune-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Writes `name` with a modification time `minutes` after an arbitrary epoch. */
function file(name: string, minutes: number): void {
  writeFileSync(join(dir, name), name);
  const t = new Date(Date.UTC(2026, 0, 1) + minutes * 60_000);
  utimesSync(join(dir, name), t, t);
}

describe('pruneSnapshots', () => {
  test('keeps the newest `keep` of this store\'s snapshots, by time, and nothing else is touched', () => {
    // Names sort the other way round from times: time decides.
    file('orders-backup-c.db', 1);
    file('orders-backup-b.db', 2);
    file('orders-backup-a.db', 3);
    file('orders-pre-1234.db', 4);
    file('payments-backup-z.db', 0);
    file('orders-backup-d.db.part', 0);
    expect(pruneSnapshots(dir, 'orders-', 2)).toEqual(['orders-backup-c.db', 'orders-backup-b.db']);
    expect(readdirSync(dir).sort()).toEqual(['orders-backup-a.db', 'orders-backup-d.db.part', 'orders-pre-1234.db', 'payments-backup-z.db']);
  });

  test('fewer snapshots than keep: nothing deleted', () => {
    file('orders-1.db', 1);
    expect(pruneSnapshots(dir, 'orders-', 3)).toEqual([]);
    expect(readdirSync(dir)).toEqual(['orders-1.db']);
  });

  test('refuses keep 0 (it would delete every snapshot)', () => {
    file('orders-1.db', 1);
    expect(() => pruneSnapshots(dir, 'orders-', 0)).toThrow(/--keep must be an integer of at least 1, got 0/);
    expect(readdirSync(dir)).toEqual(['orders-1.db']);
  });

  test('the CLI: exit 0 and the files pruned; 64 on a missing --keep', async () => {
    const out = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const err = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      file('orders-1.db', 1);
      file('orders-2.db', 2);
      expect(await main(['--prune-snapshots', dir, '--prefix', 'orders-', '--keep', '1'])).toBe(0);
      expect(readdirSync(dir)).toEqual(['orders-2.db']);
      expect(await main(['--prune-snapshots', dir, '--prefix', 'orders-'])).toBe(64);
      expect(readdirSync(dir)).toEqual(['orders-2.db']);
    } finally {
      out.mockRestore();
      err.mockRestore();
    }
  });
});
