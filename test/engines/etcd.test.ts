// EtcdEngine: bootstrap flags, quota, WAL placement, version-dependent probes and etcd's own rules.
import { Engine } from '../../lib/engines/engine';
import { EtcdEngine, EtcdOptions, etcdVersionStep, liveEtcdVersion, servesLivezReadyz } from '../../lib/engines/etcd';
import { EngineContext } from '../../lib/engines/types';
import { KVStoreProps, specInputFromProps } from '../../lib/constructs/kv-store';
import { StoreDefinition } from '../../lib/constructs/store-definition';
import { AutoCompactionMode, PodManagementPolicy } from '../../lib';
import { storeNames } from '../../lib/model/names';
import { KVStoreSpec } from '../../lib/model/spec';

const GiB = 2 ** 30;
const TOKEN = 'orders-0123abcd';

function etcd(options: EtcdOptions = {}): EtcdEngine {
  return Engine.etcd(options) as EtcdEngine;
}

/** The resolved spec of store 'orders'; throws like the construct would. */
function resolve(engine: EtcdEngine, props: KVStoreProps = {}): { spec: KVStoreSpec; warnings: string[] } {
  return StoreDefinition.resolve(specInputFromProps('orders', engine, props), engine);
}

function context(spec: KVStoreSpec, extra: Partial<EngineContext> = {}): EngineContext {
  return { spec, names: storeNames(spec.name), clusterToken: TOKEN, initialClusterState: 'new', ...extra };
}

/** The container args of store 'orders'. */
function argsOf(engine: EtcdEngine, props: KVStoreProps = {}, extra: Partial<EngineContext> = {}): string[] {
  return engine.container(context(resolve(engine, props).spec, extra)).args!;
}

/** Every value of `--<flag>=` in args. */
function flag(args: string[], name: string): string[] {
  const prefix = `--${name}=`;
  return args.filter((a) => a.startsWith(prefix)).map((a) => a.slice(prefix.length));
}

describe('EtcdEngine defaults', () => {
  test('pins the etcd image and Parallel pod management', () => {
    expect(etcd().defaults).toStrictEqual({ image: 'gcr.io/etcd-development/etcd:v3.5.21', podManagementPolicy: 'Parallel' });
  });

  test('the image tag follows the version', () => {
    expect(etcd({ version: '3.4.23' }).defaults.image).toBe('gcr.io/etcd-development/etcd:v3.4.23');
  });

  test('spec carries version 3.5.21 and periodic 1h compaction, nothing else', () => {
    expect(etcd().spec).toStrictEqual({ kind: 'etcd', version: '3.5.21', autoCompactionMode: 'periodic', autoCompactionRetention: '1h' });
  });

  test('ports 2379 and 2380, needs quorum', () => {
    const engine = etcd();
    expect([engine.name, engine.clientPort, engine.peerPort, engine.quorum]).toStrictEqual(['etcd', 2379, 2380, true]);
  });

  test('a resolved store uses the pinned image and Parallel', () => {
    const { spec } = resolve(etcd());
    expect([spec.image, spec.podManagementPolicy]).toStrictEqual(['gcr.io/etcd-development/etcd:v3.5.21', 'Parallel']);
  });
});

