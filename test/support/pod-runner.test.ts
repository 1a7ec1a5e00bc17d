// The pod runner itself on real etcd: what it simulates of the kubelet (environment, `$(VAR)`
// expansion, user, volumes and their refresh, DNS) reaches the etcd process, and it leaves nothing behind.
import { execFileSync } from 'child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'fs';
import { join } from 'path';
import { environOf, ETCD_VERSION, NAMESPACE, pidGone, startReady, synthStore, waitReady, withMember } from './etcd-cluster';
import type { Manifest } from './manifests';
import { describeWithEtcd } from './requires-etcd';
import { usePodRunner } from './runner-fixture';

const run = usePodRunner();

/** The etcd container of the store's StatefulSet, to mutate before the runner sees it. */
function etcdContainer(objects: Manifest[]): any {
  return objects.find((o) => o.kind === 'StatefulSet')!.spec.template.spec.containers[0];
}

/** Replaces the one arg starting with `prefix`; throws if there is none, so a test never mutates nothing. */
function replaceArg(container: any, prefix: string, replacement: string): void {
  const i = container.args.findIndex((a: string) => a.startsWith(prefix));
  if (i === -1) throw new Error(`no arg starting with ${prefix} in ${container.args.join(' ')}`);
  container.args[i] = replacement;
}

function configMap(name: string, data: Record<string, string>): Manifest {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: NAMESPACE }, data };
}

function secret(name: string, data: Record<string, string>): Manifest {
  const encoded = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: NAMESPACE }, data: encoded };
}

