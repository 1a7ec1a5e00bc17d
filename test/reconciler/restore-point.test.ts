import { Engine } from '../../lib';
import { describeRestorePoint } from '../../lib/reconciler/operations';

describe("etcd's snapshot check output", () => {
  const checked = Engine.etcd().snapshots!.checked!;
  test('the JSON line of `snapshot status -w json`, with warnings around it (3.5 etcdctl), gives revision, keys and bytes', () => {
    const log = [
      'Deprecated: Use `etcdutl snapshot status` instead.',
      '',
      '{"hash":3000012574,"revision":2,"totalKey":5,"totalSize":20480}',
      '',
    ].join('\n');
    expect(checked(log)).toEqual({ revision: 2, keys: 5, bytes: 20480 });
    expect(checked('{"hash":1,"revision":7,"totalKey":9,"totalSize":4096,"version":"3.6.0"}\n')).toEqual({ revision: 7, keys: 9, bytes: 4096 });
  });
  test('anything else tells nothing', () => {
    expect(checked('| b2d08f1e |        2 |          5 |      20 kB |')).toBeUndefined();
    expect(checked('{"hash":1,"revision":"7"}')).toBeUndefined();
    expect(checked('{not json')).toBeUndefined();
    expect(checked('')).toBeUndefined();
  });
});

describe('describeRestorePoint', () => {
  const snapshot = { revision: 51, keys: 56, bytes: 28672 };
  test('members answering: exactly the revisions after the snapshot are lost', () => {
    expect(describeRestorePoint('kv-backups/a.db', snapshot, 72)).toBe('restore point: kv-backups/a.db at revision 51 (56 keys, 28672 bytes); the members are at revision 72: 21 revisions (52..72) lost');
    expect(describeRestorePoint('kv-backups/a.db', snapshot, 52)).toMatch(/: 1 revision \(52\.\.52\) lost$/);
    expect(describeRestorePoint('kv-backups/a.db', snapshot, 51)).toMatch(/: no revision is lost$/);
  });
  test('no member answering, or no revision reported: said so, not guessed', () => {
    expect(describeRestorePoint('kv-backups/a.db', snapshot, undefined)).toMatch(/no member answers, so how many later revisions are lost can't be told: every one after 51$/);
    expect(describeRestorePoint('kv-backups/a.db', undefined, 72)).toBe('restore point: kv-backups/a.db, whose revision its check did not report; every write after the snapshot was taken is lost');
  });
});
