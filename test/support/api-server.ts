// Test support: an in-process HTTP double of the Kubernetes API server, so code that talks to a cluster
// through the real @kubernetes/client-node can be tested here, where no control plane can run.
//
// What it simulates (plain HTTP on 127.0.0.1, ephemeral port, bearer token from kubeConfig() required):
// - discovery: /version, /api, /api/v1, /apis, /apis/{group}, /apis/{group}/{version} for the kinds in
//   RESOURCES below, with subresources (`x/status`, `x/scale`) and the verbs this double serves
//   (cert-manager's Issuer and Certificate are among them, stored as given: no issuer controller);
// - namespaced paths /api/v1/namespaces/{ns}/{plural}[/{name}[/{sub}]] and the /apis/{group}/{version}
//   equivalents, cluster-scoped /apis/{group}/{version}/{plural}[/{name}], and LIST across namespaces;
// - GET (404 NotFound Status), LIST (labelSelector `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`,
//   `k notin (a,b)`; fieldSelector on metadata.name/namespace; limit/continue; `XxxList` kind; items of
//   built-in kinds carry no apiVersion/kind, items of custom resources do, as on a real server);
// - POST (201; 409 AlreadyExists; generateName; 500 when metadata.resourceVersion is set, as etcd3 does),
//   PUT (404 when absent, 409 Conflict on a stale metadata.resourceVersion, unconditional update allowed
//   except for custom resources and CRDs, which answer 422 "must be specified for an update"),
//   DELETE (Status Success; preconditions; propagationPolicy from body or query, validated and recorded),
//   PATCH as JSON merge patch, strategic merge patch (handled as JSON merge patch; `$` directives answer
//   400), JSON patch (RFC 6902 add/remove/replace/move/copy/test; a failed test answers 422) and
//   server-side apply (`application/apply-patch+yaml`, YAML or JSON body);
// - dryRun=All on every write (validated and answered, not stored);
// - metadata bookkeeping: uid, creationTimestamp, resourceVersion from one global counter bumped on every
//   write that changes something (a no-op write answers the unchanged object), generation starting at 1
//   and bumped when anything outside metadata and status changes, for the kinds whose real strategy
//   tracks it (StatefulSet, Job, CronJob, PodDisruptionBudget, NetworkPolicy, CRD, KVStore; ConfigMap,
//   Secret, Service, Lease, RBAC... have no generation, as on a real server);
// - managedFields for every write: Update entries (manager from `fieldManager`, else the User-Agent's
//   product token, e.g. "node-fetch") own the leaf fields they changed; Apply entries own exactly the
//   leaves of the last applied configuration; fieldsV1 is the real `f:` tree;
// - server-side apply: `fieldManager` required (422), `metadata.managedFields` in the body refused (400),
//   metadata.resourceVersion in the body is a precondition, creates when absent, 409 Conflict naming
//   fields and managers (message and causes as the real server) when another manager owns a field the
//   apply sets to a different value, `force=true` moves ownership, equal values are shared, fields the
//   manager applied before and omits now are removed unless another manager owns them (maps left empty
//   by that are removed too); an entry's time changes only when its set of fields does;
// - status subresource (Service, PVC, Pod, Namespace, StatefulSet, Job, CronJob, PDB, CRD, KVStore):
//   writes to the resource keep the stored status (status is also dropped on create), writes to /status
//   change only status and never generation; /scale (StatefulSet: spec.replicas/status.replicas; KVStore:
//   spec.size/status.readyReplicas/status.selector) for GET, PUT and PATCH, returning autoscaling/v1 Scale;
// - pods/{name}/log (GET, `container` query; the only container by default, 400 when the pod has several
//   or names another): text/plain from podLogs (the kubelet's; cluster-simulator.ts sets it), else empty;
//   no follow, previous, tailLines, sinceSeconds or timestamps;
// - validation a reconciler runs into: object names (RFC 1123 subdomain, Service RFC 1035 label, CronJob
//   at most 52 characters), label keys and values (also in pod templates), StatefulSet selector matching
//   template labels and its immutable spec fields (the real 422 message), Job spec.template/selector
//   immutable, PVC spec immutable except resources.requests on a Bound claim (and never shrinking),
//   RoleBinding/ClusterRoleBinding roleRef immutable, non-apply PATCH with `force` (422, even force=false),
//   and decoding: a Lease's acquireTime/renewTime need exactly six fractional digits (400), a missing
//   apiVersion/kind is defaulted from the URL for built-in kinds but refused for custom resources and apply;
// - events.k8s.io/v1 Events (namespaced `events`; create, get, list, patch, update, delete as any kind):
//   eventTime and series.lastObservedTime decoded as MicroTime (six fractional digits, else 400); on
//   create eventTime, reportingController, reportingInstance, action and reason required, type Normal or
//   Warning, note at most 1 kB, regarding.namespace the Event's, series.count at least 2 (422); on update
//   everything but series (and metadata) immutable. Not served: core/v1 Events, the v1 ↔ events.k8s.io
//   conversion (a core/v1 read of them, as `kubectl describe` does), field selectors on regarding.*,
//   the server's own event TTL (they are never deleted);
// - errors as `Status` objects (kind, apiVersion, status Failure, message, reason, code, details) with the
//   matching HTTP status; injected faults (failNext): any status (429 with Retry-After) and/or a delay.
//
// - change notification for test harnesses (onChange): every stored change, HTTP or put/remove, is reported
//   synchronously with the object and, for DELETE, the propagationPolicy and gracePeriodSeconds in force.
//
// What it does NOT simulate:
// - controllers and the garbage collector: no pods appear for a StatefulSet, status changes only when a test
//   writes it, ownerReferences are stored and ignored, and DELETE removes the object at once whatever the
//   propagationPolicy (cluster-simulator.ts adds controllers, a kubelet and the garbage collector on top). With Orphan or Foreground a real server keeps the object, with deletionTimestamp
//   and the `orphan`/`foregroundDeletion` finalizer, and answers with it instead of a Status, until the
//   garbage collector has run; re-creating it at once can meet 409 AlreadyExists there;
// - defaulting: a real server fills in many fields (StatefulSet podManagementPolicy, updateStrategy,
//   revisionHistoryLimit, pod template defaults, Job selector and controller-uid labels, Service clusterIP
//   and so on), so comparing live objects with desired ones field by field is harder there than here;
// - schema validation (OpenAPI or CRD), pruning of unknown fields, fieldValidation warnings, admission
//   (namespaces need not exist, no RBAC, quota, StorageClass allowVolumeExpansion), finalizers;
// - served CRDs: KVStore is always served; CustomResourceDefinition objects are stored but change nothing;
// - watch, deletecollection, HEAD, protobuf/CBOR, Table output, multiple versions of one group;
// - server-side apply details: every list is atomic (a real server merges containers, ports, env,
//   volumes... by key), an explicit null in an applied configuration is ignored, YAML is read by YAML 1.2
//   rules (the real server's YAML 1.1 reader takes unquoted yes/no/on/off as booleans); apply to /scale acts as a merge patch;
// - strategic merge patch list merging by key (lists are replaced, as in JSON merge patch).
import { randomUUID } from 'crypto';
import * as http from 'http';
import { AddressInfo } from 'net';
import * as k8s from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';

/** The metadata this double reads and maintains; anything else is stored as given. */
export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  managedFields?: ManagedFieldsEntry[];
  [field: string]: any;
}

/** A stored Kubernetes object, as JSON. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [field: string]: any;
}

/** One entry of metadata.managedFields, in the real shape. */
export interface ManagedFieldsEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time: string;
  fieldsType: 'FieldsV1';
  fieldsV1: FieldsV1;
  subresource?: string;
}

/** The `f:` tree of a managedFields entry: `{ 'f:spec': { 'f:replicas': {} } }`. */
export interface FieldsV1 {
  [key: string]: FieldsV1;
}

/** One request as the double received it. */
export interface RecordedRequest {
  readonly method: string;
  /** The URL path, without the query string. */
  readonly path: string;
  /** Query parameters as sent (the last value wins when one repeats). */
  readonly query: Readonly<Record<string, string>>;
  /** The Content-Type header, without parameters. */
  readonly contentType?: string;
  /** The body parsed as JSON (or YAML for apply patches); the raw text when it does not parse. */
  readonly body?: unknown;
  /** True for discovery requests (/version, /api, /apis and group/version roots). */
  readonly discovery: boolean;
  /** For DELETE: the propagationPolicy in force (body first, then query; orphanDependents=true is Orphan). */
  readonly propagationPolicy?: string;
  /** Set when failNext() answered this request in place of the double. */
  readonly injectedStatus?: number;
}

/** One change to a stored object, as a watch would report it. */
export interface ChangeEvent {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  /** A copy of the object after the change; for DELETED, as it was when removed. */
  readonly object: KubeObject;
  /** For DELETE through the API: the propagationPolicy in force (undefined when the client gave none). */
  readonly propagationPolicy?: string;
  /** For DELETE through the API: gracePeriodSeconds from the body or query, when given. */
  readonly gracePeriodSeconds?: number;
}

/** A fault to inject into the next matching requests. */
export interface FailNextOptions {
  /** Only requests with this method (any when omitted). */
  readonly method?: string;
  /** Only requests whose path (without query) matches (any when omitted). Discovery requests match too. */
  readonly pathPattern?: RegExp;
  /** The status to answer with; when omitted the request is only delayed, then served normally. */
  readonly status?: number;
  /** How many matching requests to affect. @default 1 */
  readonly count?: number;
  /** Wait this long before answering. @default 0 */
  readonly delayMs?: number;
  /** Send `Retry-After` (and details.retryAfterSeconds) with the injected status. */
  readonly retryAfterSeconds?: number;
}

