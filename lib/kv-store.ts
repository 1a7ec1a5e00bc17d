// KVStore: the construct. Props → spec → StatefulSet, headless and client Services, PDB, NetworkPolicy.
import { ApiObject, Chart } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { Engine } from './engines/engine';
import { EngineContext, IEngine, POD_ENV } from './engines/types';
import { STORE_LABEL, StoreBackup } from './backup';
import { clusterToken, selectorLabels, StoreNames, storeNames } from './names';
import { restrictedContainerSecurity, restrictedPodSecurity } from './pod-security';
import { ReconcilerBundle, ReconcilerOptions } from './reconciler-bundle';
import {
  AccessMode, KVStoreSpec, KVStoreSpecInput, normalizeSpec, BackupSpecInput, ProbeSpec, ResourcesSpec, RestoreSpec, RestoreSpecInput, SpecError, specHash, StoreDocument,
} from './spec';

/** What happens to PVCs when the store shrinks or is deleted. */
export enum PvcRetention {
  RETAIN = 'Retain',
  DELETE = 'Delete',
}

/** @see https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/#pod-management-policies */
export enum PodManagementPolicy {
  ORDERED_READY = 'OrderedReady',
  PARALLEL = 'Parallel',
}

/** How members are kept on separate nodes. */
export enum PodAntiAffinity {
  /** Prefer separate nodes; schedule together if there is no other way. */
  SOFT = 'soft',
  /** Require separate nodes: a member stays Pending rather than share a node. */
  HARD = 'hard',
  NONE = 'none',
}

/** @see https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/#update-strategies */
export class UpdateStrategy {
  /** Replace pods from the highest ordinal down; ordinals below `partition` keep the old template. */
  static rollingUpdate(options: { readonly partition?: number } = {}): UpdateStrategy {
    return new UpdateStrategy({ type: 'RollingUpdate', ...(options.partition !== undefined ? { partition: options.partition } : {}) });
  }

  /** Pods are only replaced when you delete them. */
  static onDelete(): UpdateStrategy {
    return new UpdateStrategy({ type: 'OnDelete' });
  }

  private constructor(readonly spec: NonNullable<KVStoreSpecInput['updateStrategy']>) {}
}

/** One PVC template; each member gets its own PVC from it, mounted in the container. */
export interface VolumeClaimTemplateOptions {
  /** Template name; PVCs are named `<name>-<store>-<ordinal>`. */
  readonly name: string;
  /** @default - the store's `storageSize` */
  readonly storage?: string;
  /** @default - the store's `storageClassName` */
  readonly storageClassName?: string;
  /** @default ['ReadWriteOnce'] */
  readonly accessModes?: AccessMode[];
  /** @default '/var/lib/kvstore/<name>' */
  readonly mountPath?: string;
}

export interface TopologySpreadOptions {
  /** A node label, e.g. `topology.kubernetes.io/zone`. */
  readonly topologyKey: string;
  /** @default 1 */
  readonly maxSkew?: number;
  /** @default 'ScheduleAnyway' */
  readonly whenUnsatisfiable?: 'DoNotSchedule' | 'ScheduleAnyway';
}

