// The etcd engine: static bootstrap on the headless Service's DNS names, version-aware probes.
import { createHash } from 'crypto';
import type { SpecIssue } from '../model/issues';
import { podFqdn, podName } from '../model/names';
import { parseQuantity } from '../model/quantity';
import type { EngineDefaults, EtcdEngineSpec, KVStoreSpec, ProbeSpec, RestoreSpec } from '../model/spec';
import { EngineCommand, EngineContainer, EngineContext, EngineReport, IEngine, ISnapshots, POD_ENV, SnapshotInfo, TLS_DIRS, TLS_SWITCH_PHASE, tlsFiles } from './types';

/** The etcd version a store runs unless told otherwise. */
export const DEFAULT_ETCD_VERSION = '3.5.21';
/** etcd's own advice: more than 7 members slows every write for no gain in tolerance. */
export const ETCD_MAX_SIZE = 7;
/** etcd's recommended ceiling for the backend database. */
export const ETCD_MAX_QUOTA_BYTES = 8 * 2 ** 30;
/** Oldest and newest-but-one minor lines supported (learners need 3.4; flags checked up to 3.6). */
const SUPPORTED_VERSIONS = '3.4.0 to 3.6.x';

const ETCD_CLIENT_PORT = 2379;
const ETCD_PEER_PORT = 2380;
/**
 * Health and metrics on plain HTTP, always: for scrapers (a PodMonitor or ServiceMonitor needs no client
 * certificate) and, with TLS, for the probes. etcd serves no keys there.
 */
const ETCD_METRICS_PORT = 2381;

/** @see https://etcd.io/docs/v3.5/op-guide/maintenance/#auto-compaction */
export enum AutoCompactionMode {
  /** Keep the history of the last `autoCompactionRetention` (a duration such as 1h). */
  PERIODIC = 'periodic',
  /** Keep the last `autoCompactionRetention` revisions. */
  REVISION = 'revision',
}

/** Options of `Engine.etcd()`. */
export interface EtcdOptions {
  /**
   * The etcd version. Decides the image tag and the probes: 3.5.11 and later serve /livez and /readyz,
   * older versions only /health.
   * @default '3.5.21'
   */
  readonly version?: string;
  /**
   * --quota-backend-bytes. Must stay at most 80% of the data volume.
   * @see https://etcd.io/docs/v3.5/op-guide/maintenance/#space-quota
   * @default - half of the data volume, at most 8 GiB
   */
  readonly quotaBackendBytes?: number;
  /**
   * --auto-compaction-mode.
   * @see https://etcd.io/docs/v3.5/op-guide/maintenance/#auto-compaction
   * @default AutoCompactionMode.PERIODIC
   */
  readonly autoCompactionMode?: AutoCompactionMode;
  /**
   * --auto-compaction-retention: a duration (periodic) or a revision count (revision).
   * @default '1h'
   */
  readonly autoCompactionRetention?: string;
  /**
   * The volume claim template that holds the write-ahead log (--wal-dir).
   * @default - a template named 'wal' if there is one (other than the first), else the data dir
   */
  readonly walVolume?: string;
  /**
   * --initial-cluster-token.
   * @default - the store name and a hash of its namespace and construct path (or resource name)
   */
  readonly initialClusterToken?: string;
}

interface Version { readonly major: number; readonly minor: number; readonly patch: number }

function parseVersion(version: string): Version | undefined {
  const m = /^([0-9]+)\.([0-9]+)\.([0-9]+)$/.exec(version);
  return m ? { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]) } : undefined;
}

/** `/livez` and `/readyz` arrived in 3.5.11 (and every 3.6). */
export function servesLivezReadyz(version: string): boolean {
  const v = parseVersion(version);
  if (!v) return false;
  return v.major > 3 || (v.major === 3 && (v.minor > 5 || (v.minor === 5 && v.patch >= 11)));
}

/** The 3.5 patch every member must run before a 3.6 upgrade (etcd's upgrade_3_6 checklist). */
const MIN_PATCH_BEFORE_3_6 = 26;

