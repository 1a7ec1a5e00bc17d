// Pod Security "restricted": the security contexts the store's pods and Jobs run with.
import type { k8s } from 'cdk8s-plus-28';

/** Non-root as `uid` (group and fsGroup too, so volumes are writable), seccomp RuntimeDefault. */
export function restrictedPodSecurity(uid: number): k8s.PodSecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: uid,
    runAsGroup: uid,
    fsGroup: uid,
    fsGroupChangePolicy: 'OnRootMismatch',
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

export function restrictedContainerSecurity(): k8s.SecurityContext {
  return {
    runAsNonRoot: true,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}
