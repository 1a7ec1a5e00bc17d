// Kubernetes objects as plain cdk8s ApiObjects, in the API's own field names. The library uses no
// generated classes (cdk8s-plus-NN's `k8s`), so it works beside any cdk8s-plus version, or none. The
// bodies are typed with kubernetes-models' interfaces (the Kubernetes 1.33 schemas), at build time only.
import { ApiObject, JsonPatch } from 'cdk8s';
import type { Construct } from 'constructs';

/** What an object of type T carries besides its type (status is the API server's). */
export type KubeBody<T> = Omit<T, 'apiVersion' | 'kind' | 'status'>;

/** Adds one object of type T (given by its apiVersion and kind) to the scope. */
export function kubeObject<T extends { apiVersion: string; kind: string }>(
  scope: Construct, id: string, type: Pick<T, 'apiVersion' | 'kind'>, body: KubeBody<T>,
): ApiObject {
  return new ApiObject(scope, id, { apiVersion: type.apiVersion, kind: type.kind, ...(body as Record<string, unknown>) });
}

/**
 * Makes an object cluster-scoped: no namespace, even in a chart that has one (cdk8s gives every
 * object the chart's namespace, and the API server rejects it on a cluster-scoped kind).
 */
export function clusterScoped(object: ApiObject): ApiObject {
  if (object.metadata.namespace !== undefined) object.addJsonPatch(JsonPatch.remove('/metadata/namespace'));
  return object;
}
