// Desired state: the store's objects re-synthesized in memory through the same render function the
// KVStore construct uses.
import { createHash } from 'crypto';
import { App, Chart } from 'cdk8s';
import { Construct } from 'constructs';
import { StoreDefinition } from '../constructs/store-definition';
import { RenderOptions, renderStoreObjects } from '../constructs/store-objects';
import { canonicalJson, StoreDocument } from '../model/document';
import { APPLIED_HASH_ANNOTATION } from '../model/metadata';
import { reconcilerNames } from '../model/names';
import { applySetId, applySetParent, PART_OF_LABEL } from './applyset';
import { KubeObject } from './types';

export interface DesiredState {
  /** The ApplySet parent first, then the store's objects in synthesis order. */
  readonly objects: KubeObject[];
  readonly applySetId: string;
  readonly lease: string;
  readonly store: StoreDefinition;
}

export function desiredState(document: StoreDocument, options: RenderOptions = {}): DesiredState {
  const app = new App({ outdir: '/nonexistent' });
  const chart = new Chart(app, 'desired', { namespace: document.namespace, disableResourceNameHashes: true });
  const store = StoreDefinition.fromDocument(document);
  // The GitOps tool's objects (certificates, the Jobs' NetworkPolicy) are the reconciler's in CRD mode only.
  renderStoreObjects(new Construct(chart, document.spec.name), store, { ...options, toolOwned: document.reconciledBy === 'operator' });
  const names = reconcilerNames(document.spec.name);
  const id = applySetId(names.applySetParent, document.namespace);
  const objects = (chart.toJson() as KubeObject[]).map((o) => {
    const labelled = { ...o, metadata: { ...o.metadata, labels: { ...o.metadata.labels, [PART_OF_LABEL]: id } } };
    const hash = createHash('sha256').update(canonicalJson(labelled)).digest('hex').slice(0, 16);
    return { ...labelled, metadata: { ...labelled.metadata, annotations: { ...labelled.metadata.annotations, [APPLIED_HASH_ANNOTATION]: hash } } };
  });
  return { objects: [applySetParent(names.applySetParent, document.namespace, objects), ...objects], applySetId: id, lease: names.lease, store };
}