/** A running double. */
export interface ApiServer {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Every request received, in order, including discovery and injected failures. */
  readonly requests: RecordedRequest[];
  /** A KubeConfig pointing at this double (token user, skipTLSVerify), for makeApiClient(). */
  kubeConfig(): k8s.KubeConfig;
  /** Requests other than GET/HEAD, excluding discovery. */
  mutatingRequests(): RecordedRequest[];
  /** A copy of a stored object, or undefined. `namespace` is ignored for cluster-scoped kinds. */
  get(apiVersion: string, kind: string, namespace: string | undefined, name: string): KubeObject | undefined;
  /**
   * Stores an object directly, without validation or managedFields bookkeeping, for test setup (status
   * included). uid, creationTimestamp, resourceVersion and generation are assigned as for a write;
   * namespace defaults to `default`. Returns a copy of what is stored.
   */
  put(obj: KubeObject): KubeObject;
  /** Copies of the stored objects of one kind, sorted by namespace and name; `namespace` undefined: all. */
  list(apiVersion: string, kind: string, namespace?: string): KubeObject[];
  /** Removes a stored object directly (no propagation, as put); returns whether it existed. */
  remove(apiVersion: string, kind: string, namespace: string | undefined, name: string): boolean;
  /**
   * Calls `listener` synchronously after every stored change (API writes, put, remove); dry runs and
   * no-op writes report nothing. Returns a function that unsubscribes.
   */
  onChange(listener: (event: ChangeEvent) => void): () => void;
  /** Injects a fault into the next matching request(s); rules are consumed in the order given. */
  failNext(options: FailNextOptions): void;
  /**
   * Where GET pods/{name}/log reads a container's log from (the kubelet's part; cluster-simulator.ts sets
   * it); unset, or answering undefined: an empty log.
   */
  podLogs?: (namespace: string, pod: string, container: string | undefined) => string | undefined;
  /** Closes the listener and every open connection. */
  stop(): Promise<void>;
}

type Json = Record<string, any>;
type Path = readonly string[];
type Scope = 'main' | 'status';

const TOKEN = 'api-server-double-token';
const STRIPPED_META = ['name', 'namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'managedFields', 'selfLink', 'deletionTimestamp', 'deletionGracePeriodSeconds'];
const PATCH_TYPES = ['application/json-patch+json', 'application/merge-patch+json', 'application/strategic-merge-patch+json', 'application/apply-patch+yaml'];
const PROPAGATION_POLICIES = ['Foreground', 'Background', 'Orphan'];
const STATEFULSET_MUTABLE = ['replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy', 'minReadySeconds', 'revisionHistoryLimit'];

// ---------------------------------------------------------------------------------------------------
// JSON helpers

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function clone<T>(v: T): T {
  return v === undefined ? v : JSON.parse(JSON.stringify(v));
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  }
  if (!isObject(a) || !isObject(b)) return false;
  const ka = Object.keys(a).filter((k) => a[k] !== undefined);
  const kb = Object.keys(b).filter((k) => b[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => deepEqual(a[k], b[k]));
}

function omit(obj: Json, keys: readonly string[]): Json {
  return Object.fromEntries(Object.entries(obj).filter(([k]) => !keys.includes(k)));
}

function getAt(obj: unknown, path: Path): unknown {
  let cur = obj;
  for (const seg of path) {
    if (!isObject(cur)) return undefined;
    cur = cur[seg];
  }
  return cur;
}

function setAt(obj: Json, path: Path, value: unknown): void {
  let cur = obj;
  for (const seg of path.slice(0, -1)) {
    if (!isObject(cur[seg])) cur[seg] = {};
    cur = cur[seg];
  }
  cur[path[path.length - 1]] = value;
}

/** Deletes the field at `path`, then every map on the way up that this left empty. */
function deleteAt(obj: Json, path: Path): void {
  const parents: Json[] = [];
  let cur: unknown = obj;
  for (const seg of path.slice(0, -1)) {
    if (!isObject(cur)) return;
    parents.push(cur);
    cur = cur[seg];
  }
  if (!isObject(cur) || !(path[path.length - 1] in cur)) return;
  delete cur[path[path.length - 1]];
  for (let i = path.length - 2; i >= 0; i--) {
    const child = parents[i][path[i]];
    if (!isObject(child) || Object.keys(child).length > 0) break;
    delete parents[i][path[i]];
  }
}

function stripNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stripNulls);
  if (!isObject(v)) return v;
  return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== null).map(([k, x]) => [k, stripNulls(x)]));
}

/** RFC 7386 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return clone(patch);
  const result: Json = isObject(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete result[k];
    else result[k] = mergePatch(result[k], v);
  }
  return result;
}

function now(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// ---------------------------------------------------------------------------------------------------
// Field paths and managedFields

function isPrefix(prefix: Path, path: Path): boolean {
  return prefix.length <= path.length && prefix.every((s, i) => s === path[i]);
}

function pathString(path: Path): string {
  return path.map((s) => `.${s}`).join('');
}

/** Leaf fields: primitives, lists (atomic here) and empty maps. */
function leaves(obj: Json, base: string[] = []): Array<[string[], unknown]> {
  const out: Array<[string[], unknown]> = [];
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined) continue;
    const path = [...base, k];
    if (isObject(v) && Object.keys(v).length > 0) out.push(...leaves(v, path));
    else out.push([path, v]);
  }
  return out;
}

function toFieldsV1(paths: readonly Path[]): FieldsV1 {
  interface Node { leaf: boolean; children: Map<string, Node> }
  const root: Node = { leaf: false, children: new Map() };
  for (const path of paths) {
    let node = root;
    for (const seg of path) {
      if (!node.children.has(seg)) node.children.set(seg, { leaf: false, children: new Map() });
      node = node.children.get(seg)!;
    }
    node.leaf = true;
  }
  const emit = (node: Node): FieldsV1 => {
    const out: FieldsV1 = {};
    if (node.leaf && node.children.size > 0) out['.'] = {};
    for (const seg of [...node.children.keys()].sort()) out[`f:${seg}`] = emit(node.children.get(seg)!);
    return out;
  };
  return emit(root);
}

/** Owned paths of an `f:` tree; `k:`/`v:`/`i:` keys (from seeded entries) count as owning their list. */
function fromFieldsV1(tree: FieldsV1, base: string[] = []): string[][] {
  const out: string[][] = [];
  const keys = Object.keys(tree);
  if (base.length > 0 && (keys.length === 0 || keys.includes('.') || keys.some((k) => !k.startsWith('f:') && k !== '.'))) out.push(base);
  for (const k of keys) if (k.startsWith('f:')) out.push(...fromFieldsV1(tree[k], [...base, k.slice(2)]));
  return out;
}

function entryPaths(entry: ManagedFieldsEntry): string[][] {
  return fromFieldsV1(entry.fieldsV1 ?? {});
}

function isEntry(e: ManagedFieldsEntry, manager: string, operation: 'Apply' | 'Update', subresource: string | undefined): boolean {
  return e.manager === manager && e.operation === operation && (e.subresource ?? '') === (subresource ?? '');
}

/** The entry with its paths replaced: the same object when nothing changed, undefined when it owns nothing. */
function withPaths(entry: ManagedFieldsEntry, paths: readonly Path[]): ManagedFieldsEntry | undefined {
  if (paths.length === 0) return undefined;
  const fieldsV1 = toFieldsV1(paths);
  return deepEqual(fieldsV1, entry.fieldsV1) ? entry : { ...entry, fieldsV1 };
}

function newEntry(manager: string, operation: 'Apply' | 'Update', apiVersion: string, subresource: string | undefined): ManagedFieldsEntry {
  return { manager, operation, apiVersion, time: now(), fieldsType: 'FieldsV1', fieldsV1: {}, ...(subresource ? { subresource } : {}) };
}

/** Whether a write changed the field at `path` itself; a map that stays a map did not change (its keys are fields of their own). */
function changedAt(before: Json, after: Json, path: Path): boolean {
  const a = getAt(before, path);
  const b = getAt(after, path);
  return !deepEqual(a, b) && !(isObject(a) && isObject(b));
}

/**
 * Ownership after a non-apply write by `manager`: it takes the leaves whose value it changed (from
 * whoever held them), and everyone loses the fields that were removed.
 */
function updateOwnership(entries: readonly ManagedFieldsEntry[], manager: string, subresource: string | undefined, apiVersion: string, before: Json, after: Json): ManagedFieldsEntry[] {
  const changed = leaves(after).filter(([p]) => changedAt(before, after, p)).map(([p]) => p);
  const out: ManagedFieldsEntry[] = [];
  let ownSeen = false;
  for (const e of entries) {
    const own = isEntry(e, manager, 'Update', subresource);
    ownSeen ||= own;
    const paths = own ? [...entryPaths(e).filter((p) => getAt(after, p) !== undefined), ...changed] : entryPaths(e).filter((p) => !changedAt(before, after, p));
    const next = withPaths(e, paths);
    if (next) out.push(own && next !== e ? { ...next, time: now() } : next);
  }
  const created = ownSeen ? undefined : withPaths(newEntry(manager, 'Update', apiVersion, subresource), changed);
  return created ? [...out, created] : out;
}

interface Conflict {
  readonly entry: ManagedFieldsEntry;
  readonly path: Path;
}

/**
 * Server-side apply of `applied` (the scoped, null-free configuration) by `manager` onto `live`:
 * the merged object and the new managedFields, or the conflicts when not forced.
 */
function applyOwnership(entries: readonly ManagedFieldsEntry[], manager: string, subresource: string | undefined, apiVersion: string, live: Json, applied: Json, force: boolean): { merged: Json; entries: ManagedFieldsEntry[] } | { conflicts: Conflict[] } {
  const appliedLeaves = leaves(applied);
  const merged = mergePatch(live, applied) as Json;
  const conflicts: Conflict[] = [];
  const kept = new Map<ManagedFieldsEntry, string[][]>();
  const own = entries.find((e) => isEntry(e, manager, 'Apply', subresource));
  for (const entry of entries) {
    if (entry === own) continue;
    const paths = entryPaths(entry);
    const lost = paths.filter((p) => changedAt(live, merged, p));
    conflicts.push(...lost.map((path) => ({ entry, path })));
    kept.set(entry, force ? paths.filter((p) => !lost.includes(p)) : paths);
  }
  if (conflicts.length > 0 && !force) return { conflicts };

  const coveredByApply = (r: Path) => appliedLeaves.some(([q]) => isPrefix(q, r) || isPrefix(r, q));
  const ownedByOthers = (r: Path) => [...kept.values()].some((paths) => paths.some((p) => isPrefix(p, r) || isPrefix(r, p)));
  for (const r of own ? entryPaths(own) : []) {
    if (!coveredByApply(r) && !ownedByOthers(r)) deleteAt(merged, r);
  }
  const appliedPaths = appliedLeaves.map(([p]) => p);
  const out: ManagedFieldsEntry[] = [];
  for (const entry of entries) {
    const next = withPaths(entry, entry === own ? appliedPaths : kept.get(entry)!);
    if (next) out.push(entry === own && next !== entry ? { ...next, time: now() } : next);
  }
  const created = own ? undefined : withPaths(newEntry(manager, 'Apply', apiVersion, subresource), appliedPaths);
  return { merged, entries: created ? [...out, created] : out };
}

