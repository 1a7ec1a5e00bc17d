// `npm run bench`: speed and memory of synthesis on this machine, medians of several runs.
// Run after `projen compile` (the bench task does that): it times compiled JavaScript.
import { spawnSync } from 'child_process';
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { day2Bench } from './day2';
import { etcdBench } from './etcd';
import { reconcilerBench } from './reconciler';

const ROOT = join(__dirname, '..', '..');
const BIN = join(ROOT, 'node_modules', '.bin');

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Wall time of one command in ms; fails loudly if the command fails. */
function timeCommand(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): { ms: number; stdout: string } {
  const started = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return { ms, stdout: r.stdout };
}

function withOutdir<T>(fn: (outdir: string) => T): T {
  const outdir = mkdtempSync(join(tmpdir(), 'kvstore-bench-'));
  try {
    return fn(outdir);
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

function timeRuns(runs: number, fn: () => number): number {
  return median(Array.from({ length: runs }, fn));
}

const fmt = (ms: number) => `${(ms / 1000).toFixed(3)} s`;
async function main(): Promise<void> {
  const verdict = (ok: boolean) => (ok ? 'meets target' : 'MISSES target');
  const report = (line: string) => process.stdout.write(line + '\n');

  report('# cdk8s-kvstore benchmarks');
  report(`node ${process.version}, ${require('os').cpus().length} cores`);

  // 1. The example app through `cdk8s synth` (compiled JavaScript, as cdk8s.yaml says).
  const viaCli = timeRuns(7, () => withOutdir((o) => timeCommand(join(BIN, 'cdk8s'), ['synth', '--check-upgrade', 'false', '--output', o]).ms));
  const appOnly = timeRuns(7, () => withOutdir((o) => timeCommand('node', ['build/apps/main.js'], { CDK8S_OUTDIR: o }).ms));
  // The cdk8s default way: the app type-checked and run through ts-node on every synth.
  const tsNode = timeRuns(5, () => withOutdir((o) => timeCommand('npx', ['ts-node', 'apps/main.ts'], { CDK8S_OUTDIR: o }).ms));
  report('');
  report('## Example app (median of 7 runs; ts-node reference median of 5)');
  report(`cdk8s synth (compiled app):        ${fmt(viaCli)}  (${(tsNode / viaCli).toFixed(1)}x faster than the reference: ${verdict(tsNode / viaCli >= 10)} of 10x)`);
  report(`node build/apps/main.js alone:     ${fmt(appOnly)}  (${(tsNode / appOnly).toFixed(1)}x faster than the reference)`);
  report(`npx ts-node apps/main.ts (ref):    ${fmt(tsNode)}`);

  // 2. Many stores in one app, each run in a fresh process so peak RSS is its own.
  const many = (count: number) => {
    const runs = Array.from({ length: 3 }, () => {
      const r = timeCommand('node', ['build/bench/many-stores.js', String(count)]);
      return { ms: r.ms, ...JSON.parse(r.stdout) as { peakRssMb: number } };
    });
    return { ms: median(runs.map((r) => r.ms)), rss: median(runs.map((r) => r.peakRssMb)) };
  };
  const k1 = many(1000);
  const k2 = many(2000);
  report('');
  report('## Many stores in one app (wall time from process start, median of 3 runs)');
  report(`1,000 stores: ${fmt(k1.ms)}, peak RSS ${k1.rss.toFixed(0)} MB  (${verdict(k1.ms < 3000 && k1.rss < 500)}: under 3 s and 500 MB)`);
  report(`2,000 stores: ${fmt(k2.ms)}, peak RSS ${k2.rss.toFixed(0)} MB  (${(k2.ms / k1.ms).toFixed(2)}x the 1,000-store time: ${verdict(k2.ms / k1.ms <= 2.2)} of at most 2.2x)`);

  // 3. The reconciler against the API double.
  const rec = await reconcilerBench(5);
  report('');
  report('## Reconciler (API double on loopback)');
  const first = median(rec.firstRequestMs);
  const planned = median(rec.planMs);
  report(`process start → first API request (median of 5): ${fmt(first)}  (${verdict(first < 500)}: under 500 ms)`);
  report(`plan 1,000 desired against 1,000 live objects (median of 20): ${planned.toFixed(1)} ms  (${verdict(planned < 100)}: under 100 ms)`);
  report(`mutating requests in a no-op reconcile: ${rec.noOpMutations}  (${verdict(rec.noOpMutations === 0)}: 0)`);

  // 4. Real etcd from the synthesized manifests (pod runner).
  const etcd = await etcdBench(5);
  report('');
  report('## Real etcd (3 members from the synthesized manifests, installed etcd; median of 5 runs)');
  if (typeof etcd === 'string') {
    report(`skipped: ${etcd}`);
  } else {
    const formed = median(etcd.formedMs);
    const elected = median(etcd.newLeaderMs);
    report(`3 members healthy (all readiness probes pass): ${fmt(formed)}  (${verdict(formed < 10_000)}: under 10 s)`);
    report(`kill -9 leader → new leader agreed:          ${fmt(elected)}  (${verdict(elected < 3_000)}: under 3 s)`);
    report(`keys lost: ${etcd.keysLost} of ${etcd.keysWritten} acknowledged  (${verdict(etcd.keysLost === 0)}: 0)`);
  }

  // 5. Day-2 operations through the reconciler (cluster simulator on the API double, real etcd).
  const day2 = await day2Bench(3);
  report('');
  report('## Day-2 operations through the reconciler (real etcd members, cluster simulator; median of 3 runs)');
  if (typeof day2 === 'string') {
    report(`skipped: ${day2}`);
  } else {
    const scale = median(day2.scaleMs);
    const resize = median(day2.resizeMs);
    report(`scale 3 → 5 members (learner, start, promote, each), all ready: ${fmt(scale)}  (${verdict(scale < 60_000)}: under 60 s)`);
    report(`resize 1Gi → 2Gi on 5 members (grow PVCs, orphan re-create):  ${fmt(resize)}  (${verdict(resize < 30_000)}: under 30 s)`);
    report(`keys lost while both ran: ${day2.keysLost} of ${day2.keysWritten} acknowledged  (${verdict(day2.keysLost === 0)}: 0)`);
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
