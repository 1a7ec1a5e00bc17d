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
  test('keeps the newest `keep` scheduled snapshots of this store, by time; nothing else is touched', () => {
    // Names sort the other way round from times: time decides.
    file('orders-backup-300.db', 1);
    file('orders-backup-200.db', 2);
    file('orders-backup-100.db', 3);
    file('orders-pre-1a2b3c4d.db', 0);
    file('orders-backup-manual.db', 0);
    file('orders-backup-eu-backup-1.db', 0);
    file('payments-backup-1.db', 0);
    file('orders-backup-400.db.part', 0);
    expect(pruneSnapshots(dir, { prefix: 'orders-backup-', keep: 1 })).toEqual(['orders-backup-300.db', 'orders-backup-200.db']);
    expect(readdirSync(dir).sort()).toEqual([
      'orders-backup-100.db', 'orders-backup-400.db.part', 'orders-backup-eu-backup-1.db', 'orders-backup-manual.db', 'orders-pre-1a2b3c4d.db', 'payments-backup-1.db',
    ]);
  });

  test('pre-operation snapshots share the pool: the newest `keep` of both kinds stay, a restore source stays', () => {
    file('orders-pre-1a2b3c4d.db', 1);
    file('orders-backup-100.db', 2);
    file('orders-pre-99aa00ff-2.db', 3);
    file('orders-pre-deadbeef.db', 4);
    file('orders-backup-200.db', 5);
    file('orders-backup-300.db', 6);
    file('orders-pre-notahash.db', 0);
    file('orders-pre-1a2b3c4d.db.part', 0);
    file('payments-pre-1a2b3c4d.db', 0);
    expect(pruneSnapshots(dir, { prefix: 'orders-backup-', preOperationPrefix: 'orders-pre-', keep: 2, keepFiles: ['orders-pre-99aa00ff-2.db'] }))
      .toEqual(['orders-pre-1a2b3c4d.db', 'orders-backup-100.db', 'orders-pre-deadbeef.db']);
    expect(readdirSync(dir).sort()).toEqual([
      'orders-backup-200.db', 'orders-backup-300.db', 'orders-pre-1a2b3c4d.db.part', 'orders-pre-99aa00ff-2.db', 'orders-pre-notahash.db', 'payments-pre-1a2b3c4d.db',
    ]);
  });

  test('without a pre-operation prefix (a CronJob of an older version), pre-operation snapshots are left alone', () => {
    file('orders-pre-1a2b3c4d.db', 1);
    file('orders-backup-1.db', 2);
    file('orders-backup-2.db', 3);
    expect(pruneSnapshots(dir, { prefix: 'orders-backup-', keep: 1 })).toEqual(['orders-backup-1.db']);
    expect(readdirSync(dir).sort()).toEqual(['orders-backup-2.db', 'orders-pre-1a2b3c4d.db']);
  });

  test('a snapshot a restore reads is kept whatever its age', () => {
    file('orders-backup-1.db', 1);
    file('orders-backup-2.db', 2);
    file('orders-backup-3.db', 3);
    expect(pruneSnapshots(dir, { prefix: 'orders-backup-', keep: 1, keepFiles: ['orders-backup-1.db'] })).toEqual(['orders-backup-2.db']);
    expect(readdirSync(dir).sort()).toEqual(['orders-backup-1.db', 'orders-backup-3.db']);
  });

  test('fewer snapshots than keep: nothing deleted', () => {
    file('orders-backup-1.db', 1);
    expect(pruneSnapshots(dir, { prefix: 'orders-backup-', keep: 3 })).toEqual([]);
    expect(readdirSync(dir)).toEqual(['orders-backup-1.db']);
  });

  test('refuses keep 0 (it would delete every snapshot)', () => {
    file('orders-backup-1.db', 1);
    expect(() => pruneSnapshots(dir, { prefix: 'orders-backup-', keep: 0 })).toThrow(/--keep must be an integer of at least 1, got 0/);
    expect(readdirSync(dir)).toEqual(['orders-backup-1.db']);
  });

  test('the CLI: exit 0 and the files pruned; 64 on a missing --keep', async () => {
    const out = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const err = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      file('orders-backup-1.db', 1);
      file('orders-backup-2.db', 2);
      file('orders-backup-3.db', 3);
      file('orders-pre-0123abcd.db', 4);
      expect(await main(['--prune-snapshots', dir, '--prefix', 'orders-backup-', '--pre-operation-prefix', 'orders-pre-', '--keep', '2', '--keep-file', 'orders-backup-1.db'])).toBe(0);
      expect(readdirSync(dir).sort()).toEqual(['orders-backup-1.db', 'orders-backup-3.db', 'orders-pre-0123abcd.db']);
      expect(await main(['--prune-snapshots', dir, '--prefix', 'orders-backup-'])).toBe(64);
      expect(readdirSync(dir).sort()).toEqual(['orders-backup-1.db', 'orders-backup-3.db', 'orders-pre-0123abcd.db']);
    } finally {
      out.mockRestore();
      err.mockRestore();
    }
  });
});
