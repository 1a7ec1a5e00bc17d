// Desired state: the store's objects re-synthesized in memory by the same KVStore construct.
import { createHash } from 'crypto';
import { App, Chart } from 'cdk8s';
import { FromDocumentOptions, KVStore } from '../kv-store';
import { reconcilerNames } from '../reconciler-bundle';
import { canonicalJson, StoreDocument } from '../spec';
import { applySetId, applySetParent, PART_OF_LABEL } from './applyset';
import { KubeObject } from './types';

/** Annotation holding a hash of what the reconciler last applied to an object. */
export const APPLIED_HASH_ANNOTATION = 'kvstore.cdk8s-kvstore.io/applied-hash';

export interface DesiredState {
  /** The ApplySet parent first, then the store's objects in synthesis order. */
  readonly objects: KubeObject[];
  readonly applySetId: string;
  readonly lease: string;
  readonly store: KVStore;
}

export function desiredState(document: StoreDocument, options: FromDocumentOptions = {}): DesiredState {
  const app = new App({ outdir: '/nonexistent' });
  const chart = new Chart(app, 'desired', { namespace: document.namespace, disableResourceNameHashes: true });
  const store = KVStore.fromDocument(chart, document.spec.name, document, options);
  const names = reconcilerNames(document.spec.name);
  const id = applySetId(names.applySetParent, document.namespace);
  const objects = (chart.toJson() as KubeObject[]).map((o) => {
    const labelled = { ...o, metadata: { ...o.metadata, labels: { ...o.metadata.labels, [PART_OF_LABEL]: id } } };
    const hash = createHash('sha256').update(canonicalJson(labelled)).digest('hex').slice(0, 16);
    return { ...labelled, metadata: { ...labelled.metadata, annotations: { ...labelled.metadata.annotations, [APPLIED_HASH_ANNOTATION]: hash } } };
  });
  return { objects: [applySetParent(names.applySetParent, document.namespace, objects), ...objects], applySetId: id, lease: names.lease, store };
}
