// The thin Kubernetes client the reconciler executes plans through: @kubernetes/client-node's
// KubernetesObjectApi, with retries on 5xx, 429 and timeouts (capped exponential backoff).
import * as k8s from '@kubernetes/client-node';
// Not re-exported by the package index; the same serializer KubernetesObjectApi uses.
import { ObjectSerializer } from '@kubernetes/client-node/dist/serializer.js';
import { FIELD_MANAGER } from '../model/metadata';
import { describeRef, KubeObject, ObjectRef } from './types';

/** How the client retries 5xx, 429 and network failures (capped exponential backoff). */
export interface RetryOptions {
  /** @default 6 */
  readonly attempts?: number;
  /** @default 200 */
  readonly baseDelayMs?: number;
  /** @default 5000 */
  readonly maxDelayMs?: number;
  /**
   * Each request's deadline: a request the API server has not answered by then is aborted and, like
   * a network failure, retried.
   * @default 30000
   */
  readonly requestTimeoutMs?: number;
  /** Injected for tests. */
  readonly sleep?: (ms: number) => Promise<void>;
}

/** An API failure the reconciler gave up on, naming the object and the reason. */
export class KubeError extends Error {
  constructor(readonly operation: string, readonly ref: ObjectRef | string, readonly code: number | undefined, readonly reason: string) {
    super(`${operation} ${typeof ref === 'string' ? ref : describeRef(ref)} failed${code ? ` (HTTP ${code})` : ''}: ${reason}`);
    this.name = 'KubeError';
  }
}

/** The HTTP code of a client-library error, if it carries one. */
export function statusCode(e: unknown): number | undefined {
  const code = (e as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
}

function bodyOf(e: unknown): any {
  const body = (e as { body?: unknown }).body;
  if (typeof body === 'string') {
    try {
      return JSON.parse(body);
    } catch {
      return { message: body };
    }
  }
  return body;
}

function reasonOf(e: unknown): string {
  return bodyOf(e)?.message ?? (e as Error).message ?? String(e);
}

/** Retryable: the server is unwell (5xx), asks us to slow down (429), or the network failed. */
export function retryable(e: unknown): boolean {
  const code = statusCode(e);
  if (code !== undefined) return code >= 500 || code === 429;
  const text = `${(e as { code?: unknown }).code ?? ''} ${(e as Error).message ?? ''} ${(e as { cause?: { code?: string } }).cause?.code ?? ''}`;
  return /ECONNRESET|ECONNREFUSED|ETIMEDOUT|EPIPE|EAI_AGAIN|socket hang up|timeout|network|aborted/i.test(text);
}

/**
 * An API client of `kubeConfig`'s current cluster whose every request carries a deadline (the client
 * library sends none by default: a request to an API server that stopped answering would wait forever).
 */
export function makeApiClient<T>(kubeConfig: k8s.KubeConfig, api: new (configuration: k8s.Configuration) => T, timeoutMs: number): T {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error('No active cluster!');
  return new api(k8s.createConfiguration({
    baseServer: new k8s.ServerConfiguration(cluster.server, {}),
    authMethods: { default: kubeConfig },
    promiseMiddleware: [{
      pre: async (context) => {
        context.setSignal(AbortSignal.timeout(timeoutMs));
        return context;
      },
      post: async (context) => context,
    }],
  }));
}

/** Delay before attempt `n` (1-based retry count): base·2^(n-1), capped, or the server's Retry-After. */
export function backoffMs(n: number, options: RetryOptions, retryAfterSeconds?: number): number {
  const max = options.maxDelayMs ?? 5000;
  if (retryAfterSeconds !== undefined && Number.isFinite(retryAfterSeconds)) return Math.min(max, retryAfterSeconds * 1000);
  return Math.min(max, (options.baseDelayMs ?? 200) * 2 ** (n - 1));
}

function retryAfter(e: unknown): number | undefined {
  const headers = (e as { headers?: Record<string, string> }).headers;
  const value = headers?.['retry-after'] ?? headers?.['Retry-After'];
  return value !== undefined ? Number(value) : undefined;
}

export async function withRetry<T>(operation: string, ref: ObjectRef | string, fn: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const attempts = options.attempts ?? 6;
  const sleep = options.sleep ?? ((ms: number) => new Promise((r) => setTimeout(r, ms)));
  for (let n = 1; ; n++) {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof KubeError) throw e;
      if (!retryable(e) || n >= attempts) {
        throw new KubeError(operation, ref, statusCode(e), `${reasonOf(e)}${retryable(e) ? ` (gave up after ${n} attempts)` : ''}`);
      }
      await sleep(backoffMs(n, options, retryAfter(e)));
    }
  }
}

