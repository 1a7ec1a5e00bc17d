// The `patches` escape hatch: RFC 6902 operations from the spec, applied to the rendered objects with
// cdk8s' JsonPatch. Checked when rendered (so a bad patch fails at synth, naming the store and the
// patch) and applied through ApiObject.addJsonPatch, which the reconciler's re-render goes through too.
import { ApiObject, JsonPatch } from 'cdk8s';
import { Construct } from 'constructs';
import { canonicalJson } from '../model/document';
import { SpecError } from '../model/issues';
import { AUTH_ANNOTATION, ENGINE_ANNOTATION, OPERATION_ANNOTATION, TLS_TRUST_ANNOTATION, RESTORED_FROM_ANNOTATION, STORE_LABEL } from '../model/metadata';
import type { JsonPatchOperationSpec, ObjectPatchSpec } from '../model/spec';
import type { StoreDefinition } from './store-definition';

/** A JSON Pointer token for a map key ("/" and "~" escaped). */
const token = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1');
/** The reconciler's marks, which it reads back from the live objects. */
const MARKS = [AUTH_ANNOTATION, ENGINE_ANNOTATION, OPERATION_ANNOTATION, RESTORED_FROM_ANNOTATION, TLS_TRUST_ANNOTATION].map((a) => `/metadata/annotations/${token(a)}`);

/**
 * Values a patch must leave as rendered, each with what to use instead: identity everywhere; what the
 * reconciler reads back, sets per run or cannot change; what selects the members and the Jobs.
 */
const PROTECTED: Record<string, ReadonlyArray<readonly [string, string]>> = {
  '*': [['/apiVersion', 'none'], ['/kind', 'none'], ['/metadata/name', 'name'], ['/metadata/namespace', "the chart's namespace"]],
  'StatefulSet': [
    ['/spec/replicas', 'size'], ['/spec/selector', 'none'], ['/spec/serviceName', 'none'], ['/spec/podManagementPolicy', 'podManagementPolicy'],
    ['/spec/volumeClaimTemplates', 'volumeClaimTemplates, storageSize'], ['/spec/template/spec/containers/0/name', 'none'],
    ...MARKS.map((m) => [m, "none: the reconciler's mark"] as const),
  ],
  // The bootstrap ConfigMap: the member list and cluster state change with every membership operation.
  'ConfigMap': [['/data', 'size, engine'], ...MARKS.map((m) => [m, "none: the reconciler's mark"] as const)],
  'Service': [['/spec/selector', 'none']],
  'PodDisruptionBudget': [['/spec/selector', 'none'], ['/spec/minAvailable', 'size'], ['/spec/maxUnavailable', 'size']],
  'NetworkPolicy': [['/spec/podSelector', 'none']],
  // The NetworkPolicy admits the backup and snapshot Jobs by this label.
  'CronJob': [[`/spec/jobTemplate/spec/template/metadata/labels/${token(STORE_LABEL)}`, 'none']],
};

function toJsonPatch(op: JsonPatchOperationSpec): JsonPatch {
  switch (op.op) {
    case 'add': return JsonPatch.add(op.path, op.value);
    case 'remove': return JsonPatch.remove(op.path);
    case 'replace': return JsonPatch.replace(op.path, op.value);
    case 'move': return JsonPatch.move(op.from!, op.path);
    case 'copy': return JsonPatch.copy(op.from!, op.path);
  }
}

/** The value at an RFC 6901 pointer, or undefined. */
function valueAt(doc: unknown, pointer: string): unknown {
  let node: any = doc;
  for (const token of pointer.split('/').slice(1).map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'))) {
    if (node === null || typeof node !== 'object') return undefined;
    node = node[token];
  }
  return node;
}

/**
 * Applies the operations one by one, checking what RFC 6902 requires and cdk8s' JsonPatch does not
 * check itself: the target of remove, replace and test exists, so does the source of move and copy,
 * and add has a parent to add to.
 */