export interface KVStoreProps {
  /**
   * The store name: names the StatefulSet, the Services and (through the StatefulSet) the PVCs.
   * A DNS-1123 label of at most 52 characters.
   * @default - the construct id
   */
  readonly name?: string;
  /**
   * Number of members (StatefulSet replicas).
   * @default 3
   */
  readonly size?: number;
  /**
   * Size of each member's volumes, as a Kubernetes quantity.
   * @default '10Gi'
   */
  readonly storageSize?: string;
  /**
   * The container image.
   * @default - the engine's pinned image (required with `Engine.custom()`)
   */
  readonly containerImage?: string;
  /** @default Engine.etcd() */
  readonly engine?: IEngine;
  /** @default - the cluster's default StorageClass */
  readonly storageClassName?: string;
  /**
   * PVC templates in order; the first holds the engine's data.
   * @default - one template named 'data'
   */
  readonly volumeClaimTemplates?: VolumeClaimTemplateOptions[];
  /**
   * @default - Retain when scaled down, Retain when deleted
   * @see https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/#persistentvolumeclaim-retention
   */
  readonly persistentVolumeClaimRetentionPolicy?: { readonly whenScaled?: PvcRetention; readonly whenDeleted?: PvcRetention };
  /** @default - requests cpu 100m and memory 256Mi, no limits */
  readonly resources?: ResourcesSpec;
  /** @default 'cluster.local' */
  readonly clusterDomain?: string;
  /** Extra labels on every object and pod. @default - none */
  readonly labels?: Record<string, string>;
  /** Extra annotations on every object. @default - none */
  readonly annotations?: Record<string, string>;
  /** Annotations on the pods. @default - none */
  readonly podAnnotations?: Record<string, string>;
  /** @default PodAntiAffinity.SOFT */
  readonly podAntiAffinity?: PodAntiAffinity;
  /** @default - none */
  readonly topologySpreadConstraints?: TopologySpreadOptions[];
  /** @default UpdateStrategy.rollingUpdate() */
  readonly updateStrategy?: UpdateStrategy;
  /** @default - the engine's (Parallel for etcd, OrderedReady for custom) */
  readonly podManagementPolicy?: PodManagementPolicy;
  /**
   * Emit a NetworkPolicy admitting peer traffic only between members and client traffic only on
   * the client port from `clientPodLabels` pods.
   * @default true
   */
  readonly networkPolicy?: boolean;
  /**
   * Labels of the pods allowed to connect as clients.
   * @default - `{ '<name>-client': 'true' }`
   */
  readonly clientPodLabels?: Record<string, string>;
  /**
   * Labels of the namespaces clients may come from.
   * @default - only the store's own namespace
   */
  readonly clientNamespaceLabels?: Record<string, string>;
  /** @default 65532 */
  readonly runAsUser?: number;
  /** @default - none */
  readonly nodeSelector?: Record<string, string>;
  /**
   * GitOps mode: instead of the store's objects, synthesize the reconciler bundle (spec ConfigMap,
   * a Job named after the spec hash, ServiceAccount, Role, RoleBinding). The Job applies the store's
   * objects and owns its membership-sensitive fields. Needs a chart namespace.
   * @default - the store's objects are synthesized directly
   */
  readonly reconciler?: ReconcilerOptions;
  /**
   * Scheduled snapshots into a PVC (a CronJob running `etcdctl snapshot save` against the client
   * Service), the oldest deleted beyond `keep`. With the reconciler, it also takes a snapshot before
   * every membership change and resize.
   * @default - no backups
   */
  readonly backup?: BackupOptions;
  /**
   * Restore every member from one snapshot: the reconciler builds a new logical cluster holding the
   * snapshot's data (for a live store the old data stays on the PVCs, in another directory; replacing
   * a live store's data needs force). Needs `reconciler`.
   * @default - no restore
   */
  readonly restore?: RestoreOptions;
}

/** Backup settings (the same data a KVStore resource carries). */
export type BackupOptions = BackupSpecInput;
/** Restore settings (the same data a KVStore resource carries). */
export type RestoreOptions = RestoreSpecInput;

const RESOLVED = Symbol('kvstore.resolved');
const restoredFrom = (r: RestoreSpec) => `${r.claimName}/${r.snapshot}`;
/** CronJob names are limited to 52 characters (the Jobs get an 11-character suffix). */
const MAX_CRONJOB_NAME = 52;
const NAME_LABEL = 'app.kubernetes.io/name';
/** The `app.kubernetes.io/name` of the CRD-mode reconciler's pods (KVStoreOperator). */
export const RECONCILER_POD_NAME = 'kvstore-reconciler';
/** Annotation on the StatefulSet naming the engine kind. */
export const ENGINE_ANNOTATION = 'kvstore.cdk8s-kvstore.io/engine';
/** Annotation on the StatefulSet of a restored store: `<claim>/<snapshot>` its members were restored from. */
export const RESTORED_FROM_ANNOTATION = 'kvstore.cdk8s-kvstore.io/restored-from';