/** What moving a live etcd cluster from one version to another is, by etcd's upgrade rules. */
export type EtcdVersionStep =
  | { readonly allowed: true; readonly kind: 'same' | 'patch' | 'minor' }
  | { readonly allowed: false; readonly reason: string };

/**
 * Whether a live cluster may move from `from` to `to`, member by member. etcd supports any patch
 * change within a minor line (the data format is the minor's) and one minor step up once every member
 * runs the older minor; it refuses to start a member on data a newer minor wrote, and skipping a minor
 * is unsupported (each minor migrates the previous one's data). A minor step down needs etcd's own
 * downgrade procedure (`etcdctl downgrade enable`, 3.6+), which the reconciler does not run.
 * @see https://etcd.io/docs/v3.5/upgrades/
 */
export function etcdVersionStep(from: string, to: string, options: { auth?: boolean } = {}): EtcdVersionStep {
  const [a, b] = [parseVersion(from), parseVersion(to)];
  if (!a || !b) return { allowed: false, reason: `cannot compare etcd versions ${from} and ${to} (MAJOR.MINOR.PATCH)` };
  if (a.major !== b.major) return { allowed: false, reason: `etcd ${from} → ${to} changes the major version, which etcd does not support in place` };
  if (a.minor === b.minor) return { allowed: true, kind: a.patch === b.patch ? 'same' : 'patch' };
  if (b.minor === a.minor + 1) {
    // etcd's own checklists (upgrade_3_5, upgrade_3_6 on etcd.io).
    if (a.minor === 4 && options.auth) {
      return { allowed: false, reason: `etcd ${from} → ${to} with authentication on (clients) is not a rolling upgrade etcd supports: 3.5 changed the WAL format of auth entries; create a 3.5 store and restore a snapshot into it` };
    }
    if (a.minor === 5 && a.patch < MIN_PATCH_BEFORE_3_6) {
      return { allowed: false, reason: `etcd ${from} → ${to}: every member must run 3.5.${MIN_PATCH_BEFORE_3_6} or later first (earlier 3.5 releases let removed members come back and learners revert during the upgrade, etcd's upgrade_3_6 checklist); upgrade to the newest 3.5 patch, then to ${to}` };
    }
    return { allowed: true, kind: 'minor' };
  }
  if (b.minor > a.minor) {
    return { allowed: false, reason: `etcd ${from} → ${to} skips ${b.minor - a.minor - 1} minor version(s): upgrade one minor at a time (${a.major}.${a.minor + 1}.x first, then ${to}), as etcd requires` };
  }
  return { allowed: false, reason: `etcd ${from} → ${to} is a downgrade of the minor version: a ${b.major}.${b.minor} member cannot start on data a ${a.major}.${a.minor} cluster wrote (etcd's downgrade procedure, etcdctl downgrade, is not automated); restore a snapshot into a new store instead` };
}

/** The etcd version a live StatefulSet's members run: its annotation, else its image's tag (`:v3.5.21`). */
export function liveEtcdVersion(annotation: string | undefined, image: string | undefined): string | undefined {
  if (annotation) return annotation;
  const m = /:v?([0-9]+\.[0-9]+\.[0-9]+)(@.*)?$/.exec(image ?? '');
  return m?.[1];
}

/** 3.6 moved offline snapshot restore from etcdctl to etcdutl. */
export function restoresWithEtcdutl(version: string): boolean {
  const v = parseVersion(version);
  return !!v && (v.major > 3 || (v.major === 3 && v.minor >= 6));
}

/** A short id of the snapshot a store is restored from: it names the restored data directory. */
export function restoreId(restore: RestoreSpec): string {
  return createHash('sha256').update(`${restore.claimName}/${restore.snapshot}`).digest('hex').slice(0, 8);
}

const scheme = (spec: KVStoreSpec) => (spec.tls ? 'https' : 'http');

/** How far a member's container (its args) has TLS: off, the first phase of a live switch, or on. */
export type EtcdTlsStage = 'off' | typeof TLS_SWITCH_PHASE | 'on';

export function etcdTlsStage(args: readonly string[]): EtcdTlsStage {
  if (args.includes('--client-cert-auth')) return 'on';
  return args.some((a) => a.startsWith('--peer-cert-file=')) ? TLS_SWITCH_PHASE : 'off';
}

