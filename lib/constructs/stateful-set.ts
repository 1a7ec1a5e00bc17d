// The store's StatefulSet: stable member names, the engine's container under Pod Security "restricted",
// ordered PVC templates, and the annotations a reconciler reads back.
import { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import type { IStatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import type { IAffinity } from 'kubernetes-models/v1/Affinity';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IProbe } from 'kubernetes-models/v1/Probe';
import { EngineContainer, POD_ENV, TLS_DIRS, tlsSecretVolume } from '../engines/types';
import { AUTH_ANNOTATION, ENGINE_ANNOTATION, ENGINE_VERSION_ANNOTATION, OPERATION_ANNOTATION, RESTORED_FROM_ANNOTATION, TLS_TRUST_ANNOTATION } from '../model/metadata';
import { tlsSecrets, tlsTrust } from '../model/names';
import type { ProbeSpec, RestoreSpec } from '../model/spec';
import { kubeObject } from './kube';
import { restrictedContainerSecurity, restrictedPodSecurity, storePodCommons } from './pod-security';
import type { StoreDefinition } from './store-definition';

/** `<claim>/<snapshot>`: what a restored store records it was restored from. */
export const restoredFrom = (r: RestoreSpec) => `${r.claimName}/${r.snapshot}`;

/** A CA rotation's phase, as the members are rendered in it. */
export interface CaRotationRender {
  /** The member Secret the members mount (the old one until the new leaf's phase). */
  readonly memberSecret: string;
  /** The StatefulSet's trust annotation: the old trust, or `<old>+<new>` while they trust both. */
  readonly trust: string;
  /** Whether the members trust the `<store>-trust` bundle (old and new CA) rather than their Secret's ca.crt. */
  readonly bundle: boolean;
}

/** The ports the engine's container exposes, by name; the headless Service declares the same. */
export function enginePorts(store: StoreDefinition): Array<{ name: string; port: number }> {
  return [
    { name: 'client', port: store.engine.clientPort },
    ...(store.engine.peerPort !== undefined ? [{ name: 'peer', port: store.engine.peerPort }] : []),
    // Declared whenever the engine has it: a PodMonitor scrapes the container port by name, a
    // ServiceMonitor the headless Service's port of that name.
    ...(store.engine.metricsPort !== undefined ? [{ name: 'metrics', port: store.engine.metricsPort }] : []),
  ];
}

export function renderStatefulSet(scope: Construct, store: StoreDefinition, container: EngineContainer, options: { operation?: string; partition?: number; caRotation?: CaRotationRender } = {}): ApiObject {
  const { spec, names } = store;
  const { operation, partition, caRotation } = options;
  const strategy = partition !== undefined ? { type: 'RollingUpdate' as const, partition } : spec.updateStrategy;
  return kubeObject<IStatefulSet>(scope, 'Resource', { apiVersion: 'apps/v1', kind: 'StatefulSet' }, {
    // The engine kind is recorded so a reconciler can refuse an engine change on a live store.
    metadata: store.metadata(names.statefulSet, {
      [ENGINE_ANNOTATION]: store.engine.spec.kind,
      // And the etcd version: the reconciler upgrades member by member, one supported step at a time.
      ...(store.engine.spec.kind === 'etcd' ? { [ENGINE_VERSION_ANNOTATION]: store.engine.spec.version } : {}),
      ...(spec.restore ? { [RESTORED_FROM_ANNOTATION]: restoredFrom(spec.restore) } : {}),
      ...(operation ? { [OPERATION_ANNOTATION]: operation } : {}),
      ...(spec.clients ? { [AUTH_ANNOTATION]: 'clients' } : {}),
      ...(spec.tls ? { [TLS_TRUST_ANNOTATION]: caRotation?.trust ?? tlsTrust(spec)! } : {}),
    }),
    spec: {
      serviceName: names.headlessService,
      replicas: spec.size,
      selector: { matchLabels: store.selectorLabels },
      podManagementPolicy: spec.podManagementPolicy,
      updateStrategy: strategy.type === 'RollingUpdate'
        ? { type: 'RollingUpdate', rollingUpdate: { partition: strategy.partition } }
        : { type: 'OnDelete' },
      persistentVolumeClaimRetentionPolicy: spec.persistentVolumeClaimRetentionPolicy,
      template: {
        metadata: {
          labels: { ...store.labels },
          ...(Object.keys(spec.podAnnotations).length ? { annotations: spec.podAnnotations } : {}),
        },
        spec: podSpec(store, container, caRotation),
      },
      volumeClaimTemplates: spec.volumeClaimTemplates.map((t) => ({
        metadata: { name: t.name, labels: store.selectorLabels },
        spec: {
          accessModes: t.accessModes,
          ...(t.storageClassName !== undefined ? { storageClassName: t.storageClassName } : {}),
          resources: { requests: { storage: t.storage } },
        },
      })),
    },
  });
}

function podSpec(store: StoreDefinition, container: EngineContainer, caRotation?: CaRotationRender): IPodSpec {
  const { spec, names } = store;
  const affinity = antiAffinity(store);
  return {
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
        labelSelector: { matchLabels: store.selectorLabels },
      })),
    } : {}),
    ...(Object.keys(spec.nodeSelector).length ? { nodeSelector: spec.nodeSelector } : {}),
    ...storePodCommons(spec),
    ...(spec.priorityClassName !== undefined ? { priorityClassName: spec.priorityClassName } : {}),
    containers: [{
      name: store.engine.name,
      image: spec.image,
      imagePullPolicy: 'IfNotPresent',
      command: container.command,
      args: container.args,
      env: [
        { name: POD_ENV.name, valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
        { name: POD_ENV.namespace, valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
        { name: POD_ENV.ip, valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
        ...container.env,
      ],
      ...(container.bootstrapEnv ? { envFrom: [{ configMapRef: { name: names.bootstrapConfig } }] } : {}),
      ports: enginePorts(store).map((p) => ({ name: p.name, containerPort: p.port, protocol: 'TCP' })),
      resources: { requests: spec.resources.requests, limits: spec.resources.limits },
      volumeMounts: [
        ...spec.volumeClaimTemplates.map((t) => ({ name: t.name, mountPath: t.mountPath })),
        { name: 'tmp', mountPath: '/tmp' },
        ...(spec.tls ? [{ name: 'tls', mountPath: TLS_DIRS.member, readOnly: true }] : []),
        ...(caRotation?.bundle ? [{ name: 'trust', mountPath: TLS_DIRS.trust, readOnly: true }] : []),
      ],
      startupProbe: probe(container.startupProbe),
      livenessProbe: probe(container.livenessProbe),
      readinessProbe: probe(container.readinessProbe),
      securityContext: restrictedContainerSecurity(),
    }],
    volumes: [
      { name: 'tmp', emptyDir: {} },
      // Mounted as a directory (no subPath), so a renewed certificate reaches the running member.
      ...(spec.tls ? [tlsSecretVolume('tls', caRotation?.memberSecret ?? tlsSecrets(spec).member)] : []),
      // A CA rotation: old and new CA, which the reconciler wrote (listed: a bundle without ca.crt fails the mount).
      ...(caRotation?.bundle ? [{ name: 'trust', configMap: { name: names.trustBundle, items: [{ key: 'ca.crt', path: 'ca.crt' }] } }] : []),
    ],
  };
}

function antiAffinity(store: StoreDefinition): IAffinity | undefined {
  const term = { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: store.selectorLabels } };
  switch (store.spec.podAntiAffinity) {
    case 'hard':
      return { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [term] } };
    case 'soft':
      return { podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: term }] } };
    default:
      return undefined;
  }
}

function probe(p: ProbeSpec | undefined): IProbe | undefined {
  if (!p) return undefined;
  return {
    ...(p.httpGet ? { httpGet: { path: p.httpGet.path, port: p.httpGet.port } } : {}),
    ...(p.tcpSocket ? { tcpSocket: { port: p.tcpSocket.port } } : {}),
    ...(p.exec ? { exec: { command: p.exec.command } } : {}),
    initialDelaySeconds: p.initialDelaySeconds,
    periodSeconds: p.periodSeconds,
    timeoutSeconds: p.timeoutSeconds,
    failureThreshold: p.failureThreshold,
  };
}
