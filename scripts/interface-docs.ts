// Reads an interface's property docs from TypeScript source (summary, `@default`, optional or not) with
// the TypeScript compiler API: how the props docs are checked against lib/model/fields.ts and how the
// README props table is written from them.
import { readFileSync } from 'fs';
import * as ts from 'typescript';

/** One property of an interface as its doc comment describes it. */
export interface PropertyDoc {
  readonly name: string;
  readonly optional: boolean;
  /** The comment's text before the first tag, on one line. */
  readonly summary: string;
  /** The `@default` tag's text, if any. */
  readonly default?: string;
}

const oneLine = (text: string) => text.replace(/\s*\n\s*/g, ' ').trim();

/** The properties of interface `name` in `file`, in declaration order. */
export function interfaceDocs(file: string, name: string): PropertyDoc[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  const declaration = source.statements.find((s): s is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(s) && s.name.text === name);
  if (!declaration) throw new Error(`${file}: no interface ${name}`);
  return declaration.members.filter(ts.isPropertySignature).map((member) => {
    const docs = ts.getJSDocCommentsAndTags(member).filter(ts.isJSDoc);
    const doc = docs[docs.length - 1];
    const summary = doc ? oneLine(ts.getTextOfJSDocComment(doc.comment) ?? '') : '';
    const defaultTag = doc?.tags?.find((t) => t.tagName.text === 'default');
    return {
      name: (member.name as ts.Identifier).text,
      optional: !!member.questionToken,
      summary,
      ...(defaultTag ? { default: oneLine(ts.getTextOfJSDocComment(defaultTag.comment) ?? '') } : {}),
    };
  });
}
