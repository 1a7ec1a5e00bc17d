// Benchmark part: what the library costs in a user's app — the example app through the construct entry (A)
// against the floor (B): cdk8s and cdk8s-plus-28 synthesizing the same objects as plain ApiObjects.
import { readdirSync, readFileSync, writeFileSync } from 'fs';
import { join } from 'path';
import { parseAllDocuments } from 'yaml';
import { median, timeCommand, verdict, withTempDir } from './measure';

const CHILD = (name: string) => join(__dirname, `${name}.js`);
const SUFFIX = '.k8s.yaml';

interface ChildReport {
  readonly ms: number;
  readonly reconcilerOnly: string[];
}

interface LoadReport extends ChildReport {
  readonly modules: number;
  readonly packages: Record<string, number>;
}

export interface SideCost {
  /** Wall time of each run, spawn to exit. */
  readonly wallMs: number[];
  /** Time from process start to the end of synth, as the child saw it. */
  readonly inProcessMs: number[];
}

export interface LoadCost {
  readonly ms: number[];
  readonly modules: number;
  readonly packages: Record<string, number>;
}

export interface LibraryCostResult {
  readonly app: SideCost;
  readonly floor: SideCost;
  readonly libLoad: LoadCost;
  readonly floorLoad: LoadCost;
  /** Reconciler-only packages (client-node, etcd3, cockatiel, ajv) any construct-entry process loaded. */
  readonly reconcilerOnly: string[];
  /** Whether the floor wrote byte-for-byte the same files as the example app. */
  readonly sameOutput: boolean;
}

/** The synthesized files of a directory, by name. */
function readOutput(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir).sort().map((f) => [f, readFileSync(join(dir, f), 'utf8')]));
}

/** The example app's objects by chart, from one synthesis through the construct entry. */
function exampleObjects(dir: string): { charts: Record<string, unknown[]>; output: Record<string, string> } {
  const out = join(dir, 'reference');
  timeCommand('node', [CHILD('library-cost-app')], { env: { CDK8S_OUTDIR: out } });
  const output = readOutput(out);
  const charts: Record<string, unknown[]> = {};
  for (const [file, text] of Object.entries(output)) {
    if (!file.endsWith(SUFFIX)) throw new Error(`unexpected synthesized file ${file}: the floor writes one file per chart`);
    charts[file.slice(0, -SUFFIX.length)] = parseAllDocuments(text).map((d) => d.toJSON()).filter((o) => o !== null);
  }
  return { charts, output };
}

/** One timed run of a synth child in a fresh process, writing to a fresh directory under `dir`. */
function runChild(script: string, args: string[], outdir: string): { wallMs: number; report: ChildReport; output: Record<string, string> } {
  const { ms, stdout } = timeCommand('node', [CHILD(script), ...args], { env: { CDK8S_OUTDIR: outdir } });
  return { wallMs: ms, report: JSON.parse(stdout) as ChildReport, output: readOutput(outdir) };
}

function loadRun(which: 'lib' | 'floor'): LoadReport {
  return JSON.parse(timeCommand('node', [CHILD('module-load'), which]).stdout) as LoadReport;
}

/** Module count and load time of requiring the construct entry vs only cdk8s + cdk8s-plus-28, alternated. */
function loadCosts(runs: number): { lib: LoadCost; floor: LoadCost; reconcilerOnly: string[] } {
  const lib: LoadReport[] = [];
  const floor: LoadReport[] = [];
  for (let i = 0; i < runs; i++) {
    lib.push(loadRun('lib'));
    floor.push(loadRun('floor'));
  }
  const cost = (r: LoadReport[]): LoadCost => ({ ms: r.map((x) => x.ms), modules: r[0].modules, packages: r[0].packages });
  return { lib: cost(lib), floor: cost(floor), reconcilerOnly: [...new Set(lib.flatMap((r) => r.reconcilerOnly))] };
}

/** `pairs` alternating runs of A (example app through the library) and B (the floor), each a fresh `node`. */
export function libraryCostBench(pairs: number, loadRuns: number): LibraryCostResult {
  return withTempDir((dir) => {
    const reference = exampleObjects(dir);
    const objectsFile = join(dir, 'objects.json');
    writeFileSync(objectsFile, JSON.stringify(reference.charts));
    const app: SideCost = { wallMs: [], inProcessMs: [] };
    const floor: SideCost = { wallMs: [], inProcessMs: [] };
    const reconcilerOnly = new Set<string>();
    let sameOutput = true;
    for (let i = 0; i < pairs; i++) {
      const a = runChild('library-cost-app', [], join(dir, `a${i}`));
      const b = runChild('library-cost-floor', [objectsFile], join(dir, `b${i}`));
      app.wallMs.push(a.wallMs);
      app.inProcessMs.push(a.report.ms);
      floor.wallMs.push(b.wallMs);
      floor.inProcessMs.push(b.report.ms);
      a.report.reconcilerOnly.forEach((p) => reconcilerOnly.add(p));
      sameOutput &&= JSON.stringify(b.output) === JSON.stringify(reference.output);
    }
    const loads = loadCosts(loadRuns);
    loads.reconcilerOnly.forEach((p) => reconcilerOnly.add(p));
    return { app, floor, libLoad: loads.lib, floorLoad: loads.floor, reconcilerOnly: [...reconcilerOnly], sameOutput };
  });
}

/** The report lines for the library-cost result. */
export function libraryCostReport(r: LibraryCostResult): string[] {
  const ms = (value: number) => `${value.toFixed(0)} ms`;
  const ratio = median(r.app.wallMs) / median(r.floor.wallMs);
  const inRatio = median(r.app.inProcessMs) / median(r.floor.inProcessMs);
  const own = r.libLoad.packages['(own)'] ?? 0;
  const lines = [
    `A: example app through the construct entry (wall, median of ${r.app.wallMs.length}): ${ms(median(r.app.wallMs))}`,
    `B: floor, same objects as plain ApiObjects (wall, median of ${r.floor.wallMs.length}): ${ms(median(r.floor.wallMs))}`,
    `A/B: ${ratio.toFixed(3)}  (${verdict(ratio <= 1.15)}: at most 1.15)`,
    `  in-process (start → synth done): A ${ms(median(r.app.inProcessMs))}, B ${ms(median(r.floor.inProcessMs))}, A/B ${inRatio.toFixed(3)}`,
    `  floor output identical to the example app's: ${r.sameOutput ? 'yes' : 'NO (the floor does not synthesize the same objects)'}`,
    `require build/lib/index.js:             ${r.libLoad.modules} modules (${own} of the library), ${ms(median(r.libLoad.ms))} (median of ${r.libLoad.ms.length})`,
    `require cdk8s + cdk8s-plus-28 only:     ${r.floorLoad.modules} modules, ${ms(median(r.floorLoad.ms))}  (library adds ${r.libLoad.modules - r.floorLoad.modules} modules, ${ms(median(r.libLoad.ms) - median(r.floorLoad.ms))})`,
  ];
  if (r.reconcilerOnly.length > 0) {
    lines.push(`MISSED: the construct entry loaded reconciler-only packages: ${r.reconcilerOnly.join(', ')}`);
  } else {
    lines.push('reconciler-only packages (@kubernetes/client-node, etcd3, cockatiel, ajv) loaded by the construct entry: none');
  }
  return lines;
}