/** How the reconciler re-synthesizes a store from its document. */
export interface FromDocumentOptions {
  /** @default 'new' */
  readonly initialClusterState?: 'new' | 'existing';
  /**
   * A membership operation under way (recorded on the StatefulSet, so a reconciler that was stopped
   * in the middle of one finds it again).
   * @default - none
   */
  readonly operation?: string;
}

/** Annotation on the StatefulSet while the reconciler changes membership. */
export const OPERATION_ANNOTATION = 'kvstore.cdk8s-kvstore.io/operation';

interface Resolved {
  readonly document: StoreDocument;
  readonly initialClusterState: 'new' | 'existing';
  readonly operation?: string;
}

/** Turns the typed props into the plain spec input (the same shape a KVStore resource carries). */
export function specInputFromProps(name: string, engine: IEngine, props: KVStoreProps): KVStoreSpecInput {
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
    updateStrategy: props.updateStrategy?.spec,
    podManagementPolicy: props.podManagementPolicy,
    networkPolicy: props.networkPolicy === undefined && !props.clientPodLabels && !props.clientNamespaceLabels ? undefined : {
      enabled: props.networkPolicy,
      clientPodLabels: props.clientPodLabels,
      clientNamespaceLabels: props.clientNamespaceLabels,
    },
    runAsUser: props.runAsUser,
    nodeSelector: props.nodeSelector,
    backup: props.backup && { ...props.backup, pruneImage: props.backup.pruneImage ?? props.reconciler?.image },
    restore: props.restore,
  };
}

/** Validates an input spec with the engine's rules too: the one entry for construct and reconciler. */
export function resolveSpec(input: KVStoreSpecInput, engine: IEngine): { spec: KVStoreSpec; warnings: string[] } {
  const spec = normalizeSpec(input, engine.defaults);
  const report = engine.validate(spec);
  if (!engine.snapshots) {
    for (const field of ['backup', 'restore'] as const) {
      if (spec[field]) report.issues.push({ field, value: spec[field], allowed: `left out with the ${engine.spec.kind} engine`, reason: 'it has no snapshot support' });
    }
  }
  if (spec.backup && spec.name.length + '-backup'.length > MAX_CRONJOB_NAME) {
    report.issues.push({ field: 'name', value: spec.name, allowed: `at most ${MAX_CRONJOB_NAME - '-backup'.length} characters with backup`, reason: `the CronJob <name>-backup must fit ${MAX_CRONJOB_NAME}` });
  }
  if (report.issues.length > 0) throw new SpecError(spec.name, report.issues);
  return { spec, warnings: report.warnings };
}

function port(p: number | string): k8s.IntOrString {
  return typeof p === 'number' ? k8s.IntOrString.fromNumber(p) : k8s.IntOrString.fromString(p);
}

function probe(p: ProbeSpec | undefined): k8s.Probe | undefined {
  if (!p) return undefined;
  return {
    ...(p.httpGet ? { httpGet: { path: p.httpGet.path, port: port(p.httpGet.port) } } : {}),
    ...(p.tcpSocket ? { tcpSocket: { port: port(p.tcpSocket.port) } } : {}),
    ...(p.exec ? { exec: { command: p.exec.command } } : {}),
    initialDelaySeconds: p.initialDelaySeconds,
    periodSeconds: p.periodSeconds,
    timeoutSeconds: p.timeoutSeconds,
    failureThreshold: p.failureThreshold,
  };
}

function quantities(list: Record<string, string> | undefined): Record<string, k8s.Quantity> | undefined {
  if (!list) return undefined;
  return Object.fromEntries(Object.keys(list).sort().map((k) => [k, k8s.Quantity.fromString(list[k])]));
}

/**
 * A replicated key-value store: a StatefulSet with stable member names and ordered PVC templates,
 * a headless Service for peer discovery, a client Service, a quorum-keeping PodDisruptionBudget and
 * a NetworkPolicy.
 */