// ---------------------------------------------------------------------------------------------------
// Errors

interface FieldError {
  readonly field: string;
  readonly type: 'Invalid' | 'Forbidden' | 'Required' | 'NotSupported';
  readonly detail: string;
  readonly value?: unknown;
}

class ApiError extends Error {
  constructor(readonly code: number, readonly reason: string, message: string, readonly details?: Json, readonly headers: Record<string, string> = {}) {
    super(message);
  }

  status(): Json {
    return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: this.message, reason: this.reason, ...(this.details ? { details: this.details } : {}), code: this.code };
  }
}

function renderValue(v: unknown): string {
  return typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v);
}

function fieldMessage(e: FieldError): string {
  switch (e.type) {
    case 'Invalid': return `Invalid value: ${renderValue(e.value)}: ${e.detail}`;
    case 'Forbidden': return `Forbidden: ${e.detail}`;
    case 'Required': return `Required value: ${e.detail}`;
    case 'NotSupported': return `Unsupported value: ${renderValue(e.value)}: supported values: ${e.detail}`;
  }
}

/** 422 Invalid, worded as the real server: `StatefulSet.apps "web" is invalid: spec: Forbidden: ...`. */
function invalid(qualifiedKind: string, name: string, errors: readonly FieldError[], details: Json): ApiError {
  const messages = errors.map((e) => `${e.field}: ${fieldMessage(e)}`);
  const message = `${qualifiedKind} "${name}" is invalid: ${messages.length === 1 ? messages[0] : `[${messages.join(', ')}]`}`;
  const causes = errors.map((e) => ({ reason: `FieldValue${e.type}`, message: fieldMessage(e), field: e.field }));
  return new ApiError(422, 'Invalid', message, { name, ...details, causes });
}

function badRequest(message: string): ApiError {
  return new ApiError(400, 'BadRequest', message);
}

function optionsInvalid(kind: string, error: FieldError): ApiError {
  return invalid(`${kind}.meta.k8s.io`, '', [error], { group: 'meta.k8s.io', kind });
}

function injectedError(status: number, retryAfterSeconds: number | undefined): ApiError {
  const reasons: Record<number, [string, string]> = {
    429: ['TooManyRequests', 'Too many requests, please try again later.'],
    500: ['InternalError', 'Internal error occurred: injected by the test'],
    503: ['ServiceUnavailable', 'The server is currently unable to handle the request'],
    504: ['Timeout', 'The server was unable to return a response in the time allotted, but may still be processing the request'],
  };
  const [reason, message] = reasons[status] ?? ['Unknown', `injected status ${status}`];
  const headers: Record<string, string> = retryAfterSeconds !== undefined ? { 'Retry-After': String(retryAfterSeconds) } : {};
  return new ApiError(status, reason, message, retryAfterSeconds !== undefined ? { retryAfterSeconds } : undefined, headers);
}

function conflictError(conflicts: readonly Conflict[]): ApiError {
  const who = (e: ManagedFieldsEntry) => {
    const base = `"${e.manager}"${e.subresource ? ` with subresource "${e.subresource}"` : ''}`;
    return e.operation === 'Update' ? `${base} using ${e.apiVersion} at ${e.time}` : base;
  };
  const causes = conflicts.map((c) => ({ reason: 'FieldManagerConflict', message: `conflict with ${who(c.entry)}`, field: pathString(c.path) }));
  let message: string;
  if (conflicts.length === 1) {
    message = `Apply failed with 1 conflict: conflict with ${who(conflicts[0].entry)}: ${pathString(conflicts[0].path)}`;
  } else {
    const byManager = new Map<string, string[]>();
    for (const c of conflicts) byManager.set(who(c.entry), [...(byManager.get(who(c.entry)) ?? []), `- ${pathString(c.path)}`]);
    const lines = [...byManager.keys()].sort().flatMap((m) => [`conflict with ${m}:`, ...byManager.get(m)!]);
    message = `Apply failed with ${conflicts.length} conflicts: ${lines.join('\n')}`;
  }
  return new ApiError(409, 'Conflict', message, { causes });
}

// ---------------------------------------------------------------------------------------------------
// Validation shared by kinds

const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035 = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

type NameRule = 'subdomain' | 'dns1035' | 'dns1123label' | 'path';

function validateName(name: string, rule: NameRule): FieldError[] {
  const bad = (detail: string): FieldError[] => [{ field: 'metadata.name', type: 'Invalid', value: name, detail }];
  switch (rule) {
    case 'path':
      if (name === '.' || name === '..') return bad(`may not be '${name}'`);
      return /[/%]/.test(name) ? bad(`may not contain '${name.includes('/') ? '/' : '%'}'`) : [];
    case 'dns1035':
      if (name.length > 63) return bad('must be no more than 63 characters');
      return DNS1035.test(name) ? [] : bad("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')");
    case 'dns1123label':
      if (name.length > 63) return bad('must be no more than 63 characters');
      return DNS1123_LABEL.test(name) ? [] : bad("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')");
    case 'subdomain':
      if (name.length > 253) return bad('must be no more than 253 characters');
      return SUBDOMAIN.test(name) ? [] : bad("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')");
  }
}

function validateLabels(labels: unknown, field: string): FieldError[] {
  if (labels === undefined) return [];
  if (!isObject(labels)) return [{ field, type: 'Invalid', value: labels, detail: 'must be a map of strings' }];
  const errors: FieldError[] = [];
  for (const [key, value] of Object.entries(labels)) {
    const slash = key.indexOf('/');
    const prefix = slash === -1 ? undefined : key.slice(0, slash);
    const name = slash === -1 ? key : key.slice(slash + 1);
    if (prefix !== undefined && (prefix.length > 253 || !SUBDOMAIN.test(prefix))) {
      errors.push({ field, type: 'Invalid', value: key, detail: 'prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \'-\' or \'.\', and must start and end with an alphanumeric character' });
    }
    if (name.length > 63) errors.push({ field, type: 'Invalid', value: key, detail: 'name part must be no more than 63 characters' });
    else if (!QUALIFIED_NAME.test(name)) errors.push({ field, type: 'Invalid', value: key, detail: "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')" });
    if (typeof value !== 'string') errors.push({ field, type: 'Invalid', value, detail: 'label values must be strings' });
    else if (value.length > 63) errors.push({ field, type: 'Invalid', value, detail: 'must be no more than 63 characters' });
    else if (!LABEL_VALUE.test(value)) errors.push({ field, type: 'Invalid', value, detail: "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')" });
  }
  return errors;
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: string; values?: string[] }>;
}

/** Whether labels match a LabelSelector (matchLabels and matchExpressions). */
export function selectorMatches(selector: LabelSelector, labels: Record<string, string>): boolean {
  const byLabels = Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
  return byLabels && (selector.matchExpressions ?? []).every(({ key, operator, values = [] }) => {
    switch (operator) {
      case 'In': return key in labels && values.includes(labels[key]);
      case 'NotIn': return !(key in labels) || !values.includes(labels[key]);
      case 'Exists': return key in labels;
      case 'DoesNotExist': return !(key in labels);
      default: return false;
    }
  });
}

/** A Kubernetes quantity as a number ('10Gi', '500M', '1.5', '100m'), for comparisons. */
function quantity(q: unknown): number {
  const m = /^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$/.exec(String(q));
  if (!m) return NaN;
  const factors: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60, n: 1e-9, u: 1e-6, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };
  return Number(m[1]) * (m[2] ? factors[m[2]] : 1);
}

// ---------------------------------------------------------------------------------------------------
// Kinds served

interface ScaleMapping {
  readonly specReplicas: Path;
  readonly statusReplicas: Path;
  selector(obj: KubeObject): string | undefined;
}

interface ResourceType {
  readonly group: string;
  readonly version: string;
  readonly kind: string;
  readonly plural: string;
  readonly singular: string;
  readonly namespaced: boolean;
  readonly statusSubresource: boolean;
  readonly scale?: ScaleMapping;
  readonly tracksGeneration: boolean;
  /** Served from a CRD: list items keep apiVersion/kind. */
  readonly custom: boolean;
  /** The strategy refuses unconditional updates (custom resources and CRDs). */
  readonly requiresResourceVersion: boolean;
  readonly nameRule: NameRule;
  readonly shortNames?: readonly string[];
  /** Decoding errors (400), which the real server raises before any validation. */
  decode?(obj: Json): string | undefined;
  validate?(obj: KubeObject): FieldError[];
  validateUpdate?(prev: KubeObject, next: KubeObject): FieldError[];
}

function groupVersion(rt: ResourceType): string {
  return rt.group ? `${rt.group}/${rt.version}` : rt.version;
}

/** `statefulsets.apps`, `configmaps`: how the real server names a resource in most messages. */
function groupResource(rt: ResourceType): string {
  return rt.group ? `${rt.plural}.${rt.group}` : rt.plural;
}

/** `StatefulSet.apps`, `PersistentVolumeClaim`: how validation messages name a kind. */
function groupKind(rt: ResourceType): string {
  return rt.group ? `${rt.kind}.${rt.group}` : rt.kind;
}

function resourceType(apiVersion: string, kindName: string, plural: string, options: Partial<ResourceType> = {}): ResourceType {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  return {
    group, version, kind: kindName, plural, singular: kindName.toLowerCase(), namespaced: true, statusSubresource: false,
    tracksGeneration: false, custom: false, requiresResourceVersion: false, nameRule: 'subdomain', ...options,
  };
}

