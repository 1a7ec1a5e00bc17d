// Test support: talk to the etcd members the pod runner started, through the etcd3 client library, and
// look at their processes.
import { readFileSync } from 'fs';
import { Etcd3 } from 'etcd3';
import { Engine, KVStore, KVStoreProps } from '../../lib';
import { synth, Manifest, testChart } from './manifests';
import { installedEtcdVersion, PodRunner, podRunnerUnavailable } from './pod-runner';

/** The etcd version these tests prove: the one installed (Debian's etcd-server). */
export const ETCD_VERSION = podRunnerUnavailable() ? '3.4.23' : installedEtcdVersion();

export const NAMESPACE = 'kvtest';

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` until it returns a value other than undefined/false, or throws naming `what`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 30_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const result = await check();
      if (result !== undefined && result !== false) return result;
    } catch (e) {
      lastError = e;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ''}`);
}

/** Synthesizes one store in namespace `kvtest` with the installed etcd version. */
export function synthStore(name: string, props: KVStoreProps = {}): Manifest[] {
  const chart = testChart(NAMESPACE);
  new KVStore(chart, name, { engine: Engine.etcd({ version: ETCD_VERSION }), ...props });
  return synth(chart);
}

/** A client that talks to exactly one member, with short deadlines so a dead member fails fast. */
export function memberClient(runner: PodRunner, pod: string): Etcd3 {
  return endpointClient(runner.url(pod));
}

/** A client for one client URL, with short deadlines so a dead member fails fast. */
export function endpointClient(url: string): Etcd3 {
  return new Etcd3({
    hosts: url,
    dialTimeout: 2000,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 3000 }),
  });
}

/** Runs `fn` with a client for one client URL and closes it afterwards. */
export async function withEndpoint<T>(url: string, fn: (c: Etcd3) => Promise<T>): Promise<T> {
  const client = endpointClient(url);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

/** Runs `fn` with a one-member client and closes it afterwards. */
export async function withMember<T>(runner: PodRunner, pod: string, fn: (c: Etcd3) => Promise<T>): Promise<T> {
  return withEndpoint(runner.url(pod), fn);
}

/** The process environment as the kernel holds it. */
export function environOf(pid: number): Record<string, string> {
  return Object.fromEntries(readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean).map((kv) => {
    const eq = kv.indexOf('=');
    return [kv.slice(0, eq), kv.slice(eq + 1)];
  }));
}

/** Whether no process has this PID any more. */
export function pidGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** Waits until the readiness probe of every pod passes; returns the time it took. */
export async function waitReady(runner: PodRunner, pods: string[], timeoutMs = 30_000): Promise<number> {
  const started = Date.now();
  await waitFor(`readiness of ${pods.join(', ')}`, async () => {
    runner.assertNoUnexpectedExits();
    const ready = await Promise.all(pods.map((p) => runner.probe(p, 'readinessProbe')));
    return ready.every(Boolean);
  }, timeoutMs);
  return Date.now() - started;
}

/** Starts every replica of a StatefulSet and waits until all are ready; returns their pod names. */
export async function startReady(runner: PodRunner, stsName: string): Promise<string[]> {
  runner.startStatefulSet(stsName);
  const pods = runner.podNames(stsName);
  await waitReady(runner, pods);
  return pods;
}

/** Runs `fn` with a client of one member (plain HTTP by default; a TLS test passes its own). */
export type MemberConnect = <T>(pod: string, fn: (c: Etcd3) => Promise<T>) => Promise<T>;

/** The pod name of the leader as `pod` sees it, or undefined when it sees none. */
export async function leaderSeenBy(runner: PodRunner, pod: string, connect: MemberConnect = (p, fn) => withMember(runner, p, fn)): Promise<string | undefined> {
  return connect(pod, async (c) => {
    const status = await c.maintenance.status();
    if (!status.leader || status.leader === '0') return undefined;
    const members = await c.cluster.memberList({});
    return members.members.find((m) => m.ID === status.leader)?.name;
  });
}

