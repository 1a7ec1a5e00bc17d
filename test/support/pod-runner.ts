// Test support: runs Kubernetes pods as real processes on this machine: the pods of synthesized
// StatefulSets (named by ordinal, for tests that drive pods themselves) or any pod spec given with a
// name (for the cluster simulator, which runs the pods its controllers create).
//
// What it simulates of the kubelet and cluster DNS, for the parts the etcd tests depend on:
// - each pod its own loopback IP in a /24 claimed per runner: 127.A.B.(i+1) for a StatefulSet pod named
//   by ordinal i, the lowest free address for a pod defined with definePod(); a name keeps its address
//   for the runner's life (at most 254 names);
// - the container environment (env, envFrom, fieldRef, configMap/secret key refs) and `$(VAR)`
//   expansion in command and args, by Kubernetes' rules (see kubelet.ts), read from the objects at
//   every start (a function of the live objects can be given);
// - the image's binary: `etcd`/`etcdctl` (any path) run Debian's /usr/bin/etcd and /usr/bin/etcdctl;
//   the image's etcd minor version must match the installed one, so probes and flags are the ones proven;
//   a container without command runs its image's entrypoint when `entrypoints` names a program for the
//   image (host directories it needs bound read-only at the same path); anything else fails the start
//   with a message naming it;
// - a private root per container start, in a mount namespace (`unshare -m`): host /usr, /bin, /lib*, /etc
//   bound in, the pod's own /etc/hosts, volumes mounted at their mountPath, the root read-only when the
//   container asks for readOnlyRootFilesystem, and the process run as runAsUser/runAsGroup (chroot);
// - any container of the pod (spec.initContainers or spec.containers) started by name, several at once;
// - volumes: persistentVolumeClaim as one directory per claim name (`pvc/<claimName>`; a StatefulSet
//   pod's claims are `<template>-<pod>`), created owned by runAsUser:fsGroup on first mount and kept
//   until removeClaimData(); emptyDir fresh for every new pod start, kept across starts that ask to keep
//   it (init containers, container restarts); configMap and secret volumes written at each start with
//   the item mode, else defaultMode, else 0644, owned by root and the pod's fsGroup, in the kubelet's
//   AtomicWriter layout: the files in a timestamped directory `..<UTC time>.<random>`, a `..data`
//   symlink to it, and each top-level name a symlink into `..data` (`tls.crt -> ..data/tls.crt`); an
//   object marked `optional` that does not exist gives an empty volume;
// - a changed ConfigMap or Secret reaching running pods (refreshVolumes): the kubelet's sync of
//   configMap and secret volumes, run when the test calls it (the kubelet does it within its sync period
//   plus its cache's TTL, about a minute): for every running container, each such volume whose content
//   differs from its object is rewritten as the AtomicWriter does — a new timestamped directory, a
//   `..data_tmp` symlink to it renamed over `..data` (one atomic rename, so a reader sees the whole old
//   or the whole new set of files, never a mix within one path resolution; two separate opens, e.g. a
//   certificate then its key, can straddle the swap, as on a real node), the top-level symlinks added
//   or removed, the old directory deleted. Nothing is restarted or signalled; a process sees the
//   new files when it next opens them. A subPath mount keeps the file it was started with (as in
//   Kubernetes, subPath mounts get no updates). An object that no longer exists leaves the volume as it
//   is (the kubelet keeps the last content and retries), unless the volume is `optional` (emptied);
// - DNS: one hosts file shared by the pods maps `<hostname>.<subdomain>.<ns>.svc.<domain>` (and shorter
//   forms) and the bare pod name to each pod's IP, and every Service with a selector to one matching
//   pod: a Ready one (setReady), else a running one, lowest name first; the machine's /etc/hosts is
//   never touched;
// - probes: httpGet (2xx/3xx within timeoutSeconds), tcpSocket and exec against the pod, one at a time
//   when asked (no periodic prober and no restarts here: the cluster simulator or a test does those).
// Not simulated: scheduling, resource limits, Services' load balancing, NetworkPolicy, kubelet restarts,
// ReadWriteOnce (a claim's directory can be mounted by several pods at once).
// Every process is started by this class and stopped by PID in stopAll(), pass or fail; a process that
// exits without being asked to (and was not started to run to completion) is recorded with its log tail.
import { ChildProcess, execFileSync, spawn } from 'child_process';
import { chmodSync, chownSync, closeSync, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'fs';
import * as http from 'http';
import * as net from 'net';
import { tmpdir } from 'os';
import { basename, dirname, join } from 'path';
import { statefulSetPodSpec } from './controllers';
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

/** How a container's process ended. */
export interface ContainerExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A container's process, as started. */
export interface RunningContainer {
  readonly pid: number;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<ContainerExit>;
}

interface ContainerRun extends RunningContainer {
  readonly process: ChildProcess;
  stopping: boolean;
  runToCompletion: boolean;
  /** Its configMap and secret volumes, as started: what refreshVolumes() keeps up to date. */
  readonly objectVolumes: ObjectVolume[];
}

/** A configMap or secret volume of a running container. */
interface ObjectVolume {
  readonly volume: string;
  /** The pod's volume entry the container was started with. */
  readonly spec: any;
  /** The host directory bind-mounted into the container. */
  readonly dir: string;
  readonly fsGroup: number;
}

/** One file of a configMap or secret volume. */
interface PayloadFile {
  readonly content: string;
  readonly mode: number;
}

interface Pod {
  readonly name: string;
  spec: any;
  labels: Record<string, string>;
  readonly ip: string;
  readonly logFile: string;
  readonly runs: Map<string, ContainerRun>;
  defined: boolean;
  ready?: boolean;
}

export interface UnexpectedExit {
  readonly pod: string;
  readonly container: string;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly logTail: string;
}

export interface PodRunnerOptions {
  /** The namespace the pods run in (fieldRef metadata.namespace). */
  readonly namespace: string;
  /** @default 'cluster.local' */
  readonly clusterDomain?: string;
  /**
   * Where ConfigMaps, Secrets and Services are read from at each start and DNS refresh.
   * @default - the manifests given to the constructor or update()
   */
  readonly objects?: () => readonly Manifest[];
  /**
   * The program standing in for an image's entrypoint, for containers that give no command.
   * @default - none: a container without command fails to start
   */
  readonly entrypoints?: (image: string) => ImageEntrypoint | undefined;
}

/** A program on this machine that stands in for an image's entrypoint. */
export interface ImageEntrypoint {
  /** The program and its first arguments; the container's args follow. */
  readonly argv: readonly string[];
  /** Host directories the program needs, bound read-only at the same path in the pod. */
  readonly hostPaths?: readonly string[];
  /** Environment the program needs, under the container's own. */
  readonly env?: Readonly<Record<string, string>>;
}

/** A pod to run, as the kubelet receives it from the API server. */
export interface PodDefinition {
  readonly name: string;
  /** The pod's spec: containers, initContainers, volumes, securityContext, hostname, subdomain. */
  readonly spec: any;
  readonly labels?: Record<string, string>;
}

export interface StartOptions {
  /** The container to start, from spec.initContainers or spec.containers. @default - the first of spec.containers */
  readonly container?: string;
  /** Keep the pod's emptyDir volumes as they are (a later container of the same pod). @default false: a new pod */
  readonly keepEmptyDirs?: boolean;
  /** The process is expected to exit (an init container, a Job's): its exit is not recorded as unexpected. @default false */
  readonly runToCompletion?: boolean;
}

/**
 * Writes a configMap or secret volume's files into `dir` as the kubelet's AtomicWriter does: into a new
 * directory `..<UTC time>.<random>`, then a `..data_tmp` symlink to it renamed over `..data` (the one
 * atomic step), then a `<name> -> ..data/<name>` symlink for each top-level name, names no longer in the
 * payload removed, and the previous timestamped directory deleted. Returns false, touching nothing,
 * when the files there are already the payload.
 */
function writeAtomically(dir: string, payload: ReadonlyMap<string, PayloadFile>, gid: number): boolean {
  mkdirSync(dir, { recursive: true });
  const dataLink = join(dir, '..data');
  const previous = lstatSync(dataLink, { throwIfNoEntry: false })?.isSymbolicLink() ? readlinkSync(dataLink) : undefined;
  const topLevel = new Set([...payload.keys()].map((p) => p.split('/')[0]));
  const visible = readdirSync(dir).filter((n) => !n.startsWith('..'));
  const linked = (name: string) => lstatSync(join(dir, name), { throwIfNoEntry: false })?.isSymbolicLink() && readlinkSync(join(dir, name)) === join('..data', name);
  const upToDate = previous !== undefined && holds(join(dir, previous), payload)
    && visible.length === topLevel.size && visible.every((n) => topLevel.has(n) && linked(n));
  if (upToDate) return false;

  const stamp = new Date().toISOString().replace(/\.\d+Z$/, '').replace(/[-T:]/g, '_');
  const ts = mkdtempSync(join(dir, `..${stamp}.`));
  chmodSync(ts, 0o755);
  chownSync(ts, 0, gid);
  for (const [path, f] of payload) {
    const file = join(ts, path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, f.content);
    chmodSync(file, f.mode);
    chownSync(file, 0, gid);
  }
  const tmp = join(dir, '..data_tmp');
  rmSync(tmp, { force: true });
  symlinkSync(basename(ts), tmp);
  renameSync(tmp, dataLink);
  for (const name of topLevel) {
    if (linked(name)) continue;
    rmSync(join(dir, name), { recursive: true, force: true });
    symlinkSync(join('..data', name), join(dir, name));
  }
  for (const name of visible) if (!topLevel.has(name)) rmSync(join(dir, name), { recursive: true, force: true });
  if (previous !== undefined && previous !== basename(ts)) rmSync(join(dir, previous), { recursive: true, force: true });
  return true;
}

/** Whether the directory holds exactly the payload's files, with their content and mode. */
function holds(dir: string, payload: ReadonlyMap<string, PayloadFile>): boolean {
  const files: string[] = [];
  const walk = (rel: string) => {
    for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
      const path = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path);
      else files.push(path);
    }
  };
  if (!existsSync(dir)) return false;
  walk('');
  return files.length === payload.size && files.every((path) => {
    const f = payload.get(path);
    return f !== undefined && (statSync(join(dir, path)).mode & 0o7777) === f.mode && readFileSync(join(dir, path), 'utf8') === f.content;
  });
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
  private readonly objectSource?: () => readonly Manifest[];
  private readonly entrypoints: (image: string) => ImageEntrypoint | undefined;
  private hosts = '';

  constructor(private manifests: Manifest[], options: PodRunnerOptions) {
    this.namespace = options.namespace;
    this.clusterDomain = options.clusterDomain ?? 'cluster.local';
    this.objectSource = options.objects;
    this.entrypoints = options.entrypoints ?? (() => undefined);
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
    this.manifests = objects;
    this.registerPods();
  }

  /**
   * Defines (or redefines) a pod to run under its own name and address; the spec applies from the
   * next start. A name keeps the address it got first, so a pod re-created under it keeps its IP.
   */
  definePod(def: PodDefinition): void {
    const known = this.pods.get(def.name);
    if (known) Object.assign(known, { spec: def.spec, labels: def.labels ?? {}, defined: true });
    else this.addPod(def.name, def.spec, def.labels ?? {}, this.freeIp());
    this.refreshDns();
  }

  /** Kills the pod's processes (by PID) and removes it from DNS; its address stays reserved for its name. */
  async removePod(podName: string): Promise<void> {
    const pod = this.pods.get(podName);
    if (!pod) return;
    await this.kill(podName, 'SIGKILL');
    pod.defined = false;
    pod.ready = undefined;
    this.refreshDns();
  }

  ip(pod: string): string {
    return this.podOf(pod).ip;
  }

  /** The URL of a pod on its first container's port named `portName`. */
  url(pod: string, portName = 'client'): string {
    const p = this.podOf(pod);
    return `http://${p.ip}:${resolvePort(this.container(p), portName)}`;
  }

  podNames(stsName: string): string[] {
    const sts = this.statefulSet(stsName);
    return Array.from({ length: sts.spec.replicas ?? 1 }, (_, i) => `${stsName}-${i}`);
  }

  /** The host directory backing a PersistentVolumeClaim (it exists once a pod has mounted the claim). */
  claimDir(claimName: string): string {
    return join(this.workDir, 'pvc', claimName);
  }

  /** Deletes a claim's directory: the volume is gone (reclaimPolicy Delete). */
  removeClaimData(claimName: string): void {
    rmSync(this.claimDir(claimName), { recursive: true, force: true });
  }

  /** Starts every replica of a StatefulSet at once (Parallel pod management). */
  startStatefulSet(stsName: string): void {
    for (const pod of this.podNames(stsName)) this.start(pod);
  }

  /**
   * Starts one container of a pod (by default its first container, as a new pod: fresh emptyDirs) on
   * the pod's existing claims. Throws, starting nothing, when the container cannot run here.
   */
  start(podName: string, options: StartOptions = {}): RunningContainer {
    const pod = this.podOf(podName);
    const container = this.container(pod, options.container);
    if (this.running(podName, container.name)) {
      throw new Error(`pod ${podName} is already running (pid ${pod.runs.get(container.name)!.pid})`);
    }
    const podSpec = pod.spec;
    const objects = this.objects();
    const env = containerEnv(container, { name: pod.name, namespace: this.namespace, ip: pod.ip, labels: pod.labels }, objects);
    const entrypoint = container.command === undefined ? this.entrypoints(container.image) : undefined;
    const argv = [...(entrypoint?.argv ?? []), ...[...(container.command ?? []), ...(container.args ?? [])].map((a: string) => expand(a, env))];
    if (!entrypoint && !container.command?.length) throw new Error(`pod ${podName}: container ${container.name} has no command, and the entrypoint of image ${container.image} is not simulated`);
    const binary = entrypoint ? argv[0] : BINARIES[argv[0].split('/').pop()!];
    if (!binary) throw new Error(`pod ${podName}: container ${container.name} runs ${argv[0]}, which is not a simulated binary (only ${Object.keys(BINARIES).join(', ')})`);
    if (!entrypoint) this.checkImageVersion(container.image);

    const uid = container.securityContext?.runAsUser ?? podSpec.securityContext?.runAsUser ?? 0;
    const gid = container.securityContext?.runAsGroup ?? podSpec.securityContext?.runAsGroup ?? 0;
    const fsGroup = podSpec.securityContext?.fsGroup ?? gid;
    const root = join(this.workDir, 'roots', `${pod.name}-${container.name}`);
    mkdirSync(root, { recursive: true });

    const mounts: string[] = (entrypoint?.hostPaths ?? []).flatMap((p) => [
      `mkdir -p "$R"${sq(p)}`, `mount --bind ${sq(p)} "$R"${sq(p)}`, `mount -o remount,ro,bind "$R"${sq(p)}`,
    ]);
    const objectVolumes: ObjectVolume[] = [];
    for (const m of container.volumeMounts ?? []) {
      const source = this.volumeDir(pod, m.name, uid, fsGroup, objects, options.keepEmptyDirs ?? false);
      const volumeSpec = (podSpec.volumes ?? []).find((v: any) => v.name === m.name);
      if ((volumeSpec.configMap || volumeSpec.secret) && !objectVolumes.some((v) => v.dir === source)) {
        objectVolumes.push({ volume: m.name, spec: volumeSpec, dir: source, fsGroup });
      }
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
      `cd "$R"${sq(container.workingDir ?? '/')}`,
      `exec chroot --userspec=${uid}:${gid} "$R" "$@"`,
    ].join('\n');

    const log = openSync(pod.logFile, 'a');
    writeFileSync(pod.logFile, `--- start ${new Date().toISOString()} ${container.name}: ${argv.join(' ')}\n`, { flag: 'a' });
    const child = spawn('unshare', ['-m', 'sh', '-c', script, 'pod', binary, ...argv.slice(1)], {
      env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', ...entrypoint?.env, ...Object.fromEntries(env) },
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    const exited = new Promise<ContainerExit>((resolve) => child.once('exit', (code, signal) => {
      if (!run.stopping && !run.runToCompletion) {
        this.unexpectedExits.push({ pod: pod.name, container: container.name, code, signal, logTail: this.logTail(pod.name) });
      }
      resolve({ code, signal });
      this.refreshDns();
    }));
    const run: ContainerRun = { process: child, pid: child.pid!, exited, stopping: false, runToCompletion: options.runToCompletion ?? false, objectVolumes };
    pod.runs.set(container.name, run);
    this.refreshDns();
    return { pid: run.pid, exited };
  }

  /** Whether a container of the pod (by default its first) is running. */
  running(podName: string, container?: string): boolean {
    const pod = this.pods.get(podName);
    const p = pod && pod.runs.get(container ?? this.container(pod).name)?.process;
    return !!p && p.exitCode === null && p.signalCode === null;
  }

  /** The PID of the pod's container (by default its first), running or last run. */
  pid(podName: string, container?: string): number {
    const pod = this.podOf(podName);
    const run = pod.runs.get(container ?? this.container(pod).name);
    if (!run) throw new Error(`pod ${podName} has not run container ${container ?? this.container(pod).name}`);
    return run.pid;
  }

  /** Sends a signal to every running container of the pod (by PID) and waits for them to exit. */
  async kill(podName: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const pod = this.pods.get(podName);
    if (!pod) return;
    await Promise.all([...pod.runs].filter(([name]) => this.running(podName, name)).map(([, run]) => {
      run.stopping = true;
      process.kill(run.pid, signal);
      return run.exited;
    }));
  }

  /** Stops the pod as the kubelet does: SIGTERM to every container, then SIGKILL after the grace period. */
  async stop(podName: string, graceSeconds = 10): Promise<void> {
    const pod = this.pods.get(podName);
    if (!pod) return;
    await Promise.all([...pod.runs].filter(([name]) => this.running(podName, name)).map(async ([name, run]) => {
      run.stopping = true;
      process.kill(run.pid, 'SIGTERM');
      const timer = setTimeout(() => this.running(podName, name) && process.kill(run.pid, 'SIGKILL'), graceSeconds * 1000);
      await run.exited;
      clearTimeout(timer);
    }));
  }

  /**
   * What the kubelet does when a mounted ConfigMap or Secret changes (see the header): rewrites each
   * configMap and secret volume of every running container whose files differ from its object, in the
   * AtomicWriter's way (new timestamped directory, `..data` swapped by one rename). Restarts and
   * signals nothing: a process sees the new content when it next opens the files.
   * @param objects the objects as they are now, replacing the manifests as update() does (running
   *   containers keep the volumes they were started with); omit to sync from the current objects (a
   *   runner created with `options.objects` reads them there, and refuses `objects`)
   * @returns the volumes rewritten, as `<pod>/<volume>`, pods in name order
   */
  refreshVolumes(objects?: Manifest[]): string[] {
    if (objects) {
      if (this.objectSource) throw new Error('this runner reads its objects from options.objects: change what that returns and call refreshVolumes() without objects');
      this.update(objects);
    }
    const current = this.objects();
    const refreshed: string[] = [];
    const pods = [...this.pods.values()].sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
    for (const pod of pods) {
      const done = new Set<string>();
      for (const [name, run] of pod.runs) {
        if (!this.running(pod.name, name)) continue;
        for (const v of run.objectVolumes) {
          if (done.has(v.dir)) continue;
          done.add(v.dir);
          const payload = this.payload(pod.name, v.spec, current);
          if (payload && writeAtomically(v.dir, payload, v.fsGroup)) refreshed.push(`${pod.name}/${v.volume}`);
        }
      }
    }
    return refreshed;
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

  /** The last lines of the pod's log (all its containers and starts). */
  logTail(podName: string, lines = 25): string {
    const file = this.podOf(podName).logFile;
    if (!existsSync(file)) return '';
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  }

  /**
   * What a container wrote (stdout and stderr) since its last start, as `kubectl logs` shows it; undefined
   * for a pod the runner has not run or a container that has not started.
   */
  containerLog(podName: string, container: string): string | undefined {
    const file = this.pods.get(podName)?.logFile;
    if (!file || !existsSync(file)) return undefined;
    const runs = readFileSync(file, 'utf8').split(/^(?=--- start )/m);
    const last = runs.filter((r) => r.startsWith(`--- start `) && r.slice(0, r.indexOf('\n')).split(' ')[3] === `${container}:`).pop();
    return last === undefined ? undefined : last.slice(last.indexOf('\n') + 1);
  }

  /** Throws with the log tails if any pod exited without being asked to. */
  assertNoUnexpectedExits(): void {
    if (this.unexpectedExits.length > 0) {
      throw new Error(this.unexpectedExits.map((e) => `pod ${e.pod} exited unexpectedly (code ${e.code}, signal ${e.signal}, container ${e.container}):\n${e.logTail}`).join('\n\n'));
    }
  }

  /** Records whether the pod is Ready, which decides what Service names resolve to. */
  setReady(podName: string, ready: boolean): void {
    const pod = this.podOf(podName);
    if (pod.ready === ready) return;
    pod.ready = ready;
    this.refreshDns();
  }

  /** Runs one probe of the pod's container (by default its first) once, as the kubelet would. */
  async probe(podName: string, kind: 'startupProbe' | 'livenessProbe' | 'readinessProbe', containerName?: string): Promise<boolean> {
    const pod = this.podOf(podName);
    const container = this.container(pod, containerName);
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
      if (!this.running(podName, container.name)) return false;
      try {
        execFileSync('nsenter', ['--target', String(this.pid(podName, container.name)), '--mount', '--root', '--wd', '--', ...probe.exec.command], { timeout: timeoutMs, stdio: 'ignore' });
        return true;
      } catch {
        return false;
      }
    }
    throw new Error(`pod ${podName}: ${kind} has no handler`);
  }

  /**
   * Rewrites the hosts file the pods share when what it says has changed: pod names, and each Service
   * with a selector mapped to one matching pod (Ready first, then running, then lowest name).
   */
  refreshDns(): void {
    const lines = ['127.0.0.1 localhost', '::1 localhost'];
    const defined = [...this.pods.values()].filter((p) => p.defined).sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
    for (const pod of defined) {
      const { hostname, subdomain } = pod.spec;
      const names = hostname && subdomain ? podDnsNames(hostname, subdomain, this.namespace, this.clusterDomain) : [];
      lines.push(`${pod.ip} ${[...names, pod.name].join(' ')}`);
    }
    const rank = (p: Pod) => (p.ready ? 0 : [...p.runs.keys()].some((c) => this.running(p.name, c)) ? 1 : 2);
    const services = this.objects().filter((o) => o.kind === 'Service' && (o.metadata.namespace ?? this.namespace) === this.namespace && o.spec?.selector);
    for (const svc of services) {
      const target = defined
        .filter((p) => Object.entries(svc.spec.selector).every(([k, v]) => p.labels[k] === v))
        .sort((a, b) => rank(a) - rank(b))[0];
      if (target) lines.push(`${target.ip} ${serviceDnsNames(svc.metadata.name, this.namespace, this.clusterDomain).join(' ')}`);
    }
    const hosts = lines.join('\n') + '\n';
    if (hosts === this.hosts || !existsSync(this.workDir)) return;
    this.hosts = hosts;
    // Rewrite in place: pods bind-mount this inode, so a rename would not reach them.
    writeFileSync(this.hostsFile, hosts);
  }

  private objects(): readonly Manifest[] {
    return this.objectSource ? this.objectSource() : this.manifests;
  }

  private addPod(name: string, spec: any, labels: Record<string, string>, ip: string): Pod {
    const taken = [...this.pods.values()].find((p) => p.ip === ip);
    if (taken) throw new Error(`pod ${name}: address ${ip} is already pod ${taken.name}'s`);
    const pod: Pod = { name, spec, labels, ip, logFile: join(this.workDir, 'logs', `${name}.log`), runs: new Map(), defined: true };
    this.pods.set(name, pod);
    return pod;
  }

  private freeIp(): string {
    const used = new Set([...this.pods.values()].map((p) => p.ip));
    for (let host = 1; host <= 254; host++) {
      if (!used.has(`${this.ipPrefix}.${host}`)) return `${this.ipPrefix}.${host}`;
    }
    throw new Error(`no free address left in ${this.ipPrefix}.0/24`);
  }

  /** A known pod, or a StatefulSet pod of the manifests named by ordinal. */
  private podOf(podName: string): Pod {
    const existing = this.pods.get(podName);
    if (existing) return existing;
    const m = /^(.*)-([0-9]+)$/.exec(podName);
    if (!m) throw new Error(`${podName} is neither a defined pod nor a StatefulSet pod name`);
    const sts = this.statefulSet(m[1]);
    const ordinal = Number(m[2]);
    if (ordinal > 250) throw new Error(`ordinal ${ordinal} is beyond what the runner addresses`);
    return this.addPod(podName, statefulSetPodSpec(sts.spec, sts.spec.template, podName), sts.spec.template.metadata?.labels ?? {}, `${this.ipPrefix}.${ordinal + 1}`);
  }

  /** Gives every replica of every StatefulSet its address and DNS names before any starts. */
  private registerPods(): void {
    for (const sts of this.manifests.filter((o) => o.kind === 'StatefulSet')) {
      for (const name of this.podNames(sts.metadata.name)) {
        const known = this.pods.get(name);
        if (known) Object.assign(known, { spec: statefulSetPodSpec(sts.spec, sts.spec.template, name), labels: sts.spec.template.metadata?.labels ?? {} });
        else this.podOf(name);
      }
    }
    this.refreshDns();
  }

  private statefulSet(name: string): Manifest {
    const sts = this.manifests.find((o) => o.kind === 'StatefulSet' && o.metadata.name === name);
    if (!sts) throw new Error(`no StatefulSet named ${name}`);
    return sts;
  }

  private container(pod: Pod, name?: string): any {
    if (name === undefined) return pod.spec.containers[0];
    const found = [...(pod.spec.initContainers ?? []), ...pod.spec.containers].find((c: any) => c.name === name);
    if (!found) throw new Error(`pod ${pod.name} has no container ${name}`);
    return found;
  }

  /** The host directory backing one volume of one pod. */
  private volumeDir(pod: Pod, volume: string, uid: number, fsGroup: number, objects: readonly Manifest[], keepEmptyDirs: boolean): string {
    const spec = (pod.spec.volumes ?? []).find((v: any) => v.name === volume);
    if (!spec) throw new Error(`pod ${pod.name}: volume ${volume} is not defined`);
    if (spec.persistentVolumeClaim) {
      const dir = this.claimDir(spec.persistentVolumeClaim.claimName);
      if (!existsSync(dir)) {
        mkdirSync(dir);
        chownSync(dir, uid, fsGroup);
      }
      return dir;
    }
    const dir = join(this.workDir, 'volumes', `${pod.name}-${volume}`);
    if (spec.emptyDir) {
      if (keepEmptyDirs && existsSync(dir)) return dir;
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir);
      chownSync(dir, uid, fsGroup);
    } else if (spec.configMap || spec.secret) {
      // Written in place (the directory stays what other running containers of the pod have mounted).
      const payload = this.payload(pod.name, spec, objects);
      if (!payload) throw new Error(`pod ${pod.name}: ${spec.configMap ? 'ConfigMap' : 'Secret'} ${spec.configMap?.name ?? spec.secret.secretName} does not exist`);
      writeAtomically(dir, payload, fsGroup ?? 0);
    } else {
      throw new Error(`pod ${pod.name}: volume ${volume} is of a type the runner does not simulate`);
    }
    return dir;
  }

  /**
   * The files of a configMap or secret volume from the objects: relative path → content and mode.
   * Undefined when the object does not exist and the volume is not optional (an optional one is empty).
   */
  private payload(podName: string, spec: any, objects: readonly Manifest[]): Map<string, PayloadFile> | undefined {
    const kind = spec.configMap ? 'ConfigMap' : 'Secret';
    const source = spec.configMap ?? spec.secret;
    const name = spec.configMap?.name ?? spec.secret.secretName;
    const obj = objects.find((o) => o.kind === kind && o.metadata.name === name && (o.metadata.namespace ?? this.namespace) === this.namespace);
    if (!obj) return source.optional ? new Map() : undefined;
    const data = dataOf(obj);
    const items: Array<{ key: string; path: string; mode?: number }> = source.items ?? Object.keys(data).map((k) => ({ key: k, path: k }));
    // As the kubelet writes them: the item's mode, else defaultMode, else 0644; owned by root and,
    // with an fsGroup, by that group (so a 0440 Secret is readable by the pod's user through it).
    const files = new Map<string, PayloadFile>();
    for (const item of items) {
      const parts = item.path.split('/');
      if (item.path.startsWith('/') || item.path.startsWith('..') || parts.includes('..') || parts.includes('')) {
        throw new Error(`pod ${podName}: ${kind} ${name}: item path '${item.path}' is not a relative path without '..' (the kubelet refuses it)`);
      }
      // The kubelet's own check: a listed key the object lacks fails the mount unless the volume is optional.
      if (!(item.key in data)) {
        if (source.optional) continue;
        throw new Error(`pod ${podName}: MountVolume.SetUp failed: ${kind} ${name} ${kind === 'Secret' ? `references non-existent secret key: ${item.key}` : `configmap references non-existent config key: ${item.key}`}`);
      }
      files.set(item.path, { content: data[item.key], mode: item.mode ?? source.defaultMode ?? 0o644 });
    }
    return files;
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
}
