// Benchmark part: mutual TLS against plain HTTP on real etcd members from the synthesized manifests
// (pod runner, installed etcd; certificates from the stand-in issuer). Runs alternate plain and TLS,
// so both see the same machine state; compare the ratios.
import { Etcd3 } from 'etcd3';
import { etcdTlsOptions } from '../lib/engines/etcd-membership';
import { issueFromManifests, tlsFiles } from '../test/support/cert-issuer';
import { synthStore, waitReady } from '../test/support/etcd-cluster';
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
