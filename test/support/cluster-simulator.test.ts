// The cluster simulator on real etcd: a synthesized store applied to the API double comes up as etcd
// processes, and what the reconciler's day-2 operations rely on (scaling, orphan and background deletes,
// claims, Jobs, restarts, rolling updates) is observed on the objects, the processes and the data.
import { execFileSync } from 'child_process';
import { X509Certificate } from 'crypto';
import { existsSync, mkdirSync, readdirSync, utimesSync, writeFileSync } from 'fs';
import { join } from 'path';
import * as k8s from '@kubernetes/client-node';
import { ApiServer, ChangeEvent, KubeObject, startApiServer } from './api-server';
import { ClusterSimulator } from './cluster-simulator';
import { environOf, ETCD_VERSION, NAMESPACE, pidGone, sleep, synthStore, withEndpoint } from './etcd-cluster';
import type { Manifest } from './manifests';
import { describeWithEtcd } from './requires-etcd';

const IMAGE = `gcr.io/etcd-development/etcd:v${ETCD_VERSION}`;

let api: ApiServer | undefined;
let sim: ClusterSimulator | undefined;
let objects: k8s.KubernetesObjectApi;

afterEach(async () => {
  await sim?.stop();
  await api?.stop();
  sim = undefined;
  api = undefined;
});

/** A double with the simulator on it and the manifests stored, as an apply would leave them. */
async function cluster(manifests: Manifest[], onChange?: (e: ChangeEvent) => void): Promise<{ api: ApiServer; sim: ClusterSimulator }> {
  api = await startApiServer();
  if (onChange) api.onChange(onChange);
  sim = ClusterSimulator.start(api, { namespace: NAMESPACE });
  objects = k8s.KubernetesObjectApi.makeApiClient(api.kubeConfig());
  for (const o of manifests) api.put(o as KubeObject);
  return { api, sim };
}

const ref = (apiVersion: string, kind: string, name: string): any => ({ apiVersion, kind, metadata: { name, namespace: NAMESPACE } });
const mergePatch = (obj: any) => objects.patch(obj, undefined, undefined, 'test', undefined, k8s.PatchStrategy.MergePatch);
const find = (manifests: Manifest[], kind: string) => manifests.find((o) => o.kind === kind)!;

function get(kind: 'Pod' | 'PersistentVolumeClaim' | 'StatefulSet' | 'Job', name: string): KubeObject | undefined {
  const apiVersion = kind === 'StatefulSet' ? 'apps/v1' : kind === 'Job' ? 'batch/v1' : 'v1';
  return api!.get(apiVersion, kind, NAMESPACE, name);
}

const pods = () => api!.list('v1', 'Pod', NAMESPACE);

function job(name: string, spec: Record<string, any>, containers: any[], extra: Record<string, any> = {}): any {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace: NAMESPACE },
    spec: { ...spec, template: { spec: { restartPolicy: 'Never', containers, ...extra } } },
  };
}

