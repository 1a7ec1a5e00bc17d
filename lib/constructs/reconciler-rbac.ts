// What the reconciler may do, and how its pod runs: least privilege, no wildcards.
import type { IPolicyRule } from 'kubernetes-models/rbac.authorization.k8s.io/v1/PolicyRule';
import type { IEnvVar } from 'kubernetes-models/v1/EnvVar';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import type { IVolumeMount } from 'kubernetes-models/v1/VolumeMount';
import { ETCD_MAX_SIZE } from '../engines/etcd';
import { backupCronJobName, claimOrdinals, podName, pvcName, recoveryPodName, StoreNames } from '../model/names';
import type { KVStoreSpec } from '../model/spec';
import { restrictedContainerSecurity } from './pod-security';

/** The kinds of store objects the reconciler applies and prunes, with their API groups. */
/**
 * `delete` only where the reconciler deletes: a StatefulSet is re-created around an immutable field
 * (forced), a NetworkPolicy is pruned when disabled; every store always has its Services and PDB.
 */
const STORE_RESOURCES: ReadonlyArray<{ group: string; resource: string; names: (n: StoreNames) => string[]; verbs: string[] }> = [
  { group: '', resource: 'services', names: (n) => [n.clientService, n.headlessService], verbs: ['get', 'patch'] },
  { group: 'apps', resource: 'statefulsets', names: (n) => [n.statefulSet], verbs: ['delete', 'get', 'patch'] },
  { group: 'policy', resource: 'poddisruptionbudgets', names: (n) => [n.podDisruptionBudget], verbs: ['get', 'patch'] },
  { group: 'networking.k8s.io', resource: 'networkpolicies', names: (n) => [n.networkPolicy], verbs: ['delete', 'get', 'patch'] },
];

/**
 * GitOps mode, one store: create and list (prune) per kind, and get/patch/delete only on the store's
 * own object names. Server-side apply is a PATCH (and needs create when the object is new).
 */
