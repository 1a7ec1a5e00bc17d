// `npm run bench`: cost, speed and memory of synthesis, the reconciler and the install on this machine, medians of several runs.
// Run after `projen compile` (the bench task does that): it times compiled JavaScript.
// `node build/bench/run.js [section ...]` runs only the named sections (library, synth, many, reconciler, etcd, tls, day2, maintenance, recovery, footprint).
import { cpus } from 'os';
import { day2Bench, replacementBench } from './day2';
import { maintenanceBench, maintenanceReport } from './maintenance';
import { recoveryBench, recoveryReport } from './recovery';
import { etcdBench } from './etcd';
import { tlsBench, tlsSwitchBench } from './tls';
import { footprintBench, footprintReport } from './footprint';
import { libraryCostBench, libraryCostReport } from './library-cost';
import { fmt, median, timeCommand, verdict } from './measure';
import { reconcilerBench } from './reconciler';
import { synthCommandBench, synthCommandReport } from './synth-command';

type Report = (line: string) => void;

/** What the library costs in a user's app: the example app against the same objects as plain ApiObjects. */
async function libraryCost(report: Report): Promise<void> {
  report('## Library cost in a user\'s app (A and B alternated, a fresh node process each)');
  libraryCostReport(libraryCostBench(21, 7)).forEach(report);
}

/** The README's synth command with nothing changed, split by the task's steps as defined now. */
async function synthCommand(report: Report): Promise<void> {
  report('## `npm run synth` on a built checkout, nothing changed (median of 5; each part alone, interleaved)');
  synthCommandReport(synthCommandBench(5)).forEach(report);
}

/** Many stores in one app, each run in a fresh process so peak RSS is its own. */
async function manyStores(report: Report): Promise<void> {
  const many = (count: number) => {
    const runs = Array.from({ length: 3 }, () => {
      const r = timeCommand('node', ['build/bench/many-stores.js', String(count)]);
      return { ms: r.ms, ...JSON.parse(r.stdout) as { peakRssMb: number } };
    });
    return { ms: median(runs.map((r) => r.ms)), rss: median(runs.map((r) => r.peakRssMb)) };
  };
  const k1 = many(1000);
  const k2 = many(2000);
  report('## Many stores in one app (wall time from process start, median of 3 runs)');
  report(`1,000 stores: ${fmt(k1.ms)}, peak RSS ${k1.rss.toFixed(0)} MB  (${verdict(k1.ms < 3000 && k1.rss < 500)}: under 3 s and 500 MB)`);
  report(`2,000 stores: ${fmt(k2.ms)}, peak RSS ${k2.rss.toFixed(0)} MB  (${(k2.ms / k1.ms).toFixed(2)}x the 1,000-store time: ${verdict(k2.ms / k1.ms <= 2.2)} of at most 2.2x)`);
}

/** The reconciler against the API double. */
async function reconciler(report: Report): Promise<void> {
  const rec = await reconcilerBench(5);
  report('## Reconciler (API double on loopback)');
  const first = median(rec.firstRequestMs);
  const planned = median(rec.planMs);
  report(`process start → first API request (median of 5): ${fmt(first)}  (${verdict(first < 500)}: under 500 ms)`);
  report(`plan 1,000 desired against 1,000 live objects (median of 20): ${planned.toFixed(1)} ms  (${verdict(planned < 100)}: under 100 ms)`);
  report(`mutating requests in a no-op reconcile: ${rec.noOpMutations}  (${verdict(rec.noOpMutations === 0)}: 0)`);
}

/** Real etcd from the synthesized manifests (pod runner). */
async function realEtcd(report: Report): Promise<void> {
  const etcd = await etcdBench(5);
  report('## Real etcd (3 members from the synthesized manifests, installed etcd; median of 5 runs)');
  if (typeof etcd === 'string') {
    report(`skipped: ${etcd}`);
    return;
  }
  const formed = median(etcd.formedMs);
  const elected = median(etcd.newLeaderMs);
  report(`3 members healthy (all readiness probes pass): ${fmt(formed)}  (${verdict(formed < 10_000)}: under 10 s)`);
  report(`kill -9 leader → new leader agreed:          ${fmt(elected)}  (${verdict(elected < 3_000)}: under 3 s)`);
  report(`keys lost: ${etcd.keysLost} of ${etcd.keysWritten} acknowledged  (${verdict(etcd.keysLost === 0)}: 0)`);
}

