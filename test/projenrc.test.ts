// projen owns package.json, the tsconfigs and the jest config: re-running it must change nothing.
import { execFileSync } from 'child_process';
import { readFileSync } from 'fs';
import { join } from 'path';

const ROOT = join(__dirname, '..');

test('npx projen on this checkout changes no generated file', () => {
  const generated: string[] = [...JSON.parse(readFileSync(join(ROOT, '.projen/files.json'), 'utf8')).files, 'package.json'];
  const read = () => Object.fromEntries(generated.map((f) => [f, readFileSync(join(ROOT, f), 'utf8')]));
  const before = read();
  execFileSync(join(ROOT, 'node_modules/.bin/projen'), ['--no-post'], { cwd: ROOT, stdio: 'pipe' });
  const after = read();
  for (const f of generated) expect({ file: f, text: after[f] }).toEqual({ file: f, text: before[f] });
}, 120_000);