/** etcdctl's flags to connect with the library's client certificate (mounted at TLS_DIRS.client). */
export function clientTlsFlags(spec: KVStoreSpec): string[] {
  if (!spec.tls) return [];
  const f = tlsFiles(TLS_DIRS.client);
  return [`--cacert=${f.ca}`, `--cert=${f.cert}`, `--key=${f.key}`];
}

export class EtcdEngine implements IEngine {
  readonly name = 'etcd';
  readonly clientPort = ETCD_CLIENT_PORT;
  readonly peerPort = ETCD_PEER_PORT;
  readonly quorum = true;
  readonly metricsPort = ETCD_METRICS_PORT;
  readonly spec: EtcdEngineSpec;
  readonly defaults: EngineDefaults;

  constructor(spec: EtcdEngineSpec) {
    this.spec = spec;
    this.defaults = {
      // The official image is distroless: no shell, so everything is flags with $(VAR) expansion.
      image: `gcr.io/etcd-development/etcd:v${spec.version}`,
      // A static N-member bootstrap needs every member running before any becomes ready (readiness
      // needs quorum), so OrderedReady would wait forever on pod 0.
      podManagementPolicy: 'Parallel',
    };
  }

  validate(spec: KVStoreSpec): EngineReport {
    const issues: SpecIssue[] = [];
    const warnings: string[] = [];
    const e = this.spec;
    const v = parseVersion(e.version);
    if (!v || v.major !== 3 || v.minor < 4 || v.minor > 6) {
      issues.push({ field: 'engine.version', value: e.version, allowed: `an etcd version from ${SUPPORTED_VERSIONS} written as MAJOR.MINOR.PATCH` });
    }
    if (spec.size > ETCD_MAX_SIZE) {
      issues.push({ field: 'size', value: spec.size, allowed: `an integer from 1 to ${ETCD_MAX_SIZE} for etcd`, reason: 'more members slow every write and tolerate no more failures than etcd advises' });
    } else if (spec.size % 2 === 0) {
      warnings.push(`KVStore '${spec.name}': size ${spec.size} is even; it tolerates ${spec.size / 2 - 1} failed member(s), like size ${spec.size - 1}, and needs more votes per write. Prefer an odd size.`);
    }
    if (spec.podManagementPolicy !== 'Parallel') {
      issues.push({ field: 'podManagementPolicy', value: spec.podManagementPolicy, allowed: 'Parallel for etcd', reason: 'members bootstrap together: with OrderedReady pod 0 waits for a quorum that pods 1.. never get to join' });
    }
    if (!['periodic', 'revision'].includes(e.autoCompactionMode)) {
      issues.push({ field: 'engine.autoCompactionMode', value: e.autoCompactionMode, allowed: 'periodic or revision' });
    }
    if (!/^[0-9]+(h|m|s)?$/.test(e.autoCompactionRetention)) {
      issues.push({ field: 'engine.autoCompactionRetention', value: e.autoCompactionRetention, allowed: 'a number, optionally followed by h, m or s (periodic) such as 1h, or a revision count' });
    }
    const dataBytes = parseQuantity(spec.volumeClaimTemplates[0].storage)!;
    if (e.quotaBackendBytes !== undefined) {
      const max = Math.floor(dataBytes * 0.8);
      if (!Number.isInteger(e.quotaBackendBytes) || e.quotaBackendBytes < 1 || e.quotaBackendBytes > max) {
        issues.push({ field: 'engine.quotaBackendBytes', value: e.quotaBackendBytes, allowed: `an integer from 1 to ${max} (80% of the data volume ${spec.volumeClaimTemplates[0].storage})`, reason: 'etcd needs room above its quota for compaction and snapshots' });
      }
    }
    if (e.walVolume !== undefined) {
      const index = spec.volumeClaimTemplates.findIndex((t) => t.name === e.walVolume);
      if (index < 1) {
        const others = spec.volumeClaimTemplates.slice(1).map((t) => t.name);
        issues.push({ field: 'engine.walVolume', value: e.walVolume, allowed: others.length ? `one of the volume claim templates after the first (${others.join(', ')})` : 'the name of a second volume claim template (there is none)' });
      }
    }
    // etcd 3.5.0 answers /health with false once authentication is on (etcd-io/etcd#13144): every member would be unready.
    if (spec.clients && e.version === '3.5.0') {
      issues.push({ field: 'engine.version', value: e.version, allowed: 'a version other than 3.5.0 with clients', reason: 'etcd 3.5.0 reports itself unhealthy once authentication is on (fixed in 3.5.1)' });
    }
    if (e.initialClusterToken !== undefined && !/^[A-Za-z0-9][-A-Za-z0-9_.]*$/.test(e.initialClusterToken)) {
      issues.push({ field: 'engine.initialClusterToken', value: e.initialClusterToken, allowed: 'letters, digits, ".", "_" and "-"' });
    }
    return { issues, warnings };
  }