describe('EtcdEngine container', () => {
  test('renders the full argument list of a 3-member store', () => {
    const peers = 'orders-peers.$(POD_NAMESPACE).svc.cluster.local';
    const container = etcd().container(context(resolve(etcd()).spec));
    expect(container.command).toStrictEqual(['/usr/local/bin/etcd']);
    expect(container.env).toStrictEqual([]);
    expect(container.args).toStrictEqual([
      '--name=$(POD_NAME)',
      '--data-dir=/var/lib/kvstore/data/etcd',
      '--listen-peer-urls=http://$(POD_IP):2380',
      '--listen-client-urls=http://$(POD_IP):2379',
      '--listen-metrics-urls=http://$(POD_IP):2381',
      `--advertise-client-urls=http://$(POD_NAME).${peers}:2379`,
      `--initial-advertise-peer-urls=http://$(POD_NAME).${peers}:2380`,
      `--initial-cluster=orders-0=http://orders-0.${peers}:2380,orders-1=http://orders-1.${peers}:2380,orders-2=http://orders-2.${peers}:2380`,
      '--initial-cluster-state=new',
      `--initial-cluster-token=${TOKEN}`,
      '--auto-compaction-mode=periodic',
      '--auto-compaction-retention=1h',
      `--quota-backend-bytes=${5 * GiB}`,
    ]);
  });

  test('initial cluster lists one member per ordinal', () => {
    const [initialCluster] = flag(argsOf(etcd(), { size: 5 }), 'initial-cluster');
    expect(initialCluster.split(',').map((m) => m.split('=')[0])).toStrictEqual(['orders-0', 'orders-1', 'orders-2', 'orders-3', 'orders-4']);
  });

  test('advertise URLs use the cluster domain', () => {
    const args = argsOf(etcd(), { clusterDomain: 'k8s.example.com' });
    expect(flag(args, 'advertise-client-urls')).toStrictEqual(['http://$(POD_NAME).orders-peers.$(POD_NAMESPACE).svc.k8s.example.com:2379']);
  });

  test('initial cluster state comes from the context', () => {
    expect(flag(argsOf(etcd(), {}, { initialClusterState: 'existing' }), 'initial-cluster-state')).toStrictEqual(['existing']);
  });

  test('an explicit initial cluster token overrides the derived one', () => {
    expect(flag(argsOf(etcd({ initialClusterToken: 'shop-orders' })), 'initial-cluster-token')).toStrictEqual(['shop-orders']);
  });

  test('the data dir is a subdirectory of the first template', () => {
    const args = argsOf(etcd(), { volumeClaimTemplates: [{ name: 'db', mountPath: '/srv/db' }] });
    expect(flag(args, 'data-dir')).toStrictEqual(['/srv/db/etcd']);
  });

  test('compaction flags follow the options', () => {
    const args = argsOf(etcd({ autoCompactionMode: AutoCompactionMode.REVISION, autoCompactionRetention: '1000' }));
    expect([flag(args, 'auto-compaction-mode'), flag(args, 'auto-compaction-retention')]).toStrictEqual([['revision'], ['1000']]);
  });
});

describe('EtcdEngine WAL directory', () => {
  test('uses a template named wal', () => {
    const args = argsOf(etcd(), { volumeClaimTemplates: [{ name: 'data' }, { name: 'wal' }] });
    expect(flag(args, 'wal-dir')).toStrictEqual(['/var/lib/kvstore/wal/etcd-wal']);
  });

  test('uses the template walVolume names', () => {
    const args = argsOf(etcd({ walVolume: 'log' }), { volumeClaimTemplates: [{ name: 'data' }, { name: 'log', mountPath: '/log' }] });
    expect(flag(args, 'wal-dir')).toStrictEqual(['/log/etcd-wal']);
  });

  test('none with a single template', () => {
    expect(flag(argsOf(etcd()), 'wal-dir')).toStrictEqual([]);
  });

  test('none when no second template is named wal', () => {
    const args = argsOf(etcd(), { volumeClaimTemplates: [{ name: 'data' }, { name: 'backup' }] });
    expect(flag(args, 'wal-dir')).toStrictEqual([]);
  });

  test('none when the first template is named wal (it holds the data)', () => {
    const args = argsOf(etcd(), { volumeClaimTemplates: [{ name: 'wal' }] });
    expect([flag(args, 'wal-dir'), flag(args, 'data-dir')]).toStrictEqual([[], ['/var/lib/kvstore/wal/etcd']]);
  });
});