export function storeRules(o: { store: StoreNames; spec: KVStoreSpec; lease: string; applySetParent: string; recoveryPods?: boolean }): IPolicyRule[] {
  const rules: IPolicyRule[] = [];
  for (const r of STORE_RESOURCES) {
    rules.push({ apiGroups: [r.group], resources: [r.resource], verbs: ['create', 'list'] });
    rules.push({ apiGroups: [r.group], resources: [r.resource], resourceNames: [...new Set(r.names(o.store))].sort(), verbs: r.verbs });
  }
  const etcd = o.spec.engine.kind === 'etcd';
  rules.push({ apiGroups: [''], resources: ['configmaps'], verbs: etcd ? ['create', 'list'] : ['create'] });
  rules.push({ apiGroups: [''], resources: ['configmaps'], resourceNames: [o.applySetParent, ...(etcd ? [o.store.bootstrapConfig] : []), ...(etcd && o.spec.tls ? [o.store.trustBundle] : [])].sort(), verbs: ['get', 'patch'] });
  // Volumes: grown in place (every ordinal a store of this engine can have had), the backup claim
  // applied; with etcd, a removed member's claims deleted when its ordinal joins again, after its
  // pod is gone. Restore creates the members' claims and reads which pods still run.
  const ordinals = claimOrdinals(o.spec.size, etcd ? ETCD_MAX_SIZE : 0);
  const claims = o.spec.volumeClaimTemplates.flatMap((t) => ordinals.map((i) => pvcName(o.store, t.name, i))).sort();
  const backupClaim = o.spec.backup?.storage !== undefined ? [o.spec.backup.claimName] : [];
  const claimCreate = backupClaim.length > 0 || !!o.spec.restore;
  rules.push({ apiGroups: [''], resources: ['persistentvolumeclaims'], verbs: claimCreate ? ['create', 'list'] : ['list'] });
  rules.push({ apiGroups: [''], resources: ['persistentvolumeclaims'], resourceNames: claims, verbs: etcd ? ['delete', 'get', 'patch'] : ['get', 'patch'] });
  if (backupClaim.length > 0) rules.push({ apiGroups: [''], resources: ['persistentvolumeclaims'], resourceNames: backupClaim, verbs: ['get', 'patch'] });
  // A lost member's pod is deleted (with its claims) so it starts again on an empty volume.
  if (etcd) rules.push({ apiGroups: [''], resources: ['pods'], resourceNames: ordinals.map((i) => podName(o.store, i)), verbs: ['delete', 'get'] });
  // Recovery from quorum loss starts the survivor once in a pod of its own (only when allowed).
  if (etcd && o.recoveryPods) {
    rules.push({ apiGroups: [''], resources: ['pods'], verbs: ['create'] });
    rules.push({ apiGroups: [''], resources: ['pods'], resourceNames: ordinals.map((i) => recoveryPodName(o.store, i)), verbs: ['delete', 'get'] });
  }
  // Restore reads which pods still run, and the snapshot check's log (its revision: what the restore loses).
  if (o.spec.restore) {
    rules.push({ apiGroups: [''], resources: ['pods'], verbs: ['list'] });
    rules.push({ apiGroups: [''], resources: ['pods/log'], verbs: ['get'] });
  }
  // The backup CronJob: applied while backup is on, pruned (list, delete) once it is turned off.
  rules.push({ apiGroups: ['batch'], resources: ['cronjobs'], verbs: o.spec.backup ? ['create', 'list'] : ['list'] });
  rules.push({ apiGroups: ['batch'], resources: ['cronjobs'], resourceNames: [backupCronJobName(o.store)], verbs: o.spec.backup ? ['delete', 'get', 'patch'] : ['delete'] });
  // Snapshot and restore Jobs are named after the operation: not known in advance.
  if (o.spec.backup || o.spec.restore) rules.push({ apiGroups: ['batch'], resources: ['jobs'], verbs: ['create', 'get'] });
  rules.push({ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] });
  rules.push({ apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: [o.lease], verbs: ['get', 'update'] });
  rules.push(EVENT_RULE);
  return rules;
}

/**
 * An Event for each step (events.k8s.io/v1). Only create: Event names are generated, so nothing could
 * limit a get, patch or update by name (and the reconciler reads none, and counts no series).
 */