export class KVStore extends Construct {
  /** The normalized spec this store was synthesized from. */
  readonly spec: KVStoreSpec;
  /** A stable hash of `spec`. */
  readonly specHash: string;
  readonly engine: IEngine;
  /** Advice about the spec (e.g. an even size); also emitted as process warnings. */
  readonly warnings: readonly string[];
  readonly statefulSetName: string;
  readonly headlessServiceName: string;
  readonly clientServiceName: string;
  /** The client Service's DNS name (fully qualified when the chart has a namespace). */
  readonly clientHost: string;
  readonly clientPort: number;
  readonly peerPort?: number;
  /** Labels selecting this store's pods. */
  readonly selectorLabels: Record<string, string>;
  /** Labels a pod needs to reach the store through the NetworkPolicy. */
  readonly clientPodLabels: Record<string, string>;
  readonly names: StoreNames;
  /** What the engine was told to render this store (the reconciler renders restore Jobs with it). */
  readonly engineContext?: EngineContext;

  /**
   * The store a document describes, synthesized exactly as the construct that wrote the document did
   * (the reconciler's way in). The document's spec is validated again.
   */
  static fromDocument(scope: Construct, id: string, document: StoreDocument, options: FromDocumentOptions = {}): KVStore {
    const resolved: Resolved = { document, initialClusterState: options.initialClusterState ?? 'new', operation: options.operation };
    return new KVStore(scope, id, { [RESOLVED]: resolved } as KVStoreProps);
  }

  /** The document the reconciler re-synthesizes this store from. */
  readonly document: StoreDocument;