function matchLabelsString(selector: unknown): string | undefined {
  const labels = isObject(selector) && isObject(selector.matchLabels) ? selector.matchLabels : undefined;
  return labels ? Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',') : undefined;
}

function validateStatefulSet(sts: KubeObject): FieldError[] {
  const selector = sts.spec?.selector;
  const templateLabels = sts.spec?.template?.metadata?.labels ?? {};
  const errors = validateLabels(sts.spec?.template?.metadata?.labels, 'spec.template.metadata.labels');
  if (!isObject(selector)) return [...errors, { field: 'spec.selector', type: 'Required', detail: '' }];
  if (Object.keys(selector.matchLabels ?? {}).length === 0 && (selector.matchExpressions ?? []).length === 0) {
    return [...errors, { field: 'spec.selector', type: 'Invalid', value: selector, detail: 'empty selector is invalid for statefulset' }];
  }
  if (!selectorMatches(selector, templateLabels)) {
    errors.push({ field: 'spec.template.metadata.labels', type: 'Invalid', value: templateLabels, detail: '`selector` does not match template `labels`' });
  }
  return errors;
}

function validateStatefulSetUpdate(prev: KubeObject, next: KubeObject): FieldError[] {
  if (deepEqual(omit(prev.spec ?? {}, STATEFULSET_MUTABLE), omit(next.spec ?? {}, STATEFULSET_MUTABLE))) return [];
  return [{
    field: 'spec',
    type: 'Forbidden',
    detail: "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
  }];
}

function validateJobUpdate(prev: KubeObject, next: KubeObject): FieldError[] {
  return ['template', 'selector']
    .filter((f) => !deepEqual(prev.spec?.[f], next.spec?.[f]))
    .map((f): FieldError => ({ field: `spec.${f}`, type: 'Invalid', value: next.spec?.[f], detail: 'field is immutable' }));
}

function validatePvcUpdate(prev: KubeObject, next: KubeObject): FieldError[] {
  const bound = prev.status?.phase === 'Bound';
  const fixed = (pvc: KubeObject) => {
    const spec = clone(pvc.spec ?? {});
    delete spec.volumeAttributesClassName;
    if (bound && isObject(spec.resources)) delete spec.resources.requests;
    return spec;
  };
  if (!deepEqual(fixed(prev), fixed(next))) {
    return [{ field: 'spec', type: 'Forbidden', detail: 'spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims' }];
  }
  const before = quantity(prev.spec?.resources?.requests?.storage);
  const after = quantity(next.spec?.resources?.requests?.storage);
  if (after < before) return [{ field: 'spec.resources.requests.storage', type: 'Forbidden', detail: 'field can not be less than previous value' }];
  return [];
}

function validateRoleRefUpdate(prev: KubeObject, next: KubeObject): FieldError[] {
  return deepEqual(prev.roleRef, next.roleRef) ? [] : [{ field: 'roleRef', type: 'Invalid', value: next.roleRef, detail: 'cannot change roleRef' }];
}

/**
 * metav1.MicroTime parses with the layout 2006-01-02T15:04:05.000000Z07:00: exactly six fractional digits.
 * `Date#toISOString()` gives three, which a real server refuses (client-node's V1MicroTime gives six).
 */
function decodeLease(lease: Json): string | undefined {
  for (const field of ['acquireTime', 'renewTime']) {
    const value = lease.spec?.[field];
    if (value === undefined || value === null) continue;
    const m = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(.*)$/.exec(String(value));
    if (!m || !/^\.\d{6}(Z|[+-]\d\d:\d\d)$/.test(m[1])) {
      const rest = m ? m[1] : String(value);
      return `Lease in version "v1" cannot be handled as a Lease: parsing time "${value}" as "2006-01-02T15:04:05.000000Z07:00": cannot parse "${rest}" as ".000000"`;
    }
  }
  return undefined;
}

/** A MicroTime field's decoding error (the layout wants exactly six fractional digits), if any. */
function microTimeError(kindName: string, value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  const m = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(.*)$/.exec(String(value));
  if (m && /^\.\d{6}(Z|[+-]\d\d:\d\d)$/.test(m[1])) return undefined;
  const rest = m ? m[1] : String(value);
  return `${kindName} in version "v1" cannot be handled as a ${kindName}: parsing time "${value}" as "2006-01-02T15:04:05.000000Z07:00": cannot parse "${rest}" as ".000000"`;
}

/** An events.k8s.io/v1 Event's MicroTimes: eventTime and series.lastObservedTime. */
function decodeEvent(event: Json): string | undefined {
  return microTimeError('Event', event.eventTime) ?? microTimeError('Event', event.series?.lastObservedTime);
}

/** What the real server validates of a new events.k8s.io/v1 Event (ValidateEventCreate, for v1). */
function validateEvent(event: KubeObject): FieldError[] {
  const errors: FieldError[] = [];
  const required = (field: string, max: number) => {
    const value = event[field];
    if (typeof value !== 'string' || value === '') errors.push({ field, type: 'Required', detail: '' });
    else if (value.length > max) errors.push({ field, type: 'Invalid', value, detail: `can have at most ${max} characters` });
  };
  if (!event.eventTime) errors.push({ field: 'eventTime', type: 'Required', detail: '' });
  required('reportingController', 316);
  required('reportingInstance', 128);
  required('action', 128);
  required('reason', 128);
  if (event.type !== 'Normal' && event.type !== 'Warning') errors.push({ field: 'type', type: 'Invalid', value: event.type, detail: 'has invalid value: must be Normal or Warning' });
  if (typeof event.note === 'string' && Buffer.byteLength(event.note, 'utf8') > 1024) errors.push({ field: 'note', type: 'Invalid', value: '', detail: 'can have at most 1024 characters' });
  if (event.regarding?.namespace && event.regarding.namespace !== event.metadata.namespace) {
    errors.push({ field: 'metadata.namespace', type: 'Invalid', value: event.metadata.namespace, detail: 'does not match regarding.namespace' });
  }
  if (event.series !== undefined && !(event.series.count >= 2)) errors.push({ field: 'series.count', type: 'Invalid', value: event.series.count, detail: 'should be at least 2' });
  return errors;
}

/** Fields of an events.k8s.io/v1 Event that an update may not change (series may). */
const EVENT_IMMUTABLE = ['regarding', 'related', 'reason', 'action', 'note', 'type', 'reportingController', 'reportingInstance', 'eventTime'];

function validateEventUpdate(prev: KubeObject, next: KubeObject): FieldError[] {
  return EVENT_IMMUTABLE.filter((f) => !deepEqual(prev[f], next[f])).map((f): FieldError => ({ field: f, type: 'Invalid', value: next[f], detail: 'field is immutable' }));
}

const RESOURCES: readonly ResourceType[] = [
  resourceType('v1', 'ConfigMap', 'configmaps', { shortNames: ['cm'] }),
  resourceType('v1', 'Secret', 'secrets'),
  resourceType('v1', 'Service', 'services', { statusSubresource: true, nameRule: 'dns1035', shortNames: ['svc'] }),
  resourceType('v1', 'ServiceAccount', 'serviceaccounts', { shortNames: ['sa'] }),
  resourceType('v1', 'PersistentVolumeClaim', 'persistentvolumeclaims', { statusSubresource: true, shortNames: ['pvc'], validateUpdate: validatePvcUpdate }),
  resourceType('v1', 'Pod', 'pods', { statusSubresource: true, shortNames: ['po'] }),
  resourceType('v1', 'Namespace', 'namespaces', { namespaced: false, statusSubresource: true, nameRule: 'dns1123label', shortNames: ['ns'] }),
  resourceType('apps/v1', 'StatefulSet', 'statefulsets', {
    statusSubresource: true,
    tracksGeneration: true,
    shortNames: ['sts'],
    scale: { specReplicas: ['spec', 'replicas'], statusReplicas: ['status', 'replicas'], selector: (o) => matchLabelsString(o.spec?.selector) },
    validate: validateStatefulSet,
    validateUpdate: validateStatefulSetUpdate,
  }),
  resourceType('policy/v1', 'PodDisruptionBudget', 'poddisruptionbudgets', { statusSubresource: true, tracksGeneration: true, shortNames: ['pdb'] }),
  resourceType('networking.k8s.io/v1', 'NetworkPolicy', 'networkpolicies', { tracksGeneration: true, shortNames: ['netpol'] }),
  resourceType('rbac.authorization.k8s.io/v1', 'Role', 'roles', { nameRule: 'path' }),
  resourceType('rbac.authorization.k8s.io/v1', 'RoleBinding', 'rolebindings', { nameRule: 'path', validateUpdate: validateRoleRefUpdate }),
  resourceType('rbac.authorization.k8s.io/v1', 'ClusterRole', 'clusterroles', { namespaced: false, nameRule: 'path' }),
  resourceType('rbac.authorization.k8s.io/v1', 'ClusterRoleBinding', 'clusterrolebindings', { namespaced: false, nameRule: 'path', validateUpdate: validateRoleRefUpdate }),
  resourceType('batch/v1', 'Job', 'jobs', {
    statusSubresource: true,
    tracksGeneration: true,
    validate: (job) => validateLabels(job.spec?.template?.metadata?.labels, 'spec.template.metadata.labels'),
    validateUpdate: validateJobUpdate,
  }),
  resourceType('batch/v1', 'CronJob', 'cronjobs', {
    statusSubresource: true,
    tracksGeneration: true,
    shortNames: ['cj'],
    validate: (cj) => (cj.metadata.name!.length > 52 ? [{ field: 'metadata.name', type: 'Invalid', value: cj.metadata.name, detail: 'must be no more than 52 characters' }] : []),
  }),
  resourceType('coordination.k8s.io/v1', 'Lease', 'leases', { decode: decodeLease }),
  resourceType('events.k8s.io/v1', 'Event', 'events', { shortNames: ['ev'], decode: decodeEvent, validate: validateEvent, validateUpdate: validateEventUpdate }),
  resourceType('apiextensions.k8s.io/v1', 'CustomResourceDefinition', 'customresourcedefinitions', {
    namespaced: false, statusSubresource: true, tracksGeneration: true, requiresResourceVersion: true, shortNames: ['crd', 'crds'],
  }),
  // cert-manager's kinds, stored as given: no controller issues Secrets here (test/support/cert-issuer.ts does, where a test wants them).
  resourceType('cert-manager.io/v1', 'Issuer', 'issuers', { statusSubresource: true, tracksGeneration: true, custom: true }),
  resourceType('cert-manager.io/v1', 'Certificate', 'certificates', { statusSubresource: true, tracksGeneration: true, custom: true, shortNames: ['cert', 'certs'] }),
  resourceType('kvstore.cdk8s-kvstore.io/v1', 'KVStore', 'kvstores', {
    statusSubresource: true,
    tracksGeneration: true,
    custom: true,
    requiresResourceVersion: true,
    scale: { specReplicas: ['spec', 'size'], statusReplicas: ['status', 'readyReplicas'], selector: (o) => o.status?.selector },
  }),
];

