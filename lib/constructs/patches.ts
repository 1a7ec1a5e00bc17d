// The `patches` escape hatch: RFC 6902 operations from the spec, applied to the rendered objects with
// cdk8s' JsonPatch. Checked when rendered (so a bad patch fails at synth, naming the store and the
// patch) and applied through ApiObject.addJsonPatch, which the reconciler's re-render goes through too.
import { ApiObject, JsonPatch } from 'cdk8s';
import { Construct } from 'constructs';
import { canonicalJson } from '../model/document';
import { SpecError } from '../model/issues';
import type { JsonPatchOperationSpec, ObjectPatchSpec } from '../model/spec';
import type { StoreDefinition } from './store-definition';

/** Fields a patch must leave as rendered: identity everywhere, and what the reconciler owns or cannot change. */
const PROTECTED: Record<string, readonly string[]> = {
  '*': ['/apiVersion', '/kind', '/metadata/name', '/metadata/namespace'],
  'StatefulSet': ['/spec/replicas', '/spec/selector', '/spec/serviceName', '/spec/podManagementPolicy', '/spec/volumeClaimTemplates'],
};

function toJsonPatch(op: JsonPatchOperationSpec): JsonPatch {
  switch (op.op) {
    case 'add': return JsonPatch.add(op.path, op.value);
    case 'remove': return JsonPatch.remove(op.path);
    case 'replace': return JsonPatch.replace(op.path, op.value);
    case 'move': return JsonPatch.move(op.from!, op.path);
    case 'copy': return JsonPatch.copy(op.from!, op.path);
    case 'test': return JsonPatch.test(op.path, op.value);
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
    const missing = ['remove', 'replace', 'test'].includes(op.op) && valueAt(out, op.path) === undefined ? op.path
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

/** What a patch changed that it may not: the protected pointers, and selector labels taken off the pod template. */
function forbiddenChanges(kind: string, before: unknown, after: unknown, selector: Record<string, string>): string[] {
  const changed = [...PROTECTED['*'], ...(PROTECTED[kind] ?? [])].filter((p) => !same(valueAt(before, p), valueAt(after, p)));
  if (kind === 'StatefulSet') {
    const labels = (valueAt(after, '/spec/template/metadata/labels') ?? {}) as Record<string, string>;
    changed.push(...Object.keys(selector).filter((k) => labels[k] !== selector[k]).map((k) => `/spec/template/metadata/labels/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`));
  }
  return changed;
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
        fail(target, `operations that apply to ${object.kind}/${object.name}`, (e as Error).message);
      }
      const forbidden = forbiddenChanges(object.kind, before, after, store.selectorLabels);
      if (forbidden.length) {
        fail(target, `operations that leave ${forbidden.join(', ')} of ${object.kind}/${object.name} as rendered`, 'the library or the reconciler owns them; use the props');
      }
      object.addJsonPatch(...ops);
    }
  });
}