/** The client's model type name for a kind: `V1NetworkPolicy`. */
function modelType(o: { apiVersion: string; kind: string }): string {
  const version = o.apiVersion.split('/').pop()!;
  return `${version[0].toUpperCase()}${version.slice(1)}${o.kind}`;
}

/**
 * Wire JSON → the client's model. The client serializes request bodies from its models and silently
 * drops wire names its models spell differently (a NetworkPolicy rule's `from` is `_from` there:
 * sent as plain JSON, every `from` would vanish and the policy would admit everyone).
 */
function toModel(o: KubeObject): KubeObject {
  return ObjectSerializer.deserialize(o, modelType(o)) as KubeObject;
}

/** The client's model → wire JSON (names as the API spells them, dates as strings). */
function toWire(o: unknown, type: { apiVersion: string; kind: string }): KubeObject {
  return JSON.parse(JSON.stringify(ObjectSerializer.serialize(o, modelType(type))));
}

/** The deadline of an Event request: recording one must never hold a reconcile up for long. */
export const EVENT_TIMEOUT_MS = 5000;

/** What a client has done so far. */
export interface Counters {
  /** Mutating requests sent (apply, create, replace, delete). */
  mutating: number;
}

/** The operations the reconciler needs, each retried and counted. */
export class KubeClient {
  /** What this client has done so far (a no-op reconcile sends no mutating request). */
  readonly counters: Counters = { mutating: 0 };
  /**
   * Called before every mutating request other than to a Lease: the reconciler's fence, which renews
   * its Lease when due and fails once it is lost, so no write goes out after another reconciler may
   * have taken over (each renewal holds the Lease for its full duration, which is three times longer
   * than the reconciler goes without renewing).
   */
  fence?: () => Promise<void>;
  private readonly api: k8s.KubernetesObjectApi;
  private readonly core: k8s.CoreV1Api;
  /** Events are best-effort records: a short deadline, and no retry (see events.ts). */
  private readonly events: k8s.EventsV1Api;

  constructor(private readonly kubeConfig: k8s.KubeConfig, private readonly retry: RetryOptions = {}) {
    this.api = makeApiClient(kubeConfig, k8s.KubernetesObjectApi, retry.requestTimeoutMs ?? 30_000);
    this.core = makeApiClient(kubeConfig, k8s.CoreV1Api, retry.requestTimeoutMs ?? 30_000);
    this.events = makeApiClient(kubeConfig, k8s.EventsV1Api, EVENT_TIMEOUT_MS);
    // As KubernetesObjectApi.makeApiClient does: objects without a namespace get the context's.
    (this.api as unknown as { setDefaultNamespace(kc: k8s.KubeConfig): void }).setDefaultNamespace(kubeConfig);
  }

  /**
   * A client of the same cluster for best-effort writes (a run's outcome): one attempt, a short
   * deadline, the same fence, its own counters (not the run's).
   */
  bestEffort(): KubeClient {
    const client = new KubeClient(this.kubeConfig, { ...this.retry, attempts: 1, requestTimeoutMs: EVENT_TIMEOUT_MS });
    client.fence = this.fence;
    return client;
  }

  private async fenced(o: { kind: string }): Promise<void> {
    if (this.fence && o.kind !== 'Lease') await this.fence();
  }

