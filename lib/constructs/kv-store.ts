// KVStore: the construct. Props → spec input → StoreDefinition → the store's objects (direct mode) or
// the reconciler bundle that applies them (GitOps mode).
import { ApiObject, App, Chart } from 'cdk8s';
import { Construct, IConstruct } from 'constructs';
import { Engine } from '../engines/engine';
import type { IEngine } from '../engines/types';
import type { StoreDocument } from '../model/document';
import { SpecError } from '../model/issues';
import { StoreNames, StoreObjectRef, storeObjects } from '../model/names';
import { namespaceIssues } from '../model/normalize';
import { parseQuantity } from '../model/quantity';
import type { BackupOptions, ClientAccess, KVStoreSpec, KVStoreSpecInput, RestoreOptions, TlsOptions } from '../model/spec';
import { MetricsOptions, metricsIssues, monitoringObjects, renderMonitoring } from './monitoring';
import { displayPath, lockFilePath, lockIssues, lockKey, readLock, writeLockEntry } from './direct-lock';
import { ReconcilerBundle, ReconcilerOptions } from './reconciler-bundle';
import { StoreDefinition } from './store-definition';
import { renderStoreObjects, renderToolOwned } from './store-objects';
import {
  PodAntiAffinity, PodManagementPolicy, PvcRetentionPolicy, ResourceRequirements,
  TopologySpreadOptions, UpdateStrategy, VolumeClaimTemplateOptions, TolerationOptions, ObjectPatch,
} from './store-options';