describe('EtcdEngine quota', () => {
  test('defaults to half the data volume', () => {
    expect(flag(argsOf(etcd(), { storageSize: '4Gi' }), 'quota-backend-bytes')).toStrictEqual([String(2 * GiB)]);
  });

  test('is capped at 8 GiB', () => {
    expect(flag(argsOf(etcd(), { storageSize: '100Gi' }), 'quota-backend-bytes')).toStrictEqual([String(8 * GiB)]);
  });

  test('derives from the first template, not the others', () => {
    const args = argsOf(etcd(), { volumeClaimTemplates: [{ name: 'data', storage: '2Gi' }, { name: 'wal', storage: '50Gi' }] });
    expect(flag(args, 'quota-backend-bytes')).toStrictEqual([String(GiB)]);
  });

  test('keeps an explicit value', () => {
    expect(flag(argsOf(etcd({ quotaBackendBytes: 3 * GiB })), 'quota-backend-bytes')).toStrictEqual([String(3 * GiB)]);
  });

  test('accepts exactly 80% of the data volume', () => {
    expect(() => resolve(etcd({ quotaBackendBytes: 8 * GiB }), { storageSize: '10Gi' })).not.toThrow();
  });

  test('fails above 80% of the data volume', () => {
    expect(() => resolve(etcd({ quotaBackendBytes: 8 * GiB + 1 }), { storageSize: '10Gi' })).toThrow(
      /^KVStore 'orders': engine\.quotaBackendBytes must be an integer from 1 to 8589934592 \(80% of the data volume 10Gi\), got 8589934593 \(etcd needs room above its quota for compaction and snapshots\)$/,
    );
  });

  test('fails on a fractional quota', () => {
    expect(() => resolve(etcd({ quotaBackendBytes: 1.5 }))).toThrow(/^KVStore 'orders': engine\.quotaBackendBytes must be an integer from 1 to \d+ .*, got 1\.5/);
  });
});

describe('servesLivezReadyz', () => {
  test.each([
    ['3.4.23', false],
    ['3.5.10', false],
    ['3.5.11', true],
    ['3.6.0', true],
    ['3.5', false],
  ])('%s: %p', (version, expected) => {
    expect(servesLivezReadyz(version)).toBe(expected);
  });
});

describe('EtcdEngine probes', () => {
  test('startup is a TCP check with a 5-minute budget', () => {
    expect(etcd().probes().startupProbe).toStrictEqual({ tcpSocket: { port: 'client' }, periodSeconds: 5, failureThreshold: 60 });
  });

  test('3.4 checks liveness on /version and readiness on /health', () => {
    const probes = etcd({ version: '3.4.23' }).probes();
    expect(probes.startupProbe).toStrictEqual({ tcpSocket: { port: 'client' }, periodSeconds: 5, failureThreshold: 60 });
    expect(probes.livenessProbe).toStrictEqual({ httpGet: { path: '/version', port: 'client' }, timeoutSeconds: 5, periodSeconds: 10, failureThreshold: 6 });
    expect(probes.readinessProbe).toStrictEqual({ httpGet: { path: '/health', port: 'client' }, timeoutSeconds: 5, periodSeconds: 5, failureThreshold: 3 });
  });

  test('3.5.10 still uses /version and /health', () => {
    const probes = etcd({ version: '3.5.10' }).probes();
    expect([probes.livenessProbe?.httpGet?.path, probes.readinessProbe?.httpGet?.path]).toStrictEqual(['/version', '/health']);
  });

  test('3.5.11 checks liveness on /livez and readiness on /readyz', () => {
    const probes = etcd({ version: '3.5.11' }).probes();
    expect(probes.livenessProbe).toStrictEqual({ httpGet: { path: '/livez', port: 'client' }, timeoutSeconds: 5, periodSeconds: 10, failureThreshold: 6 });
    expect(probes.readinessProbe).toStrictEqual({ httpGet: { path: '/readyz', port: 'client' }, timeoutSeconds: 5, periodSeconds: 5, failureThreshold: 3 });
  });

  test('3.6.0 uses /livez and /readyz', () => {
    const probes = etcd({ version: '3.6.0' }).probes();
    expect([probes.livenessProbe?.httpGet?.path, probes.readinessProbe?.httpGet?.path]).toStrictEqual(['/livez', '/readyz']);
  });

  test('the container carries the probes', () => {
    const engine = etcd({ version: '3.4.23' });
    const container = engine.container(context(resolve(engine).spec));
    expect([container.startupProbe, container.livenessProbe, container.readinessProbe])
      .toStrictEqual([engine.probes().startupProbe, engine.probes().livenessProbe, engine.probes().readinessProbe]);
  });
});

