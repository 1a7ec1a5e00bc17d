// Benchmark part: real etcd members from the synthesized manifests (pod runner, installed etcd).
import { agreedLeader, readAll, synthStore, waitReady, withMember } from '../test/support/etcd-cluster';
import { PodRunner, podRunnerUnavailable } from '../test/support/pod-runner';

export interface EtcdBenchResult {
  readonly formedMs: number[];
  readonly newLeaderMs: number[];
  readonly keysWritten: number;
  readonly keysLost: number;
}

/** `runs` times: form a 3-member store, write keys, kill -9 the leader, time the new election. */
export async function etcdBench(runs: number): Promise<EtcdBenchResult | string> {
  const unavailable = podRunnerUnavailable();
  if (unavailable) return unavailable;
  const result = { formedMs: [] as number[], newLeaderMs: [] as number[], keysWritten: 0, keysLost: 0 };
  for (let run = 0; run < runs; run++) {
    const runner = new PodRunner(synthStore('bench'), { namespace: 'kvtest' });
    try {
      const pods = runner.podNames('bench');
      const started = Date.now();
      runner.startStatefulSet('bench');
      await waitReady(runner, pods);
      result.formedMs.push(Date.now() - started);

      const leader = await agreedLeader(runner, pods);
      const survivors = pods.filter((p) => p !== leader);
      const acked: string[] = [];
      await withMember(runner, survivors[0], async (c) => {
        for (let i = 0; i < 200; i++) {
          await c.put(`bench/${run}/${i}`).value(String(i));
          acked.push(`bench/${run}/${i}`);
        }
      });
      const killedAt = Date.now();
      await runner.kill(leader, 'SIGKILL');
      await agreedLeader(runner, survivors, leader);
      result.newLeaderMs.push(Date.now() - killedAt);

      const found = await readAll(runner, survivors[1], `bench/${run}/`);
      result.keysWritten += acked.length;
      result.keysLost += acked.filter((k) => !(k in found)).length;
    } finally {
      await runner.stopAll();
    }
  }
  return result;
}
