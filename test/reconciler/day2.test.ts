// Day-2 operations end to end, on real etcd (the installed Debian etcd, 3.4.x: these tests prove that
// version): the reconciler talks to the API double through @kubernetes/client-node, the cluster
// simulator runs the StatefulSet, Job and PVC controllers and the pods as real etcd processes, and the
// reconciler reaches the members at their pod URLs.
import { execFileSync, spawn } from 'child_process';
import { readdirSync, mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { Chart, Testing } from 'cdk8s';
import { KVStoreProps } from '../../lib';
import { jobFromCronJob } from '../../lib/constructs/backup';
import { KubeClient } from '../../lib/reconciler/client';
import { OUTCOME_FIELD_MANAGER, RefusedError } from '../../lib/reconciler/reconcile';
import { canonicalJson, StoreDocument } from '../../lib/model/document';
import { ApiServer } from '../support/api-server';
import { ClusterSimulator } from '../support/cluster-simulator';
import { keysUnder, memberList, RECONCILER_IMAGE, reconcileOnce, simulatedCluster, storeDocument, Writer } from '../support/day2';
import { NAMESPACE, sleep } from '../support/etcd-cluster';
import { find, synth } from '../support/manifests';
import { describeWithEtcd } from '../support/requires-etcd';

jest.setTimeout(240_000);

let api: ApiServer;
let sim: ClusterSimulator;
simulatedCluster((a, s) => { api = a; sim = s; });

const sts = (name = 'kv') => api.get('apps/v1', 'StatefulSet', NAMESPACE, name) as any;
const pvc = (name: string) => api.get('v1', 'PersistentVolumeClaim', NAMESPACE, name) as any;
const voting = async (name = 'kv') => (await memberList(sim.endpoints(name))).filter((m) => !m.isLearner).map((m) => m.name).sort();

/** Creates `name` with `props` and waits until every member is ready. */
async function create(name: string, props: KVStoreProps, lines: string[] = []): Promise<StoreDocument> {
  const doc = storeDocument(name, props);
  await reconcileOnce(api, sim, doc, {}, lines);
  await sim.waitForReady(name, doc.spec.size, 60_000);
  return doc;
}

describeWithEtcd('membership changes through the reconciler', () => {
  test('3 → 5 → 3 with continuous writes: no acknowledged write lost, writes never stall, no member restarted', async () => {
    const props = { size: 3, storageSize: '1Gi' };
    await create('kv', props);
    const survivors = () => ['kv-0', 'kv-1', 'kv-2'].map((p) => sim.url(p));
    const pids = sim.pids('kv');
    const writer = new Writer(survivors());
    await sleep(300);

    await reconcileOnce(api, sim, storeDocument('kv', { ...props, size: 5 }));
    expect(sts().spec.replicas).toBe(5);
    expect(await voting()).toEqual(['kv-0', 'kv-1', 'kv-2', 'kv-3', 'kv-4']);
    expect((await memberList(sim.endpoints('kv'))).filter((m) => m.isLearner)).toEqual([]);
    // Scaling rolled no member: the member list is in the bootstrap ConfigMap, not the pod template.
    for (const [pod, pid] of Object.entries(pids)) expect(sim.pid(pod)).toBe(pid);
    expect((api.get('v1', 'ConfigMap', NAMESPACE, 'kv-bootstrap') as any).data.ETCD_INITIAL_CLUSTER_STATE).toBe('existing');

    await reconcileOnce(api, sim, storeDocument('kv', props));
    await sim.waitForReady('kv', 3, 60_000);
    expect(await voting()).toEqual(['kv-0', 'kv-1', 'kv-2']);
    // Removed members' PVCs are kept.
    expect(pvc('data-kv-3')).toBeDefined();
    expect(pvc('data-kv-4')).toBeDefined();

    const w = await writer.stop();
    expect(w.acked.length).toBeGreaterThan(50);
    const held = await keysUnder(survivors(), 'w/');
    expect(w.acked.filter((k) => !held.has(k))).toEqual([]);
    // Quorum held throughout: no write had to wait for a new leader or a lost majority.
    expect(w.longestGapMs).toBeLessThan(3000);
    for (const [pod, pid] of Object.entries(pids)) expect(sim.pid(pod)).toBe(pid);
    expect(sts().metadata.annotations['kvstore.cdk8s-kvstore.io/operation']).toBeUndefined();
  });

  test('a scale-up onto an ordinal whose retained PVC holds a removed member\'s data joins cleanly', async () => {
    await create('kv', { size: 4, storageSize: '1Gi' });
    await reconcileOnce(api, sim, storeDocument('kv', { size: 3, storageSize: '1Gi' }));
    await sim.waitForReady('kv', 3, 60_000);
    const stale = pvc('data-kv-3');
    expect(stale).toBeDefined();
    expect(readdirSync(sim.claimDir('data-kv-3'))).toContain('etcd');

    const before = api.requests.length;
    const exitsBefore = sim.runner.unexpectedExits.length;
    await reconcileOnce(api, sim, storeDocument('kv', { size: 4, storageSize: '1Gi' }));
    await sim.waitForReady('kv', 4, 60_000);
    expect(await voting()).toEqual(['kv-0', 'kv-1', 'kv-2', 'kv-3']);
    // A fresh claim (the stale one was deleted), and the new kv-3 never crashed on old data.
    expect(pvc('data-kv-3').metadata.uid).not.toBe(stale.metadata.uid);
    expect(sim.runner.unexpectedExits.slice(exitsBefore).filter((e) => e.pod === 'kv-3')).toEqual([]);

    // These requests are the ones only a membership change makes: the bundle's Role allows them.
    const chart = new Chart(Testing.app(), 'c', { namespace: NAMESPACE, disableResourceNameHashes: true });
    const { KVStore } = await import('../../lib');
    new KVStore(chart, 'kv', { size: 4, storageSize: '1Gi', reconciler: { image: RECONCILER_IMAGE } });
    const rules = find(synth(chart), 'Role').rules as any[];
    const made = api.requests.slice(before).filter((r) => (r.method === 'GET' && r.path.endsWith('/pods/kv-3')) || (r.method === 'DELETE' && r.path.endsWith('/persistentvolumeclaims/data-kv-3')));
    expect(made.map((r) => r.method).sort()).toEqual(expect.arrayContaining(['DELETE', 'GET']));
    const allows = (resource: string, verb: string, name: string) => rules.some((r) => r.resources.includes(resource) && r.verbs.includes(verb) && (!r.resourceNames || r.resourceNames.includes(name)));
    expect(allows('pods', 'get', 'kv-3')).toBe(true);
    expect(allows('persistentvolumeclaims', 'delete', 'data-kv-3')).toBe(true);
  });

  test('a reconciler killed in the middle of a scale-up: the next run converges', async () => {
    const props = { size: 3, storageSize: '1Gi' };
    await create('kv', props);
    const dir = mkdtempSync(join(tmpdir(), 'kvstore-day2-'));
    try {
      const docFile = join(dir, 'store.json');
      writeFileSync(docFile, canonicalJson(storeDocument('kv', { ...props, size: 5 })));
      const kubeconfig = join(dir, 'kubeconfig');
      writeFileSync(kubeconfig, api.kubeConfig().exportConfig());
      const child = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', join(__dirname, '../../apps/reconcile.ts'),
        '--store', docFile, '--etcd-endpoints', sim.endpoints('kv').join(','), '--lease-seconds', '3'], {
        env: { ...process.env, KUBECONFIG: kubeconfig, POD_NAME: 'reconcile-first' }, stdio: 'ignore',
      });
      const exited = new Promise((r) => child.once('exit', r));
      try {
        // Killed once the first new member is registered but not yet promoted.
        const deadline = Date.now() + 60_000;
        while (!(await memberList(sim.endpoints('kv')).catch(() => [])).some((m) => m.isLearner)) {
          if (Date.now() > deadline) throw new Error('no learner was registered within 60 s');
          await sleep(50);
        }
      } finally {
        process.kill(child.pid!, 'SIGKILL');
        await exited;
      }
      expect(await voting()).toHaveLength(3);
      // The killed run's Lease (3 s) must expire before another reconciler may start: a Job retry.
      await sleep(3500);

      await reconcileOnce(api, sim, storeDocument('kv', { ...props, size: 5 }), { holder: 'reconcile-second' });
      await sim.waitForReady('kv', 5, 60_000);
      expect(await voting()).toEqual(['kv-0', 'kv-1', 'kv-2', 'kv-3', 'kv-4']);
      expect((await memberList(sim.endpoints('kv'))).filter((m) => m.isLearner)).toEqual([]);
      // And the run after that has nothing left to do.
      expect((await reconcileOnce(api, sim, storeDocument('kv', { ...props, size: 5 }))).mutatingRequests).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describeWithEtcd('volume growth through the reconciler', () => {
  test('1Gi → 2Gi: PVCs grown, StatefulSet re-created with the new template, pods kept running, data kept; shrinking refused', async () => {
    await create('kv', { size: 3, storageSize: '1Gi' });
    const writer = new Writer(sim.endpoints('kv'));
    await sleep(500);
    const pids = sim.pids('kv');
    const uid = sts().metadata.uid;

    await reconcileOnce(api, sim, storeDocument('kv', { size: 3, storageSize: '2Gi' }));
    await sim.waitForReady('kv', 3, 60_000);
    expect(sts().metadata.uid).not.toBe(uid);
    expect(sts().spec.volumeClaimTemplates[0].spec.resources.requests.storage).toBe('2Gi');
    for (const i of [0, 1, 2]) {
      expect(pvc(`data-kv-${i}`).spec.resources.requests.storage).toBe('2Gi');
      expect(pvc(`data-kv-${i}`).status.capacity.storage).toBe('2Gi');
    }
    expect(sim.pids('kv')).toEqual(pids);
    const w = await writer.stop();
    const held = await keysUnder(sim.endpoints('kv'), 'w/');
    expect(w.acked.length).toBeGreaterThan(10);
    expect(w.acked.filter((k) => !held.has(k))).toEqual([]);

    // A refusal changes nothing of the store: its records (a Warning Event, the last-error annotation) aside.
    const storeWrites = () => api.mutatingRequests().filter((r) => !r.path.includes('/events.k8s.io/') && r.query.fieldManager !== OUTCOME_FIELD_MANAGER).length;
    const before = storeWrites();
    await expect(reconcileOnce(api, sim, storeDocument('kv', { size: 3, storageSize: '1Gi' }))).rejects.toThrow(RefusedError);
    await expect(reconcileOnce(api, sim, storeDocument('kv', { size: 3, storageSize: '1Gi' }))).rejects.toThrow(/"2Gi" → "1Gi" refused: storage cannot shrink/);
    expect(storeWrites()).toBe(before);
  });
});

describeWithEtcd('a run stopped between the orphan delete and the create of a re-create', () => {
  test('the next run re-creates the StatefulSet from the bootstrap ConfigMap\'s member count, adopts the pods, then scales', async () => {
    await create('kv', { size: 3, storageSize: '1Gi' });
    const pids = sim.pids('kv');
    // What a reconciler killed in the middle of a resize leaves: the StatefulSet deleted (orphan), pods running.
    await new KubeClient(api.kubeConfig()).delete({ apiVersion: 'apps/v1', kind: 'StatefulSet', namespace: NAMESPACE, name: 'kv' }, 'Orphan');
    expect(sts()).toBeUndefined();

    await reconcileOnce(api, sim, storeDocument('kv', { size: 5, storageSize: '2Gi' }));
    await sim.waitForReady('kv', 5, 60_000);
    expect(await voting()).toEqual(['kv-0', 'kv-1', 'kv-2', 'kv-3', 'kv-4']);
    expect(sts().spec.volumeClaimTemplates[0].spec.resources.requests.storage).toBe('2Gi');
    for (const [pod, pid] of Object.entries(pids)) expect(sim.pid(pod)).toBe(pid);
  });
});

describeWithEtcd('backup and restore through the reconciler', () => {
  test('a scheduled backup, then a fresh store restored from it holds every key written before the backup', async () => {
    const backup = { keep: 2 };
    const source = await create('kv', { size: 3, storageSize: '1Gi', backup });
    const writer = new Writer(sim.endpoints('kv'), 'before/');
    await sim.waitUntil('200 keys written', () => writer.acked.length >= 200, 60_000);
    const written = (await writer.stop()).acked;

    const job = sim.triggerCronJob('kv-backup');
    const done = await sim.waitForJob(job, 60_000);
    expect(done.status.conditions.map((c: any) => c.type)).toContain('Complete');
    const files = readdirSync(sim.claimDir(source.spec.backup!.claimName)).filter((f) => f.endsWith('.db'));
    expect(files).toEqual([`${job}.db`]);

    const restored = await create('restored', { size: 3, storageSize: '1Gi', restore: { snapshot: files[0], claimName: 'kv-backups' } });
    const held = await keysUnder(sim.endpoints('restored'), 'before/');
    expect(written.filter((k) => !held.has(k))).toEqual([]);
    // A new logical cluster: its own members, none of the source's.
    const sourceIds = new Set((await memberList(sim.endpoints('kv'))).map((m) => m.id));
    const restoredMembers = await memberList(sim.endpoints('restored'));
    expect(restoredMembers.map((m) => m.name).sort()).toEqual(['restored-0', 'restored-1', 'restored-2']);
    expect(restoredMembers.filter((m) => sourceIds.has(m.id))).toEqual([]);
    expect(sts('restored').metadata.annotations['kvstore.cdk8s-kvstore.io/restored-from']).toBe(`kv-backups/${files[0]}`);
    expect(restored.spec.restore).toEqual({ snapshot: files[0], claimName: 'kv-backups' });
  });

  test('restoring over a live store is refused, and forced it rolls the data back to the snapshot (old data kept aside)', async () => {
    const props = { size: 3, storageSize: '1Gi', backup: {} };
    await create('kv', props);
    const writerA = new Writer(sim.endpoints('kv'), 'a/');
    await sim.waitUntil('keys written', () => writerA.acked.length >= 50, 60_000);
    const snapshotted = (await writerA.stop()).acked;
    const job = sim.triggerCronJob('kv-backup');
    await sim.waitForJob(job, 60_000);
    const after = (await (async () => {
      const w = new Writer(sim.endpoints('kv'), 'b/');
      await sim.waitUntil('later keys written', () => w.acked.length >= 20, 60_000);
      return w.stop();
    })()).acked;

    // What etcd itself says: the snapshot's revision (etcdctl on the file) and the members' newest.
    const etcdctl = (...args: string[]) => JSON.parse(execFileSync('etcdctl', [...args, '-w', 'json'], { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'utf8' }));
    const inSnapshot = etcdctl('snapshot', 'status', join(sim.claimDir('kv-backups'), `${job}.db`));
    const liveRevision = Math.max(...etcdctl('endpoint', 'status', `--endpoints=${sim.endpoints('kv').join(',')}`).map((e: any) => e.Status.header.revision));
    expect(liveRevision - inSnapshot.revision).toBeGreaterThanOrEqual(after.length);

    const restoring = storeDocument('kv', { ...props, restore: { snapshot: `${job}.db` } });
    await expect(reconcileOnce(api, sim, restoring)).rejects.toThrow(/restored-from: \(none\) → "kv-backups\/kv-backup-[0-9]+\.db" refused: restoring replaces the live data/);
    const lines: string[] = [];
    await reconcileOnce(api, sim, restoring, { force: true }, lines);
    // Said before any member stopped: the restore point and exactly how many revisions it loses.
    const point = lines.findIndex((l) => l.startsWith('restore point: '));
    expect(lines[point]).toBe(`restore point: kv-backups/${job}.db at revision ${inSnapshot.revision} (${inSnapshot.totalKey} keys, ${inSnapshot.totalSize} bytes); `
      + `the members are at revision ${liveRevision}: ${liveRevision - inSnapshot.revision} revisions (${inSnapshot.revision + 1}..${liveRevision}) lost`);
    expect(point).toBeLessThan(lines.findIndex((l) => /scaled to 0 for the restore/.test(l)));
    await sim.waitForReady('kv', 3, 60_000);
    const a = await keysUnder(sim.endpoints('kv'), 'a/');
    const b = await keysUnder(sim.endpoints('kv'), 'b/');
    expect(snapshotted.filter((k) => !a.has(k))).toEqual([]);
    expect(after.filter((k) => b.has(k))).toEqual([]);
    // The data from before the restore is still on every member's volume, in its own directory.
    for (const i of [0, 1, 2]) expect(readdirSync(sim.claimDir(`data-kv-${i}`)).sort()).toEqual(['etcd', expect.stringMatching(/^etcd-restore-[0-9a-f]{8}$/)]);
    // Done: the next run has nothing to do.
    expect((await reconcileOnce(api, sim, restoring, { force: true })).mutatingRequests).toBe(0);
  });

  test('a restore from a snapshot that is not there stops no member', async () => {
    const props = { size: 3, storageSize: '1Gi', backup: {} };
    await create('kv', props);
    const pids = sim.pids('kv');
    const missing = storeDocument('kv', { ...props, restore: { snapshot: 'kv-backup-1.db' } });
    await expect(reconcileOnce(api, sim, missing, { force: true, rolloutTimeoutMs: 60_000 })).rejects.toThrow(/Job kv-check-[0-9a-f]{8} failed/);
    expect(sts().spec.replicas).toBe(3);
    expect(sim.pids('kv')).toEqual(pids);
    // The failed check Job stays; the next run checks again under a new name.
    await expect(reconcileOnce(api, sim, missing, { force: true, rolloutTimeoutMs: 60_000 })).rejects.toThrow(/Job kv-check-[0-9a-f]{8}-1 failed/);
    expect(sim.pids('kv')).toEqual(pids);
  });

  test('retention: each backup Job prunes all but the newest `keep` snapshots', async () => {
    await create('kv', { size: 1, storageSize: '1Gi', backup: { keep: 1 } });
    const first = sim.triggerCronJob('kv-backup');
    expect((await sim.waitForJob(first, 60_000)).status.conditions.map((c: any) => c.type)).toContain('Complete');
    const dir = sim.claimDir('kv-backups');
    expect(readdirSync(dir).filter((f) => f.endsWith('.db'))).toEqual([`${first}.db`]);
    // A later run (the next schedule, a minute on), as the CronJob would make it.
    const later = `kv-backup-${Number(first.split('-').pop()) + 1}`;
    api.put(jobFromCronJob(api.get('batch/v1', 'CronJob', NAMESPACE, 'kv-backup') as any, later));
    expect((await sim.waitForJob(later, 60_000)).status.conditions.map((c: any) => c.type)).toContain('Complete');
    expect(readdirSync(dir).filter((f) => f.endsWith('.db'))).toEqual([`${later}.db`]);
  });

  test('with backup on, a membership change is preceded by a snapshot, which later backups prune with the rest', async () => {
    await create('kv', { size: 1, storageSize: '1Gi', backup: { keep: 1 } });
    await reconcileOnce(api, sim, storeDocument('kv', { size: 3, storageSize: '1Gi', backup: { keep: 1 } }));
    await sim.waitForReady('kv', 3, 60_000);
    const jobs = api.list('batch/v1', 'Job', NAMESPACE) as any[];
    const pre = jobs.find((j) => j.metadata.annotations?.['kvstore.cdk8s-kvstore.io/before'] === 'members 1 → 3')!;
    expect(pre).toBeDefined();
    expect(pre.status.succeeded).toBe(1);
    expect(readdirSync(sim.claimDir('kv-backups'))).toContain(`${pre.metadata.name}.db`);
    // Taken before the first member was added.
    const podCreated = (api.get('v1', 'Pod', NAMESPACE, 'kv-1') as any).metadata.creationTimestamp;
    expect(new Date(pre.status.completionTime).getTime()).toBeLessThanOrEqual(new Date(podCreated).getTime() + 999);
    // The next scheduled backup keeps 1 of both kinds together: its own.
    const scheduled = sim.triggerCronJob('kv-backup');
    expect((await sim.waitForJob(scheduled, 60_000)).status.conditions.map((c: any) => c.type)).toContain('Complete');
    expect(readdirSync(sim.claimDir('kv-backups')).filter((f) => f.endsWith('.db'))).toEqual([`${scheduled}.db`]);
  });
});