/** The leader all the given members agree on (other than `exclude`, a member known to be gone). */
export async function agreedLeader(runner: PodRunner, pods: string[], exclude?: string, timeoutMs = 15_000, connect?: MemberConnect): Promise<string> {
  return waitFor(`a leader agreed by ${pods.join(', ')}${exclude ? ` other than ${exclude}` : ''}`, async () => {
    const seen = await Promise.all(pods.map((p) => leaderSeenBy(runner, p, connect).catch(() => undefined)));
    return seen[0] !== undefined && seen[0] !== exclude && seen.every((l) => l === seen[0]) ? seen[0] : undefined;
  }, timeoutMs, 50);
}

/** Reads every key under `prefix` linearizably through one member. */
export async function readAll(runner: PodRunner, pod: string, prefix: string): Promise<Record<string, string>> {
  return withMember(runner, pod, (c) => c.getAll().prefix(prefix).strings());
}

/** Writes `count` keys `<prefix><i>` = `v<i>` one after another through one member; returns the acknowledged ones. */
export async function putKeys(runner: PodRunner, pod: string, prefix: string, count: number): Promise<Map<string, string>> {
  const acked = new Map<string, string>();
  await withMember(runner, pod, async (c) => {
    for (let i = 0; i < count; i++) {
      await c.put(`${prefix}${i}`).value(`v${i}`);
      acked.set(`${prefix}${i}`, `v${i}`);
    }
  });
  return acked;
}

/** Keys acknowledged by the cluster that `pod` does not return with the acknowledged value. */
export async function missingOn(runner: PodRunner, pod: string, prefix: string, acked: Map<string, string>): Promise<string[]> {
  const found = await readAll(runner, pod, prefix);
  return [...acked].filter(([k, v]) => found[k] !== v).map(([k]) => k);
}

/**
 * Writes keys `<prefix><n, 6 digits>` = `v<n>` round-robin through the given members until stopped;
 * remembers only the acknowledged ones, and when each was acknowledged. One client per member, made
 * by `client` (plain HTTP by default; a TLS test passes its own), kept for the writer's life.
 */
export class MemberWriter {
  readonly acked = new Map<string, string>();
  /** The time (Date.now()) of each acknowledgement, in order. */
  readonly ackTimes: number[] = [];
  failed = 0;
  private stopped = false;
  private readonly clients: Etcd3[];
  private loop?: Promise<void>;

  constructor(runner: PodRunner, pods: string[], private readonly prefix: string, client: (pod: string) => Etcd3 = (p) => memberClient(runner, p)) {
    this.clients = pods.map(client);
  }

  start(): void {
    this.loop = (async () => {
      for (let i = 0; !this.stopped; i++) {
        const key = `${this.prefix}${String(i).padStart(6, '0')}`;
        try {
          await this.clients[i % this.clients.length].put(key).value(`v${i}`);
          this.acked.set(key, `v${i}`);
          this.ackTimes.push(Date.now());
        } catch {
          this.failed++;
          await sleep(20);
        }
      }
    })();
  }

  /** Stops writing, waits for the write in flight and closes the clients. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    this.clients.forEach((c) => c.close());
  }
}

/** Writes `w/<n>` round-robin through the given members until stopped; each acknowledged key's revision. */
export class RevisionWriter {
  readonly acked = new Map<string, number>();
  private stopped = false;
  private readonly clients: Etcd3[];
  private loop?: Promise<void>;
  constructor(runner: PodRunner, through: readonly string[]) {
    this.clients = through.map((p) => memberClient(runner, p));
  }
  start(): void {
    this.loop = (async () => {
      for (let i = 0; !this.stopped; i++) {
        const key = `w/${String(i).padStart(6, '0')}`;
        try {
          this.acked.set(key, Number((await this.clients[i % this.clients.length].put(key).value(`v${i}`)).header.revision));
        } catch {
          await sleep(20);
        }
      }
    })();
  }
  async stop(): Promise<Map<string, number>> {
    this.stopped = true;
    await this.loop;
    this.clients.forEach((c) => c.close());
    return this.acked;
  }
}