/** Props of a KVStore: everything has a default. */
export interface KVStoreProps {
  /**
   * The store name: names the StatefulSet, the Services and (through the StatefulSet) the PVCs. A
   * DNS-1035 label of at most 52 characters.
   * @default - the construct id
   */
  readonly name?: string;
  /**
   * Number of members (StatefulSet replicas); etcd allows at most 7. A live etcd store changes size
   * only through the reconciler (members are added and removed one at a time); without it, a change
   * of a live store's size is refused at synth time against the store lock (kvstore.lock.json).
   * @default 3
   */
  readonly size?: number;
  /**
   * Size of each member's volumes, as a Kubernetes quantity.
   * @default '10Gi'
   */
  readonly storageSize?: string;
  /**
   * The container image: required with the custom engine, optional with etcd.
   * @default - the engine's pinned image (gcr.io/etcd-development/etcd:v<engine.version> for etcd)
   */
  readonly containerImage?: string;
  /**
   * The engine: what runs in the members and how they bootstrap.
   * @default Engine.etcd()
   */
  readonly engine?: IEngine;
  /**
   * StorageClass of the volumes.
   * @default - the cluster's default StorageClass
   */
  readonly storageClassName?: string;
  /**
   * PVC templates in order; the first holds the engine's data.
   * @default - one template named 'data'
   */
  readonly volumeClaimTemplates?: VolumeClaimTemplateOptions[];
  /**
   * Whether PVCs are kept when the store shrinks or is deleted.
   * @see https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/#persistentvolumeclaim-retention
   * @default - Retain when scaled down, Retain when deleted
   */
  readonly persistentVolumeClaimRetentionPolicy?: PvcRetentionPolicy;
  /**
   * Container resources.
   * @default - requests cpu 100m and memory 256Mi, no limits
   */
  readonly resources?: ResourceRequirements;
  /**
   * The cluster's DNS domain, used in member DNS names.
   * @default 'cluster.local'
   */
  readonly clusterDomain?: string;
  /**
   * Extra labels on every object and pod.
   * @default - none
   */
  readonly labels?: { [key: string]: string };
  /**
   * Extra annotations on every object.
   * @default - none
   */
  readonly annotations?: { [key: string]: string };
  /**
   * Annotations on the pods.
   * @default - none
   */
  readonly podAnnotations?: { [key: string]: string };
  /**
   * How members are kept on separate nodes.
   * @default PodAntiAffinity.SOFT
   */
  readonly podAntiAffinity?: PodAntiAffinity;
  /**
   * How members spread over topology domains.
   * @default - none
   */
  readonly topologySpreadConstraints?: TopologySpreadOptions[];
  /**
   * How pods are replaced when the template changes.
   * @default UpdateStrategy.rollingUpdate()
   */
  readonly updateStrategy?: UpdateStrategy;
  /**
   * How the StatefulSet creates and scales pods.
   * @default - the engine's (Parallel for etcd, OrderedReady for custom)
   */
  readonly podManagementPolicy?: PodManagementPolicy;
  /**
   * Emit a NetworkPolicy admitting peer traffic only between members and client traffic only on the
   * client port from clientPodLabels pods.
   * @default true
   */
  readonly networkPolicy?: boolean;
  /**
   * Restrict egress too, for namespaces that deny egress by default: members may reach DNS and each
   * other; the store's Jobs DNS and the members' client port, and its reconciler also the API server
   * (TCP 443 and 6443, any address: the API server's address is not known at synth time).
   * @default false
   */
  readonly networkPolicyEgress?: boolean;
  /**
   * Labels of the pods allowed to connect as clients.
   * @default - `{ '<name>-client': 'true' }`
   */
  readonly clientPodLabels?: { [key: string]: string };
  /**
   * Labels of the namespaces clients may come from.
   * @default - only the store's own namespace
   */
  readonly clientNamespaceLabels?: { [key: string]: string };
  /**
   * The uid (and gid) the containers run as.
   * @default 65532
   */
  readonly runAsUser?: number;
  /**
   * Node labels the pods require.
   * @default - none
   */
  readonly nodeSelector?: { [key: string]: string };
  /**
   * Node taints the pods tolerate: the members and the backup, snapshot and restore Jobs (which must
   * reach the nodes that hold the volumes).
   * @default - none
   */
  readonly tolerations?: TolerationOptions[];
  /**
   * Names of Secrets (kubernetes.io/dockerconfigjson) holding credentials for the registries of every
   * image the store pulls: members and Jobs.
   * @default - none
   */
  readonly imagePullSecrets?: string[];
  /**
   * The PriorityClass of the members (not of the Jobs), so that they are not preempted before less
   * important pods.
   * @default - the cluster default
   */
  readonly priorityClassName?: string;
  /**
   * RFC 6902 JSON patches applied to the synthesized objects of one kind (and name), for what the props
   * don't cover. Part of the spec, so the reconciler applies them too (GitOps and CRD mode). Patches that
   * change an object's identity, replicas, selector, serviceName, podManagementPolicy, volume claim
   * templates or the pod template's selector labels are refused.
   * @default - none
   */
  readonly patches?: ObjectPatch[];
  /**
   * Mutual TLS: https on the client and peer ports with client certificates required on both, health
   * and metrics on a plain-HTTP port of their own (2381). Certificates from cert-manager (the store's
   * own CA, or your issuer) or from Secrets you provide. Needs the chart's namespace.
   * @default - plain HTTP, no authentication (TLS needs cert-manager or certificates you provide)
   */
  readonly tls?: TlsOptions;
  /**
   * Who may do what, by key prefix: each client gets its own certificate (Secret
   * <name>-client-<client>, common name = the client's name) and the reconciler creates its etcd user
   * and role and turns etcd authentication on (the library's own clients are the user root). Changing
   * the list changes only what changed. Needs tls and the reconciler.
   * @default - no authentication: every certificate of the store's CA has full access
   */
  readonly clients?: ClientAccess[];
  /**
   * GitOps mode: instead of the store's objects, synthesize the reconciler bundle (spec ConfigMap,
   * a Job named after the spec hash, ServiceAccount, Role, RoleBinding). The Job applies the store's
   * objects and owns its membership-sensitive fields. Needs a chart namespace.
   * @default - the store's objects are synthesized directly
   */
  readonly reconciler?: ReconcilerOptions;
  /**
   * Observability for the Prometheus Operator (etcd): a PodMonitor or ServiceMonitor scraping the
   * members' plain-HTTP metrics port, a PrometheusRule with the store's alerts (each with a runbook
   * link) and, opt-in, a Grafana dashboard ConfigMap; with the store's NetworkPolicy, a NetworkPolicy
   * admitting Prometheus to the metrics port. In the chart in both modes (the GitOps tool applies them).
   * Needs the prometheus-operator CRDs in the cluster and a chart namespace.
   * @default - none: the members still serve /metrics on port 2381 for any scraper
   */
  readonly metrics?: MetricsOptions;
  /**
   * Scheduled snapshots (etcdctl snapshot save against the client Service) into a PVC, the oldest pruned
   * beyond keep. With the reconciler, it also takes a snapshot before every membership change, resize
   * and restore.
   * @default - no backups
   */
  readonly backup?: BackupOptions;
  /**
   * Restore every member from one snapshot file in a PVC: the reconciler builds a new logical cluster
   * holding the snapshot's data (a live store's old data stays on the PVCs, in another directory;
   * replacing a live store's data needs force). Needs the reconciler.
   * @default - no restore
   */
  readonly restore?: RestoreOptions;
}