/** The real, effective, saved and filesystem ids of a process, from its status line (`Uid` or `Gid`). */
function idsOf(pid: number, line: 'Uid' | 'Gid'): number[] {
  const match = new RegExp(`^${line}:\\s+(.*)$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match![1].trim().split(/\s+/).map(Number);
}

describeWithEtcd(`pod runner with etcd ${ETCD_VERSION}`, () => {
  test('$(VAR) in args is expanded from a configMapKeyRef variable before etcd sees it', async () => {
    const objects = synthStore('orders', { size: 1 });
    const c = etcdContainer(objects);
    c.env.push({ name: 'MEMBER', valueFrom: { configMapKeyRef: { name: 'orders-names', key: 'member' } } });
    replaceArg(c, '--name=', '--name=$(MEMBER)');
    // The initial cluster must name the member too: a flag wherever the store puts it (args or a bootstrap
    // ConfigMap read with envFrom, which an env entry overrides).
    c.args = c.args.filter((a: string) => !a.startsWith('--initial-cluster='));
    c.env.push({ name: 'ETCD_INITIAL_CLUSTER', value: '$(MEMBER)=http://orders-0.orders-peers.$(POD_NAMESPACE).svc.cluster.local:2380' });
    objects.push(configMap('orders-names', { member: 'alpha' }));

    const r = run(objects);
    r.start('orders-0');
    await waitReady(r, ['orders-0']);

    const members = await withMember(r, 'orders-0', (client) => client.cluster.memberList({}));
    expect(members.members.map((m) => [m.name, m.peerURLs])).toEqual([['alpha', ['http://orders-0.orders-peers.kvtest.svc.cluster.local:2380']]]);
    r.assertNoUnexpectedExits();
  });

  test('envFrom a Secret with a prefix sets ETCD_* variables that etcd applies', async () => {
    const objects = synthStore('orders', { size: 1 });
    etcdContainer(objects).envFrom = [{ secretRef: { name: 'orders-tuning' }, prefix: 'ETCD_' }];
    objects.push(secret('orders-tuning', { MAX_TXN_OPS: '3' }));

    const r = run(objects);
    r.start('orders-0');
    await waitReady(r, ['orders-0']);

    expect(environOf(r.pid('orders-0'))).toMatchObject({ ETCD_MAX_TXN_OPS: '3' });
    await withMember(r, 'orders-0', async (client) => {
      const txn = (ops: number) => client.if('guard', 'Create', '==', 0)
        .then(...Array.from({ length: ops }, (_, i) => client.put(`t/${ops}/${i}`).value('v')))
        .commit();
      await expect(txn(3)).resolves.toMatchObject({ succeeded: true });
      await expect(txn(4)).rejects.toThrow(/too many operations in txn request/);
    });
    r.assertNoUnexpectedExits();
  });

  test.each([
    ['the pod\'s runAsUser/runAsGroup by default', undefined, 65532],
    ['the container\'s runAsUser/runAsGroup when it sets them', 40000, 40000],
  ])('etcd runs as %s', async (_, containerId, expected) => {
    const objects = synthStore('orders', { size: 1 });
    const c = etcdContainer(objects);
    if (containerId !== undefined) Object.assign(c.securityContext, { runAsUser: containerId, runAsGroup: containerId });

    const r = run(objects);
    r.start('orders-0');
    await waitReady(r, ['orders-0']);

    const pid = r.pid('orders-0');
    expect(readFileSync(`/proc/${pid}/comm`, 'utf8').trim()).toBe('etcd');
    expect(idsOf(pid, 'Uid')).toEqual([expected, expected, expected, expected]);
    expect(idsOf(pid, 'Gid')).toEqual([expected, expected, expected, expected]);
    r.assertNoUnexpectedExits();
  });

  test('the PVC directory is owned by runAsUser/fsGroup and keeps the data across a restart of the ordinal', async () => {
    const r = run(synthStore('orders', { size: 1 }));
    r.start('orders-0');
    await waitReady(r, ['orders-0']);
    const pvc = join(r.workDir, 'pvc', 'data-orders-0');
    expect(statSync(pvc)).toMatchObject({ uid: 65532, gid: 65532 });
    expect(existsSync(join(pvc, 'etcd', 'member', 'wal'))).toBe(true);
    const memberId = await withMember(r, 'orders-0', async (c) => {
      await c.put('kept').value('across restarts');
      return (await c.maintenance.status()).header.member_id;
    });

    await r.kill('orders-0');
    r.start('orders-0');
    await waitReady(r, ['orders-0']);

    await withMember(r, 'orders-0', async (c) => {
      expect(await c.get('kept').string()).toBe('across restarts');
      expect((await c.maintenance.status()).header.member_id).toBe(memberId);
    });
    r.assertNoUnexpectedExits();
  });

  test('the emptyDir mounted at /tmp is fresh on every start', async () => {
    const r = run(synthStore('orders', { size: 1 }));
    r.start('orders-0');
    await waitReady(r, ['orders-0']);
    const tmp = join(r.workDir, 'volumes', 'orders-0-tmp');
    expect(statSync(tmp)).toMatchObject({ uid: 65532, gid: 65532 });
    writeFileSync(join(tmp, 'marker'), 'from the first start');
    // The directory is what the pod sees at /tmp.
    expect(readFileSync(`/proc/${r.pid('orders-0')}/root/tmp/marker`, 'utf8')).toBe('from the first start');

    await r.kill('orders-0');
    r.start('orders-0');
    await waitReady(r, ['orders-0']);

    expect(existsSync(join(tmp, 'marker'))).toBe(false);
    expect(existsSync(`/proc/${r.pid('orders-0')}/root/tmp/marker`)).toBe(false);
    r.assertNoUnexpectedExits();
  });

  test('pods resolve every pod and Service name (a Ready pod first) through their own hosts file; the machine\'s /etc/hosts is untouched', async () => {
    const hostsBefore = readFileSync('/etc/hosts', 'utf8');
    const r = run(synthStore('orders'));
    const pods = await startReady(r, 'orders');
    expect(readFileSync('/etc/hosts', 'utf8')).toBe(hostsBefore);

    const resolve = (pod: string, name: string) => execFileSync('nsenter',
      ['--target', String(r.pid(pod)), '--mount', '--root', '--', 'getent', 'hosts', name], { encoding: 'utf8' }).trim().split(/\s+/)[0];
    for (const target of pods) {
      expect({ target, ip: resolve('orders-1', `${target}.orders-peers.kvtest.svc.cluster.local`) }).toEqual({ target, ip: r.ip(target) });
    }
    expect(resolve('orders-2', 'orders.kvtest.svc.cluster.local')).toBe(r.ip('orders-0'));
    // A Service name goes to a Ready pod once readiness is known.
    r.setReady('orders-1', true);
    expect(resolve('orders-2', 'orders.kvtest.svc.cluster.local')).toBe(r.ip('orders-1'));

    await r.stopAll();
    expect(readFileSync('/etc/hosts', 'utf8')).toBe(hostsBefore);
  });

  test('refreshVolumes rewrites a running pod\'s Secret volume in the kubelet\'s layout (..data swapped to a new timestamped directory), only when the Secret changed, without restarting it', async () => {
    const objects = synthStore('orders', { size: 1 });
    const sts = objects.find((o) => o.kind === 'StatefulSet')!;
    sts.spec.template.spec.volumes.push({ name: 'extra', secret: { secretName: 'orders-extra', defaultMode: 0o440 } });
    etcdContainer(objects).volumeMounts.push({ name: 'extra', mountPath: '/etc/extra', readOnly: true });
    const r = run([...objects, secret('orders-extra', { a: 'one', b: 'two' })]);
    r.start('orders-0');
    await waitReady(r, ['orders-0']);
    const pid = r.pid('orders-0');
    const inPod = (f: string) => `/proc/${pid}/root/etc/extra/${f}`;
    const dir = join(r.workDir, 'volumes', 'orders-0-extra');
    const first = readlinkSync(join(dir, '..data'));
    expect(first).toMatch(/^\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\w+$/);
    expect(readdirSync(dir).sort()).toEqual([first, '..data', 'a', 'b'].sort());
    expect(readlinkSync(join(dir, 'a'))).toBe('..data/a');
    expect(statSync(join(dir, 'a'))).toMatchObject({ mode: 0o100440, uid: 0, gid: 65532 });

    expect(r.refreshVolumes([...objects, secret('orders-extra', { a: 'one', b: 'two' })])).toEqual([]);
    expect(readlinkSync(join(dir, '..data'))).toBe(first);

    expect(r.refreshVolumes([...objects, secret('orders-extra', { a: 'uno', c: 'tres' })])).toEqual(['orders-0/extra']);
    const second = readlinkSync(join(dir, '..data'));
    expect(second).not.toBe(first);
    expect(readdirSync(dir).sort()).toEqual([second, '..data', 'a', 'c'].sort());
    expect([readFileSync(inPod('a'), 'utf8'), readFileSync(inPod('c'), 'utf8'), existsSync(inPod('b'))]).toEqual(['uno', 'tres', false]);
    expect(statSync(inPod('c'))).toMatchObject({ mode: 0o100440, gid: 65532 });

    // A Secret that is gone leaves the files as they are (the kubelet keeps the last content).
    expect(r.refreshVolumes(objects)).toEqual([]);
    expect(readFileSync(inPod('a'), 'utf8')).toBe('uno');
    expect(r.pid('orders-0')).toBe(pid);
    expect(r.running('orders-0')).toBe(true);
    r.assertNoUnexpectedExits();
  });

  test('fails to start a pod that is already running, and leaves the running one alone', async () => {
    const r = run(synthStore('orders', { size: 1 }));
    r.start('orders-0');
    await waitReady(r, ['orders-0']);
    const pid = r.pid('orders-0');

    expect(() => r.start('orders-0')).toThrow(`pod orders-0 is already running (pid ${pid})`);
    expect(r.pid('orders-0')).toBe(pid);
    await waitReady(r, ['orders-0']);
    r.assertNoUnexpectedExits();
  });

  test('refuses an image whose etcd minor version differs from the installed one, naming both', () => {
    const [major, minor] = ETCD_VERSION.split('.').map(Number);
    const image = `gcr.io/etcd-development/etcd:v${major}.${minor + 1}.21`;
    const objects = synthStore('orders', { size: 1 });
    etcdContainer(objects).image = image;
    const r = run(objects);

    expect(() => r.start('orders-0')).toThrow(`image ${image} is not etcd ${major}.${minor}, the version installed here (${ETCD_VERSION})`);
    expect(r.running('orders-0')).toBe(false);
  });

  test('stopAll leaves no process behind and removes its work directory', async () => {
    const r = run(synthStore('orders'));
    const pods = await startReady(r, 'orders');
    const pids = pods.map((p) => r.pid(p));
    await r.kill('orders-1');
    r.start('orders-1');
    pids.push(r.pid('orders-1'));
    await waitReady(r, pods);
    expect(pids.filter(pidGone)).toEqual([pids[1]]);

    await r.stopAll();

    expect(pids.filter((pid) => !pidGone(pid))).toEqual([]);
    expect(existsSync(r.workDir)).toBe(false);
  });
});
