// Benchmark child: synthesizes N stores in one app and prints its wall time and peak RSS as JSON.
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { App, Chart } from 'cdk8s';
import { KVStore } from '../lib';

const started = process.hrtime.bigint();
const count = Number(process.argv[2]);
const outdir = mkdtempSync(join(tmpdir(), 'kvstore-bench-'));
try {
  const app = new App({ outdir });
  const chart = new Chart(app, 'bench', { namespace: 'bench', disableResourceNameHashes: true });
  for (let i = 0; i < count; i++) {
    new KVStore(chart, `store-${i}`, { size: 3, volumeClaimTemplates: [{ name: 'data' }, { name: 'wal', storage: '2Gi' }] });
  }
  app.synth();
} finally {
  rmSync(outdir, { recursive: true, force: true });
}
const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
process.stdout.write(JSON.stringify({ count, wallMs, peakRssMb: process.resourceUsage().maxRSS / 1024 }) + '\n');