function byKind(apiVersion: string, kindName: string): ResourceType | undefined {
  return RESOURCES.find((rt) => groupVersion(rt) === apiVersion && rt.kind === kindName);
}

function byPlural(group: string, version: string, plural: string): ResourceType | undefined {
  return RESOURCES.find((rt) => rt.group === group && rt.version === version && rt.plural === plural);
}

// ---------------------------------------------------------------------------------------------------
// Discovery

function apiResourceList(group: string, version: string): Json | undefined {
  const types = RESOURCES.filter((rt) => rt.group === group && rt.version === version);
  if (types.length === 0) return undefined;
  const sub = ['get', 'patch', 'update'];
  const resources = types.flatMap((rt) => [
    {
      name: rt.plural, singularName: rt.singular, namespaced: rt.namespaced, kind: rt.kind,
      verbs: ['create', 'delete', 'get', 'list', 'patch', 'update'], ...(rt.shortNames ? { shortNames: rt.shortNames } : {}),
    },
    ...(rt.statusSubresource ? [{ name: `${rt.plural}/status`, singularName: '', namespaced: rt.namespaced, kind: rt.kind, verbs: sub }] : []),
    ...(rt.scale ? [{ name: `${rt.plural}/scale`, singularName: '', namespaced: rt.namespaced, group: 'autoscaling', version: 'v1', kind: 'Scale', verbs: sub }] : []),
  ]);
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources };
}

function apiGroup(name: string): Json | undefined {
  const versions = [...new Set(RESOURCES.filter((rt) => rt.group === name).map((rt) => rt.version))];
  if (!name || versions.length === 0) return undefined;
  const gvs = versions.map((version) => ({ groupVersion: `${name}/${version}`, version }));
  return { kind: 'APIGroup', apiVersion: 'v1', name, versions: gvs, preferredVersion: gvs[0] };
}

// ---------------------------------------------------------------------------------------------------
// Label and field selectors for LIST

type Requirement = (labels: Record<string, string>) => boolean;

