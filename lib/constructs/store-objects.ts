// Every Kubernetes object of one store, rendered from its definition in a fixed order. The KVStore
// construct renders through here, and so does the reconciler when it re-synthesizes a store in memory.
import { Construct } from 'constructs';
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IService } from 'kubernetes-models/v1/Service';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { INetworkPolicyEgressRule } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicyEgressRule';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { EngineContainer, EngineContext } from '../engines/types';
import { COMPONENT_LABEL, NAME_LABEL, OPERATOR_COMPONENT, RECONCILER_POD_NAME, RESTORED_FROM_ANNOTATION, STORE_LABEL } from '../model/metadata';
import { StoreBackup } from './backup';
import { ETCD_MAX_SIZE } from '../engines/etcd';
import { tlsSecrets } from '../model/names';
import { MAX_SIZE } from '../model/schema';
import { kubeObject } from './kube';
import { applyPatches } from './patches';
import { CaRotationRender, enginePorts, renderStatefulSet, restoredFrom } from './stateful-set';
import { renderCertificates } from './tls';
import type { StoreDefinition } from './store-definition';

/** How the reconciler renders a store mid-operation; the construct renders a new store. */
export interface RenderOptions {
  /** @default 'new' */
  readonly initialClusterState?: 'new' | 'existing';
  /**
   * A membership operation under way, recorded on the StatefulSet so a reconciler stopped in the
   * middle of one finds it again.
   * @default - none
   */
  readonly operation?: string;
  /**
   * A live store's switch to TLS, first phase: see EngineContext.tlsPhase.
   * @default - TLS as the spec says
   */
  readonly tlsPhase?: EngineContext['tlsPhase'];
  /**
   * RollingUpdate at this partition, whatever the spec's update strategy: the reconciler rolls members
   * one at a time itself (ordinals from the partition up get the new template).
   * @default - the spec's update strategy
   */
  readonly partition?: number;
  /**
   * A CA rotation's phase: the member Secret the members mount now, what they trust (the trust
   * annotation's value) and whether through the `<store>-trust` bundle.
   * @default - as the spec says
   */
  readonly caRotation?: CaRotationRender;
  /**
   * Whether the objects the GitOps tool owns in GitOps mode are among the objects (direct and CRD
   * mode): a TLS store's cert-manager objects, and with egress restricted the Jobs' NetworkPolicy. In
   * GitOps mode the GitOps tool applies (and prunes) them with the reconciler bundle, so the reconciler
   * needs no rights on them (and can reach the API server before it applied anything).
   * @default true
   */
  readonly toolOwned?: boolean;
}

/** Renders the store's objects as children of `scope` (construct ids are contract: 'Resource' is the StatefulSet). */
export function renderStoreObjects(scope: Construct, store: StoreDefinition, options: RenderOptions = {}): void {
  const container = store.engine.container(store.engineContext(options.initialClusterState ?? 'new', { tlsPhase: options.tlsPhase, trustBundle: options.caRotation?.bundle }));
  // Certificates first: the members mount their Secrets.
  if (options.toolOwned ?? true) renderToolOwned(scope, store, { reconcilerApi: false });
  renderHeadlessService(scope, store);
  renderClientService(scope, store);
  if (container.bootstrapEnv) renderBootstrapConfig(scope, store, container);
  renderStatefulSet(scope, store, container, { operation: options.operation, partition: options.partition, caRotation: options.caRotation });
  renderPodDisruptionBudget(scope, store);
  if (store.spec.backup) new StoreBackup(scope, 'Backup', { store });
  if (store.spec.networkPolicy.enabled) renderNetworkPolicy(scope, store);
  applyPatches(scope, store);
}

/**
 * The CRD-mode reconciler's pods (labelled as the operator): from the store's namespace, or from the
 * operator's own when it runs elsewhere (`namespaces`, `namespaceSelector`), by the name label every
 * namespace carries (Kubernetes 1.21+). Another namespace's pods with those labels are not admitted.
 */
