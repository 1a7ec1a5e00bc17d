// Checks a spec input against SPEC_INPUT_SCHEMA with the validator compiled from it ahead of time
// (scripts/spec-validator.ts), and says each problem in the user's words.
import type { ErrorObject, ValidateFunction } from 'ajv';
import type { SpecIssue } from './issues';
import { SPEC_INPUT_SCHEMA } from './schema';
import { validate } from './spec-validator.generated';

/** SPEC_INPUT_SCHEMA compiled ahead of time (scripts/spec-validator.ts): loading compiles nothing. */
const validateInput = validate as unknown as ValidateFunction;

/** A JSON pointer segment as the key it names (`~1` is `/`, `~0` is `~`; ajv also percent-encodes schema paths). */
function unescapePointer(segment: string): string {
  return decodeURIComponent(segment).replace(/~1/g, '/').replace(/~0/g, '~');
}

/** "/volumeClaimTemplates/1/storage" → "volumeClaimTemplates[1].storage". */
function fieldOf(instancePath: string, child?: string): string {
  const parts = instancePath.split('/').slice(1).map(unescapePointer);
  if (child !== undefined) parts.push(child);
  return parts.reduce((acc, p) => (/^[0-9]+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

/** The node a JSON pointer names (`#/properties/size` in the schema, `/volumeClaimTemplates/0` in the input). */
function at(root: unknown, pointer: string): any {
  return pointer.split('/').slice(1).filter((p) => p !== '#').reduce((node: any, p) => node?.[unescapePointer(p)], root);
}

/**
 * One ajv error in the user's words. The validator is compiled without `verbose` (smaller, faster to
 * load), so the failing schema node and value are looked up by their paths.
 */
function issueFromAjv(e: ErrorObject, input: unknown): SpecIssue {
  const keywordNode = e.schemaPath.slice(0, e.schemaPath.lastIndexOf('/'));
  const parentSchema = at(SPEC_INPUT_SCHEMA, keywordNode) as { allowed?: string; properties?: object } | undefined;
  const data = at(input, e.instancePath);
  const allowed = parentSchema?.allowed ?? `valid (${e.message})`;
  switch (e.keyword) {
    case 'required':
      return { field: fieldOf(e.instancePath, (e.params as { missingProperty: string }).missingProperty), value: undefined, allowed: 'set' };
    case 'additionalProperties': {
      const known = Object.keys(parentSchema?.properties ?? {});
      const extra = (e.params as { additionalProperty: string }).additionalProperty;
      return { field: fieldOf(e.instancePath, extra), value: data && (data as Record<string, unknown>)[extra], allowed: `absent: it is not a known field (known: ${known.join(', ')})` };
    }
    case 'propertyNames': {
      const name = (e.params as { propertyName: string }).propertyName;
      return { field: `${fieldOf(e.instancePath)} key`, value: name, allowed: (at(SPEC_INPUT_SCHEMA, e.schemaPath) as { allowed: string }).allowed };
    }
    default:
      return { field: fieldOf(e.instancePath) || 'spec', value: data, allowed };
  }
}

/** Checks the shape of an input spec against SPEC_INPUT_SCHEMA. */
export function schemaIssues(input: unknown): SpecIssue[] {
  if (validateInput(input)) return [];
  // propertyNames failures also report a generic error on the object itself: keep the specific one.
  const errors = (validateInput.errors ?? []).filter((e) => (e as ErrorObject & { propertyName?: string }).propertyName === undefined);
  const seen = new Set<string>();
  return errors.map((e) => issueFromAjv(e, input)).filter((i) => {
    const key = `${i.field}|${i.allowed}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

