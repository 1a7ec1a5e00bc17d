// Test support for day-2 operations: a store document, one reconcile against the cluster simulator,
// a writer that keeps writing while an operation runs, and the engine's member list (over TLS too,
// given a client certificate).
import { Chart, Testing } from 'cdk8s';
import { Etcd3, IOptions } from 'etcd3';
import { Engine, KVStore, KVStoreProps } from '../../lib';
import { mkdirSync, rmSync, writeFileSync } from 'fs';
import { join } from 'path';
import { EtcdClientTls, EtcdMembership, etcdTlsOptions, Member } from '../../lib/engines/etcd-membership';
import { tlsFiles } from './cert-issuer';
import { KubeClient } from '../../lib/reconciler/client';
import { CustomResourceOptions, maintainResources, MaintainResourcesResult, reconcileResources, ResourcesResult } from '../../lib/reconciler/custom-resources';
import { Log } from '../../lib/reconciler/log';
import type { MaintainResult } from '../../lib/reconciler/maintain';
import { maintainStore, reconcileStore, ReconcileOptions, ReconcileResult } from '../../lib/reconciler/reconcile';
import type { StoreDocument } from '../../lib/model/document';
import { ApiServer, startApiServer } from './api-server';
import { ClusterSimulator } from './cluster-simulator';
import { ETCD_VERSION, NAMESPACE, withEndpoint } from './etcd-cluster';

/** The image name the simulator runs as kvstore-reconcile (the prune container of backups). */
export const RECONCILER_IMAGE = 'registry.example.com/kvstore-reconciler:test';

/** The document of a store in namespace `kvtest` running the installed etcd, as the bundle carries it. */
export function storeDocument(name: string, props: KVStoreProps = {}): StoreDocument {
  const chart = new Chart(Testing.app(), 'day2', { namespace: NAMESPACE });
  return new KVStore(chart, name, { engine: Engine.etcd({ version: ETCD_VERSION }), reconciler: { image: RECONCILER_IMAGE }, ...props }).document;
}

/**
 * What the GitOps tool applies besides the reconciler bundle that the reconciler relies on: a TLS
 * store's cert-manager objects (the reconciler does not apply them in GitOps mode). Applied to the API
 * double as the GitOps tool would.
 */
export function applyAsGitOpsTool(api: ApiServer, name: string, props: KVStoreProps = {}): void {
  const chart = new Chart(Testing.app(), 'day2', { namespace: NAMESPACE });
  new KVStore(chart, name, { engine: Engine.etcd({ version: ETCD_VERSION }), reconciler: { image: RECONCILER_IMAGE }, ...props });
  for (const object of Testing.synth(chart)) if (object.apiVersion === 'cert-manager.io/v1') api.put(object);
}

/** One reconcile of `document` against the simulated cluster, reaching the members at their pod IPs. */
export async function reconcileOnce(api: ApiServer, sim: ClusterSimulator, document: StoreDocument, extra: Partial<ReconcileOptions> = {}, lines: string[] = []): Promise<ReconcileResult> {
  return reconcileStore(document, new KubeClient(api.kubeConfig(), { baseDelayMs: 20, maxDelayMs: 200 }), new Log(false, (l) => lines.push(l.trimEnd())), {
    holder: 'day2-test',
    pollMs: 100,
    rolloutTimeoutMs: 90_000,
    etcdEndpoints: sim.endpoints(document.spec.name),
    // A member's own URL (plain HTTP; the reconciler makes it https where the member speaks TLS).
    etcdMemberEndpoint: (i) => `http://${sim.runner.ip(`${document.spec.name}-${i}`)}:2379`,
    ...extra,
  });
}

/** One maintenance run (`--maintain`) of `document` against the simulated cluster, as reconcileOnce runs a reconcile. */
export async function maintainOnce(api: ApiServer, sim: ClusterSimulator, document: StoreDocument, extra: Partial<ReconcileOptions> = {}, lines: string[] = []): Promise<MaintainResult> {
  return maintainStore(document, new KubeClient(api.kubeConfig(), { baseDelayMs: 20, maxDelayMs: 200 }), new Log(false, (l) => lines.push(l.trimEnd())), {
    holder: 'day2-maintenance',
    pollMs: 100,
    rolloutTimeoutMs: 90_000,
    etcdMemberEndpoint: (i) => `http://${sim.runner.ip(`${document.spec.name}-${i}`)}:2379`,
    ...extra,
  });
}