function operatorPeer(store: StoreDefinition) {
  const podSelector = { matchLabels: { [NAME_LABEL]: RECONCILER_POD_NAME, [COMPONENT_LABEL]: OPERATOR_COMPONENT } };
  const elsewhere = store.operatorNamespace && store.operatorNamespace !== store.namespace;
  return elsewhere ? { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': store.operatorNamespace! } }, podSelector } : { podSelector };
}

/**
 * What the GitOps tool applies beside the reconciler bundle in GitOps mode (and the store's objects
 * include otherwise): a TLS store's cert-manager objects, and with egress restricted the Jobs'
 * NetworkPolicy (letting the reconciler reach the API server when `reconcilerApi`).
 */
export function renderToolOwned(scope: Construct, store: StoreDefinition, options: { reconcilerApi: boolean }): void {
  if (store.spec.tls && tlsSecrets(store.spec).certManager) renderCertificates(scope, store, store.engine.spec.kind === 'etcd' ? ETCD_MAX_SIZE : MAX_SIZE);
  if (store.spec.networkPolicy.enabled && store.spec.networkPolicy.egress) renderJobsNetworkPolicy(scope, store, options.reconcilerApi);
}

/** DNS, wherever the cluster runs it (kube-dns or CoreDNS pods are labelled k8s-app: kube-dns). */
const DNS_EGRESS: INetworkPolicyEgressRule = {
  to: [{ namespaceSelector: {}, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
  ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }],
};

/** The store's Jobs (backups, snapshots, restores, its reconciler): DNS, the members' client port, and the API server for the reconciler. */
function renderJobsNetworkPolicy(scope: Construct, store: StoreDefinition, reconcilerApi: boolean): void {
  kubeObject<INetworkPolicy>(scope, 'JobsNetworkPolicy', { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy' }, {
    metadata: store.metadata(store.names.jobsNetworkPolicy),
    spec: {
      podSelector: { matchLabels: { [STORE_LABEL]: store.spec.name } },
      policyTypes: ['Egress'],
      egress: [
        DNS_EGRESS,
        { to: [{ podSelector: { matchLabels: store.selectorLabels } }], ports: [{ protocol: 'TCP', port: store.engine.clientPort }] },
      ],
    },
  });
  if (!reconcilerApi) return;
  // The reconciler Job alone (not the backup Jobs) may reach the API server. Its address is not known
  // at synth time: its ports, anywhere.
  kubeObject<INetworkPolicy>(scope, 'ReconcilerNetworkPolicy', { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy' }, {
    metadata: store.metadata(store.names.reconcilerNetworkPolicy),
    spec: {
      podSelector: { matchLabels: { [STORE_LABEL]: store.spec.name, [NAME_LABEL]: RECONCILER_POD_NAME } },
      policyTypes: ['Egress'],
      egress: [{ ports: [{ protocol: 'TCP', port: 443 }, { protocol: 'TCP', port: 6443 }] }],
    },
  });
}

function renderHeadlessService(scope: Construct, store: StoreDefinition): void {
  kubeObject<IService>(scope, 'HeadlessService', { apiVersion: 'v1', kind: 'Service' }, {
    metadata: store.metadata(store.names.headlessService),
    spec: {
      clusterIP: 'None',
      // Members must resolve each other before they are ready, or bootstrap never completes.
      publishNotReadyAddresses: true,
      selector: store.selectorLabels,
      ports: enginePorts(store).map((p) => ({ name: p.name, port: p.port, targetPort: p.name })),
    },
  });
}

function renderClientService(scope: Construct, store: StoreDefinition): void {
  kubeObject<IService>(scope, 'ClientService', { apiVersion: 'v1', kind: 'Service' }, {
    metadata: store.metadata(store.names.clientService),
    spec: {
      type: 'ClusterIP',
      selector: store.selectorLabels,
      ports: [{ name: 'client', port: store.engine.clientPort, targetPort: 'client' }],
    },
  });
}

/** The settings that change with membership, loaded with envFrom: changing them rolls no member. */
function renderBootstrapConfig(scope: Construct, store: StoreDefinition, container: EngineContainer): void {
  const env = container.bootstrapEnv!;
  const restore = store.spec.restore;
  kubeObject<IConfigMap>(scope, 'Bootstrap', { apiVersion: 'v1', kind: 'ConfigMap' }, {
    // The restore marker is here too: it outlives a StatefulSet deleted for a re-create.
    metadata: store.metadata(store.names.bootstrapConfig, restore ? { [RESTORED_FROM_ANNOTATION]: restoredFrom(restore) } : {}),
    data: Object.fromEntries(Object.keys(env).sort().map((k) => [k, env[k]])),
  });
}

/**
 * Keeps a quorum through voluntary disruptions (or one member down for engines without quorum). A
 * store of 1 or 2 members has no quorum to keep through a drain (each needs every member), and a
 * budget that asked for it would block every drain forever: it allows one member down instead.
 * (Unhealthy members are not let go early: readiness needs quorum, so while a quorum is being
 * regained every member is unhealthy, and evicting them would lose it for good.)
 */
function renderPodDisruptionBudget(scope: Construct, store: StoreDefinition): void {
  const { size } = store.spec;
  kubeObject<IPodDisruptionBudget>(scope, 'PodDisruptionBudget', { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget' }, {
    metadata: store.metadata(store.names.podDisruptionBudget),
    spec: {
      selector: { matchLabels: store.selectorLabels },
      ...(store.engine.quorum && size >= 3
        ? { minAvailable: Math.floor(size / 2) + 1 }
        : { maxUnavailable: 1 }),
    },
  });
}

function renderNetworkPolicy(scope: Construct, store: StoreDefinition): void {
  const { networkPolicy } = store.spec;
  const clientPeer = {
    podSelector: { matchLabels: networkPolicy.clientPodLabels },
    ...(networkPolicy.clientNamespaceLabels ? { namespaceSelector: { matchLabels: networkPolicy.clientNamespaceLabels } } : {}),
  };
  kubeObject<INetworkPolicy>(scope, 'NetworkPolicy', { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy' }, {
    metadata: store.metadata(store.names.networkPolicy),
    spec: {
      podSelector: { matchLabels: store.selectorLabels },
      policyTypes: networkPolicy.egress ? ['Ingress', 'Egress'] : ['Ingress'],
      ingress: [
        {
          // Members reach each other on every engine port (peer traffic, and client calls for health).
          from: [{ podSelector: { matchLabels: store.selectorLabels } }],
          ports: enginePorts(store).map((p) => ({ protocol: 'TCP', port: p.port })),
        },
        {
          // Clients; this store's own Jobs (its GitOps reconciler, snapshots) and, for a store of a
          // KVStore resource, the CRD-mode reconciler, from this namespace whatever
          // clientNamespaceLabels say (membership changes, snapshots). Another store's reconciler is not
          // admitted.
          from: [
            clientPeer,
            { podSelector: { matchLabels: { [STORE_LABEL]: store.spec.name } } },
            ...(store.reconciledBy === 'operator' ? [operatorPeer(store)] : []),
          ],
          ports: [{ protocol: 'TCP', port: store.engine.clientPort }],
        },
      ],
      // With egress restricted: members reach DNS and each other (peer traffic, and clients of each other).
      ...(networkPolicy.egress ? {
        egress: [DNS_EGRESS, { to: [{ podSelector: { matchLabels: store.selectorLabels } }], ports: enginePorts(store).map((p) => ({ protocol: 'TCP', port: p.port })) }],
      } : {}),
    },
  });
}