  /** The live object, or undefined when it does not exist. */
  async read(ref: ObjectRef): Promise<KubeObject | undefined> {
    return withRetry('read', ref, async () => {
      try {
        return toWire(await this.api.read({ apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, namespace: ref.namespace } }), ref);
      } catch (e) {
        if (statusCode(e) === 404) return undefined;
        throw e;
      }
    }, this.retry);
  }

  /** Objects of one kind in a namespace that match a label selector. */
  async list(apiVersion: string, kind: string, namespace: string, labelSelector: string): Promise<KubeObject[]> {
    return withRetry('list', `${kind} (${labelSelector})`, async () => {
      const result = await this.api.list(apiVersion, kind, namespace, undefined, undefined, undefined, undefined, labelSelector);
      return result.items.map((o) => ({ ...toWire(o, { apiVersion, kind }), apiVersion, kind }));
    }, this.retry);
  }

  /** What a pod's container wrote since it last started (`kubectl logs`); undefined when the pod is gone. */
  async podLog(namespace: string, pod: string, container: string): Promise<string | undefined> {
    return withRetry('read log of', { apiVersion: 'v1', kind: 'Pod', name: pod, namespace }, async () => {
      try {
        return await this.core.readNamespacedPodLog({ name: pod, namespace, container });
      } catch (e) {
        if (statusCode(e) === 404) return undefined;
        throw e;
      }
    }, this.retry);
  }

  /**
   * Server-side apply with the reconciler's field manager (or `fieldManager`: fields applied under
   * another manager are not removed by the next apply of the whole object); force takes over fields
   * from kubectl edits.
   */
  async apply(object: KubeObject, fieldManager: string = FIELD_MANAGER): Promise<KubeObject> {
    await this.fenced(object);
    this.counters.mutating++;
    return withRetry('apply', { apiVersion: object.apiVersion, kind: object.kind, name: object.metadata.name, namespace: object.metadata.namespace }, async () =>
      toWire(await this.api.patch(toModel(object), undefined, undefined, fieldManager, true, k8s.PatchStrategy.ServerSideApply), object), this.retry);
  }

  /**
   * Creates an Event (events.k8s.io/v1), once: no retry, a short deadline, no fence, not counted as a
   * mutating request (it changes no object of the store). Throws KubeError; callers treat it as best-effort.
   */
  async createEvent(event: KubeObject): Promise<void> {
    const namespace = event.metadata.namespace ?? 'default';
    await withRetry('create', { apiVersion: 'events.k8s.io/v1', kind: 'Event', namespace, name: event.metadata.name }, () =>
      this.events.createNamespacedEvent({ namespace, body: event as unknown as k8s.EventsV1Event }), { attempts: 1 });
  }

  /** Creates an object (the Jobs the reconciler runs). */
  async create(object: KubeObject): Promise<KubeObject> {
    await this.fenced(object);
    this.counters.mutating++;
    return withRetry('create', { apiVersion: object.apiVersion, kind: object.kind, name: object.metadata.name, namespace: object.metadata.namespace }, async () =>
      toWire(await this.api.create(object, undefined, undefined, FIELD_MANAGER), object), this.retry);
  }

  /** Replace with optimistic concurrency: the object's resourceVersion must be current (409 otherwise). */
  async replace(object: KubeObject): Promise<KubeObject> {
    await this.fenced(object);
    this.counters.mutating++;
    return withRetry('replace', { apiVersion: object.apiVersion, kind: object.kind, name: object.metadata.name, namespace: object.metadata.namespace }, async () =>
      toWire(await this.api.replace(object, undefined, undefined, FIELD_MANAGER), object), this.retry);
  }

  /** Deletes an object; 404 counts as done. `Orphan` keeps dependents (a StatefulSet's pods). */
  async delete(ref: ObjectRef, propagationPolicy: 'Orphan' | 'Background' | 'Foreground' = 'Background'): Promise<void> {
    await this.fenced(ref);
    this.counters.mutating++;
    await withRetry('delete', ref, async () => {
      try {
        await this.api.delete({ apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, namespace: ref.namespace } }, undefined, undefined, undefined, undefined, propagationPolicy);
      } catch (e) {
        if (statusCode(e) !== 404) throw e;
      }
    }, this.retry);
  }
}