function parseLabelSelector(selector: string): Requirement[] {
  const terms: string[] = [];
  let depth = 0;
  let current = '';
  for (const c of selector) {
    if (c === '(') depth++;
    if (c === ')') depth--;
    if (c === ',' && depth === 0) {
      terms.push(current);
      current = '';
    } else current += c;
  }
  terms.push(current);
  return terms.map((t) => t.trim()).filter((t) => t.length > 0).map((term) => {
    let m = /^(\S+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(term);
    if (m) {
      const [, key, op, list] = m;
      const values = list.split(',').map((v) => v.trim());
      return op === 'in' ? (l) => key in l && values.includes(l[key]) : (l) => !(key in l) || !values.includes(l[key]);
    }
    m = /^(!?)\s*([^=!\s]+)$/.exec(term);
    if (m) {
      const [, not, key] = m;
      return not ? (l) => !(key in l) : (l) => key in l;
    }
    m = /^([^=!\s]+)\s*(==|=|!=)\s*([^=!\s]*)$/.exec(term);
    if (m) {
      const [, key, op, value] = m;
      return op === '!=' ? (l) => l[key] !== value : (l) => l[key] === value;
    }
    throw badRequest(`unable to parse requirement: found '${term}', expected: label selector term`);
  });
}

function parseFieldSelector(selector: string): Array<(o: KubeObject) => boolean> {
  return selector.split(',').map((t) => t.trim()).filter((t) => t.length > 0).map((term) => {
    const m = /^([^=!]+)(==|=|!=)(.*)$/.exec(term);
    if (!m) throw badRequest(`invalid selector: '${selector}'; can't understand '${term}'`);
    const [, field, op, value] = m;
    if (field !== 'metadata.name' && field !== 'metadata.namespace') throw badRequest(`field label not supported: ${field}`);
    const get = (o: KubeObject) => (field === 'metadata.name' ? o.metadata.name : o.metadata.namespace) ?? '';
    return op === '!=' ? (o) => get(o) !== value : (o) => get(o) === value;
  });
}

// ---------------------------------------------------------------------------------------------------
// Patches

function jsonPatch(doc: Json, ops: unknown): Json {
  if (!Array.isArray(ops)) throw badRequest('json: cannot unmarshal object into Go value of type jsonpatch.Patch');
  const fail = (message: string) => new ApiError(422, 'Invalid', 'the server rejected our request due to an error in our request', { causes: [{ message }] });
  const parse = (pointer: unknown): string[] => {
    if (typeof pointer !== 'string' || (pointer !== '' && !pointer.startsWith('/'))) throw fail(`invalid JSON pointer: ${String(pointer)}`);
    return pointer === '' ? [] : pointer.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  };
  const parentOf = (root: Json, path: string[]): { parent: any; key: string } => {
    if (path.length === 0) throw fail('operations on the document root are not supported');
    const parent = path.slice(0, -1).reduce<any>((cur, seg) => (cur === undefined || cur === null ? undefined : Array.isArray(cur) ? cur[Number(seg)] : cur[seg]), root);
    if (typeof parent !== 'object' || parent === null) throw fail(`doc is missing path: "/${path.join('/')}"`);
    return { parent, key: path[path.length - 1] };
  };
  const read = (root: Json, path: string[]): unknown => {
    const { parent, key } = parentOf(root, path);
    const value = Array.isArray(parent) ? parent[Number(key)] : parent[key];
    if (value === undefined) throw fail(`doc is missing key: "/${path.join('/')}"`);
    return value;
  };
  const remove = (root: Json, path: string[]): unknown => {
    const value = read(root, path);
    const { parent, key } = parentOf(root, path);
    if (Array.isArray(parent)) parent.splice(Number(key), 1);
    else delete parent[key];
    return value;
  };
  const add = (root: Json, path: string[], value: unknown) => {
    const { parent, key } = parentOf(root, path);
    if (!Array.isArray(parent)) parent[key] = clone(value);
    else if (key === '-') parent.push(clone(value));
    else {
      const i = Number(key);
      if (!Number.isInteger(i) || i < 0 || i > parent.length) throw fail(`index out of bounds: "/${path.join('/')}"`);
      parent.splice(i, 0, clone(value));
    }
  };
  const result = clone(doc);
  for (const op of ops) {
    if (!isObject(op)) throw badRequest('json patch operations must be objects');
    const path = parse(op.path);
    switch (op.op) {
      case 'add': add(result, path, op.value); break;
      case 'remove': remove(result, path); break;
      case 'replace': read(result, path); remove(result, path); add(result, path, op.value); break;
      case 'move': add(result, path, remove(result, parse(op.from))); break;
      case 'copy': add(result, path, read(result, parse(op.from))); break;
      case 'test':
        if (!deepEqual(read(result, path), op.value)) throw fail(`testing value /${path.join('/')} failed: test failed`);
        break;
      default: throw badRequest(`Unexpected kind: ${String(op.op)}`);
    }
  }
  return result;
}

/** An apply body: YAML, of which JSON is a subset. */
function parseApplyConfig(text: string): unknown {
  try {
    return parseYaml(text);
  } catch (e) {
    throw badRequest(`error decoding YAML: ${(e as Error).message}`);
  }
}

function rejectDirectives(patch: unknown): void {
  if (Array.isArray(patch)) patch.forEach(rejectDirectives);
  if (!isObject(patch)) return;
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith('$')) throw badRequest(`strategic merge patch directive ${k} is not supported by this API server double`);
    rejectDirectives(v);
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw badRequest(`the body of the request could not be decoded: ${(e as Error).message}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// The server

interface Target {
  readonly rt: ResourceType;
  readonly namespace?: string;
  readonly name?: string;
  readonly subresource?: 'status' | 'scale';
}

interface Call {
  readonly method: string;
  readonly query: Record<string, string>;
  readonly contentType?: string;
  readonly text: string;
  readonly userAgent: string;
  readonly record: { propagationPolicy?: string };
}

interface Answer {
  readonly status: number;
  readonly body: Json;
  /** A text/plain answer (a pod's log) instead of the JSON body. */
  readonly text?: string;
}

interface Fault extends FailNextOptions {
  remaining: number;
}

class ApiServerDouble implements ApiServer {
  readonly requests: RecordedRequest[] = [];
  private readonly store = new Map<string, KubeObject>();
  private readonly faults: Fault[] = [];
  private readonly listeners = new Set<(event: ChangeEvent) => void>();
  private revision = 0;
  podLogs?: (namespace: string, pod: string, container: string | undefined) => string | undefined;

  constructor(private readonly server: http.Server, readonly url: string) {}

  kubeConfig(): k8s.KubeConfig {
    const kc = new k8s.KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'api-server-double', server: this.url, skipTLSVerify: true }],
      users: [{ name: 'api-server-double', token: TOKEN }],
      contexts: [{ name: 'api-server-double', cluster: 'api-server-double', user: 'api-server-double' }],
      currentContext: 'api-server-double',
    });
    return kc;
  }

  mutatingRequests(): RecordedRequest[] {
    return this.requests.filter((r) => r.method !== 'GET' && r.method !== 'HEAD' && !r.discovery);
  }

  get(apiVersion: string, kindName: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const rt = this.kindOrThrow(apiVersion, kindName);
    return clone(this.store.get(this.key(rt, rt.namespaced ? namespace ?? 'default' : undefined, name)));
  }

  put(obj: KubeObject): KubeObject {
    const rt = this.kindOrThrow(obj.apiVersion, obj.kind);
    if (!obj.metadata?.name) throw new Error('api-server double: put() needs metadata.name');
    const next = clone(obj);
    if (rt.namespaced) next.metadata.namespace = next.metadata.namespace ?? 'default';
    else delete next.metadata.namespace;
    const key = this.key(rt, next.metadata.namespace, next.metadata.name!);
    const prev = this.store.get(key);
    next.metadata.uid = prev?.metadata.uid ?? next.metadata.uid ?? randomUUID();
    next.metadata.creationTimestamp = prev?.metadata.creationTimestamp ?? next.metadata.creationTimestamp ?? now();
    next.metadata.managedFields = next.metadata.managedFields ?? prev?.metadata.managedFields;
    if (next.metadata.managedFields === undefined) delete next.metadata.managedFields;
    if (rt.tracksGeneration) next.metadata.generation = prev ? this.nextGeneration(prev, next) : 1;
    else delete next.metadata.generation;
    next.metadata.resourceVersion = prev?.metadata.resourceVersion;
    if (prev && deepEqual(prev, next)) return clone(prev);
    next.metadata.resourceVersion = String(++this.revision);
    this.store.set(key, next);
    this.emit({ type: prev ? 'MODIFIED' : 'ADDED', object: next });
    return clone(next);
  }

  list(apiVersion: string, kindName: string, namespace?: string): KubeObject[] {
    const rt = this.kindOrThrow(apiVersion, kindName);
    const prefix = `${rt.group}/${rt.plural}/${namespace !== undefined && rt.namespaced ? `${namespace}/` : ''}`;
    return [...this.store.keys()].filter((k) => k.startsWith(prefix)).sort().map((k) => clone(this.store.get(k)!));
  }

  remove(apiVersion: string, kindName: string, namespace: string | undefined, name: string): boolean {
    const rt = this.kindOrThrow(apiVersion, kindName);
    const key = this.key(rt, rt.namespaced ? namespace ?? 'default' : undefined, name);
    const prev = this.store.get(key);
    if (!prev) return false;
    this.store.delete(key);
    this.revision++;
    this.emit({ type: 'DELETED', object: prev });
    return true;
  }

  onChange(listener: (event: ChangeEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(event: ChangeEvent): void {
    for (const listener of [...this.listeners]) listener({ ...event, object: clone(event.object) });
  }

  failNext(options: FailNextOptions): void {
    this.faults.push({ ...options, remaining: options.count ?? 1 });
  }

  stop(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.close((err) => (err ? reject(err) : resolve()));
      this.server.closeAllConnections();
    });
  }

  async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', this.url);
    const method = (req.method ?? 'GET').toUpperCase();
    const contentType = req.headers['content-type']?.split(';')[0].trim().toLowerCase();
    const query = Object.fromEntries(url.searchParams);
    const record: { -readonly [K in keyof RecordedRequest]: RecordedRequest[K] } = {
      method, path: url.pathname, query, contentType, body: recordedBody(text, contentType), discovery: isDiscovery(url.pathname),
    };
    this.requests.push(record);

    const fault = this.takeFault(method, url.pathname);
    if (fault?.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
    let response: Answer;
    let headers: Record<string, string> = {};
    if (fault?.status !== undefined) {
      record.injectedStatus = fault.status;
      const error = injectedError(fault.status, fault.retryAfterSeconds);
      response = { status: error.code, body: error.status() };
      headers = error.headers;
    } else {
      try {
        if (req.headers.authorization !== `Bearer ${TOKEN}`) throw new ApiError(401, 'Unauthorized', 'Unauthorized');
        const userAgent = String(req.headers['user-agent'] ?? '').split('/')[0] || 'unknown';
        response = this.route(url.pathname, { method, query, contentType, text, userAgent, record });
      } catch (e) {
        const error = e instanceof ApiError ? e : new ApiError(500, 'InternalError', `Internal error occurred: ${(e as Error).message}`);
        response = { status: error.code, body: error.status() };
        headers = error.headers;
      }
    }
    if (response.text !== undefined) {
      res.writeHead(response.status, { 'Content-Type': 'text/plain', ...headers });
      res.end(response.text);
      return;
    }
    res.writeHead(response.status, { 'Content-Type': 'application/json', ...headers });
    res.end(JSON.stringify(response.body));
  }

  private takeFault(method: string, path: string): Fault | undefined {
    const i = this.faults.findIndex((f) => (!f.method || f.method.toUpperCase() === method) && (!f.pathPattern || f.pathPattern.test(path)));
    if (i === -1) return undefined;
    const fault = this.faults[i];
    if (--fault.remaining <= 0) this.faults.splice(i, 1);
    return fault;
  }

  private route(path: string, req: Call): Answer {
    const notFound = () => new ApiError(404, 'NotFound', 'the server could not find the requested resource', {});
    const segments = path.split('/').filter((s) => s.length > 0).map(decodeURIComponent);
    const discovery = (body: Json | undefined): Answer => {
      if (req.method !== 'GET') throw new ApiError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`, {});
      if (!body) throw notFound();
      return { status: 200, body };
    };
    if (path === '/version') return discovery({ major: '1', minor: '32', gitVersion: 'v1.32.0-api-server-double', platform: 'linux/amd64' });
    if (path === '/api') return discovery({ kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: new URL(this.url).host }] });
    if (path === '/apis') {
      const groups = [...new Set(RESOURCES.map((rt) => rt.group).filter((g) => g))].map(apiGroup);
      return discovery({ kind: 'APIGroupList', apiVersion: 'v1', groups });
    }
    let group: string;
    let version: string;
    let rest: string[];
    if (segments[0] === 'api' && segments.length >= 2) [group, version, rest] = ['', segments[1], segments.slice(2)];
    else if (segments[0] === 'apis' && segments.length === 2) return discovery(apiGroup(segments[1]));
    else if (segments[0] === 'apis' && segments.length >= 3) [group, version, rest] = [segments[1], segments[2], segments.slice(3)];
    else throw notFound();
    if (rest.length === 0) return discovery(apiResourceList(group, version));

    let target: Target;
    const namespacedType = rest[0] === 'namespaces' && rest.length >= 3 ? byPlural(group, version, rest[2]) : undefined;
    if (namespacedType?.namespaced) {
      if (rest.length > 5) throw notFound();
      target = { rt: namespacedType, namespace: rest[1], name: rest[3], subresource: rest[4] as Target['subresource'] };
    } else {
      const rt = byPlural(group, version, rest[0]);
      if (!rt || rest.length > 3) throw notFound();
      if (rt.namespaced && (rest.length > 1 || req.method !== 'GET')) throw notFound();
      target = { rt, name: rest[1], subresource: rest[2] as Target['subresource'] };
    }
    const { rt, name, subresource } = target;
    if (rt.kind === 'Pod' && (subresource as string) === 'log' && name !== undefined) {
      if (req.method !== 'GET') throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource', {});
      const pod = this.existing({ ...target, subresource: undefined });
      const containers: string[] = (pod.spec?.containers ?? []).map((c: { name: string }) => c.name);
      const container = req.query.container ?? (containers.length === 1 ? containers[0] : undefined);
      if (container === undefined) throw badRequest(`a container name must be specified for pod ${name}, choose one of: [${containers.join(' ')}]`);
      if (!containers.includes(container)) throw badRequest(`container ${container} is not valid for pod ${name}`);
      return { status: 200, body: {}, text: this.podLogs?.(target.namespace!, name, container) ?? '' };
    }
    if (subresource !== undefined && !(subresource === 'status' && rt.statusSubresource) && !(subresource === 'scale' && rt.scale)) throw notFound();
    if (req.query.watch === 'true' || req.query.watch === '1') throw badRequest('watch is not supported by this API server double');
    if (req.query.dryRun !== undefined && req.query.dryRun !== 'All') throw badRequest(`Invalid dry run value: ${req.query.dryRun}`);

    const notAllowed = () => new ApiError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`, {});
    if (name === undefined) {
      if (req.method === 'GET') return this.serveList(target, req.query);
      if (req.method === 'POST') return this.create(target, req);
      throw notAllowed();
    }
    switch (req.method) {
      case 'GET': return subresource === 'scale' ? { status: 200, body: this.scaleOf(rt, this.existing(target)) } : { status: 200, body: this.existing(target) };
      case 'PUT': return subresource === 'scale' ? this.replaceScale(target, req) : this.replace(target, req);
      case 'PATCH': return subresource === 'scale' ? this.patchScale(target, req) : this.patch(target, req);
      case 'DELETE': if (subresource === undefined) return this.delete(target, req); throw notAllowed();
      default: throw notAllowed();
    }
  }

  // --- reads

  private key(rt: ResourceType, namespace: string | undefined, name: string): string {
    return `${rt.group}/${rt.plural}/${namespace ?? ''}/${name}`;
  }

  private kindOrThrow(apiVersion: string, kindName: string): ResourceType {
    const rt = byKind(apiVersion, kindName);
    if (!rt) throw new Error(`api-server double: ${apiVersion} ${kindName} is not a kind it serves`);
    return rt;
  }

  private lookup(target: Target): KubeObject | undefined {
    return this.store.get(this.key(target.rt, target.namespace, target.name!));
  }

  private existing(target: Target): KubeObject {
    const obj = this.lookup(target);
    if (!obj) throw this.notFound(target.rt, target.name!);
    return obj;
  }

  private notFound(rt: ResourceType, name: string): ApiError {
    return new ApiError(404, 'NotFound', `${groupResource(rt)} "${name}" not found`, { name, ...(rt.group ? { group: rt.group } : {}), kind: rt.plural });
  }

  private conflict(rt: ResourceType, name: string, detail = 'the object has been modified; please apply your changes to the latest version and try again'): ApiError {
    return new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${groupResource(rt)} "${name}": ${detail}`, { name, ...(rt.group ? { group: rt.group } : {}), kind: rt.plural });
  }

  private invalid(rt: ResourceType, name: string, errors: readonly FieldError[]): ApiError {
    return invalid(groupKind(rt), name, errors, { ...(rt.group ? { group: rt.group } : {}), kind: rt.kind });
  }

  private serveList(target: Target, query: Record<string, string>): Answer {
    const { rt, namespace } = target;
    const labelReqs = query.labelSelector ? parseLabelSelector(query.labelSelector) : [];
    const fieldReqs = query.fieldSelector ? parseFieldSelector(query.fieldSelector) : [];
    const prefix = `${rt.group}/${rt.plural}/${namespace !== undefined ? `${namespace}/` : ''}`;
    let keys = [...this.store.keys()].filter((k) => k.startsWith(prefix)).sort();
    keys = keys.filter((k) => {
      const o = this.store.get(k)!;
      return labelReqs.every((r) => r(o.metadata.labels ?? {})) && fieldReqs.every((r) => r(o));
    });
    if (query.continue) {
      const after = Buffer.from(query.continue, 'base64url').toString('utf8');
      keys = keys.filter((k) => k > after);
    }
    const limit = query.limit ? Number(query.limit) : 0;
    const page = limit > 0 ? keys.slice(0, limit) : keys;
    const items = page.map((k) => {
      const o = clone(this.store.get(k)!);
      return rt.custom ? o : omit(o, ['apiVersion', 'kind']);
    });
    const metadata: Json = { resourceVersion: String(this.revision) };
    if (page.length < keys.length) {
      metadata.continue = Buffer.from(page[page.length - 1]).toString('base64url');
      metadata.remainingItemCount = keys.length - page.length;
    }
    return { status: 200, body: { kind: `${rt.kind}List`, apiVersion: groupVersion(rt), metadata, items } };
  }

  // --- writes

  /**
   * Checks apiVersion, kind, name and namespace of a body (or a patched object) against the URL. A
   * built-in kind's decoder defaults a missing apiVersion/kind from the URL (typed clients omit them);
   * custom resources and apply configurations must carry both.
   */
  private checkBody(target: Target, obj: unknown, requireName: boolean, requireKind = target.rt.custom): asserts obj is KubeObject {
    const { rt } = target;
    if (!isObject(obj)) throw badRequest('the body of the request must be a JSON object');
    if (!requireKind) {
      obj.apiVersion = obj.apiVersion ?? groupVersion(rt);
      obj.kind = obj.kind ?? rt.kind;
    }
    if (!obj.kind) throw badRequest(`Object 'Kind' is missing in '${JSON.stringify(obj)}'`);
    if (!obj.apiVersion) throw badRequest(`Object 'apiVersion' is missing in '${JSON.stringify(obj)}'`);
    if (obj.apiVersion !== groupVersion(rt) || obj.kind !== rt.kind) {
      throw badRequest(`the API version in the data (${obj.apiVersion}) and kind (${obj.kind}) do not match the expected ${groupVersion(rt)} ${rt.kind}`);
    }
    if (obj.metadata !== undefined && !isObject(obj.metadata)) throw badRequest('metadata must be an object');
    const decodeError = rt.decode?.(obj);
    if (decodeError) throw badRequest(decodeError);
    const meta = (obj.metadata ?? {}) as ObjectMeta;
    if (rt.namespaced && meta.namespace && meta.namespace !== target.namespace) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    if (target.name !== undefined && (requireName || meta.name) && meta.name !== target.name) {
      throw badRequest(`the name of the object (${meta.name ?? ''}) does not match the name on the URL (${target.name})`);
    }
  }

  private dryRun(req: Call): boolean {
    return req.query.dryRun === 'All';
  }

  private manager(req: Call): string {
    return req.query.fieldManager || req.userAgent;
  }

  private create(target: Target, req: Call): Answer {
    const { rt } = target;
    if (req.contentType !== 'application/json') throw unsupportedMediaType(['application/json']);
    const body = parseJson(req.text);
    this.checkBody(target, body, false);
    const meta: ObjectMeta = body.metadata ?? {};
    if (meta.resourceVersion) throw new ApiError(500, 'InternalError', 'Internal error occurred: resourceVersion should not be set on objects to be created');
    const name = meta.name || (meta.generateName ? meta.generateName + randomSuffix() : '');
    if (!name) throw this.invalid(rt, '', [{ field: 'metadata.name', type: 'Required', detail: 'name or generateName is required' }]);
    const skeleton = this.skeleton(target, name);
    const scoped = scopedView(body, rt, 'main');
    const obj = unscope(scoped, skeleton, rt, 'main');
    const entries = updateOwnership([], this.manager(req), undefined, groupVersion(rt), {}, scoped);
    return { status: 201, body: this.commitCreate(rt, obj, entries, this.dryRun(req)) };
  }

  private replace(target: Target, req: Call): Answer {
    const { rt } = target;
    if (req.contentType !== 'application/json') throw unsupportedMediaType(['application/json']);
    const body = parseJson(req.text);
    this.checkBody(target, body, true);
    const prev = this.existing(target);
    if (!body.metadata?.resourceVersion && rt.requiresResourceVersion) {
      throw invalid(groupResource(rt), target.name!, [{ field: 'metadata.resourceVersion', type: 'Invalid', value: 0, detail: 'must be specified for an update' }], { ...(rt.group ? { group: rt.group } : {}), kind: rt.plural });
    }
    return { status: 200, body: this.update(target, prev, body, this.manager(req), this.dryRun(req)) };
  }

  private patch(target: Target, req: Call): Answer {
    if (!req.contentType || !PATCH_TYPES.includes(req.contentType)) throw unsupportedMediaType(PATCH_TYPES);
    if (req.contentType === 'application/apply-patch+yaml') return this.apply(target, req);
    if (req.query.force !== undefined) throw optionsInvalid('PatchOptions', { field: 'force', type: 'Forbidden', detail: 'may not be specified for non-apply patch' });
    const prev = this.existing(target);
    const candidate = this.patched(prev, req);
    this.checkBody(target, candidate, true);
    return { status: 200, body: this.update(target, prev, candidate, this.manager(req), this.dryRun(req)) };
  }

  /** The object after a JSON, merge or strategic merge patch. */
  private patched(prev: Json, req: Call): unknown {
    const patch = parseJson(req.text);
    if (req.contentType === 'application/json-patch+json') return jsonPatch(prev, patch);
    if (!isObject(patch)) throw badRequest('a merge patch must be a JSON object');
    if (req.contentType === 'application/strategic-merge-patch+json') rejectDirectives(patch);
    return mergePatch(prev, patch);
  }

  private apply(target: Target, req: Call): Answer {
    const { rt, subresource } = target;
    const manager = req.query.fieldManager;
    if (!manager) throw optionsInvalid('PatchOptions', { field: 'fieldManager', type: 'Required', detail: 'is required for apply patch' });
    if (req.query.force !== undefined && req.query.force !== 'true' && req.query.force !== 'false') throw badRequest(`invalid force value: ${req.query.force}`);
    const config = parseApplyConfig(req.text);
    this.checkBody(target, config, false, true);
    if (config.metadata?.managedFields !== undefined) throw badRequest('metadata.managedFields must be nil');
    const prev = this.lookup(target);
    if (!prev && subresource === 'status') throw this.notFound(rt, target.name!);
    const rv = config.metadata?.resourceVersion;
    if (prev && rv && rv !== prev.metadata.resourceVersion) throw this.conflict(rt, target.name!);

    const scope: Scope = subresource === 'status' ? 'status' : 'main';
    const live = prev ?? this.skeleton(target, target.name!);
    const liveScoped = scopedView(live, rt, scope);
    const applied = stripNulls(scopedView(config, rt, scope)) as Json;
    const result = applyOwnership(live.metadata.managedFields ?? [], manager, subresource, groupVersion(rt), liveScoped, applied, req.query.force === 'true');
    if ('conflicts' in result) throw conflictError(result.conflicts);
    const next = unscope(result.merged, live, rt, scope);
    if (!prev) return { status: 201, body: this.commitCreate(rt, next, result.entries, this.dryRun(req)) };
    next.metadata.managedFields = result.entries;
    return { status: 200, body: this.commitUpdate(rt, prev, next, this.dryRun(req)) };
  }

  /** A non-apply write of `candidate` (a whole object) onto `prev`, through the target's scope. */
  private update(target: Target, prev: KubeObject, candidate: KubeObject, manager: string, dryRun: boolean, entrySubresource = target.subresource): KubeObject {
    const { rt } = target;
    const rv = candidate.metadata?.resourceVersion;
    if (rv && rv !== prev.metadata.resourceVersion) throw this.conflict(rt, target.name!);
    const uid = candidate.metadata?.uid;
    if (uid && uid !== prev.metadata.uid) throw this.conflict(rt, target.name!, `Precondition failed: UID in precondition: ${uid}, UID in object meta: ${prev.metadata.uid}`);
    const scope: Scope = target.subresource === 'status' ? 'status' : 'main';
    const before = scopedView(prev, rt, scope);
    const after = scopedView(candidate, rt, scope);
    const next = unscope(after, prev, rt, scope);
    next.metadata.managedFields = updateOwnership(prev.metadata.managedFields ?? [], manager, entrySubresource, groupVersion(rt), before, after);
    return this.commitUpdate(rt, prev, next, dryRun);
  }

  private delete(target: Target, req: Call): Answer {
    const { rt } = target;
    let options: Json = {};
    if (req.text.trim()) {
      const body = parseJson(req.text);
      if (!isObject(body)) throw badRequest('DeleteOptions must be a JSON object');
      options = body;
    }
    const orphan = options.orphanDependents ?? (req.query.orphanDependents === undefined ? undefined : req.query.orphanDependents === 'true');
    const policy: string | undefined = options.propagationPolicy ?? req.query.propagationPolicy ?? (orphan === true ? 'Orphan' : orphan === false ? 'Background' : undefined);
    req.record.propagationPolicy = policy;
    if (policy !== undefined && !PROPAGATION_POLICIES.includes(policy)) {
      throw optionsInvalid('DeleteOptions', { field: 'propagationPolicy', type: 'NotSupported', value: policy, detail: PROPAGATION_POLICIES.map((p) => `"${p}"`).join(', ') });
    }
    const prev = this.existing(target);
    const pre = isObject(options.preconditions) ? options.preconditions : {};
    if (pre.uid && pre.uid !== prev.metadata.uid) {
      throw this.conflict(rt, target.name!, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${prev.metadata.uid}`);
    }
    if (pre.resourceVersion && pre.resourceVersion !== prev.metadata.resourceVersion) {
      throw this.conflict(rt, target.name!, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${prev.metadata.resourceVersion}`);
    }
    if (!this.dryRun(req)) {
      this.store.delete(this.key(rt, target.namespace, target.name!));
      this.revision++;
      const grace = options.gracePeriodSeconds ?? (req.query.gracePeriodSeconds === undefined ? undefined : Number(req.query.gracePeriodSeconds));
      this.emit({ type: 'DELETED', object: prev, propagationPolicy: policy, ...(grace === undefined ? {} : { gracePeriodSeconds: grace }) });
    }
    const details = { name: target.name, ...(rt.group ? { group: rt.group } : {}), kind: rt.plural, uid: prev.metadata.uid };
    return { status: 200, body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details } };
  }

  // --- scale

  private scaleOf(rt: ResourceType, obj: KubeObject): Json {
    const scale = rt.scale!;
    const { name, namespace, uid, resourceVersion, creationTimestamp } = obj.metadata;
    const selector = scale.selector(obj);
    return {
      kind: 'Scale',
      apiVersion: 'autoscaling/v1',
      metadata: { name, namespace, uid, resourceVersion, creationTimestamp },
      spec: { replicas: getAt(obj, scale.specReplicas) ?? 0 },
      status: { replicas: getAt(obj, scale.statusReplicas) ?? 0, ...(selector ? { selector } : {}) },
    };
  }

  private replaceScale(target: Target, req: Call): Answer {
    if (req.contentType !== 'application/json') throw unsupportedMediaType(['application/json']);
    return this.writeScale(target, req, parseJson(req.text));
  }

  private patchScale(target: Target, req: Call): Answer {
    if (!req.contentType || !PATCH_TYPES.includes(req.contentType)) throw unsupportedMediaType(PATCH_TYPES);
    const current = this.scaleOf(target.rt, this.existing(target));
    if (req.contentType === 'application/apply-patch+yaml') {
      if (!req.query.fieldManager) throw optionsInvalid('PatchOptions', { field: 'fieldManager', type: 'Required', detail: 'is required for apply patch' });
      return this.writeScale(target, req, mergePatch(current, parseApplyConfig(req.text)));
    }
    if (req.query.force !== undefined) throw optionsInvalid('PatchOptions', { field: 'force', type: 'Forbidden', detail: 'may not be specified for non-apply patch' });
    return this.writeScale(target, req, this.patched(current, req));
  }

  private writeScale(target: Target, req: Call, scale: unknown): Answer {
    const { rt } = target;
    const prev = this.existing(target);
    if (!isObject(scale) || scale.kind !== 'Scale') throw badRequest('the body of the request must be an autoscaling/v1 Scale');
    const replicas = scale.spec?.replicas;
    if (!Number.isInteger(replicas) || replicas < 0) {
      throw invalid('Scale.autoscaling', target.name!, [{ field: 'spec.replicas', type: 'Invalid', value: replicas, detail: 'must be greater than or equal to 0' }], { group: 'autoscaling', kind: 'Scale' });
    }
    const candidate = clone(prev);
    setAt(candidate, rt.scale!.specReplicas, replicas);
    candidate.metadata.resourceVersion = scale.metadata?.resourceVersion;
    const stored = this.update({ ...target, subresource: undefined }, prev, candidate, this.manager(req), this.dryRun(req), 'scale');
    return { status: 200, body: this.scaleOf(rt, stored) };
  }

  // --- commit

  private skeleton(target: Target, name: string): KubeObject {
    const { rt } = target;
    return { apiVersion: groupVersion(rt), kind: rt.kind, metadata: { name, ...(rt.namespaced ? { namespace: target.namespace } : {}) } };
  }

  private validate(rt: ResourceType, obj: KubeObject): FieldError[] {
    return [...validateLabels(obj.metadata.labels, 'metadata.labels'), ...(rt.validate?.(obj) ?? [])];
  }

  private commitCreate(rt: ResourceType, obj: KubeObject, entries: ManagedFieldsEntry[], dryRun: boolean): KubeObject {
    const name = obj.metadata.name!;
    const errors = [...validateName(name, rt.nameRule), ...this.validate(rt, obj)];
    if (errors.length > 0) throw this.invalid(rt, name, errors);
    const key = this.key(rt, obj.metadata.namespace, name);
    if (this.store.has(key)) {
      throw new ApiError(409, 'AlreadyExists', `${groupResource(rt)} "${name}" already exists`, { name, ...(rt.group ? { group: rt.group } : {}), kind: rt.plural });
    }
    const metadata: ObjectMeta = { ...obj.metadata, uid: randomUUID(), creationTimestamp: now() };
    if (rt.tracksGeneration) metadata.generation = 1;
    if (!dryRun) metadata.resourceVersion = String(++this.revision);
    if (entries.length > 0) metadata.managedFields = entries;
    const created = { ...obj, metadata };
    if (!dryRun) {
      this.store.set(key, created);
      this.emit({ type: 'ADDED', object: created });
    }
    return clone(created);
  }

  private commitUpdate(rt: ResourceType, prev: KubeObject, next: KubeObject, dryRun: boolean): KubeObject {
    const errors = [...this.validate(rt, next), ...(rt.validateUpdate?.(prev, next) ?? [])];
    if (errors.length > 0) throw this.invalid(rt, prev.metadata.name!, errors);
    if (next.metadata.managedFields?.length === 0) delete next.metadata.managedFields;
    if (deepEqual(prev, next)) return clone(prev);
    if (rt.tracksGeneration) next.metadata.generation = this.nextGeneration(prev, next);
    if (dryRun) return clone(next);
    next.metadata.resourceVersion = String(++this.revision);
    this.store.set(this.key(rt, prev.metadata.namespace, prev.metadata.name!), next);
    this.emit({ type: 'MODIFIED', object: next });
    return clone(next);
  }

  private nextGeneration(prev: KubeObject, next: KubeObject): number {
    const generation = prev.metadata.generation ?? 1;
    return deepEqual(omit(prev, ['metadata', 'status']), omit(next, ['metadata', 'status'])) ? generation : generation + 1;
  }
}

