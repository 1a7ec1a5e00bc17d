// Benchmark part: mutual TLS against plain HTTP on real etcd members from the synthesized manifests
// (pod runner, installed etcd; certificates from the stand-in issuer). Runs alternate plain and TLS,
// so both see the same machine state; compare the ratios.
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { Etcd3 } from 'etcd3';
import { etcdTlsOptions } from '../lib/engines/etcd-membership';
import { startApiServer } from '../test/support/api-server';
import { issueFromManifests, tlsFiles } from '../test/support/cert-issuer';
import { ClusterSimulator } from '../test/support/cluster-simulator';
import { applyAsGitOpsTool, keysUnder, mountSecret, reconcileOnce, storeDocument, Writer } from '../test/support/day2';
import { NAMESPACE, synthStore, waitFor, waitReady } from '../test/support/etcd-cluster';
import { PodRunner, podRunnerUnavailable } from '../test/support/pod-runner';
import { median } from './measure';

export interface TlsBenchResult {
  readonly plain: { formedMs: number[]; putMedianMs: number[] };
  readonly tls: { formedMs: number[]; putMedianMs: number[] };
}

const PUTS = 1000;

/** Forms a 3-member store (plain or TLS) and times 1,000 sequential puts through one member. */
async function once(tls: boolean): Promise<{ formedMs: number; putMedianMs: number }> {
  const objects = synthStore('bench', tls ? { tls: {} } : {});
  const secrets = tls ? issueFromManifests(objects, 'kvtest') : [];
  const runner = new PodRunner([...objects, ...secrets], { namespace: 'kvtest' });
  try {
    const pods = runner.podNames('bench');
    const started = Date.now();
    runner.startStatefulSet('bench');
    await waitReady(runner, pods, 60_000);
    const formedMs = Date.now() - started;
    const client = tls
      ? (() => {
        const f = tlsFiles(secrets.find((s) => s.metadata.name === 'bench-client-tls')!);
        const name = 'bench.kvtest.svc.cluster.local';
        return new Etcd3({
          hosts: `https://${runner.ip(pods[0])}:2379`,
          ...etcdTlsOptions({ ca: Buffer.from(f.ca), cert: Buffer.from(f.crt), key: Buffer.from(f.key), serverName: name }),
        });
      })()
      : new Etcd3({ hosts: runner.url(pods[0]) });
    try {
      const latencies: number[] = [];
      for (let i = 0; i < PUTS; i++) {
        const t = process.hrtime.bigint();
        await client.put(`bench/${i}`).value(String(i));
        latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
      return { formedMs, putMedianMs: median(latencies) };
    } finally {
      client.close();
    }
  } finally {
    await runner.stopAll();
  }
}

export async function tlsBench(runs: number): Promise<TlsBenchResult | string> {
  const unavailable = podRunnerUnavailable();
  if (unavailable) return unavailable;
  const result: TlsBenchResult = { plain: { formedMs: [], putMedianMs: [] }, tls: { formedMs: [], putMedianMs: [] } };
  for (let run = 0; run < runs; run++) {
    for (const tls of [false, true]) {
      const r = await once(tls);
      const side = tls ? result.tls : result.plain;
      side.formedMs.push(r.formedMs);
      side.putMedianMs.push(r.putMedianMs);
    }
  }
  return result;
}

export interface TlsSwitchBenchResult {
  /** Reconcile of a live 3-member store from plain HTTP to TLS, until every member is ready with TLS. */
  readonly switchMs: number[];
  /** The same store's rolling restart (a pod annotation changed), in the same run: the baseline. */
  readonly restartMs: number[];
  readonly keysWritten: number;
  readonly keysLost: number;
}

/**
 * `runs` times: a plain 3-member store through the reconciler (cluster simulator, real etcd), a rolling
 * restart, then the switch to TLS, with a client writing throughout (plain HTTP, then TLS).
 */
export async function tlsSwitchBench(runs: number): Promise<TlsSwitchBenchResult | string> {
  const unavailable = podRunnerUnavailable();
  if (unavailable) return unavailable;
  const result = { switchMs: [] as number[], restartMs: [] as number[], keysWritten: 0, keysLost: 0 };
  for (let run = 0; run < runs; run++) {
    const api = await startApiServer();
    const sim = ClusterSimulator.start(api, { namespace: NAMESPACE });
    const dir = mkdtempSync(join(tmpdir(), 'kvstore-bench-tls-'));
    try {
      const plain = { size: 3, storageSize: '1Gi' };
      await reconcileOnce(api, sim, storeDocument('bench', plain), { pollMs: 50 });
      await sim.waitForReady('bench', 3, 60_000);
      const http = sim.endpoints('bench');
      const https = http.map((u) => u.replace(/^http:/, 'https:'));

      let started = Date.now();
      await reconcileOnce(api, sim, storeDocument('bench', { ...plain, podAnnotations: { restarted: String(run) } }), { pollMs: 50 });
      await sim.waitForReady('bench', 3, 60_000);
      result.restartMs.push(Date.now() - started);

      const props = { ...plain, podAnnotations: { restarted: String(run) }, tls: {} };
      applyAsGitOpsTool(api, 'bench', props);
      await waitFor('the certificates', async () => ['bench-member-tls', 'bench-client-tls'].every((n) => api.get('v1', 'Secret', NAMESPACE, n)));
      const tls = mountSecret(api, NAMESPACE, 'bench-client-tls', dir, `bench.${NAMESPACE}.svc.cluster.local`);
      const writer = new Writer(http, `run${run}/`, undefined, { endpoints: https, tls });

      started = Date.now();
      await reconcileOnce(api, sim, storeDocument('bench', props), { pollMs: 50, etcdTlsDir: dir, etcdMemberEndpoint: (i) => http[i] });
      await sim.waitForReady('bench', 3, 60_000);
      result.switchMs.push(Date.now() - started);

      const acked = (await writer.stop()).acked;
      const held = await keysUnder(https, `run${run}/`, tls);
      result.keysWritten += acked.length;
      result.keysLost += acked.filter((k) => !held.has(k)).length;
    } finally {
      await sim.stop();
      await api.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return result;
}
