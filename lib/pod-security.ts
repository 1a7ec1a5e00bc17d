// Pod Security "restricted": the container security context every pod of this library runs with.
import type { k8s } from 'cdk8s-plus-28';

export function restrictedContainerSecurity(): k8s.SecurityContext {
  return {
    runAsNonRoot: true,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}
