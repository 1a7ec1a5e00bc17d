// Pod Security "restricted": the security contexts the store's pods and Jobs run with; and what every
// pod of a store shares besides (tolerations, registry credentials).
import type { IPodSecurityContext } from 'kubernetes-models/v1/PodSecurityContext';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { KVStoreSpec } from '../model/spec';
import type { ISecurityContext } from 'kubernetes-models/v1/SecurityContext';

/** Non-root as `uid` (group and fsGroup too, so volumes are writable), seccomp RuntimeDefault. */
export function restrictedPodSecurity(uid: number): IPodSecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: uid,
    runAsGroup: uid,
    fsGroup: uid,
    fsGroupChangePolicy: 'OnRootMismatch',
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

export function restrictedContainerSecurity(): ISecurityContext {
  return {
    runAsNonRoot: true,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/**
 * What every pod of a store carries, members and Jobs alike: the tolerations (a restore Job must reach
 * the node that holds a member's volume) and the registry credentials.
 */
export function storePodCommons(spec: KVStoreSpec): Pick<IPodSpec, 'tolerations' | 'imagePullSecrets'> {
  return {
    ...(spec.tolerations.length ? { tolerations: spec.tolerations.map((t) => ({ ...t })) } : {}),
    ...(spec.imagePullSecrets.length ? { imagePullSecrets: spec.imagePullSecrets.map((name) => ({ name })) } : {}),
  };
}