describe('EtcdEngine validation', () => {
  test('fails on size 8', () => {
    expect(() => resolve(etcd(), { size: 8 })).toThrow(
      /^KVStore 'orders': size must be an integer from 1 to 7 for etcd, got 8 \(more members slow every write and tolerate no more failures than etcd advises\)$/,
    );
  });

  test('accepts size 7 without warnings', () => {
    expect(resolve(etcd(), { size: 7 }).warnings).toStrictEqual([]);
  });

  test('an even size gives a warning and no issue', () => {
    expect(resolve(etcd(), { size: 4 }).warnings).toStrictEqual([
      "KVStore 'orders': size 4 is even; it tolerates 1 failed member(s), like size 3, and needs more votes per write. Prefer an odd size.",
    ]);
  });

  test('fails on OrderedReady, saying why', () => {
    expect(() => resolve(etcd(), { podManagementPolicy: PodManagementPolicy.ORDERED_READY })).toThrow(
      /^KVStore 'orders': podManagementPolicy must be Parallel for etcd, got "OrderedReady" \(members bootstrap together: with OrderedReady pod 0 waits for a quorum that pods 1\.\. never get to join\)$/,
    );
  });

  test.each(['3.5', 'latest', '2.3.0', '3.7.0', '3.3.25'])('fails on version %j', (version) => {
    expect(() => resolve(etcd({ version }))).toThrow(new RegExp(
      `^KVStore 'orders': engine\\.version must be an etcd version from 3\\.4\\.0 to 3\\.6\\.x written as MAJOR\\.MINOR\\.PATCH, got "${version}"$`,
    ));
  });

  test.each(['3.4.0', '3.6.4'])('accepts version %j', (version) => {
    expect(() => resolve(etcd({ version }))).not.toThrow();
  });

  test('fails when walVolume names the first template', () => {
    expect(() => resolve(etcd({ walVolume: 'data' }), { volumeClaimTemplates: [{ name: 'data' }, { name: 'wal' }] })).toThrow(
      /^KVStore 'orders': engine\.walVolume must be one of the volume claim templates after the first \(wal\), got "data"$/,
    );
  });

  test('fails when walVolume names a missing template', () => {
    expect(() => resolve(etcd({ walVolume: 'log' }))).toThrow(
      /^KVStore 'orders': engine\.walVolume must be the name of a second volume claim template \(there is none\), got "log"$/,
    );
  });

  test('fails on an auto compaction retention that is not a duration or count', () => {
    expect(() => resolve(etcd({ autoCompactionRetention: '1 hour' }))).toThrow(
      /^KVStore 'orders': engine\.autoCompactionRetention must be a number, optionally followed by h, m or s .*, got "1 hour"$/,
    );
  });

  test('fails on an initial cluster token with spaces', () => {
    expect(() => resolve(etcd({ initialClusterToken: 'my token' }))).toThrow(
      /^KVStore 'orders': engine\.initialClusterToken must be letters, digits, "\.", "_" and "-", got "my token"$/,
    );
  });

  test('reports every engine issue, one line each', () => {
    expect(() => resolve(etcd({ version: 'latest' }), { size: 9 })).toThrow(
      /^KVStore 'orders': engine\.version must be .*, got "latest"\nKVStore 'orders': size must be an integer from 1 to 7 for etcd, got 9 .*$/,
    );
  });
});