/**
 * A replicated key-value store: a StatefulSet with stable member names and ordered PVC templates,
 * a headless Service for peer discovery, a client Service, a quorum-keeping PodDisruptionBudget and
 * a NetworkPolicy. With `reconciler`, the bundle that applies those objects instead (GitOps mode).
 */
export class KVStore extends Construct {
  /** The normalized spec this store was synthesized from. */
  readonly spec: KVStoreSpec;
  /** A stable hash of `spec`. */
  readonly specHash: string;
  /** The engine the members run. */
  readonly engine: IEngine;
  /** Advice about the spec (e.g. an even size); also emitted as process warnings. */
  readonly warnings: readonly string[];
  /** Names of every object of the store. */
  readonly names: StoreNames;
  /** The StatefulSet's name (the members are `<name>-<ordinal>`). */
  readonly statefulSetName: string;
  /** The headless Service members find each other through. */
  readonly headlessServiceName: string;
  /** The ClusterIP Service clients connect to. */
  readonly clientServiceName: string;
  /** The client Service's DNS name (fully qualified when the chart has a namespace). */
  readonly clientHost: string;
  /** The port clients connect to. */
  readonly clientPort: number;
  /** The port members talk to each other on; undefined for engines whose members do not. */
  readonly peerPort?: number;
  /** Labels selecting this store's pods. */
  readonly selectorLabels: { [key: string]: string };
  /** Labels a pod needs to reach the store through the NetworkPolicy. */
  readonly clientPodLabels: { [key: string]: string };
  /** The document the reconciler re-renders this store from (GitOps mode ships it in a ConfigMap). */
  readonly document: StoreDocument;
  /**
   * The StatefulSet (the store's main object, construct id 'Resource').
   * Undefined in GitOps mode: the reconciler applies it.
   */
  readonly statefulSet?: ApiObject;
  /** The reconciler bundle in GitOps mode; undefined when the store's objects are synthesized directly. */
  readonly reconciler?: ReconcilerBundle;