/**
 * The part of an object a write in `scope` may change and managers may own: for the main resource,
 * everything but apiVersion, kind, server-set metadata and (with a status subresource) status; for
 * /status, only status.
 */
function scopedView(obj: Json, rt: ResourceType, scope: Scope): Json {
  if (scope === 'status') return obj.status === undefined ? {} : { status: clone(obj.status) };
  const view = omit(clone(obj), rt.statusSubresource ? ['apiVersion', 'kind', 'status'] : ['apiVersion', 'kind']);
  if (isObject(view.metadata)) {
    view.metadata = omit(view.metadata, STRIPPED_META);
    if (Object.keys(view.metadata).length === 0) delete view.metadata;
  } else delete view.metadata;
  return view;
}

/** The whole object: a scoped view written back over `live`, which keeps what the scope excludes. */
function unscope(view: Json, live: KubeObject, rt: ResourceType, scope: Scope): KubeObject {
  if (scope === 'status') {
    const result = clone(live);
    if (view.status === undefined) delete result.status;
    else result.status = clone(view.status);
    return result;
  }
  const kept = Object.fromEntries(STRIPPED_META.filter((k) => live.metadata[k] !== undefined).map((k) => [k, live.metadata[k]]));
  const { metadata, ...rest } = clone(view);
  const result: KubeObject = { apiVersion: groupVersion(rt), kind: rt.kind, metadata: { ...kept, ...(metadata ?? {}) }, ...rest };
  if (rt.statusSubresource) {
    if (live.status === undefined) delete result.status;
    else result.status = clone(live.status);
  }
  return result;
}

