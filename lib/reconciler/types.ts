// The shapes the reconciler works on: plain Kubernetes objects as JSON.

/** A Kubernetes object as the API serves it (JSON field names). */
export interface KubeObject {
  /** `apps/v1`, `v1`, … */
  readonly apiVersion: string;
  /** `StatefulSet`, `Service`, … */
  readonly kind: string;
  /** Name, namespace, labels, annotations and what the API server adds. */
  readonly metadata: {
    /** The object's name. */
    readonly name: string;
    /** Its namespace; absent for cluster-scoped objects. */
    readonly namespace?: string;
    /** Its labels. */
    readonly labels?: Record<string, string>;
    /** Its annotations. */
    readonly annotations?: Record<string, string>;
    /** Set by the API server: what optimistic concurrency compares. */
    readonly resourceVersion?: string;
    /** Set by the API server: bumped by every change of the spec. */
    readonly generation?: number;
    readonly [key: string]: unknown;
  };
  readonly [key: string]: any;
}

/** Which object: enough to read, patch or delete it. */
export interface ObjectRef {
  /** `apps/v1`, `v1`, … */
  readonly apiVersion: string;
  /** `StatefulSet`, `Service`, … */
  readonly kind: string;
  /** Absent for cluster-scoped objects. */
  readonly namespace?: string;
  /** The object's name. */
  readonly name: string;
}

export function refOf(o: KubeObject): ObjectRef {
  return { apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name, ...(o.metadata.namespace ? { namespace: o.metadata.namespace } : {}) };
}

/** `Kind/name`, how objects are named in logs and errors. */
export function describeRef(ref: ObjectRef): string {
  return `${ref.kind}/${ref.name}`;
}

/** Group and kind identify a type across versions: `StatefulSet.apps`, `Service`. */
export function groupKind(ref: { apiVersion: string; kind: string }): string {
  const group = ref.apiVersion.includes('/') ? ref.apiVersion.split('/')[0] : '';
  return group ? `${ref.kind}.${group}` : ref.kind;
}
