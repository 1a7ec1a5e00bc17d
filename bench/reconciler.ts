// Benchmark part: the reconciler against the API double (test/support/api-server.ts).
import { spawn } from 'child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { App, Chart } from 'cdk8s';
import { KVStore } from '../lib';
import { KubeClient } from '../lib/reconciler/client';
import { desiredState } from '../lib/reconciler/desired';
import { Log } from '../lib/reconciler/log';
import { plan } from '../lib/reconciler/plan';
import { reconcileStore } from '../lib/reconciler/reconcile';
import { KubeObject } from '../lib/reconciler/types';
import { startApiServer } from '../test/support/api-server';

const ROOT = join(__dirname, '..', '..');

function documentOf(name: string) {
  const chart = new Chart(new App({ outdir: '/nonexistent' }), 'c', { namespace: 'bench' });
  return new KVStore(chart, name).document;
}

/** ms from spawning `kvstore-reconcile` to the first request the API double receives. */
async function timeToFirstRequest(): Promise<number> {
  const server = await startApiServer();
  const dir = mkdtempSync(join(tmpdir(), 'kvstore-bench-'));
  try {
    writeFileSync(join(dir, 'kubeconfig'), server.kubeConfig().exportConfig());
    writeFileSync(join(dir, 'store.json'), JSON.stringify(documentOf('orders')));
    const started = process.hrtime.bigint();
    const child = spawn('node', [join(ROOT, 'build/apps/reconcile.js'), '--store', join(dir, 'store.json'), '--dry-run'], {
      env: { ...process.env, KUBECONFIG: join(dir, 'kubeconfig') },
      stdio: 'ignore',
    });
    let first: bigint | undefined;
    while (first === undefined) {
      if (server.requests.length > 0) first = process.hrtime.bigint();
      else await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => child.once('exit', r));
    return Number(first - started) / 1e6;
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await server.stop();
  }
}

/** ms to plan 1,000 desired objects against 1,000 live ones (real store objects, all live). */
function planTime(): number {
  const objects: KubeObject[] = [];
  for (let i = 0; objects.length < 1000; i++) objects.push(...desiredState(documentOf(`store-${i}`)).objects);
  const desired = objects.slice(0, 1000);
  const live = desired.map((o) => ({ ...JSON.parse(JSON.stringify(o)), metadata: { ...o.metadata, resourceVersion: '1' } }));
  const started = process.hrtime.bigint();
  const p = plan(desired, live, { applySetId: 'bench' });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (p.unchanged.length !== 1000) throw new Error(`plan bench: expected 1000 unchanged, got ${p.unchanged.length}`);
  return ms;
}

/** Mutating requests of a second, no-op reconcile of the same store. */
async function noOpMutations(): Promise<number> {
  const server = await startApiServer();
  const controller = setInterval(() => {
    const sts = server.get('apps/v1', 'StatefulSet', 'bench', 'orders') as any;
    if (sts && sts.status?.observedGeneration !== sts.metadata.generation) {
      const r = sts.spec.replicas;
      server.put({ ...sts, status: { observedGeneration: sts.metadata.generation, replicas: r, readyReplicas: r, updatedReplicas: r } });
    }
  }, 10);
  try {
    const log = new Log(false, () => undefined);
    const options = { holder: 'bench', pollMs: 20 };
    await reconcileStore(documentOf('orders'), new KubeClient(server.kubeConfig()), log, options);
    const before = server.mutatingRequests().length;
    await reconcileStore(documentOf('orders'), new KubeClient(server.kubeConfig()), log, options);
    return server.mutatingRequests().length - before;
  } finally {
    clearInterval(controller);
    await server.stop();
  }
}

export async function reconcilerBench(runs: number): Promise<{ firstRequestMs: number[]; planMs: number[]; noOpMutations: number }> {
  const firstRequestMs: number[] = [];
  for (let i = 0; i < runs; i++) firstRequestMs.push(await timeToFirstRequest());
  const planMs = Array.from({ length: runs * 4 }, planTime);
  return { firstRequestMs, planMs, noOpMutations: await noOpMutations() };
}