describe('EtcdEngine snapshots', () => {
  const backup = { pruneImage: 'r:1' };
  const restoring = (version: string) => {
    const engine = etcd({ version });
    const spec = resolve(engine, { backup, restore: { snapshot: 'orders-backup-1.db' }, volumeClaimTemplates: [{ name: 'data' }, { name: 'wal', storage: '1Gi' }] }).spec;
    return { engine, ctx: context(spec, { namespace: 'prod', initialClusterState: 'existing' }) };
  };

  test('save: etcdctl against the endpoint, with room for a large database', () => {
    const c = etcd().snapshots.save(resolve(etcd()).spec, 'orders.prod.svc.cluster.local:2379', '/backups/x.db');
    expect([...c.command, ...c.args]).toEqual(['/usr/local/bin/etcdctl', '--endpoints=http://orders.prod.svc.cluster.local:2379', '--dial-timeout=10s', '--command-timeout=10m', 'snapshot', 'save', '/backups/x.db']);
  });

  test.each([['3.4.23', '/usr/local/bin/etcdctl'], ['3.5.21', '/usr/local/bin/etcdctl'], ['3.6.1', '/usr/local/bin/etcdutl']])('etcd %s restores and checks with %s', (version, tool) => {
    const { engine, ctx } = restoring(version);
    expect(engine.snapshots.check('/backups/s.db').command).toEqual([tool]);
    const r = engine.snapshots.restore(ctx, 1, '/backups/s.db');
    expect(r.command).toEqual([tool]);
    expect(r.env.map((e) => e.name)).toEqual(tool.endsWith('etcdctl') ? ['ETCDCTL_API'] : []);
  });

  test('restore lays member i out where the container reads, with the members\' list and a token of its own', () => {
    const { engine, ctx } = restoring('3.4.23');
    const args = engine.snapshots.restore(ctx, 1, '/backups/s.db').args;
    const container = engine.container(ctx).args!;
    expect(args.slice(0, 3)).toEqual(['snapshot', 'restore', '/backups/s.db']);
    expect(flag(args, 'name')).toEqual(['orders-1']);
    expect(flag(args, 'data-dir')).toEqual(flag(container, 'data-dir'));
    expect(flag(args, 'wal-dir')).toEqual(flag(container, 'wal-dir'));
    expect(flag(args, 'data-dir')[0]).toMatch(/^\/var\/lib\/kvstore\/data\/etcd-restore-[0-9a-f]{8}$/);
    expect(flag(args, 'initial-cluster-token')).toEqual(flag(container, 'initial-cluster-token'));
    expect(flag(args, 'initial-cluster-token')[0]).not.toBe(TOKEN);
    expect(flag(args, 'initial-advertise-peer-urls')).toEqual(['http://orders-1.orders-peers.prod.svc.cluster.local:2380']);
    expect(flag(args, 'initial-cluster')[0].split(',')).toHaveLength(3);
  });
});

describe('etcdVersionStep (etcd\'s upgrade rules)', () => {
  test.each([
    ['3.5.21', '3.5.21', 'same'],
    ['3.5.9', '3.5.21', 'patch'],
    ['3.5.21', '3.5.9', 'patch'],
    ['3.4.23', '3.5.0', 'minor'],
    ['3.5.26', '3.6.4', 'minor'],
  ])('%s → %s is allowed (%s)', (from, to, kind) => {
    expect(etcdVersionStep(from, to)).toEqual({ allowed: true, kind });
  });

  test('a skipped minor, a minor downgrade, a major change and an unreadable version are refused with the reason', () => {
    const refused = (from: string, to: string) => {
      const step = etcdVersionStep(from, to);
      if (step.allowed) throw new Error(`${from} → ${to} was allowed`);
      return step.reason;
    };
    expect(refused('3.4.23', '3.6.0')).toMatch(/skips 1 minor version\(s\): upgrade one minor at a time \(3\.5\.x first, then 3\.6\.0\)/);
    expect(refused('3.5.21', '3.4.23')).toMatch(/downgrade of the minor version: a 3\.4 member cannot start on data a 3\.5 cluster wrote/);
    expect(refused('3.5.0', '4.0.0')).toMatch(/major version/);
    expect(refused('3.5', '3.5.1')).toMatch(/cannot compare/);
  });

  test('etcd\'s own checklists: 3.6 only from 3.5.26 or later; 3.4 → 3.5 not with authentication on', () => {
    expect(etcdVersionStep('3.5.21', '3.6.4')).toEqual({ allowed: false, reason: expect.stringMatching(/every member must run 3\.5\.26 or later first/) });
    expect(etcdVersionStep('3.4.23', '3.5.21', { auth: true })).toEqual({ allowed: false, reason: expect.stringMatching(/authentication on .* 3\.5 changed the WAL format of auth entries/) });
    expect(etcdVersionStep('3.4.23', '3.5.21', { auth: false })).toEqual({ allowed: true, kind: 'minor' });
  });

  test('liveEtcdVersion: the annotation, else the image tag (with or without a digest), else unknown', () => {
    expect(liveEtcdVersion('3.5.21', 'gcr.io/etcd-development/etcd:v3.4.0')).toBe('3.5.21');
    expect(liveEtcdVersion(undefined, 'gcr.io/etcd-development/etcd:v3.4.23')).toBe('3.4.23');
    expect(liveEtcdVersion(undefined, 'mirror.local/etcd:3.5.9@sha256:abc')).toBe('3.5.9');
    expect(liveEtcdVersion(undefined, 'mirror.local/etcd@sha256:abc')).toBeUndefined();
  });
});