  /** The backend quota: the explicit one, or half the data volume capped at 8 GiB. */
  quotaBackendBytes(spec: KVStoreSpec): number {
    if (this.spec.quotaBackendBytes !== undefined) return this.spec.quotaBackendBytes;
    const dataBytes = parseQuantity(spec.volumeClaimTemplates[0].storage)!;
    return Math.min(ETCD_MAX_QUOTA_BYTES, Math.floor(dataBytes / 2));
  }

  /** The template holding the WAL, if any. */
  walTemplate(spec: KVStoreSpec) {
    const rest = spec.volumeClaimTemplates.slice(1);
    const name = this.spec.walVolume ?? (rest.some((t) => t.name === 'wal') ? 'wal' : undefined);
    return rest.find((t) => t.name === name);
  }

  /** `<sts>-0=http://<fqdn>:2380,...` for the first `spec.size` ordinals. */
  private initialCluster(ctx: EngineContext, namespace: string): string {
    return Array.from({ length: ctx.spec.size }, (_, i) =>
      `${podName(ctx.names, i)}=${this.peerURL(ctx, i, namespace)}`).join(',');
  }

  /** The peer URL member `ordinal` advertises (and is registered with). */
  peerURL(ctx: EngineContext, ordinal: number, namespace = ctx.namespace ?? `$(${POD_ENV.namespace})`): string {
    return `${scheme(ctx.spec)}://${podFqdn(ctx.names, ordinal, namespace, ctx.spec.clusterDomain)}:${ETCD_PEER_PORT}`;
  }

  /**
   * Where a member keeps its data: a subdirectory (a fresh volume may hold lost+found, and etcd wants
   * its data dir to itself), a separate one per restore so a restore never overwrites older data.
   */
  dataDirs(spec: KVStoreSpec): { data: string; wal?: string } {
    const suffix = spec.restore ? `-restore-${restoreId(spec.restore)}` : '';
    const wal = this.walTemplate(spec);
    return {
      data: `${spec.volumeClaimTemplates[0].mountPath}/etcd${suffix}`,
      ...(wal ? { wal: `${wal.mountPath}/etcd-wal${suffix}` } : {}),
    };
  }

  /** The cluster token: a restore makes a new logical cluster, with a token of its own. */
  clusterToken(ctx: EngineContext): string {
    const base = this.spec.initialClusterToken ?? ctx.clusterToken;
    return ctx.spec.restore ? `${base}-${restoreId(ctx.spec.restore)}` : base;
  }

