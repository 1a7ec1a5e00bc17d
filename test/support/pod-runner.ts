// Test support: runs the pods of synthesized StatefulSets as real processes on this machine.
//
// What it simulates of the kubelet and cluster DNS, for the parts the etcd tests depend on:
// - one pod per ordinal `<sts>-<i>`, each with its own loopback IP 127.A.B.(i+1) as status.podIP;
// - the container environment (env, envFrom, fieldRef, configMap/secret key refs) and `$(VAR)`
//   expansion in command and args, by Kubernetes' rules (see kubelet.ts);
// - the image's binary: `etcd`/`etcdctl` (any path) run Debian's /usr/bin/etcd and /usr/bin/etcdctl;
//   the image's etcd minor version must match the installed one, so probes and flags are the ones proven;
// - a private root per pod, in a mount namespace (`unshare -m`): host /usr, /bin, /lib*, /etc bound in,
//   the pod's own /etc/hosts, volumes mounted at their mountPath, the root read-only when the container
//   asks for readOnlyRootFilesystem, and the process run as the pod's runAsUser/runAsGroup (chroot);
// - volumes: one directory per PVC (`<template>-<pod>`) kept across restarts of that ordinal and owned by
//   runAsUser/fsGroup; emptyDir fresh on every start; configMap and secret volumes as files;
// - DNS: a hosts file maps every pod's headless-Service names and the Services' names (to ordinal 0) to
//   the pod IPs; the machine's own /etc/hosts is never touched;
// - probes: httpGet (2xx/3xx within timeoutSeconds), tcpSocket and exec against the pod, one at a time
//   when a test asks (no periodic prober, no restarts: a test restarts a pod itself).
// Not simulated: scheduling, resource limits, Services' load balancing, NetworkPolicy, kubelet restarts.
// Every process is started by this class and stopped by PID in stopAll(), pass or fail; a process that
// exits without being asked to is recorded with the tail of its log.
import { ChildProcess, execFileSync, spawn } from 'child_process';
import { chownSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'fs';
import * as http from 'http';
import * as net from 'net';
import { tmpdir } from 'os';
import { join } from 'path';
import { containerEnv, dataOf, expand, podDnsNames, resolvePort, serviceDnsNames } from './kubelet';
import type { Manifest } from './manifests';

const BINARIES: Record<string, string> = { etcd: '/usr/bin/etcd', etcdctl: '/usr/bin/etcdctl' };
const ROOT_DIRS = ['usr', 'bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32', 'etc'];

/**
 * Claims a loopback /24 (127.A.B.0) no other live runner holds, with an exclusive lock file, so test
 * files running in parallel never share addresses. A lock whose owner process is gone is taken over.
 */
function claimAddressBlock(): { prefix: string; lock: string } {
  const seed = process.pid % 50000;
  for (let n = 0; n < 50000; n++) {
    const slot = (seed + n) % 50000;
    const prefix = `127.${20 + Math.floor(slot / 250)}.${1 + (slot % 250)}`;
    const lock = join(tmpdir(), `kvstore-pods-${prefix}.lock`);
    try {
      writeFileSync(lock, String(process.pid), { flag: 'wx' });
      return { prefix, lock };
    } catch {
      const owner = Number(readFileSync(lock, 'utf8'));
      let alive = true;
      try {
        process.kill(owner, 0);
      } catch {
        alive = false;
      }
      if (!alive || owner === process.pid && !claimed.has(lock)) {
        writeFileSync(lock, String(process.pid));
        return { prefix, lock };
      }
    }
  }
  throw new Error('no free loopback address block');
}
const claimed = new Set<string>();

/** Why the pod runner cannot work on this machine, or undefined when it can. */
export function podRunnerUnavailable(): string | undefined {
  if (!existsSync(BINARIES.etcd) || !existsSync(BINARIES.etcdctl)) {
    return 'etcd is not installed: apt-get install etcd-server etcd-client';
  }
  if (process.getuid?.() !== 0) return 'the pod runner needs root (mount namespaces): run the tests as root';
  try {
    execFileSync('unshare', ['-m', 'true'], { stdio: 'ignore' });
  } catch {
    return 'unshare -m failed: mount namespaces are not available here';
  }
  return undefined;
}

/** `etcd --version` of the installed binary, e.g. "3.4.23". */
export function installedEtcdVersion(): string {
  const out = execFileSync(BINARIES.etcd, ['--version'], { encoding: 'utf8' });
  return /etcd Version: ([0-9.]+)/.exec(out)![1];
}

const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

interface Pod {
  readonly name: string;
  sts: Manifest;
  readonly ordinal: number;
  readonly ip: string;
  readonly logFile: string;
  process?: ChildProcess;
  stopping?: boolean;
  exited?: Promise<void>;
}

export interface UnexpectedExit {
  readonly pod: string;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly logTail: string;
}

export interface PodRunnerOptions {
  /** The namespace the pods run in (fieldRef metadata.namespace). */
  readonly namespace: string;
  /** @default 'cluster.local' */
  readonly clusterDomain?: string;
}

export class PodRunner {
  readonly workDir: string;
  readonly unexpectedExits: UnexpectedExit[] = [];
  private readonly pods = new Map<string, Pod>();
  private readonly hostsFile: string;
  private readonly ipPrefix: string;
  private readonly addressLock: string;
  private readonly namespace: string;
  private readonly clusterDomain: string;

  constructor(private objects: Manifest[], options: PodRunnerOptions) {
    this.namespace = options.namespace;
    this.clusterDomain = options.clusterDomain ?? 'cluster.local';
    const block = claimAddressBlock();
    claimed.add(block.lock);
    this.ipPrefix = block.prefix;
    this.addressLock = block.lock;
    this.workDir = mkdtempSync(join(tmpdir(), 'kvstore-pods-'));
    this.hostsFile = join(this.workDir, 'hosts');
    for (const dir of ['pvc', 'logs', 'roots', 'volumes']) mkdirSync(join(this.workDir, dir));
    this.registerPods();
  }

  /** Replaces the manifests (as a re-apply would); running pods keep their old spec until restarted. */
  update(objects: Manifest[]): void {
    this.objects = objects;
    this.registerPods();
  }

  ip(pod: string): string {
    return this.podOf(pod).ip;
  }

  /** The client URL of a pod on its port named `portName`. */
  url(pod: string, portName = 'client'): string {
    const p = this.podOf(pod);
    return `http://${p.ip}:${resolvePort(this.container(p.sts), portName)}`;
  }

  podNames(stsName: string): string[] {
    const sts = this.statefulSet(stsName);
    return Array.from({ length: sts.spec.replicas ?? 1 }, (_, i) => `${stsName}-${i}`);
  }

  /** Starts every replica of a StatefulSet at once (Parallel pod management). */
  startStatefulSet(stsName: string): void {
    for (const pod of this.podNames(stsName)) this.start(pod);
  }

  /** Starts (or restarts) one pod on its existing volumes. */
  start(podName: string): void {
    const pod = this.podOf(podName);
    if (pod.process && pod.process.exitCode === null && pod.process.signalCode === null) {
      throw new Error(`pod ${podName} is already running (pid ${pod.process.pid})`);
    }
    const container = this.container(pod.sts);
    const podSpec = pod.sts.spec.template.spec;
    const env = containerEnv(container, { name: pod.name, namespace: this.namespace, ip: pod.ip, labels: pod.sts.spec.template.metadata?.labels }, this.objects);
    const argv = [...(container.command ?? []), ...(container.args ?? [])].map((a: string) => expand(a, env));
    if (argv.length === 0) throw new Error(`pod ${podName}: no command; image entrypoints are not simulated`);
    const binary = BINARIES[argv[0].split('/').pop()!];
    if (!binary) throw new Error(`pod ${podName}: ${argv[0]} is not a simulated binary (only ${Object.keys(BINARIES).join(', ')})`);
    this.checkImageVersion(container.image);

    const uid = container.securityContext?.runAsUser ?? podSpec.securityContext?.runAsUser ?? 0;
    const gid = container.securityContext?.runAsGroup ?? podSpec.securityContext?.runAsGroup ?? 0;
    const fsGroup = podSpec.securityContext?.fsGroup ?? gid;
    const root = join(this.workDir, 'roots', pod.name);
    mkdirSync(root, { recursive: true });

    const mounts: string[] = [];
    for (const m of container.volumeMounts ?? []) {
      const source = this.volumeDir(pod, m.name, uid, fsGroup);
      mounts.push(`mkdir -p "$R"${sq(m.mountPath)}`, `mount --bind ${sq(m.subPath ? join(source, m.subPath) : source)} "$R"${sq(m.mountPath)}`);
      if (m.readOnly) mounts.push(`mount -o remount,ro,bind "$R"${sq(m.mountPath)}`);
    }
    const script = [
      'set -e',
      `R=${sq(root)}`,
      'mount --make-rprivate /',
      'mount -t tmpfs -o mode=0755 tmpfs "$R"',
      `for d in ${ROOT_DIRS.join(' ')}; do`,
      '  if [ -L "/$d" ]; then ln -s "$(readlink "/$d")" "$R/$d";',
      '  elif [ -d "/$d" ]; then mkdir "$R/$d"; mount --rbind "/$d" "$R/$d"; fi',
      'done',
      `mount --bind ${sq(this.hostsFile)} "$R/etc/hosts"`,
      'mkdir "$R/dev" "$R/proc"',
      'mount --rbind /dev "$R/dev"',
      'mount -t proc proc "$R/proc"',
      ...mounts,
      ...(container.securityContext?.readOnlyRootFilesystem ? ['mount -o remount,ro "$R"'] : []),
      'cd "$R"',
      `exec chroot --userspec=${uid}:${gid} "$R" "$@"`,
    ].join('\n');

    const log = openSync(pod.logFile, 'a');
    writeFileSync(pod.logFile, `--- start ${new Date().toISOString()} ${argv.join(' ')}\n`, { flag: 'a' });
    const child = spawn('unshare', ['-m', 'sh', '-c', script, 'pod', binary, ...argv.slice(1)], {
      env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', ...Object.fromEntries(env) },
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    pod.process = child;
    pod.stopping = false;
    pod.exited = new Promise((resolve) => child.once('exit', (code, signal) => {
      if (!pod.stopping) {
        this.unexpectedExits.push({ pod: pod.name, code, signal, logTail: this.logTail(pod.name) });
      }
      resolve();
    }));
  }

  /** Whether the pod's process is running. */
  running(podName: string): boolean {
    const p = this.podOf(podName).process;
    return !!p && p.exitCode === null && p.signalCode === null;
  }

  pid(podName: string): number {
    return this.podOf(podName).process!.pid!;
  }

  /** Sends a signal to the pod's process (by PID) and waits for it to exit. */
  async kill(podName: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const pod = this.podOf(podName);
    if (!this.running(podName)) return;
    pod.stopping = true;
    process.kill(pod.process!.pid!, signal);
    await pod.exited;
  }

  /** Stops the pod as the kubelet does: SIGTERM, then SIGKILL after the grace period. */
  async stop(podName: string, graceSeconds = 10): Promise<void> {
    const pod = this.podOf(podName);
    if (!this.running(podName)) return;
    pod.stopping = true;
    process.kill(pod.process!.pid!, 'SIGTERM');
    const timer = setTimeout(() => this.running(podName) && process.kill(pod.process!.pid!, 'SIGKILL'), graceSeconds * 1000);
    await pod.exited;
    clearTimeout(timer);
  }

  /**
   * Kills every process this runner started (SIGKILL by PID: cleanup, not a graceful stop) and
   * removes its files. Safe to call twice.
   */
  async stopAll(): Promise<void> {
    await Promise.all([...this.pods.keys()].map((p) => this.kill(p, 'SIGKILL')));
    rmSync(this.workDir, { recursive: true, force: true });
    if (claimed.delete(this.addressLock)) rmSync(this.addressLock, { force: true });
  }

  /** The last lines of the pod's log (all its starts). */
  logTail(podName: string, lines = 25): string {
    const file = this.podOf(podName).logFile;
    if (!existsSync(file)) return '';
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  }

  /** Throws with the log tails if any pod exited without being asked to. */
  assertNoUnexpectedExits(): void {
    if (this.unexpectedExits.length > 0) {
      throw new Error(this.unexpectedExits.map((e) => `pod ${e.pod} exited unexpectedly (code ${e.code}, signal ${e.signal}):\n${e.logTail}`).join('\n\n'));
    }
  }

  /** Runs one probe of the pod's container once, as the kubelet would. */
  async probe(podName: string, kind: 'startupProbe' | 'livenessProbe' | 'readinessProbe'): Promise<boolean> {
    const pod = this.podOf(podName);
    const container = this.container(pod.sts);
    const probe = container[kind];
    if (!probe) return true;
    const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
    if (probe.httpGet) {
      const port = resolvePort(container, probe.httpGet.port);
      return new Promise((resolve) => {
        const req = http.get({ host: pod.ip, port, path: probe.httpGet.path, timeout: timeoutMs }, (res) => {
          res.resume();
          resolve(res.statusCode! >= 200 && res.statusCode! < 400);
        });
        req.on('timeout', () => req.destroy());
        req.on('error', () => resolve(false));
      });
    }
    if (probe.tcpSocket) {
      const port = resolvePort(container, probe.tcpSocket.port);
      return new Promise((resolve) => {
        const socket = net.connect({ host: pod.ip, port, timeout: timeoutMs }, () => {
          socket.destroy();
          resolve(true);
        });
        socket.on('timeout', () => { socket.destroy(); resolve(false); });
        socket.on('error', () => resolve(false));
      });
    }
    if (probe.exec) {
      if (!this.running(podName)) return false;
      try {
        execFileSync('nsenter', ['--target', String(this.pid(podName)), '--mount', '--root', '--wd', '--', ...probe.exec.command], { timeout: timeoutMs, stdio: 'ignore' });
        return true;
      } catch {
        return false;
      }
    }
    throw new Error(`pod ${podName}: ${kind} has no handler`);
  }

  private podOf(podName: string): Pod {
    const existing = this.pods.get(podName);
    if (existing) return existing;
    const m = /^(.*)-([0-9]+)$/.exec(podName);
    if (!m) throw new Error(`${podName} is not a StatefulSet pod name`);
    const sts = this.statefulSet(m[1]);
    const ordinal = Number(m[2]);
    if (ordinal > 250) throw new Error(`ordinal ${ordinal} is beyond what the runner addresses`);
    const pod: Pod = { name: podName, sts, ordinal, ip: `${this.ipPrefix}.${ordinal + 1}`, logFile: join(this.workDir, 'logs', `${podName}.log`) };
    this.pods.set(podName, pod);
    return pod;
  }

  /** Gives every replica of every StatefulSet its address and DNS names before any starts. */
  private registerPods(): void {
    for (const sts of this.objects.filter((o) => o.kind === 'StatefulSet')) {
      for (const pod of this.podNames(sts.metadata.name)) {
        const known = this.pods.get(pod);
        if (known) this.pods.set(pod, Object.assign(known, { sts }));
        else this.podOf(pod);
      }
    }
    this.writeHosts();
  }

  private statefulSet(name: string): Manifest {
    const sts = this.objects.find((o) => o.kind === 'StatefulSet' && o.metadata.name === name);
    if (!sts) throw new Error(`no StatefulSet named ${name}`);
    return sts;
  }

  private container(sts: Manifest): any {
    return sts.spec.template.spec.containers[0];
  }

  /** The host directory backing one volume of one pod. */
  private volumeDir(pod: Pod, volume: string, uid: number, fsGroup: number): string {
    const claim = (pod.sts.spec.volumeClaimTemplates ?? []).find((t: any) => t.metadata.name === volume);
    if (claim) {
      const dir = join(this.workDir, 'pvc', `${volume}-${pod.name}`);
      if (!existsSync(dir)) {
        mkdirSync(dir);
        chownSync(dir, uid, fsGroup);
      }
      return dir;
    }
    const spec = (pod.sts.spec.template.spec.volumes ?? []).find((v: any) => v.name === volume);
    if (!spec) throw new Error(`pod ${pod.name}: volume ${volume} is not defined`);
    const dir = join(this.workDir, 'volumes', `${pod.name}-${volume}`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    if (spec.emptyDir) {
      chownSync(dir, uid, fsGroup);
    } else if (spec.configMap || spec.secret) {
      const kind = spec.configMap ? 'ConfigMap' : 'Secret';
      const name = spec.configMap?.name ?? spec.secret.secretName;
      const obj = this.objects.find((o) => o.kind === kind && o.metadata.name === name && (o.metadata.namespace ?? this.namespace) === this.namespace);
      if (!obj) throw new Error(`pod ${pod.name}: ${kind} ${name} does not exist`);
      const data = dataOf(obj);
      const items: Array<{ key: string; path: string }> = (spec.configMap ?? spec.secret).items ?? Object.keys(data).map((k) => ({ key: k, path: k }));
      for (const item of items) writeFileSync(join(dir, item.path), data[item.key] ?? '', { mode: 0o644 });
    } else {
      throw new Error(`pod ${pod.name}: volume ${volume} is of a type the runner does not simulate`);
    }
    return dir;
  }

  private checkImageVersion(image: string): void {
    if (!/etcd/.test(image)) return;
    const tag = /:v?([0-9]+)\.([0-9]+)\.[0-9]+(-[0-9]+)?$/.exec(image);
    const installed = installedEtcdVersion().split('.');
    if (!tag || tag[1] !== installed[0] || tag[2] !== installed[1]) {
      throw new Error(`image ${image} is not etcd ${installed[0]}.${installed[1]}, the version installed here (${installed.join('.')}): ` +
        'its flags and probes would not be the ones proven. Synthesize with Engine.etcd({ version }) matching the installed etcd.');
    }
  }

  /** One hosts file shared by all pods: their headless names and the Services' names. */
  private writeHosts(): void {
    const lines = ['127.0.0.1 localhost', '::1 localhost'];
    for (const pod of this.pods.values()) {
      lines.push(`${pod.ip} ${podDnsNames(pod.name, pod.sts.spec.serviceName, this.namespace, this.clusterDomain).join(' ')} ${pod.name}`);
    }
    for (const svc of this.objects.filter((o) => o.kind === 'Service')) {
      const sts = this.objects.find((o) => o.kind === 'StatefulSet' &&
        Object.entries(svc.spec.selector ?? {}).every(([k, v]) => o.spec.template.metadata?.labels?.[k] === v));
      const first = sts && this.pods.get(`${sts.metadata.name}-0`);
      if (first) lines.push(`${first.ip} ${serviceDnsNames(svc.metadata.name, this.namespace, this.clusterDomain).join(' ')}`);
    }
    // Rewrite in place: pods bind-mount this inode, so a rename would not reach them.
    writeFileSync(this.hostsFile, lines.join('\n') + '\n');
  }
}
