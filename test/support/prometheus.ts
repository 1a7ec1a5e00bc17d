// Test support: Debian's promtool and Prometheus (`apt-get install prometheus`), run for real. A
// Prometheus server runs on a loopback address with its own temporary config and storage directory,
// started by this module and stopped by PID (then its directory removed), pass or fail.
import { ChildProcess, spawn, spawnSync } from 'child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'fs';
import * as http from 'http';
import * as net from 'net';
import { tmpdir } from 'os';
import { join } from 'path';
import { stringify } from 'yaml';
import { describeWhere } from './requires-etcd';

const PROMTOOL = '/usr/bin/promtool';
const PROMETHEUS = '/usr/bin/prometheus';
const HINT = 'apt-get install prometheus (Debian\'s package brings prometheus and promtool)';

export function promtoolUnavailable(): string | undefined {
  return existsSync(PROMTOOL) ? undefined : `${PROMTOOL} is missing: ${HINT}`;
}

export function prometheusUnavailable(): string | undefined {
  return existsSync(PROMETHEUS) ? undefined : `${PROMETHEUS} is missing: ${HINT}`;
}

/** `describe` where promtool runs; skips with the install hint locally, fails under CI=true. */
export const describeWithPromtool = describeWhere('promtool', promtoolUnavailable());

export interface ToolRun {
  readonly status: number | null;
  readonly output: string;
}

/**
 * Runs promtool on files it writes into a fresh directory (`files`: name → YAML document), returning
 * its exit status and its combined output. The directory is removed afterwards.
 */
export function promtool(args: (dir: string) => string[], files: Record<string, unknown>): ToolRun {
  const dir = mkdtempSync(join(tmpdir(), 'kvstore-promtool-'));
  try {
    for (const [name, doc] of Object.entries(files)) writeFileSync(join(dir, name), stringify(doc, { lineWidth: 0 }));
    const r = spawnSync(PROMTOOL, args(dir), { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A free TCP port on `host`, as the kernel hands one out (free when returned; the caller binds it next). */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });
}

/** One alert as Prometheus' /api/v1/alerts lists it. */
export interface ActiveAlert {
  readonly labels: Record<string, string>;
  readonly annotations: Record<string, string>;
  readonly state: 'pending' | 'firing';
  readonly value: string;
}

/** One series of an instant query's result. */
export interface Sample {
  readonly metric: Record<string, string>;
  readonly value: [number, string];
}

/** A real Prometheus server: config and rule files written to a temp dir, loopback only. */
export class PrometheusServer {
  /** Starts Prometheus with `config` (its rule_files are set to the given `rules`, if any) and waits until it is ready. */
  static async start(config: Record<string, unknown>, rules?: Record<string, unknown>): Promise<PrometheusServer> {
    const dir = mkdtempSync(join(tmpdir(), 'kvstore-prometheus-'));
    const port = await freePort('127.0.0.1');
    const full = { ...config, ...(rules ? { rule_files: [join(dir, 'rules.yml')] } : {}) };
    writeFileSync(join(dir, 'prometheus.yml'), stringify(full, { lineWidth: 0 }));
    if (rules) writeFileSync(join(dir, 'rules.yml'), stringify(rules, { lineWidth: 0 }));
    const log = join(dir, 'prometheus.log');
    const out = openSync(log, 'w');
    const child = spawn(PROMETHEUS, [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=info',
    ], { stdio: ['ignore', out, out] });
    closeSync(out);
    const server = new PrometheusServer(child, dir, `http://127.0.0.1:${port}`, log);
    try {
      await server.waitReady();
    } catch (e) {
      await server.stop();
      throw e;
    }
    return server;
  }

  private exited = false;

  private constructor(private readonly child: ChildProcess, private readonly dir: string, readonly url: string, private readonly logFile: string) {
    child.once('exit', () => (this.exited = true));
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** The last lines of Prometheus' own log. */
  logTail(lines = 30): string {
    return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  }

  private async waitReady(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.exited) throw new Error(`prometheus exited during startup:\n${this.logTail()}`);
      try {
        if ((await get(`${this.url}/-/ready`)).status === 200) return;
      } catch { /* not listening yet */ }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`prometheus not ready after ${timeoutMs} ms:\n${this.logTail()}`);
  }

  private async api<T>(path: string): Promise<T> {
    const res = await get(`${this.url}${path}`);
    const body = JSON.parse(res.body);
    if (res.status !== 200 || body.status !== 'success') throw new Error(`GET ${path}: ${res.status} ${res.body}`);
    return body.data as T;
  }

  /** An instant query's vector result. */
  async query(expr: string): Promise<Sample[]> {
    const data = await this.api<{ resultType: string; result: Sample[] }>(`/api/v1/query?query=${encodeURIComponent(expr)}`);
    if (data.resultType !== 'vector') throw new Error(`${expr}: expected a vector, got ${data.resultType}`);
    return data.result;
  }

  /** The alerts Prometheus' own rule evaluation holds pending or firing. */
  async alerts(): Promise<ActiveAlert[]> {
    return (await this.api<{ alerts: ActiveAlert[] }>('/api/v1/alerts')).alerts;
  }

  /** The scrape targets' health, by their `pod` label. */
  async targetHealth(): Promise<Record<string, string>> {
    const data = await this.api<{ activeTargets: Array<{ labels: Record<string, string>; health: string }> }>('/api/v1/targets?state=active');
    return Object.fromEntries(data.activeTargets.map((t) => [t.labels.pod, t.health]));
  }

  /** Stops the server by PID (SIGTERM, then SIGKILL after 5 s) and removes its directory. */
  async stop(): Promise<void> {
    if (!this.exited) {
      const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
      process.kill(this.pid, 'SIGTERM');
      const timer = setTimeout(() => !this.exited && process.kill(this.pid, 'SIGKILL'), 5000);
      await gone;
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