  constructor(scope: Construct, id: string, props: KVStoreProps = {}) {
    super(scope, id);
    const engine = props.engine ?? Engine.etcd();
    const namespace = Chart.of(this).namespace;
    const badNamespace = namespaceIssues(namespace);
    if (badNamespace.length > 0) throw new SpecError(props.name ?? id, badNamespace.map((i) => ({ ...i, reason: 'the chart\'s namespace' })));
    // The cluster token's seed: unique per store and stable (namespace and construct path, never time).
    const store = StoreDefinition.fromInput(specInputFromProps(props.name ?? id, engine, props), engine, { namespace, tokenSeed: `${namespace ?? ''}/${this.node.path}` });
    this.spec = store.spec;
    this.specHash = store.specHash;
    this.engine = engine;
    this.warnings = [...store.warnings, ...backupRoomWarnings(store.spec, engine, props.backup)];
    this.names = store.names;
    this.statefulSetName = store.names.statefulSet;
    this.headlessServiceName = store.names.headlessService;
    this.clientServiceName = store.names.clientService;
    this.clientHost = store.clientHost;
    this.clientPort = engine.clientPort;
    this.peerPort = engine.peerPort;
    this.selectorLabels = store.selectorLabels;
    this.clientPodLabels = store.spec.networkPolicy.clientPodLabels;
    this.document = store.document;
    for (const w of this.warnings) process.emitWarning(w, 'KVStoreWarning');

    if (store.spec.restore && !props.reconciler) {
      throw new SpecError(store.spec.name, [{ field: 'restore', value: store.spec.restore, allowed: 'used together with reconciler', reason: 'restoring runs one Job per member before the pods start, which the reconciler does' }]);
    }
    if (store.spec.tls && !namespace) {
      throw new SpecError(store.spec.name, [{ field: 'tls', value: props.tls, allowed: 'used in a chart with a namespace', reason: "the certificates name the members' DNS names, which contain it" }]);
    }
    if (store.spec.clients && !props.reconciler) {
      throw new SpecError(store.spec.name, [{ field: 'clients', value: props.clients, allowed: 'used together with reconciler', reason: 'the reconciler creates the etcd users and roles and turns authentication on; without it every certificate of the CA has full access' }]);
    }
    if (props.reconciler && !namespace) {
      throw new Error(`KVStore '${store.spec.name}': reconciler needs the chart to have a namespace, got none (the Job applies the store into it)`);
    }
    // A live direct-mode etcd store can't change what its members were started with (its member list,
    // its peer URLs): checked against the lock file; recorded at synthesis in either mode. A custom
    // engine's bootstrap is its image's, so the library can't tell what it may change.
    const lockFile = engine.spec.kind === 'etcd' ? lockFilePath(this) : undefined;
    if (lockFile) {
      const key = lockKey(namespace, store.spec.name);
      const now = { size: store.spec.size, tls: store.spec.tls !== undefined };
      if (!props.reconciler) {
        const issues = lockIssues(key, displayPath(lockFile), readLock(lockFile)[key], now);
        if (issues.length > 0) throw new SpecError(store.spec.name, issues);
      }
      this.node.addValidation({ validate: () => (writeLockEntry(lockFile, key, now), []) });
    }
    if (props.metrics) {
      const issues = metricsIssues(store, props.metrics);
      if (issues.length > 0) throw new SpecError(store.spec.name, issues);
    }
    // Before anything is rendered: two stores creating one object must fail at the second's line.
    claimObjects(this.node.root, {
      name: store.spec.name,
      path: this.node.path,
      namespace,
      objects: [
        ...storeObjects(store.spec, {
          bootstrapConfig: engine.container(store.engineContext('new')).bootstrapEnv !== undefined,
          reconciler: props.reconciler !== undefined,
        }),
        ...(props.metrics ? monitoringObjects(store, props.metrics) : []),
      ],
    });

    if (props.reconciler) {
      // The reconciler applies the patches: check them now, against both renders it makes, rather than
      // in the Job's log.
      if (store.spec.patches.length) {
        for (const initialClusterState of ['new', 'existing'] as const) {
          const probe = new Chart(new App(), 'patch-check', { namespace, disableResourceNameHashes: true });
          renderStoreObjects(new Construct(probe, store.spec.name), store, { initialClusterState });
        }
      }
      this.reconciler = new ReconcilerBundle(this, 'Reconciler', { store, ...props.reconciler });
      // The GitOps tool applies and prunes these (the reconciler needs no rights on them, and its Job
      // reaches the API server through the Jobs' NetworkPolicy before it applied anything).
      renderToolOwned(this, store, { reconcilerApi: true });
    } else {
      renderStoreObjects(this, store);
      this.statefulSet = this.node.findChild('Resource') as ApiObject;
    }
    // Beside the store's objects in both modes: the GitOps tool applies them, the reconciler needs no rights on them.
    if (props.metrics) renderMonitoring(this, store, props.metrics, { reconcilerJobs: props.reconciler !== undefined });
  }
}