describeWithEtcd(`cluster simulator with etcd ${ETCD_VERSION}`, () => {
  test('a 3-member store comes up: claims before pods, pods from the template, readyReplicas 3 as a client reads it', async () => {
    const manifests = synthStore('orders');
    const events: ChangeEvent[] = [];
    await cluster(manifests, (e) => events.push(e));

    await sim!.waitForReady('orders', 3);

    const sts: any = await objects.read(ref('apps/v1', 'StatefulSet', 'orders'));
    expect(sts.status).toMatchObject({ observedGeneration: 1, replicas: 3, readyReplicas: 3, currentReplicas: 3, updatedReplicas: 3, availableReplicas: 3 });
    expect(sts.status.updateRevision).toMatch(/^orders-[0-9a-f]{10}$/);
    expect(sts.status.currentRevision).toBe(sts.status.updateRevision);
    const storage = find(manifests, 'StatefulSet').spec.volumeClaimTemplates[0].spec.resources.requests.storage;
    const added = events.filter((e) => e.type === 'ADDED').map((e) => `${e.object.kind}/${e.object.metadata.name}`);
    for (const i of [0, 1, 2]) {
      const pod = get('Pod', `orders-${i}`)!;
      expect(pod.metadata.labels).toMatchObject({
        'app.kubernetes.io/instance': 'orders',
        'statefulset.kubernetes.io/pod-name': `orders-${i}`,
        'apps.kubernetes.io/pod-index': String(i),
        'controller-revision-hash': sts.status.updateRevision,
      });
      expect(pod.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'StatefulSet', name: 'orders', uid: sts.metadata.uid, controller: true })]);
      expect(pod.spec.volumes).toContainEqual({ name: 'data', persistentVolumeClaim: { claimName: `data-orders-${i}` } });
      expect(pod.status.conditions).toContainEqual(expect.objectContaining({ type: 'Ready', status: 'True' }));
      expect(sim!.url(`orders-${i}`)).toBe(`http://${pod.status.podIP}:2379`);
      expect(get('PersistentVolumeClaim', `data-orders-${i}`)!.status).toMatchObject({ phase: 'Bound', capacity: { storage } });
      expect(added.indexOf(`PersistentVolumeClaim/data-orders-${i}`)).toBeGreaterThanOrEqual(0);
      expect(added.indexOf(`PersistentVolumeClaim/data-orders-${i}`)).toBeLessThan(added.indexOf(`Pod/orders-${i}`));
    }

    const members = await withEndpoint(sim!.url('orders-0'), (c) => c.cluster.memberList({}));
    expect(members.members.map((m) => m.name).sort()).toEqual(['orders-0', 'orders-1', 'orders-2']);
    await withEndpoint(sim!.url('orders-0'), async (c) => { await c.put('written/on-0').value('yes'); });
    expect(await withEndpoint(sim!.url('orders-2'), (c) => c.get('written/on-0').string())).toBe('yes');
  });

  test('lowering replicas stops the top pod and removes its Pod object, keeping its claim and data; deleting the claim then removes the data', async () => {
    await cluster(synthStore('orders'));
    await sim!.waitForReady('orders', 3);
    const before = sim!.pids('orders');

    await mergePatch({ ...ref('apps/v1', 'StatefulSet', 'orders'), spec: { replicas: 2 } });
    await sim!.waitForReady('orders', 2);

    expect(pidGone(before['orders-2'])).toBe(true);
    expect(get('Pod', 'orders-2')).toBeUndefined();
    expect(sim!.pids('orders')).toEqual({ 'orders-0': before['orders-0'], 'orders-1': before['orders-1'] });
    expect(get('PersistentVolumeClaim', 'data-orders-2')?.status?.phase).toBe('Bound');
    const data = sim!.claimDir('data-orders-2');
    expect(existsSync(join(data, 'etcd', 'member', 'wal'))).toBe(true);

    await objects.delete(ref('v1', 'PersistentVolumeClaim', 'data-orders-2'));
    await sim!.waitUntil('the claim and its data to go', () => !get('PersistentVolumeClaim', 'data-orders-2') && !existsSync(data));
    expect(existsSync(join(sim!.claimDir('data-orders-1'), 'etcd', 'member', 'wal'))).toBe(true);
  });

  test('a claim deleted while its pod runs stays terminating with its data; the pod deleted through the API comes back on a fresh claim', async () => {
    await cluster(synthStore('orders', { size: 1 }));
    await sim!.waitForReady('orders', 1);
    await withEndpoint(sim!.url('orders-0'), async (c) => { await c.put('kept').value('until the claim goes'); });
    const claim = get('PersistentVolumeClaim', 'data-orders-0')!;
    const pod = get('Pod', 'orders-0')!;
    const pid = sim!.pid('orders-0')!;

    await objects.delete(ref('v1', 'PersistentVolumeClaim', 'data-orders-0'));
    await sleep(600);
    expect(get('PersistentVolumeClaim', 'data-orders-0')!.metadata).toMatchObject({
      uid: claim.metadata.uid, deletionTimestamp: expect.any(String), finalizers: ['kubernetes.io/pvc-protection'],
    });
    expect(sim!.pid('orders-0')).toBe(pid);
    expect(await withEndpoint(sim!.url('orders-0'), (c) => c.get('kept').string())).toBe('until the claim goes');

    await objects.delete(ref('v1', 'Pod', 'orders-0'));
    // Graceful: the object stays, terminating, until its process has stopped.
    expect(get('Pod', 'orders-0')?.metadata).toMatchObject({ uid: pod.metadata.uid, deletionTimestamp: expect.any(String) });
    await sim!.waitUntil('a new orders-0 on a new claim', () => get('Pod', 'orders-0')?.metadata.uid !== pod.metadata.uid
      && get('PersistentVolumeClaim', 'data-orders-0')?.metadata.uid !== claim.metadata.uid);
    await sim!.waitForReady('orders', 1);

    expect(pidGone(pid)).toBe(true);
    expect(get('PersistentVolumeClaim', 'data-orders-0')!.metadata.deletionTimestamp).toBeUndefined();
    expect(await withEndpoint(sim!.url('orders-0'), (c) => c.get('kept').string())).toBeNull();
  });

  test('deleting the StatefulSet with propagationPolicy Orphan keeps its pods running; the re-created set adopts them (same PIDs)', async () => {
    const manifests = synthStore('orders');
    await cluster(manifests);
    await sim!.waitForReady('orders', 3);
    const before = sim!.pids('orders');
    const oldUid = get('StatefulSet', 'orders')!.metadata.uid;

    await objects.delete(ref('apps/v1', 'StatefulSet', 'orders'), undefined, undefined, undefined, undefined, 'Orphan');
    await sim!.waitUntil('the pods to be orphaned', () => pods().every((p) => !p.metadata.ownerReferences) && pods().length === 3);
    await sleep(600);
    expect(get('StatefulSet', 'orders')).toBeUndefined();
    expect(sim!.pids('orders')).toEqual(before);

    await objects.create(find(manifests, 'StatefulSet'));
    const sts = await sim!.waitForReady('orders', 3);

    expect(sts.metadata.uid).not.toBe(oldUid);
    expect(sim!.pids('orders')).toEqual(before);
    expect(pods().map((p) => p.metadata.ownerReferences?.[0]?.uid)).toEqual([sts.metadata.uid, sts.metadata.uid, sts.metadata.uid]);
    expect(sts.status.updatedReplicas).toBe(3);
  });

  test('deleting the StatefulSet without a propagationPolicy (Background) stops and removes its pods and keeps the claims', async () => {
    await cluster(synthStore('orders'));
    await sim!.waitForReady('orders', 3);
    const before = Object.values(sim!.pids('orders'));

    await objects.delete(ref('apps/v1', 'StatefulSet', 'orders'));
    await sim!.waitUntil('the pods to go', () => pods().length === 0);

    expect(before.filter((pid) => !pidGone(pid))).toEqual([]);
    expect(api!.list('v1', 'PersistentVolumeClaim', NAMESPACE).map((c) => c.metadata.name)).toEqual(['data-orders-0', 'data-orders-1', 'data-orders-2']);
    expect(existsSync(join(sim!.claimDir('data-orders-0'), 'etcd', 'member'))).toBe(true);
  });

  test('growing a bound claim\'s storage request sets its capacity', async () => {
    await cluster([]);
    await objects.create({ ...ref('v1', 'PersistentVolumeClaim', 'backup'), spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } });
    await sim!.waitUntil('the claim to bind', () => get('PersistentVolumeClaim', 'backup')?.status?.phase === 'Bound');
    expect(get('PersistentVolumeClaim', 'backup')!.status.capacity).toEqual({ storage: '1Gi' });

    await mergePatch({ ...ref('v1', 'PersistentVolumeClaim', 'backup'), spec: { resources: { requests: { storage: '3Gi' } } } });
    await sim!.waitUntil('the capacity to grow', () => get('PersistentVolumeClaim', 'backup')!.status.capacity.storage === '3Gi');
  });

  test('a Job from a CronJob runs etcdctl put (init container), then snapshot save to a claim: Complete, and the snapshot holds the write', async () => {
    await cluster(synthStore('orders', { size: 1 }));
    await sim!.waitForReady('orders', 1);
    await objects.create({ ...ref('v1', 'PersistentVolumeClaim', 'backup'), spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } });
    const template = job('unused', { backoffLimit: 0 }, [{
      name: 'save', image: IMAGE, command: ['etcdctl'],
      env: [{ name: 'JOB', valueFrom: { fieldRef: { fieldPath: "metadata.labels['batch.kubernetes.io/job-name']" } } }],
      args: ['--endpoints=http://orders.kvtest.svc.cluster.local:2379', 'snapshot', 'save', '/backup/$(JOB).db'],
      volumeMounts: [{ name: 'backup', mountPath: '/backup' }],
    }], {
      // The Service name resolves to a Ready member.
      initContainers: [{ name: 'put', image: IMAGE, command: ['etcdctl'], args: ['--endpoints=http://orders:2379', 'put', 'backup/marker', 'present'] }],
      volumes: [{ name: 'backup', persistentVolumeClaim: { claimName: 'backup' } }],
    });
    await objects.create({ ...ref('batch/v1', 'CronJob', 'orders-backup'), spec: { schedule: '0 * * * *', jobTemplate: { spec: template.spec } } });

    const minutes = [Math.floor(Date.now() / 60_000), Math.floor(Date.now() / 60_000) + 1];
    const name = sim!.triggerCronJob('orders-backup');
    expect(minutes.map((m) => `orders-backup-${m}`)).toContain(name);
    const finished = await sim!.waitForJob(name);

    expect(finished.status).toMatchObject({ succeeded: 1, conditions: [expect.objectContaining({ type: 'Complete', status: 'True' })] });
    expect(finished.status.failed).toBeUndefined();
    expect(finished.metadata.ownerReferences[0]).toMatchObject({ kind: 'CronJob', name: 'orders-backup' });
    const jobPods = pods().filter((p) => p.metadata.labels?.['job-name'] === name);
    expect(jobPods.map((p) => [p.status.phase, p.metadata.labels!['batch.kubernetes.io/job-name'], p.metadata.labels!['controller-uid']])).toEqual([['Succeeded', name, finished.metadata.uid]]);
    const marker = await withEndpoint(sim!.url('orders-0'), (c) => c.get('backup/marker').exec());
    const snapshot = join(sim!.claimDir('backup'), `${name}.db`);
    const status = JSON.parse(execFileSync('/usr/bin/etcdctl', ['snapshot', 'status', snapshot, '--write-out=json'], { encoding: 'utf8', env: { ETCDCTL_API: '3' } }));
    expect(status.revision).toBeGreaterThanOrEqual(Number(marker.kvs[0].mod_revision));
  });

  test.each([
    ['etcdctl exits non-zero', IMAGE, ['etcdctl', '--endpoints=http://127.0.0.1:9', '--dial-timeout=500ms', '--command-timeout=1s', 'get', 'k'], 1, /context deadline exceeded/],
    ['the command is not a simulated binary', 'busybox:1.36', ['sh', '-c', 'true'], 0, /runs sh, which is not a simulated binary \(only etcd, etcdctl\)/],
    ['no command, and no entrypoint known for the image', 'busybox:1.36', undefined, 0, /has no command, and the entrypoint of image busybox:1.36 is not simulated/],
  ])('a failing Job (%s) is retried up to backoffLimit, then Failed with the reason in its message', async (_, image, command, backoffLimit, reason) => {
    await cluster([]);
    await objects.create(job('fails', { backoffLimit }, [{ name: 'main', image, ...(command ? { command } : {}) }]));

    const finished = await sim!.waitForJob('fails');

    const failed = pods().filter((p) => p.metadata.labels?.['job-name'] === 'fails');
    expect(failed.map((p) => p.status.phase)).toEqual(Array(backoffLimit + 1).fill('Failed'));
    expect(finished.status).toMatchObject({ failed: backoffLimit + 1, conditions: [expect.objectContaining({ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded' })] });
    expect(finished.status.succeeded).toBeUndefined();
    expect(finished.status.conditions[0].message).toMatch(reason);
  });

  test('a container without command runs its image\'s entrypoint: the reconciler\'s image runs this working tree\'s kvstore-reconcile', async () => {
    await cluster([]);
    await objects.create({ ...ref('v1', 'PersistentVolumeClaim', 'backup'), spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } });
    const dir = sim!.claimDir('backup');
    mkdirSync(dir);
    writeFileSync(join(dir, 'snap-1.db'), 'old');
    utimesSync(join(dir, 'snap-1.db'), new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    writeFileSync(join(dir, 'snap-2.db'), 'new');

    await objects.create(job('prune', { backoffLimit: 0 }, [{
      name: 'prune', image: 'registry.example.com/kvstore-reconciler:test', args: ['--prune-snapshots', '/backup', '--prefix', 'snap-', '--keep', '1'],
      volumeMounts: [{ name: 'backup', mountPath: '/backup' }],
    }], { volumes: [{ name: 'backup', persistentVolumeClaim: { claimName: 'backup' } }] }));
    const finished = await sim!.waitForJob('prune');

    expect(finished.status.conditions.map((c: any) => [c.type, c.reason])).toEqual([['Complete', 'CompletionsReached']]);
    expect(readdirSync(dir)).toEqual(['snap-2.db']);
  });

  test('a killed etcd is restarted in its pod (restartCount 1, same data); a changed ConfigMap reaches the restart, not the running process', async () => {
    const manifests = synthStore('orders', { size: 1 });
    find(manifests, 'StatefulSet').spec.template.spec.containers[0].env.push({ name: 'MARKER', valueFrom: { configMapKeyRef: { name: 'orders-marker', key: 'marker' } } });
    manifests.push({ ...ref('v1', 'ConfigMap', 'orders-marker'), data: { marker: 'one' } });
    await cluster(manifests);
    await sim!.waitForReady('orders', 1);
    await withEndpoint(sim!.url('orders-0'), async (c) => { await c.put('kept').value('across the restart'); });
    const pod = get('Pod', 'orders-0')!;
    const pid = sim!.pid('orders-0')!;

    await mergePatch({ ...ref('v1', 'ConfigMap', 'orders-marker'), data: { marker: 'two' } });
    await sleep(600);
    expect(environOf(pid).MARKER).toBe('one');

    process.kill(pid, 'SIGKILL');
    await sim!.waitUntil('orders-0 to be restarted and Ready', () => {
      const status = get('Pod', 'orders-0')?.status;
      return status?.containerStatuses[0].restartCount === 1 && status.conditions.some((c: any) => c.type === 'Ready' && c.status === 'True');
    });

    expect(get('Pod', 'orders-0')!.metadata.uid).toBe(pod.metadata.uid);
    expect(environOf(sim!.pid('orders-0')!).MARKER).toBe('two');
    expect(await withEndpoint(sim!.url('orders-0'), (c) => c.get('kept').string())).toBe('across the restart');
    expect(get('StatefulSet', 'orders')!.status.readyReplicas).toBe(1);
  });

  test('cert-manager stand-in: each Certificate issued once its Issuer is ready, once per spec; the TLS member starts once its Secret exists', async () => {
    const manifests = synthStore('orders', { size: 1, tls: {} });
    const isCaIssuer = (o: Manifest) => o.kind === 'Issuer' && o.metadata.name === 'orders-ca';
    await cluster(manifests.filter((o) => !isCaIssuer(o)));
    const secret = (name: string) => api!.get('v1', 'Secret', NAMESPACE, name) as any;
    // The CA (self-signed Issuer) is issued; the leaves wait for their CA Issuer, and the member for its Secret.
    await sim!.waitUntil('the CA Secret', () => secret('orders-ca'));
    await sleep(600);
    expect(secret('orders-member-tls')).toBeUndefined();
    expect(sim!.errors).toEqual([]);
    expect(get('StatefulSet', 'orders')!.status?.readyReplicas ?? 0).toBe(0);

    api!.put(manifests.find(isCaIssuer) as KubeObject);
    await sim!.waitForReady('orders', 1, 30_000);
    const client = secret('orders-client-tls');
    expect(client.type).toBe('kubernetes.io/tls');
    expect(new X509Certificate(Buffer.from(client.data['tls.crt'], 'base64')).checkIssued(new X509Certificate(Buffer.from(secret('orders-ca').data['tls.crt'], 'base64')))).toBe(true);
    // Once per spec: nothing is issued again while the specs stay; a changed spec is issued anew.
    await sleep(600);
    expect(secret('orders-client-tls').metadata.resourceVersion).toBe(client.metadata.resourceVersion);
    const ca = secret('orders-ca').data['tls.crt'];
    const crt = api!.get('cert-manager.io/v1', 'Certificate', NAMESPACE, 'orders-client-tls')!;
    api!.put({ ...crt, spec: { ...crt.spec, duration: '1000h' } });
    await sim!.waitUntil('the client certificate issued again', () => secret('orders-client-tls').metadata.resourceVersion !== client.metadata.resourceVersion);
    expect(secret('orders-client-tls').data['tls.crt']).not.toBe(client.data['tls.crt']);
    expect(secret('orders-ca').data['tls.crt']).toBe(ca);
  });

  test('a rolling update with partition 1 restarts orders-2, then orders-1 once orders-2 is Ready again, and leaves orders-0 alone', async () => {
    await cluster(synthStore('orders'));
    const initial = await sim!.waitForReady('orders', 3);
    const before = sim!.pids('orders');
    const uids = Object.fromEntries(pods().map((p) => [p.metadata.name, p.metadata.uid]));
    // Every Pod change in order: who is Ready, who is being deleted.
    const changes: Array<{ pod: string; deleting: boolean; readyNew: boolean; readyCount: number }> = [];
    const ready = new Map(pods().map((p) => [p.metadata.name!, true]));
    api!.onChange((e) => {
      if (e.object.kind !== 'Pod') return;
      const pod = e.object.metadata.name!;
      const isReady = e.type !== 'DELETED' && !e.object.metadata.deletionTimestamp
        && e.object.status?.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True');
      ready.set(pod, isReady);
      changes.push({ pod, deleting: !!e.object.metadata.deletionTimestamp, readyNew: isReady && e.object.metadata.uid !== uids[pod], readyCount: [...ready.values()].filter(Boolean).length });
    });

    await mergePatch({
      ...ref('apps/v1', 'StatefulSet', 'orders'),
      spec: { updateStrategy: { rollingUpdate: { partition: 1 } }, template: { metadata: { annotations: { rollout: 'two' } } } },
    });
    const status = await sim!.waitUntil('two pods updated and all Ready', () => {
      const s = get('StatefulSet', 'orders')!.status;
      return s.observedGeneration === 2 && s.updatedReplicas === 2 && s.readyReplicas === 3 ? s : undefined;
    });

    const after = sim!.pids('orders');
    expect(after['orders-0']).toBe(before['orders-0']);
    expect([after['orders-1'] !== before['orders-1'], after['orders-2'] !== before['orders-2']]).toEqual([true, true]);
    expect(status.currentRevision).toBe(initial.status.currentRevision);
    expect(status.updateRevision).not.toBe(initial.status.updateRevision);
    expect(pods().map((p) => p.metadata.labels!['controller-revision-hash'])).toEqual([initial.status.updateRevision, status.updateRevision, status.updateRevision]);
    // One at a time, highest first: orders-1 is deleted only once the new orders-2 is Ready.
    const first = (pod: string, what: 'deleting' | 'readyNew') => changes.findIndex((c) => c.pod === pod && c[what]);
    expect(first('orders-2', 'deleting')).toBeGreaterThanOrEqual(0);
    expect(first('orders-2', 'readyNew')).toBeGreaterThan(first('orders-2', 'deleting'));
    expect(first('orders-1', 'deleting')).toBeGreaterThan(first('orders-2', 'readyNew'));
    expect(first('orders-0', 'deleting')).toBe(-1);
    expect(Math.min(...changes.map((c) => c.readyCount))).toBe(2);
  });
});