  readonly snapshots: ISnapshots = {
    largestBytes: (spec: KVStoreSpec): number => this.quotaBackendBytes(spec),
    save: (spec: KVStoreSpec, endpoint: string, file: string): EngineCommand => ({
      command: ['/usr/local/bin/etcdctl'],
      args: [`--endpoints=${scheme(spec)}://${endpoint}`, ...clientTlsFlags(spec), '--dial-timeout=10s', '--command-timeout=10m', 'snapshot', 'save', file],
      env: [{ name: 'ETCDCTL_API', value: '3' }],
    }),
    check: (file: string): EngineCommand => (restoresWithEtcdutl(this.spec.version)
      ? { command: ['/usr/local/bin/etcdutl'], args: ['snapshot', 'status', file, '--write-out=json'], env: [] }
      : { command: ['/usr/local/bin/etcdctl'], args: ['snapshot', 'status', file, '--write-out=json'], env: [{ name: 'ETCDCTL_API', value: '3' }] }),
    // `snapshot status -w json` prints one line {"hash":…,"revision":…,"totalKey":…,"totalSize":…} (3.6
    // adds "version"); the log may hold warnings around it (3.5's etcdctl deprecation notice).
    checked: (output: string): SnapshotInfo | undefined => {
      for (const line of output.split('\n').reverse()) {
        if (!line.trim().startsWith('{')) continue;
        try {
          const s = JSON.parse(line) as { revision?: unknown; totalKey?: unknown; totalSize?: unknown };
          if (Number.isInteger(s.revision) && Number.isInteger(s.totalKey) && Number.isInteger(s.totalSize)) {
            return { revision: s.revision as number, keys: s.totalKey as number, bytes: s.totalSize as number };
          }
        } catch {
          // not the status line
        }
      }
      return undefined;
    },
    restore: (ctx: EngineContext, ordinal: number, file: string): EngineCommand => {
      const ns = ctx.namespace;
      if (!ns) throw new Error(`KVStore '${ctx.spec.name}': restoring needs the namespace (the members' peer URLs name it)`);
      const dirs = this.dataDirs(ctx.spec);
      const etcdutl = restoresWithEtcdutl(this.spec.version);
      return {
        command: [etcdutl ? '/usr/local/bin/etcdutl' : '/usr/local/bin/etcdctl'],
        args: [
          'snapshot', 'restore', file,
          `--name=${podName(ctx.names, ordinal)}`,
          `--data-dir=${dirs.data}`,
          ...(dirs.wal ? [`--wal-dir=${dirs.wal}`] : []),
          `--initial-cluster=${this.initialCluster(ctx, ns)}`,
          `--initial-cluster-token=${this.clusterToken(ctx)}`,
          `--initial-advertise-peer-urls=${this.peerURL(ctx, ordinal, ns)}`,
        ],
        env: etcdutl ? [] : [{ name: 'ETCDCTL_API', value: '3' }],
      };
    },
  };

  container(ctx: EngineContext): EngineContainer {
    const { spec, names } = ctx;
    const ns = `$(${POD_ENV.namespace})`;
    const self = `$(${POD_ENV.name}).${names.headlessService}.${ns}.svc.${spec.clusterDomain}`;
    const dirs = this.dataDirs(spec);
    // With a known namespace the member list goes to the bootstrap ConfigMap (etcd reads ETCD_*
    // variables as flags), so a membership change does not roll every member.
    // The quota follows the volume size: there too, so growing volumes restarts no member (the new
    // quota applies as each restarts).
    const bootstrap = {
      ETCD_INITIAL_CLUSTER: this.initialCluster(ctx, ctx.namespace ?? ns),
      ETCD_INITIAL_CLUSTER_STATE: ctx.initialClusterState,
      ETCD_QUOTA_BACKEND_BYTES: String(this.quotaBackendBytes(spec)),
    };
    // A live store turning TLS on runs plain listeners with the peer certificate first (see tlsPhase).
    const tlsOn = !!spec.tls && ctx.tlsPhase === undefined;
    const s = tlsOn ? 'https' : 'http';
    const args = [
      `--name=$(${POD_ENV.name})`,
      `--data-dir=${dirs.data}`,
      ...(dirs.wal ? [`--wal-dir=${dirs.wal}`] : []),
      // Listen on the pod IP only: no wildcard, so every member of a test can share one host.
      `--listen-peer-urls=${s}://$(${POD_ENV.ip}):${ETCD_PEER_PORT}`,
      `--listen-client-urls=${s}://$(${POD_ENV.ip}):${ETCD_CLIENT_PORT}`,
      `--listen-metrics-urls=http://$(${POD_ENV.ip}):${ETCD_METRICS_PORT}`,
      `--advertise-client-urls=${s}://${self}:${ETCD_CLIENT_PORT}`,
      `--initial-advertise-peer-urls=${s}://${self}:${ETCD_PEER_PORT}`,
      ...(tlsOn ? this.tlsFlags(ctx) : spec.tls ? this.peerDialFlags() : []),
      ...(ctx.namespace ? [] : [`--initial-cluster=${bootstrap.ETCD_INITIAL_CLUSTER}`, `--initial-cluster-state=${bootstrap.ETCD_INITIAL_CLUSTER_STATE}`]),
      `--initial-cluster-token=${this.clusterToken(ctx)}`,
      `--auto-compaction-mode=${this.spec.autoCompactionMode}`,
      `--auto-compaction-retention=${this.spec.autoCompactionRetention}`,
      ...(ctx.namespace ? [] : [`--quota-backend-bytes=${bootstrap.ETCD_QUOTA_BACKEND_BYTES}`]),
    ];
    return { command: ['/usr/local/bin/etcd'], args, env: [], ...(ctx.namespace ? { bootstrapEnv: bootstrap } : {}), ...this.probes(tlsOn) };
  }