function unsupportedMediaType(accepted: readonly string[]): ApiError {
  return new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${accepted.join(', ')}`, {});
}

function randomSuffix(): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  return Array.from({ length: 5 }, () => alphabet[Math.floor(Math.random() * alphabet.length)]).join('');
}

function isDiscovery(path: string): boolean {
  const segments = path.split('/').filter((s) => s.length > 0);
  return path === '/version' || (segments[0] === 'api' && segments.length <= 2) || (segments[0] === 'apis' && segments.length <= 3);
}

function recordedBody(text: string, contentType: string | undefined): unknown {
  if (!text) return undefined;
  try {
    return contentType === 'application/apply-patch+yaml' ? parseYaml(text) : JSON.parse(text);
  } catch {
    return text;
  }
}

/** Starts a double on 127.0.0.1 at an ephemeral port. Stop it with stop() in afterAll/finally. */
export async function startApiServer(): Promise<ApiServer> {
  let double: ApiServerDouble | undefined;
  const server = http.createServer((req, res) => {
    double!.handle(req, res).catch((e) => {
      res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(String(e));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  double = new ApiServerDouble(server, `http://127.0.0.1:${port}`);
  return double;
}

/**
 * Stands in for the StatefulSet controller where a test needs no pods: reports the named StatefulSets
 * as rolled out (status follows spec.replicas and the generation) every 10 ms. Returns the stop function.
 */
export function reportRolledOut(server: ApiServer, namespace: string, names: readonly string[]): () => void {
  const timer = setInterval(() => {
    for (const name of names) {
      const sts = server.get('apps/v1', 'StatefulSet', namespace, name);
      if (sts && sts.status?.observedGeneration !== sts.metadata.generation) {
        const replicas = (sts as any).spec.replicas;
        server.put({ ...sts, status: { observedGeneration: sts.metadata.generation, replicas, readyReplicas: replicas, updatedReplicas: replicas } } as any);
      }
    }
  }, 10);
  return () => clearInterval(timer);
}
