// The store document: everything the reconciler needs to re-render a store as the construct did,
// in canonical JSON, and the stable hash of a spec.
import { createHash } from 'crypto';
import { showValue } from './issues';
import { KVSTORE_GROUP, KVSTORE_VERSION } from './metadata';
import type { KVStoreSpec } from './spec';

/** The apiVersion of a store document. */
export const STORE_DOCUMENT_API_VERSION = `${KVSTORE_GROUP}/${KVSTORE_VERSION}` as const;

/** JSON with object keys sorted at every level: the same spec always gives the same text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.keys(value).sort().filter((k) => (value as Record<string, unknown>)[k] !== undefined);
    return `{${entries.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** A stable short hash of a spec (hex): equal specs hash equally whatever their key order. */
export function specHash(spec: KVStoreSpec, length = 10): string {
  return createHash('sha256').update(canonicalJson(spec)).digest('hex').slice(0, length);
}

/**
 * Everything the reconciler needs to re-synthesize a store exactly as the construct did: the
 * normalized spec, the namespace and the resolved cluster token (derived from the construct path,
 * which the reconciler cannot know). Carried by the spec ConfigMap as canonical JSON.
 */
export interface StoreDocument {
  /** `kvstore.cdk8s-kvstore.io/v1`. */
  readonly apiVersion: typeof STORE_DOCUMENT_API_VERSION;
  /** `StoreDocument`. */
  readonly kind: 'StoreDocument';
  /** The namespace the store lives in. */
  readonly namespace: string;
  /** The store's `--initial-cluster-token` seed, as the construct derived it. */
  readonly clusterToken: string;
  /** The normalized spec. */
  readonly spec: KVStoreSpec;
  /**
   * `operator` when the CRD-mode reconciler reconciles the store from a KVStore resource: the store's
   * NetworkPolicy then admits that reconciler (labelled as the operator) besides the store's own Jobs.
   * @default - the store's own reconciler Job (GitOps mode)
   */
  readonly reconciledBy?: 'operator';
  /**
   * With `reconciledBy: 'operator'`: the operator's namespace, when it is not the store's. The store's
   * NetworkPolicy admits the operator's pods from there.
   * @default - the store's namespace
   */
  readonly operatorNamespace?: string;
}

/** Parses and checks the envelope of a store document (the spec itself is validated by the construct). */
export function parseStoreDocument(text: string): StoreDocument {
  const doc = JSON.parse(text) as StoreDocument;
  if (doc?.apiVersion !== STORE_DOCUMENT_API_VERSION || doc.kind !== 'StoreDocument') {
    throw new Error(`not a store document: expected apiVersion ${STORE_DOCUMENT_API_VERSION} and kind StoreDocument, got ${JSON.stringify(doc?.apiVersion)} ${JSON.stringify(doc?.kind)}`);
  }
  for (const field of ['namespace', 'clusterToken'] as const) {
    if (typeof doc[field] !== 'string' || !doc[field]) throw new Error(`store document: ${field} must be a non-empty string, got ${showValue(doc[field])}`);
  }
  if (!doc.spec || typeof doc.spec !== 'object') throw new Error('store document: spec is missing');
  return doc;
}
