// The shapes the reconciler works on: plain Kubernetes objects as JSON.

export interface KubeObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: {
    readonly name: string;
    readonly namespace?: string;
    readonly labels?: Record<string, string>;
    readonly annotations?: Record<string, string>;
    readonly resourceVersion?: string;
    readonly generation?: number;
    readonly [key: string]: unknown;
  };
  readonly [key: string]: any;
}

export interface ObjectRef {
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespace?: string;
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