/**
 * When the user sized the backups (backup.storage or backup.keep) and `keep` snapshots of a database at
 * its quota do not fit the claim the construct creates. Not for the defaults, which would always warn
 * (24 snapshots of half the data volume): their capacity is documented instead.
 */
function backupRoomWarnings(spec: KVStoreSpec, engine: IEngine, input: BackupOptions | undefined): string[] {
  const backup = spec.backup;
  const largest = backup && engine.snapshots?.largestBytes?.(spec);
  if (!backup?.storage || !largest || (input?.storage === undefined && input?.keep === undefined)) return [];
  if (largest * backup.keep <= parseQuantity(backup.storage)!) return [];
  return [`KVStore '${spec.name}': backup.storage ${backup.storage} holds fewer than backup.keep (${backup.keep}) snapshots of a database at its quota (${largest} bytes); size it for your database, or keep fewer.`];
}

/** A store of an app, as a later store compares itself with it. */
interface PlacedStore {
  readonly name: string;
  /** The construct path. */
  readonly path: string;
  readonly namespace?: string;
  readonly objects: readonly StoreObjectRef[];
}

/** The stores of each app, keyed by the construct tree's root. */
const STORES_OF_APP = new WeakMap<IConstruct, PlacedStore[]>();

/**
 * Throws when `store` would create an object an earlier store of the same app creates in the same
 * namespace (one would overwrite the other when applied); otherwise records it. Charts without a
 * namespace count as one namespace: their objects are applied to the same current one.
 */
function claimObjects(root: IConstruct, store: PlacedStore): void {
  const stores = STORES_OF_APP.get(root) ?? [];
  for (const other of stores.filter((o) => o.namespace === store.namespace)) {
    const shared = store.objects.find((mine) => other.objects.some((theirs) => theirs.kind === mine.kind && theirs.name === mine.name));
    if (shared) {
      const where = store.namespace !== undefined ? `${store.namespace}/${shared.name}` : `${shared.name} (their charts set no namespace)`;
      throw new Error(`KVStore '${other.name}' (${other.path}) and KVStore '${store.name}' (${store.path}) both synthesize ${shared.kind} ${where}: give one a different name or namespace`);
    }
  }
  STORES_OF_APP.set(root, [...stores, store]);
}

/** Internal (not in the entry): the typed props as the plain spec input a KVStore resource carries (enum values are the spec's strings). */
export function specInputFromProps(name: string, engine: IEngine, props: KVStoreProps): KVStoreSpecInput {
  const networkPolicySet = props.networkPolicy !== undefined || props.clientPodLabels || props.clientNamespaceLabels || props.networkPolicyEgress !== undefined;
  return {
    name,
    engine: engine.spec,
    size: props.size,
    image: props.containerImage,
    storageSize: props.storageSize,
    storageClassName: props.storageClassName,
    volumeClaimTemplates: props.volumeClaimTemplates,
    persistentVolumeClaimRetentionPolicy: props.persistentVolumeClaimRetentionPolicy,
    resources: props.resources,
    clusterDomain: props.clusterDomain,
    labels: props.labels,
    annotations: props.annotations,
    podAnnotations: props.podAnnotations,
    podAntiAffinity: props.podAntiAffinity,
    topologySpreadConstraints: props.topologySpreadConstraints,
    updateStrategy: props.updateStrategy?._spec,
    podManagementPolicy: props.podManagementPolicy,
    networkPolicy: networkPolicySet ? {
      enabled: props.networkPolicy,
      clientPodLabels: props.clientPodLabels,
      clientNamespaceLabels: props.clientNamespaceLabels,
      egress: props.networkPolicyEgress,
    } : undefined,
    runAsUser: props.runAsUser,
    nodeSelector: props.nodeSelector,
    tolerations: props.tolerations,
    imagePullSecrets: props.imagePullSecrets,
    priorityClassName: props.priorityClassName,
    patches: props.patches,
    tls: props.tls,
    clients: props.clients,
    backup: props.backup && { ...props.backup, pruneImage: props.backup.pruneImage ?? props.reconciler?.image },
    restore: props.restore,
  };
}