const EVENT_RULE: IPolicyRule = { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create'] };

/** CRD mode: what scheduled maintenance (`kvstore-reconcile --crd --maintain`) adds to the operator's rules. */
export interface OperatorMaintenanceRules {
  /** Recovery from quorum loss is allowed: the survivor starts once in a pod of its own. */
  readonly recoverQuorumLoss: boolean;
}

/**
 * CRD mode, any store in scope: names are not known in advance. With `maintenance`, pods may also be
 * deleted (a lost member's, so it starts again on an empty volume; a recovery's one-off pod) and, only
 * when quorum-loss recovery is allowed, created (that one-off pod); claims may be deleted already.
 */
export function operatorRules(group: string, plural: string, maintenance?: OperatorMaintenanceRules): IPolicyRule[] {
  const podVerbs = ['get', 'list', ...(maintenance ? ['delete'] : []), ...(maintenance?.recoverQuorumLoss ? ['create'] : [])].sort();
  return [
    { apiGroups: [group], resources: [plural], verbs: ['get', 'list'] },
    { apiGroups: [group], resources: [`${plural}/status`], verbs: ['get', 'update'] },
    ...STORE_RESOURCES.map((r) => ({ apiGroups: [r.group], resources: [r.resource], verbs: ['create', 'list', ...r.verbs].sort() })),
    { apiGroups: [''], resources: ['configmaps'], verbs: ['create', 'get', 'list', 'patch'] },
    { apiGroups: [''], resources: ['persistentvolumeclaims'], verbs: ['create', 'delete', 'get', 'list', 'patch'] },
    { apiGroups: [''], resources: ['pods'], verbs: podVerbs },
    // A restore's snapshot check: its log says the snapshot's revision (what the restore loses).
    { apiGroups: [''], resources: ['pods/log'], verbs: ['get'] },
    { apiGroups: ['batch'], resources: ['cronjobs'], verbs: ['create', 'delete', 'get', 'list', 'patch'] },
    { apiGroups: ['batch'], resources: ['jobs'], verbs: ['create', 'get'] },
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create', 'get', 'update'] },
    // Stores with TLS from cert-manager: their Certificates and Issuers (pruned when no longer desired).
    { apiGroups: ['cert-manager.io'], resources: ['certificates', 'issuers'], verbs: ['create', 'delete', 'get', 'list', 'patch'] },
    // A TLS store's client certificate (<store>-client-tls), to change its membership and users: the
    // names are not known in advance. No list or watch: it reads only the Secret it names.
    { apiGroups: [''], resources: ['secrets'], verbs: ['get'] },
    EVENT_RULE,
  ];
}

/** CRD mode: the ServiceAccount the operator runs as. */
export const OPERATOR_SERVICE_ACCOUNT = 'kvstore-reconciler';
/** CRD mode: the Role, or ClusterRole, of operatorRules(); with a namespace selector the operator binds it itself. */
export const OPERATOR_ROLE = 'kvstore-reconciler';
/** CRD mode with a namespace selector: the ClusterRole of binderRules(), bound cluster-wide. */
export const OPERATOR_BINDER_ROLE = 'kvstore-reconciler-binder';

/**
 * CRD mode with a namespace selector: find the selected namespaces and bind OPERATOR_ROLE in each, without
 * holding its rules anywhere. Creating a RoleBinding needs `bind` on the role it names unless one holds
 * every rule of it: `bind` on that one ClusterRole is all the escalation this grants. Delete only
 * bindings of that name; create and list cannot be limited by name (and get reveals nothing list does not).
 */
export function binderRules(): IPolicyRule[] {
  return [
    { apiGroups: [''], resources: ['namespaces'], verbs: ['get', 'list'] },
    { apiGroups: ['rbac.authorization.k8s.io'], resources: ['rolebindings'], verbs: ['create', 'get', 'list'] },
    { apiGroups: ['rbac.authorization.k8s.io'], resources: ['rolebindings'], resourceNames: [OPERATOR_ROLE], verbs: ['delete'] },
    { apiGroups: ['rbac.authorization.k8s.io'], resources: ['clusterroles'], resourceNames: [OPERATOR_ROLE], verbs: ['bind'] },
  ];
}

/** The reconciler's pod: Pod Security "restricted", the image's nonroot user, an API token. */
export function reconcilerPodSpec(o: { serviceAccountName: string; image: string; args: string[]; env?: IEnvVar[]; volumes?: IVolume[]; volumeMounts?: IVolumeMount[]; commons?: Pick<IPodSpec, 'tolerations' | 'imagePullSecrets'> }): IPodSpec {
  return {
    serviceAccountName: o.serviceAccountName,
    // The token is mounted for this pod only: it talks to the API server.
    automountServiceAccountToken: true,
    restartPolicy: 'Never',
    ...o.commons,
    // fsGroup: a mounted client certificate (mode 0440) is readable by the group.
    securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } },
    containers: [{
      name: 'reconcile',
      image: o.image,
      imagePullPolicy: 'IfNotPresent',
      args: o.args,
      ...(o.env ? { env: o.env } : {}),
      ...(o.volumeMounts ? { volumeMounts: o.volumeMounts } : {}),
      resources: {
        requests: { cpu: '50m', memory: '128Mi' },
        limits: { memory: '512Mi' },
      },
      securityContext: restrictedContainerSecurity(),
    }],
    ...(o.volumes ? { volumes: o.volumes } : {}),
  };
}
