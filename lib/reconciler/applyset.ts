// ApplySet bookkeeping (KEP-3659), so kubectl and other tools recognise what the reconciler owns.
import { createHash } from 'crypto';
import { LIBRARY_VERSION } from '../model/version';
import { groupKind, KubeObject } from './types';

export const PART_OF_LABEL = 'applyset.kubernetes.io/part-of';
export const ID_LABEL = 'applyset.kubernetes.io/id';
export const TOOLING_ANNOTATION = 'applyset.kubernetes.io/tooling';
export const CONTAINS_ANNOTATION = 'applyset.kubernetes.io/contains-group-kinds';

/** `applyset-<base64url(sha256(<name>.<namespace>.<kind>.<group>))>-v1` for a ConfigMap parent. */
export function applySetId(parentName: string, namespace: string): string {
  const digest = createHash('sha256').update(`${parentName}.${namespace}.ConfigMap.`).digest('base64url');
  return `applyset-${digest}-v1`;
}

/** The ApplySet parent: a ConfigMap carrying the id, the tooling and the kinds the set contains. */
export function applySetParent(parentName: string, namespace: string, members: readonly KubeObject[]): KubeObject {
  const kinds = [...new Set(members.map(groupKind))].sort();
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: parentName,
      namespace,
      labels: { [ID_LABEL]: applySetId(parentName, namespace) },
      annotations: { [TOOLING_ANNOTATION]: `cdk8s-kvstore/v${LIBRARY_VERSION}`, [CONTAINS_ANNOTATION]: kinds.join(',') },
    },
  };
}