/** The KVStore resource `name` of namespace kvtest, its spec the one storeDocument gives `props`, as its author would apply it. */
export function putKVStoreResource(api: ApiServer, name: string, props: KVStoreProps = {}): void {
  const { name: _name, ...spec } = storeDocument(name, props).spec;
  api.put({ apiVersion: 'kvstore.cdk8s-kvstore.io/v1', kind: 'KVStore', metadata: { name, namespace: NAMESPACE }, spec } as any);
}

/** The options of a CRD-mode run over namespace kvtest whose one store is `store`, reaching its members at their pod IPs. */
function operatorOptions(sim: ClusterSimulator, store: string, holder: string, extra: Partial<CustomResourceOptions>): CustomResourceOptions {
  return {
    holder,
    pollMs: 100,
    rolloutTimeoutMs: 90_000,
    namespaces: [NAMESPACE],
    etcdEndpoints: sim.endpoints(store),
    etcdMemberEndpoint: (i) => `http://${sim.runner.ip(`${store}-${i}`)}:2379`,
    ...extra,
  };
}

/** One CRD-mode reconcile (`--crd`) of the KVStore resources of namespace kvtest, whose one store is `store`. */
export async function operatorReconcileOnce(api: ApiServer, sim: ClusterSimulator, store: string, extra: Partial<CustomResourceOptions> = {}, lines: string[] = []): Promise<ResourcesResult> {
  return reconcileResources(api.kubeConfig(), new KubeClient(api.kubeConfig(), { baseDelayMs: 20, maxDelayMs: 200 }), new Log(false, (l) => lines.push(l.trimEnd())), operatorOptions(sim, store, 'operator-test', extra));
}

/** One CRD-mode maintenance run (`--crd --maintain`) of the KVStore resources of namespace kvtest, whose one store is `store`. */
export async function operatorMaintainOnce(api: ApiServer, sim: ClusterSimulator, store: string, extra: Partial<CustomResourceOptions> = {}, lines: string[] = []): Promise<MaintainResourcesResult> {
  return maintainResources(api.kubeConfig(), new KubeClient(api.kubeConfig(), { baseDelayMs: 20, maxDelayMs: 200 }), new Log(false, (l) => lines.push(l.trimEnd())), operatorOptions(sim, store, 'operator-maintenance-test', extra));
}

/** etcd3 options for a client of a TLS store (what EtcdMembership sets), or none for plain HTTP. */
export function tlsClientOptions(tls?: EtcdClientTls): Partial<IOptions> {
  return tls ? etcdTlsOptions(tls) : {};
}

/**
 * Writes a TLS store's client Secret (stored in the API double) into `dir` as the reconciler Job
 * mounts it (tls.crt, tls.key, ca.crt); returns the certificate for the test's own clients, verifying
 * the members as `serverName`.
 */
export function mountSecret(api: ApiServer, namespace: string, secretName: string, dir: string, serverName: string): EtcdClientTls {
  const secret = api.get('v1', 'Secret', namespace, secretName);
  if (!secret) throw new Error(`Secret ${secretName} was not issued`);
  const files = tlsFiles(secret as any);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'tls.crt'), files.crt);
  writeFileSync(join(dir, 'tls.key'), files.key, { mode: 0o600 });
  writeFileSync(join(dir, 'ca.crt'), files.ca);
  return { ca: Buffer.from(files.ca), cert: Buffer.from(files.crt), key: Buffer.from(files.key), serverName };
}

/** A CA of the user's as cert-manager objects (self-signed Issuer, CA Certificate, CA Issuer `name`). */
export function putUserCa(api: ApiServer, namespace: string, name: string): void {
  api.put({ apiVersion: 'cert-manager.io/v1', kind: 'Issuer', metadata: { name: `${name}-selfsigned`, namespace }, spec: { selfSigned: {} } } as any);
  api.put({ apiVersion: 'cert-manager.io/v1', kind: 'Certificate', metadata: { name: `${name}-ca`, namespace }, spec: { isCA: true, commonName: name, secretName: `${name}-ca`, privateKey: { algorithm: 'ECDSA', size: 256 }, issuerRef: { name: `${name}-selfsigned`, kind: 'Issuer', group: 'cert-manager.io' } } } as any);
  api.put({ apiVersion: 'cert-manager.io/v1', kind: 'Issuer', metadata: { name, namespace }, spec: { ca: { secretName: `${name}-ca` } } } as any);
}

/** The member list as one of `endpoints` sees it. */
export async function memberList(endpoints: string[], tls?: EtcdClientTls): Promise<Member[]> {
  const m = new EtcdMembership(endpoints, tls ? { tls } : {});
  try {
    return await m.list();
  } finally {
    m.close();
  }
}