  /**
   * Mutual TLS on both listeners from the member Secret; a peer must present a certificate naming the
   * headless Service (the member certificate does; client certificates, and other stores' members
   * under a shared issuer, do not). Health and metrics stay on the plain-HTTP metrics listener.
   */
  private tlsFlags(ctx: EngineContext): string[] {
    const f = { ...tlsFiles(TLS_DIRS.member), ...(ctx.trustBundle ? { ca: tlsFiles(TLS_DIRS.trust).ca } : {}) };
    const peersHost = `${ctx.names.headlessService}.$(${POD_ENV.namespace}).svc.${ctx.spec.clusterDomain}`;
    return [
      `--cert-file=${f.cert}`, `--key-file=${f.key}`, `--trusted-ca-file=${f.ca}`, '--client-cert-auth',
      `--peer-cert-file=${f.cert}`, `--peer-key-file=${f.key}`, `--peer-trusted-ca-file=${f.ca}`, '--peer-client-cert-auth',
      `--peer-cert-allowed-hostname=${peersHost}`,
    ];
  }

  /**
   * The first phase of turning TLS on for a live store: the member certificate to dial peers over
   * https (etcd's peer transport takes it from the peer flags whatever its own listener's scheme), so
   * that each member can then switch its own peer listener while the others reach it.
   */
  private peerDialFlags(): string[] {
    const f = tlsFiles(TLS_DIRS.member);
    return [`--peer-cert-file=${f.cert}`, `--peer-key-file=${f.key}`, `--peer-trusted-ca-file=${f.ca}`];
  }

  /**
   * Probes by version. Before it first reaches quorum an etcd member accepts TCP but serves no HTTP
   * at all, so startup is a TCP check with a long budget. Liveness must not need quorum (or losing
   * quorum would restart every member): `/livez` on 3.5.11+, `/version` before. Readiness does need
   * quorum: `/readyz` on 3.5.11+, `/health` before.
   */
  probes(tls = false): Pick<EngineContainer, 'startupProbe' | 'livenessProbe' | 'readinessProbe'> {
    const modern = servesLivezReadyz(this.spec.version);
    // With TLS the client port wants a client certificate, which the kubelet has none of: the metrics
    // listener serves /health (and on 3.5.11+ /livez and /readyz); before 3.5.11 it has no check
    // that does not need quorum, so liveness is a TCP check there. Without TLS the probes stay on the
    // client port although the metrics listener is always on: there 3.4's liveness gets /version
    // (which the metrics listener does not serve) rather than a TCP check.
    const port = tls ? 'metrics' : 'client';
    const http = (path: string, extra: Partial<ProbeSpec>): ProbeSpec => ({ httpGet: { path, port }, timeoutSeconds: 5, ...extra });
    const liveness = { periodSeconds: 10, failureThreshold: 6 };
    return {
      startupProbe: { tcpSocket: { port: 'client' }, periodSeconds: 5, failureThreshold: 60 },
      livenessProbe: modern ? http('/livez', liveness) : tls ? { tcpSocket: { port }, timeoutSeconds: 5, ...liveness } : http('/version', liveness),
      readinessProbe: http(modern ? '/readyz' : '/health', { periodSeconds: 5, failureThreshold: 3 }),
    };
  }
}