function applyChecked(doc: unknown, ops: readonly JsonPatchOperationSpec[]): unknown {
  let out = JSON.parse(JSON.stringify(doc));
  ops.forEach((op, j) => {
    const parent = op.path.slice(0, op.path.lastIndexOf('/'));
    const missing = ['remove', 'replace'].includes(op.op) && valueAt(out, op.path) === undefined ? op.path
      : ['move', 'copy'].includes(op.op) && valueAt(out, op.from!) === undefined ? op.from
        : ['add', 'move', 'copy'].includes(op.op) && (parent === '' ? false : typeof valueAt(out, parent) !== 'object') ? parent
          : undefined;
    if (missing !== undefined) throw new Error(`ops[${j}] (${op.op} ${op.path}): ${missing} does not exist`);
    try {
      out = JsonPatch.apply(out, toJsonPatch(op));
    } catch (e) {
      throw new Error(`ops[${j}] (${op.op} ${op.path}): ${(e as Error).message.split('\n')[0]}`);
    }
  });
  return out;
}

const same = (a: unknown, b: unknown) => canonicalJson(a ?? null) === canonicalJson(b ?? null);

/**
 * What a patch changes that it may not (with what to use instead): a protected value that differs after
 * the patch, or one an operation writes to or moves from even if it happens to write the same value
 * (the reconciler renders other sizes and states, where it would not be the same).
 */
function forbiddenChanges(kind: string, ops: readonly JsonPatchOperationSpec[], before: unknown, after: unknown, selector: Record<string, string>): string[] {
  const pointers = [...PROTECTED['*'], ...(PROTECTED[kind] ?? [])];
  if (kind === 'StatefulSet') pointers.push(...Object.keys(selector).map((k) => [`/spec/template/metadata/labels/${token(k)}`, 'none: it selects the members'] as const));
  const within = (path: string | undefined, p: string) => path !== undefined && (path === p || path.startsWith(`${p}/`));
  const touched = (p: string) => ops.some((op) => within(op.path, p) || (op.op === 'move' && within(op.from, p)));
  return pointers
    .filter(([p]) => touched(p) || !same(valueAt(before, p), valueAt(after, p)))
    .map(([p, instead]) => `${p} (${instead === 'none' ? 'not changeable' : instead.startsWith('none') ? `not changeable, ${instead.slice(6)}` : `use ${instead}`})`);
}

/** Applies the store's patches to the ApiObjects rendered under `scope`; throws a SpecError on a patch that can't apply. */
export function applyPatches(scope: Construct, store: StoreDefinition): void {
  const patches: readonly ObjectPatchSpec[] = store.spec.patches;
  if (!patches.length) return;
  const objects = scope.node.findAll().filter((c): c is ApiObject => c instanceof ApiObject);
  patches.forEach((patch, i) => {
    const field = `patches[${i}]`;
    const fail = (value: unknown, allowed: string, reason?: string): never => {
      throw new SpecError(store.spec.name, [{ field, value, allowed, ...(reason ? { reason } : {}) }]);
    };
    const targets = objects.filter((o) => o.kind === patch.kind && (patch.name === undefined || o.name === patch.name));
    const target = patch.name === undefined ? patch.kind : `${patch.kind}/${patch.name}`;
    if (!targets.length) {
      fail(target, `an object this store synthesizes (${objects.map((o) => `${o.kind}/${o.name}`).join(', ')})`);
    }
    const ops = patch.ops.map(toJsonPatch);
    for (const object of targets) {
      const before = object.toJson();
      let after: unknown;
      try {
        after = applyChecked(before, patch.ops);
      } catch (e) {
        fail(patch.ops.map((o) => `${o.op} ${o.path}`), `operations that apply to ${object.kind}/${object.name}`, (e as Error).message);
      }
      const forbidden = forbiddenChanges(object.kind, patch.ops, before, after, store.selectorLabels);
      if (forbidden.length) {
        fail(patch.ops.map((o) => `${o.op} ${o.path}`), `operations that leave ${forbidden.join(', ')} of ${object.kind}/${object.name} as rendered`, 'the library or the reconciler owns them');
      }
      object.addJsonPatch(...ops);
    }
  });
}
