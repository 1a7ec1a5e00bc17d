#!/usr/bin/env node
// The README's TypeScript blocks as files, for scripts/consumer-fixture.sh to type-check in a cdk8s app.
//   node scripts/readme-snippets.js extract README.md DIR
//     writes every ```ts / ```typescript block, in order, to DIR/snippet-NN.ts, and DIR/snippets.json:
//     { "snippet-NN.ts": <README line of the block's first line> }. A block without a top-level
//     import/export gets `export {};` appended (same line numbers) so that blocks, each checked as if
//     pasted alone, cannot collide through global declarations.
//   tsc --noEmit -p DIR | node scripts/readme-snippets.js report README.md DIR
//     prints tsc's output with snippet positions turned into README ones, then one line per failing
//     block with its first error; exits 1 when a block fails.
'use strict';
const { readFileSync, writeFileSync } = require('fs');
const { join } = require('path');

const [command, readme, dir] = process.argv.slice(2);
if (!['extract', 'report'].includes(command) || !readme || !dir) {
  process.stderr.write('usage: readme-snippets.js extract|report README.md DIR\n');
  process.exit(2);
}

if (command === 'extract') {
  const lines = readFileSync(readme, 'utf8').split('\n');
  const map = {};
  let block; // { indent, start, body } while inside a TypeScript block
  lines.forEach((line, i) => {
    if (!block) {
      const open = /^(\s*)```(ts|typescript)\s*$/.exec(line);
      if (open) block = { indent: open[1].length, start: i + 2, body: [] };
    } else if (/^\s*```\s*$/.test(line)) {
      const name = `snippet-${String(Object.keys(map).length + 1).padStart(2, '0')}.ts`;
      const isModule = block.body.some((l) => /^(import|export)\b/.test(l));
      writeFileSync(join(dir, name), `${block.body.join('\n')}\n${isModule ? '' : 'export {};\n'}`);
      map[name] = block.start;
      block = undefined;
    } else {
      block.body.push(line.slice(Math.min(block.indent, line.search(/\S|$/))));
    }
  });
  if (block) throw new Error(`${readme}:${block.start - 1}: unterminated code block`);
  writeFileSync(join(dir, 'snippets.json'), `${JSON.stringify(map, null, 2)}\n`);
  process.stdout.write(`${Object.keys(map).length} TypeScript blocks from ${readme}\n`);
} else {
  const map = JSON.parse(readFileSync(join(dir, 'snippets.json'), 'utf8'));
  const firstError = {};
  // tsc (not pretty, as when piped): "snippet-03.ts(2,3): error TS2304: Cannot find name 'chart'."
  const out = readFileSync(0, 'utf8').replace(/^(snippet-\d+\.ts)\((\d+),(\d+)\): (.*)$/gm, (all, file, line, col, message) => {
    if (!(file in map)) return all;
    const at = `${readme}:${map[file] + Number(line) - 1}:${col}`;
    firstError[file] = firstError[file] ?? `${at}: ${message}`;
    return `${at} (${file}): ${message}`;
  });
  process.stdout.write(out);
  const failed = Object.keys(map).filter((file) => file in firstError);
  for (const file of failed) {
    process.stdout.write(`FAIL README block at line ${map[file]} (${file}): ${firstError[file]}\n`);
  }
  process.stdout.write(`${Object.keys(map).length - failed.length} of ${Object.keys(map).length} README TypeScript blocks compile\n`);
  process.exit(failed.length > 0 ? 1 : 0);
}