/**
 * Writes `prefix<n>` keys one after another until stopped, through `endpoints`; a write counts only
 * once etcd acknowledged it. Records failed attempts and the longest time between two acknowledgements.
 */
export class Writer {
  readonly acked: string[] = [];
  failures = 0;
  longestGapMs = 0;
  private stopped = false;
  private readonly done: Promise<void>;
  private readonly clients: Etcd3[];

  /**
   * `then`: a second client, tried when the first fails (a client that follows its store from plain
   * HTTP to TLS).
   */
  constructor(endpoints: string[], private readonly prefix = 'w/', tls?: EtcdClientTls, then?: { endpoints: string[]; tls?: EtcdClientTls }) {
    const client = (hosts: string[], t?: EtcdClientTls) => new Etcd3({ hosts, ...tlsClientOptions(t), dialTimeout: 2000, defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 3000 }) });
    this.clients = [client(endpoints, tls), ...(then ? [client(then.endpoints, then.tls)] : [])];
    this.done = this.run();
  }

  /** Puts through the first client that acknowledges; throws when none did. */
  private async put(key: string, value: string): Promise<void> {
    let last: unknown;
    for (const c of this.clients) {
      try {
        await c.put(key).value(value);
        return;
      } catch (e) {
        last = e;
      }
    }
    throw last;
  }

  private async run(): Promise<void> {
    let last = Date.now();
    for (let n = 0; !this.stopped; n++) {
      const key = `${this.prefix}${String(n).padStart(6, '0')}`;
      try {
        await this.put(key, String(n));
        this.acked.push(key);
        const now = Date.now();
        this.longestGapMs = Math.max(this.longestGapMs, now - last);
        last = now;
      } catch {
        this.failures++;
        await new Promise((r) => setTimeout(r, 50));
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async stop(): Promise<this> {
    this.stopped = true;
    await this.done;
    for (const c of this.clients) c.close();
    return this;
  }
}

/** Every key under `prefix` as one member (or the cluster through `endpoints`) holds it. */
export async function keysUnder(endpoints: string[], prefix: string, tls?: EtcdClientTls): Promise<Set<string>> {
  const client = new Etcd3({ hosts: endpoints, ...tlsClientOptions(tls), dialTimeout: 2000 });
  try {
    return new Set(Object.keys(await client.getAll().prefix(prefix).strings()));
  } finally {
    client.close();
  }
}

/**
 * Registers hooks that start an API double and a cluster simulator (namespace kvtest) before each test
 * and stop both (every process by PID) after it; `use` receives the two for the test's own variables.
 */
export function simulatedCluster(use: (api: ApiServer, sim: ClusterSimulator) => void): void {
  let current: { api: ApiServer; sim: ClusterSimulator } | undefined;
  beforeEach(async () => {
    const api = await startApiServer();
    current = { api, sim: ClusterSimulator.start(api, { namespace: NAMESPACE }) };
    use(current.api, current.sim);
  });
  afterEach(async () => {
    await current?.sim.stop();
    await current?.api.stop();
    current = undefined;
  });
}

/**
 * Member `pod` loses its data under it (its volume's etcd directory deleted while it runs), then its
 * process is killed: restarted by the kubelet on an empty directory it fails at once, every time.
 * Returns once its pod crash-loops (at least 3 restarts, the last one failed).
 */
export async function loseMemberData(api: ApiServer, sim: ClusterSimulator, pod: string): Promise<void> {
  // Not the leader: a leader restarted on an empty directory is caught up by its successor, whose
  // progress for it starts from nothing; a follower's leader still counts on its old log, and the
  // member panics ("tocommit is out of range") on the first heartbeat.
  await withEndpoint(sim.url(pod), async (c) => {
    const status = await c.maintenance.status();
    if (status.leader === status.header.member_id) {
      const other = (await c.cluster.memberList({})).members.find((m) => m.ID !== status.header.member_id && !m.isLearner)!;
      await c.maintenance.moveLeader({ targetID: other.ID });
      const deadline = Date.now() + 15_000;
      while ((await c.maintenance.status()).leader === status.header.member_id) {
        if (Date.now() > deadline) throw new Error(`leadership did not move off ${pod}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  });
  rmSync(join(sim.claimDir(`data-${pod}`), 'etcd'), { recursive: true, force: true });
  await sim.runner.kill(pod, 'SIGKILL');
  await sim.waitUntil(`${pod} to crash-loop`, () => {
    const c = (api.get('v1', 'Pod', NAMESPACE, pod) as any)?.status?.containerStatuses?.[0];
    return (c?.restartCount ?? 0) >= 3 && c?.lastState?.terminated?.exitCode !== 0;
  }, 60_000);
}