  constructor(scope: Construct, id: string, props: KVStoreProps = {}) {
    super(scope, id);
    const resolved = (props as { [RESOLVED]?: Resolved })[RESOLVED];
    this.engine = resolved ? Engine.fromSpec(resolved.document.spec.engine) : props.engine ?? Engine.etcd();
    const input = resolved ? resolved.document.spec : specInputFromProps(props.name ?? id, this.engine, props);
    const { spec, warnings } = resolveSpec(input, this.engine);
    this.spec = spec;
    this.specHash = specHash(spec);
    this.warnings = warnings;
    // Said once, at synth time: the reconciler re-renders (also at intermediate sizes) without repeating it.
    if (!resolved) for (const w of warnings) process.emitWarning(w, 'KVStoreWarning');

    const names = storeNames(spec.name);
    const namespace = resolved ? resolved.document.namespace : Chart.of(this).namespace;
    this.names = names;
    this.statefulSetName = names.statefulSet;
    this.headlessServiceName = names.headlessService;
    this.clientServiceName = names.clientService;
    this.clientHost = namespace ? `${names.clientService}.${namespace}.svc.${spec.clusterDomain}` : names.clientService;
    this.clientPort = this.engine.clientPort;
    this.peerPort = this.engine.peerPort;
    this.selectorLabels = selectorLabels(spec.name);
    this.clientPodLabels = spec.networkPolicy.clientPodLabels;

    // Unique per store and stable: namespace and construct path, never the time or a random value.
    const token = resolved?.document.clusterToken ?? clusterToken(spec.name, `${namespace ?? ''}/${this.node.path}`);
    this.document = { apiVersion: 'kvstore.cdk8s-kvstore.io/v1', kind: 'StoreDocument', namespace: namespace ?? '', clusterToken: token, spec };
    if (spec.restore && !props.reconciler && !resolved) {
      throw new SpecError(spec.name, [{ field: 'restore', value: spec.restore, allowed: 'used together with reconciler', reason: 'restoring runs one Job per member before the pods start, which the reconciler does' }]);
    }
    if (props.reconciler) {
      if (!namespace) {
        throw new Error(`KVStore '${spec.name}': reconciler needs the chart to have a namespace, got none (the Job applies the store into it)`);
      }
      new ReconcilerBundle(this, 'Reconciler', { store: this, ...props.reconciler });
      return;
    }
    const labels = { ...spec.labels, ...this.selectorLabels, 'app.kubernetes.io/managed-by': 'cdk8s-kvstore', 'app.kubernetes.io/component': this.engine.name };
    const metadata = (name: string) => ({ name, labels, ...(Object.keys(spec.annotations).length ? { annotations: spec.annotations } : {}) });
    const ports = [
      { name: 'client', port: this.engine.clientPort },
      ...(this.engine.peerPort !== undefined ? [{ name: 'peer', port: this.engine.peerPort }] : []),
    ];

    new k8s.KubeService(this, 'HeadlessService', {
      metadata: metadata(names.headlessService),
      spec: {
        clusterIp: 'None',
        // Members must resolve each other before they are ready, or bootstrap never completes.
        publishNotReadyAddresses: true,
        selector: this.selectorLabels,
        ports: ports.map((p) => ({ name: p.name, port: p.port, targetPort: k8s.IntOrString.fromString(p.name) })),
      },
    });
    new k8s.KubeService(this, 'ClientService', {
      metadata: metadata(names.clientService),
      spec: {
        type: 'ClusterIP',
        selector: this.selectorLabels,
        ports: [{ name: 'client', port: this.engine.clientPort, targetPort: k8s.IntOrString.fromString('client') }],
      },
    });

    const engineContext = { spec, names, clusterToken: token, initialClusterState: resolved?.initialClusterState ?? 'new', ...(namespace ? { namespace } : {}) } as const;
    this.engineContext = engineContext;
    const engineContainer = this.engine.container(engineContext);
    if (engineContainer.bootstrapEnv) {
      const bootstrapMetadata = metadata(names.bootstrapConfig);
      new k8s.KubeConfigMap(this, 'Bootstrap', {
        // The restore marker is here too: it outlives a StatefulSet deleted for a re-create.
        metadata: spec.restore
          ? { ...bootstrapMetadata, annotations: { ...bootstrapMetadata.annotations, [RESTORED_FROM_ANNOTATION]: restoredFrom(spec.restore) } }
          : bootstrapMetadata,
        data: Object.fromEntries(Object.keys(engineContainer.bootstrapEnv).sort().map((k) => [k, engineContainer.bootstrapEnv![k]])),
      });
    }
    const podTemplateLabels = { ...labels };
    const affinity = this.affinity();
    const stsMetadata = metadata(names.statefulSet);
    new k8s.KubeStatefulSet(this, 'Resource', {
      // The engine kind is recorded so a reconciler can refuse an engine change on a live store.
      metadata: {
        ...stsMetadata,
        annotations: {
          ...stsMetadata.annotations,
          [ENGINE_ANNOTATION]: this.engine.spec.kind,
          ...(spec.restore ? { [RESTORED_FROM_ANNOTATION]: restoredFrom(spec.restore) } : {}),
          ...(resolved?.operation ? { [OPERATION_ANNOTATION]: resolved.operation } : {}),
        },
      },
      spec: {
        serviceName: names.headlessService,
        replicas: spec.size,
        selector: { matchLabels: this.selectorLabels },
        podManagementPolicy: spec.podManagementPolicy,
        updateStrategy: spec.updateStrategy.type === 'RollingUpdate'
          ? { type: 'RollingUpdate', rollingUpdate: { partition: spec.updateStrategy.partition } }
          : { type: 'OnDelete' },
        persistentVolumeClaimRetentionPolicy: spec.persistentVolumeClaimRetentionPolicy,
        template: {
          metadata: {
            labels: podTemplateLabels,
            ...(Object.keys(spec.podAnnotations).length ? { annotations: spec.podAnnotations } : {}),
          },
          spec: {
            automountServiceAccountToken: false,
            // Service links would inject <NAME>_PORT_* variables, which etcd rejects as unknown
            // ETCD_* flags when the store is named etcd.
            enableServiceLinks: false,
            securityContext: restrictedPodSecurity(spec.runAsUser),
            ...(affinity ? { affinity } : {}),
            ...(spec.topologySpreadConstraints.length ? {
              topologySpreadConstraints: spec.topologySpreadConstraints.map((c) => ({
                topologyKey: c.topologyKey,
                maxSkew: c.maxSkew,
                whenUnsatisfiable: c.whenUnsatisfiable,
                labelSelector: { matchLabels: this.selectorLabels },
              })),
            } : {}),
            ...(Object.keys(spec.nodeSelector).length ? { nodeSelector: spec.nodeSelector } : {}),
            containers: [{
              name: this.engine.name,
              image: spec.image,
              imagePullPolicy: 'IfNotPresent',
              command: engineContainer.command,
              args: engineContainer.args,
              env: [
                { name: POD_ENV.name, valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                { name: POD_ENV.namespace, valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
                { name: POD_ENV.ip, valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
                ...engineContainer.env,
              ],
              ...(engineContainer.bootstrapEnv ? { envFrom: [{ configMapRef: { name: names.bootstrapConfig } }] } : {}),
              ports: ports.map((p) => ({ name: p.name, containerPort: p.port, protocol: 'TCP' })),
              resources: { requests: quantities(spec.resources.requests), limits: quantities(spec.resources.limits) },
              volumeMounts: [
                ...spec.volumeClaimTemplates.map((t) => ({ name: t.name, mountPath: t.mountPath })),
                { name: 'tmp', mountPath: '/tmp' },
              ],
              startupProbe: probe(engineContainer.startupProbe),
              livenessProbe: probe(engineContainer.livenessProbe),
              readinessProbe: probe(engineContainer.readinessProbe),
              securityContext: restrictedContainerSecurity(),
            }],
            volumes: [{ name: 'tmp', emptyDir: {} }],
          },
        },
        volumeClaimTemplates: spec.volumeClaimTemplates.map((t) => ({
          metadata: { name: t.name, labels: this.selectorLabels },
          spec: {
            accessModes: t.accessModes,
            ...(t.storageClassName !== undefined ? { storageClassName: t.storageClassName } : {}),
            resources: { requests: { storage: k8s.Quantity.fromString(t.storage) } },
          },
        })),
      },
    });

    new k8s.KubePodDisruptionBudget(this, 'PodDisruptionBudget', {
      metadata: metadata(names.podDisruptionBudget),
      spec: {
        selector: { matchLabels: this.selectorLabels },
        ...(this.engine.quorum
          ? { minAvailable: k8s.IntOrString.fromNumber(Math.floor(spec.size / 2) + 1) }
          : { maxUnavailable: k8s.IntOrString.fromNumber(1) }),
      },
    });

    if (spec.backup) {
      new StoreBackup(this, 'Backup', {
        spec, engine: this.engine, names, labels,
        clientEndpoint: `${this.clientHost}:${this.clientPort}`,
      });
    }

    if (spec.networkPolicy.enabled) {
      const clientPeer = {
        podSelector: { matchLabels: spec.networkPolicy.clientPodLabels },
        ...(spec.networkPolicy.clientNamespaceLabels ? { namespaceSelector: { matchLabels: spec.networkPolicy.clientNamespaceLabels } } : {}),
      };
      new k8s.KubeNetworkPolicy(this, 'NetworkPolicy', {
        metadata: metadata(names.networkPolicy),
        spec: {
          podSelector: { matchLabels: this.selectorLabels },
          policyTypes: ['Ingress'],
          ingress: [
            {
              // Members reach each other on every engine port (peer traffic, and client calls for health).
              from: [{ podSelector: { matchLabels: this.selectorLabels } }],
              ports: ports.map((p) => ({ protocol: 'TCP', port: k8s.IntOrString.fromNumber(p.port) })),
            },
            {
              // Clients; this store's own Jobs (reconciler, snapshots) and the CRD-mode reconciler, from
              // this namespace whatever clientNamespaceLabels say (membership changes, snapshots).
              from: [
                clientPeer,
                { podSelector: { matchLabels: { [STORE_LABEL]: spec.name } } },
                { podSelector: { matchLabels: { [NAME_LABEL]: RECONCILER_POD_NAME } } },
              ],
              ports: [{ protocol: 'TCP', port: k8s.IntOrString.fromNumber(this.engine.clientPort) }],
            },
          ],
        },
      });
    }
  }

  /** The StatefulSet (the store's main object). */
  get statefulSet(): ApiObject {
    return this.node.findChild('Resource') as ApiObject;
  }

  private affinity(): k8s.Affinity | undefined {
    const term = { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: this.selectorLabels } };
    switch (this.spec.podAntiAffinity) {
      case 'hard':
        return { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [term] } };
      case 'soft':
        return { podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: term }] } };
      default:
        return undefined;
    }
  }
}