/** Mutual TLS against plain HTTP on real etcd (pod runner), alternated. */
async function tls(report: Report): Promise<void> {
  const result = await tlsBench(5);
  report('## Mutual TLS vs plain HTTP (3 real etcd members from the synthesized manifests, alternated; median of 5 runs each)');
  if (typeof result === 'string') {
    report(`skipped: ${result}`);
    return;
  }
  const [pf, tf] = [median(result.plain.formedMs), median(result.tls.formedMs)];
  const [pp, tp] = [median(result.plain.putMedianMs), median(result.tls.putMedianMs)];
  report(`cluster formation: plain ${fmt(pf)}, TLS ${fmt(tf)}  (TLS/plain ${(tf / pf).toFixed(2)})`);
  report(`median latency of 1,000 sequential puts: plain ${pp.toFixed(2)} ms, TLS ${tp.toFixed(2)} ms  (TLS/plain ${(tp / pp).toFixed(2)})`);
  const switched = await tlsSwitchBench(3);
  report('## Turning TLS on for a live 3-member store through the reconciler (cluster simulator, real etcd; median of 3 runs)');
  if (typeof switched === 'string') {
    report(`skipped: ${switched}`);
    return;
  }
  const [sw, rr] = [median(switched.switchMs), median(switched.restartMs)];
  report(`plain → TLS, every member ready with TLS: ${fmt(sw)}; a rolling restart of the same store: ${fmt(rr)}  (switch/restart ${(sw / rr).toFixed(2)}: two restarts per member)`);
  report(`keys lost while switching (a client writing throughout, plain then TLS): ${switched.keysLost} of ${switched.keysWritten} acknowledged  (${verdict(switched.keysLost === 0)}: 0)`);
}

/** Day-2 operations through the reconciler (cluster simulator on the API double, real etcd). */
async function day2(report: Report): Promise<void> {
  const result = await day2Bench(3);
  report('## Day-2 operations through the reconciler (real etcd members, cluster simulator; median of 3 runs)');
  if (typeof result === 'string') {
    report(`skipped: ${result}`);
    return;
  }
  const scale = median(result.scaleMs);
  const resize = median(result.resizeMs);
  report(`scale 3 → 5 members (learner, start, promote, each), all ready: ${fmt(scale)}  (${verdict(scale < 60_000)}: under 60 s)`);
  report(`resize 1Gi → 2Gi on 5 members (grow PVCs, orphan re-create):  ${fmt(resize)}  (${verdict(resize < 30_000)}: under 30 s)`);
  report(`keys lost while both ran: ${result.keysLost} of ${result.keysWritten} acknowledged  (${verdict(result.keysLost === 0)}: 0)`);
}

/** Defragmentation of 100 MB of garbage, and replacing a lost member through the maintenance run. */
async function maintenance(report: Report): Promise<void> {
  report('## Defragmentation (3 real etcd members from the synthesized manifests, one run)');
  const defrag = await maintenanceBench();
  if (typeof defrag === 'string') report(`skipped: ${defrag}`);
  else maintenanceReport(defrag).forEach(report);
  const replaced = await replacementBench(3);
  report('## Replacing a lost member through the maintenance run (cluster simulator, real etcd; median of 3 runs)');
  if (typeof replaced === 'string') {
    report(`skipped: ${replaced}`);
    return;
  }
  const ms = median(replaced.replaceMs);
  report(`a member's data lost (it crash-loops) → removed, re-added as a learner on new volumes, promoted, all ready: ${fmt(ms)}`);
  report(`keys lost (a client writing through the other two; checked on every member, the new one too): ${replaced.keysLost} of ${replaced.keysWritten} acknowledged  (${verdict(replaced.keysLost === 0)}: 0)`);
}

/** Recovery from quorum loss, from the survivor and from a snapshot (engine level, real etcd). */
async function recovery(report: Report): Promise<void> {
  report('## Recovery from quorum loss (3 real etcd members, two destroyed; one run)');
  const result = await recoveryBench();
  if (typeof result === 'string') report(`skipped: ${result}`);
  else recoveryReport(result).forEach(report);
}

/** What installing the packed library adds to a cdk8s app (needs the npm registry; a minute or two). */
async function footprint(report: Report): Promise<void> {
  report('## Consumer install footprint (npm pack of this checkout, installed into fresh apps)');
  const result = footprintBench();
  if (typeof result === 'string') report(`skipped: ${result}`);
  else footprintReport(result).forEach(report);
}

const SECTIONS: Record<string, (report: Report) => Promise<void>> = {
  library: libraryCost,
  synth: synthCommand,
  many: manyStores,
  reconciler,
  etcd: realEtcd,
  tls,
  day2,
  maintenance,
  recovery,
  footprint,
};

async function main(): Promise<void> {
  const report: Report = (line) => process.stdout.write(line + '\n');
  const wanted = process.argv.slice(2);
  const unknown = wanted.filter((name) => !(name in SECTIONS));
  if (unknown.length > 0) throw new Error(`unknown section(s) ${unknown.join(', ')}; known: ${Object.keys(SECTIONS).join(', ')}`);

  report('# cdk8s-kvstore benchmarks');
  report(`node ${process.version}, ${cpus().length} cores`);
  for (const [name, section] of Object.entries(SECTIONS)) {
    if (wanted.length > 0 && !wanted.includes(name)) continue;
    report('');
    await section(report);
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
