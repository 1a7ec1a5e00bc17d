// Test support: a cluster simulator on top of the API server double: the StatefulSet, Job, CronJob (on
// demand), PVC and garbage-collector behaviour a reconciler's day-2 operations depend on, and a kubelet
// that runs the pods as real processes through the pod runner. Code that talks to the double through
// @kubernetes/client-node sees objects change as in a cluster; tests reach the pods' processes.
//
// What it simulates, for one namespace (objects elsewhere are ignored), reacting to every change the
// double reports (onChange) and re-checking every 200 ms; controllers read and write the double directly
// (no HTTP requests, so api.requests holds only what clients sent; writes carry no managedFields entry):
// - StatefulSet controller (rules of kube-controller-manager's): pods `<sts>-<i>` for i < spec.replicas,
//   missing claims `<template>-<sts>-<i>` created first (claim template spec, selector labels, bound at
//   once; owned by the set when persistentVolumeClaimRetentionPolicy.whenDeleted is Delete), then the Pod
//   (template labels and annotations, statefulset.kubernetes.io/pod-name, apps.kubernetes.io/pod-index,
//   controller-revision-hash `<sts>-<10 hex chars of a template hash>`, a controller ownerReference,
//   hostname/subdomain and persistentVolumeClaim volumes); podManagementPolicy Parallel (all at once) or
//   OrderedReady (one at a time, each once the lower ordinals are Ready; scale-down one at a time,
//   highest first, while the rest are Ready); scale-down deletes ordinals >= replicas highest first and
//   keeps their claims unless whenScaled is Delete; RollingUpdate (honouring partition; ordinals below it
//   are created from the current revision) deletes the highest pod on an old revision, one at a time,
//   only while every pod is Ready, and it comes back on the update revision; OnDelete does nothing;
//   orphaned pods (no controller) matching the selector and named `<sts>-<i>` are adopted (same
//   processes); status through the status path: replicas (terminating pods included, as the
//   controller counts them), readyReplicas, currentReplicas and updatedReplicas (terminating pods left
//   out; zero counts omitted, as the API does), availableReplicas (minReadySeconds),
//   observedGeneration, currentRevision (becomes the update revision once a RollingUpdate is done),
//   updateRevision, collisionCount. Old templates are remembered in memory (no ControllerRevisions);
// - Job controller: one pod at a time (`<job>-<5 chars>`, labels job-name, batch.kubernetes.io/job-name,
//   controller-uid, batch.kubernetes.io/controller-uid, a controller ownerReference); on success
//   status.succeeded and a Complete condition; on failure a new pod after a short backoff (0.2 s doubling,
//   at most 2 s) until more than spec.backoffLimit (default 6) pods failed, then a Failed condition
//   (BackoffLimitExceeded) whose message names the last failed pod and ends with its log tail;
//   activeDeadlineSeconds (DeadlineExceeded); status startTime, completionTime, active, ready, succeeded,
//   failed (zero counts omitted). triggerCronJob() does what the CronJob controller does at a schedule;
// - PVCs: every claim is bound at once (phase Bound, capacity = requested storage); growing
//   spec.resources.requests.storage of a bound claim sets status.capacity.storage (resizer and online
//   file-system expansion); a claim's data is a directory (PodRunner.claimDir) removed when the claim is
//   deleted (reclaimPolicy Delete). Storage protection: a claim deleted through the API while a pod the
//   kubelet has taken on (Kubernetes: scheduled) mounts it and has not finished, or a process of such a
//   pod still runs, is put back at once with deletionTimestamp and the kubernetes.io/pvc-protection
//   finalizer (same uid), and removed with its data once nothing uses it, as the pvc-protection
//   controller does; a pod waiting for a claim (Pending) does not hold it;
// - garbage collector: an object (Pod, Job, PVC) whose owners are all gone (looked up by kind, name and
//   uid; owners of kinds the double does not serve count as present) is deleted, unless the owner
//   was deleted with propagationPolicy Orphan, in which case the ownerReferences to it are removed (the
//   double removes an owner at once whatever the policy; Foreground acts as Background here);
// - kubelet: each Pod object runs through the pod runner (its own loopback IP, kept per pod name; DNS for
//   pods by hostname/subdomain and for Services, a Service name resolving to a Ready pod; ConfigMaps and
//   Secrets read from the double at every container start, so a change reaches the next start, not
//   running containers); init containers one after another to completion, then every container; a pod
//   waits (Pending) while a claim it mounts is missing, unbound or being deleted; a container without
//   command runs its image's entrypoint when one is known (reconcilerEntrypoint by default: the
//   reconciler's image runs this working tree's apps/reconcile.ts); restartPolicy Always:
//   a container that exits or cannot start (CreateContainerConfigError) is restarted after a backoff
//   (0.5 s doubling, at most 4 s) with restartCount bumped; Never and OnFailure: the pod ends Succeeded or
//   Failed (OnFailure does not restart in place); a container's log (stdout and stderr, its last start)
//   through the double's pods/{name}/log; startupProbe every 0.2 s until it passes, then
//   readinessProbe every 0.5 s (failureThreshold honoured; periods compressed from the spec's); a
//   terminating pod is not Ready;
//   Pod status: phase, conditions (PodScheduled, Initialized, ContainersReady, Ready with
//   lastTransitionTime), podIP/podIPs, hostIP 127.0.0.1, startTime, initContainerStatuses and
//   containerStatuses (ready, started, restartCount, state, lastState); deletion is graceful: a Pod
//   deleted through the API is put back at once with deletionTimestamp (same uid), its containers get
//   SIGTERM, SIGKILL after gracePeriodSeconds (else terminationGracePeriodSeconds, else 30 s), then the
//   object is removed; the StatefulSet controller re-creates it;
// - cert-manager (stand-in, cert-manager.io/v1 Issuers and Certificates of the namespace): a Certificate
//   is issued once per spec (again when its spec changes or its Secret is gone), once its Issuer is ready,
//   by CertIssuer (cert-issuer.ts: real keys and certificates) over the Issuers, the Certificates due and
//   the Secrets stored now; the kubernetes.io/tls Secret is written into the double, where the kubelet
//   finds it at the next container start. A Certificate whose Issuer is missing or not ready waits.
// What it does NOT simulate: livenessProbe (no liveness restarts), startupProbe failureThreshold,
// scheduling, nodes, resource limits, parallel or indexed Jobs (parallelism and completions other than
// 1), Job suspend, podFailurePolicy, ttlSecondsAfterFinished, CronJob schedules, concurrencyPolicy and
// history limits, ControllerRevision objects, maxUnavailable, the StatefulSet `ordinals` field,
// StorageClasses (allowVolumeExpansion is not checked, every claim binds), ReadWriteOnce exclusivity,
// Services' endpoints, NetworkPolicy (not enforced: every pod reaches every other), the Events of
// Kubernetes' own controllers and kubelet (the double stores the Events clients record: the reconciler's
// are there; the simulated controllers record none), in-cluster API access from pods, namespaces other than the one given, and of cert-manager: renewal timing
// (nothing is renewed), status conditions (Certificates and Issuers get no status), CertificateRequests,
// ClusterIssuers and issuer types other than selfSigned and ca.
// Every process is started through the pod runner and stopped by PID in stop(), pass or fail.
import { randomBytes } from 'crypto';
import { join, resolve } from 'path';
import { ApiServer, ChangeEvent, KubeObject, selectorMatches } from './api-server';
import { CertIssuer } from './cert-issuer';
import {
  boundStatus, controllerRef, controllerUid, cronJobJob, jobPod, nextStatefulSetSteps, ordinalOf, podView,
  revisionName, statefulSetClaims, statefulSetPod, statefulSetStatus,
} from './controllers';
import { ImageEntrypoint, PodRunner } from './pod-runner';

type Json = Record<string, any>;

const RESYNC_MS = 200;
const STARTUP_PROBE_MS = 200;
const READINESS_PROBE_MS = 500;
const restartBackoffMs = (restarts: number) => Math.min(500 * 2 ** Math.max(0, restarts - 1), 4000);
const jobBackoffMs = (failures: number) => Math.min(200 * 2 ** Math.max(0, failures - 1), 2000);

const POD = ['v1', 'Pod'] as const;
const PVC = ['v1', 'PersistentVolumeClaim'] as const;
const STS = ['apps/v1', 'StatefulSet'] as const;
const JOB = ['batch/v1', 'Job'] as const;
const CRONJOB = ['batch/v1', 'CronJob'] as const;
const SECRET = ['v1', 'Secret'] as const;
const ISSUER = ['cert-manager.io/v1', 'Issuer'] as const;
const CERTIFICATE = ['cert-manager.io/v1', 'Certificate'] as const;
const DEPENDENT_KINDS = [POD, JOB, PVC];

export interface ClusterSimulatorOptions {
  /** The namespace simulated; objects in others are ignored. @default 'kvtest' */
  readonly namespace?: string;
  /** @default 'cluster.local' */
  readonly clusterDomain?: string;
  /**
   * Programs standing in for images' entrypoints (containers without command).
   * @default reconcilerEntrypoint: `…/kvstore-reconciler` images run this working tree's reconciler
   */
  readonly entrypoints?: (image: string) => ImageEntrypoint | undefined;
}

const REPO_ROOT = resolve(__dirname, '..', '..');

/**
 * The reconciler's image (any registry and tag, repository `…/kvstore-reconciler`) runs
 * `kvstore-reconcile` from this working tree: apps/reconcile.ts through ts-node, as the tests spawn it.
 */
export function reconcilerEntrypoint(image: string): ImageEntrypoint | undefined {
  const repository = image.replace(/@.*$/, '').replace(/:[^/:]*$/, '');
  if (repository.split('/').pop() !== 'kvstore-reconciler') return undefined;
  return {
    argv: [process.execPath, '-r', require.resolve('ts-node/register/transpile-only'), join(REPO_ROOT, 'apps', 'reconcile.ts')],
    hostPaths: [REPO_ROOT],
    // ts-node looks for its tsconfig from the working directory, which is the pod's root.
    env: { TS_NODE_PROJECT: join(REPO_ROOT, 'tsconfig.json') },
  };
}

interface ContainerState {
  readonly name: string;
  readonly image: string;
  restartCount: number;
  started: boolean;
  ready: boolean;
  state: Json;
  lastState: Json;
}

interface PodRuntime {
  readonly name: string;
  readonly uid: string;
  readonly restartPolicy: string;
  readonly startTime: string;
  readonly claims: readonly string[];
  readonly init: ContainerState[];
  readonly containers: ContainerState[];
  phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed';
  initialized: boolean;
  ready: boolean;
  readyTransition: string;
  /** Set once a container has started, so later containers keep the pod's emptyDirs. */
  sandbox: boolean;
  message?: string;
  stopping: boolean;
  task?: Promise<void>;
  termination?: Promise<void>;
}

const now = () => new Date().toISOString();
const isTerminal = (pod: KubeObject) => pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
const claimsOf = (podSpec: Json): string[] => (podSpec.volumes ?? []).filter((v: Json) => v.persistentVolumeClaim).map((v: Json) => v.persistentVolumeClaim.claimName);
const hasCondition = (obj: KubeObject, type: string) => (obj.status?.conditions ?? []).some((c: Json) => c.type === type && c.status === 'True');
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

export class ClusterSimulator {
  /** Starts the controllers and the kubelet on a running API double. Stop it with stop() in afterEach/afterAll. */
  static start(api: ApiServer, options: ClusterSimulatorOptions = {}): ClusterSimulator {
    return new ClusterSimulator(api, options);
  }

  readonly namespace: string;
  /** The pod runner the kubelet uses (logs, claim directories, unexpected exits). */
  readonly runner: PodRunner;
  /** Errors the controllers met (a bug in the simulator, not in the code under test); wait helpers throw them. */
  readonly errors: Error[] = [];
  private readonly runtimes = new Map<string, PodRuntime>();
  private readonly templates = new Map<string, Json>();
  private readonly deletedWith = new Map<string, string>();
  /** Certificate uid → the spec (JSON) last issued for it. */
  private readonly issuedFor = new Map<string, string>();
  private readonly tasks = new Set<Promise<void>>();
  private readonly pauses = new Set<{ timer: NodeJS.Timeout; resolve: () => void; rt?: PodRuntime }>();
  private readonly unsubscribe: () => void;
  private readonly loop: Promise<void>;
  private stopped = false;
  private stopping?: Promise<void>;
  private dirty = true;
  private wake?: () => void;

  private constructor(private readonly api: ApiServer, options: ClusterSimulatorOptions) {
    this.namespace = options.namespace ?? 'kvtest';
    this.runner = new PodRunner([], {
      namespace: this.namespace,
      clusterDomain: options.clusterDomain,
      entrypoints: options.entrypoints ?? reconcilerEntrypoint,
      objects: () => ['ConfigMap', 'Secret', 'Service'].flatMap((kind) => this.api.list('v1', kind, this.namespace)) as any,
    });
    this.unsubscribe = api.onChange((e) => this.changed(e));
    // The kubelet serves the container logs the API's pods/{name}/log proxies to.
    api.podLogs = (namespace, pod, container) => (namespace === this.namespace && container ? this.runner.containerLog(pod, container) : undefined);
    this.loop = this.run();
  }

  /**
   * Stops the controllers, kills every process the simulator started (SIGKILL by PID) and removes its
   * files. Safe to call more than once, and when the double is already stopped.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.stopped = true;
      this.unsubscribe();
      this.pauses.forEach((p) => this.endPause(p));
      this.wake?.();
      await this.loop;
      await this.runner.stopAll();
      await Promise.all([...this.tasks]);
    })();
    return this.stopping;
  }

  /** The URL of a running pod on its first container's port named `portName` (etcd's client URL by default). */
  url(pod: string, portName = 'client'): string {
    if (!this.running(pod)) throw new Error(`pod ${pod} is not running`);
    return this.runner.url(pod, portName);
  }

  /** Client URLs of the StatefulSet's pods whose first container is running, by ordinal. */
  endpoints(stsName: string, portName = 'client'): string[] {
    return this.podsOf(stsName).filter((p) => this.running(p)).map((p) => this.runner.url(p, portName));
  }

  /** Whether the pod's first container is running. */
  running(pod: string): boolean {
    const rt = this.runtimes.get(pod);
    return !!rt && this.runner.running(pod, rt.containers[0]?.name);
  }

  /** The PID of the pod's first container while it runs, else undefined. */
  pid(pod: string): number | undefined {
    return this.running(pod) ? this.runner.pid(pod) : undefined;
  }

  /** PIDs of the StatefulSet's running pods by pod name, to prove pods kept (or did not keep) running. */
  pids(stsName: string): Record<string, number> {
    return Object.fromEntries(this.podsOf(stsName).filter((p) => this.running(p)).map((p) => [p, this.runner.pid(p)]));
  }

  /** The host directory holding a PersistentVolumeClaim's data (created when a pod first mounts it). */
  claimDir(claimName: string): string {
    return this.runner.claimDir(claimName);
  }

  /** The last lines of a pod's log, every container and start. */
  logTail(pod: string, lines = 25): string {
    return this.runner.logTail(pod, lines);
  }

  /** Waits until the StatefulSet has observed its generation and reports `replicas` pods, all ready. */
  async waitForReady(stsName: string, replicas: number, timeoutMs = 30_000): Promise<KubeObject> {
    return this.waitUntil(`StatefulSet ${stsName} to report ${replicas} ready`, () => {
      const sts = this.api.get(...STS, this.namespace, stsName);
      const s = sts?.status ?? {};
      return sts && s.observedGeneration === sts.metadata.generation && s.replicas === replicas && (s.readyReplicas ?? 0) === replicas ? sts : undefined;
    }, timeoutMs, () => {
      const s = this.api.get(...STS, this.namespace, stsName)?.status;
      return `status ${JSON.stringify(s)}; pods ${this.podsOf(stsName).map((p) => `${p}:${this.running(p) ? 'running' : 'stopped'}`).join(' ')}`;
    });
  }

  /** Waits until the Job has a Complete or Failed condition; returns it. */
  async waitForJob(jobName: string, timeoutMs = 30_000): Promise<KubeObject> {
    return this.waitUntil(`Job ${jobName} to finish`, () => {
      const job = this.api.get(...JOB, this.namespace, jobName);
      return job && (hasCondition(job, 'Complete') || hasCondition(job, 'Failed')) ? job : undefined;
    }, timeoutMs, () => JSON.stringify(this.api.get(...JOB, this.namespace, jobName)?.status));
  }

  /** Polls `check` (which must not throw) until it returns a value; fails early with the simulator's own errors. */
  async waitUntil<T>(what: string, check: () => T | undefined | false, timeoutMs = 30_000, describe?: () => string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.errors.length > 0) throw new Error(`cluster simulator failed: ${this.errors.map((e) => e.stack ?? e.message).join('\n')}`);
      const result = check();
      if (result !== undefined && result !== false) return result;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${describe ? `: ${describe()}` : ''}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /**
   * Creates the Job a CronJob's schedule would, from its jobTemplate, named `<cronjob>-<minutes since
   * the epoch>` (the CronJob controller's naming); returns the Job's name. Throws when the CronJob is
   * missing or already ran this minute.
   */
  triggerCronJob(name: string): string {
    const cronJob = this.api.get(...CRONJOB, this.namespace, name);
    if (!cronJob) throw new Error(`CronJob ${this.namespace}/${name} does not exist`);
    const job = cronJobJob(cronJob, new Date());
    if (this.api.get(...JOB, this.namespace, job.metadata.name!)) throw new Error(`Job ${job.metadata.name} exists: CronJob ${name} already ran this minute`);
    this.api.put(job);
    this.api.put({ ...cronJob, status: { ...cronJob.status, lastScheduleTime: job.metadata.annotations!['batch.kubernetes.io/cronjob-scheduled-timestamp'] } });
    return job.metadata.name!;
  }

  // --- the loop

  private changed(e: ChangeEvent): void {
    if (e.object.metadata.namespace !== this.namespace || this.stopped) return;
    if (e.type === 'DELETED') {
      this.deletedWith.set(e.object.metadata.uid!, e.propagationPolicy ?? 'Background');
      try {
        if (e.object.kind === 'Pod') this.keepTerminatingPod(e.object, e.gracePeriodSeconds);
        if (e.object.kind === 'PersistentVolumeClaim') this.deleteClaim(e.object);
      } catch (err) {
        this.errors.push(err as Error);
      }
    }
    this.kick();
  }

  private kick(): void {
    this.dirty = true;
    this.wake?.();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      if (!this.dirty) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, RESYNC_MS);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wake = undefined;
      }
      if (this.stopped) return;
      // Yield between passes, so requests and processes' events are served even while passes write.
      await new Promise((resolve) => setImmediate(resolve));
      this.dirty = false;
      try {
        // One synchronous pass: nothing else reads or writes the double meanwhile.
        this.collectGarbage();
        this.reconcileClaims();
        this.issueCertificates();
        this.runKubelet();
        this.reconcileJobs();
        this.reconcileStatefulSets();
        this.runner.refreshDns();
      } catch (e) {
        this.errors.push(e as Error);
        await this.pause(RESYNC_MS);
      }
    }
  }

  private track(task: Promise<void>): Promise<void> {
    const tracked = task.catch((e) => {
      if (!this.stopped) this.errors.push(e as Error);
    }).finally(() => this.tasks.delete(tracked));
    this.tasks.add(tracked);
    return tracked;
  }

  /** Waits `ms`, or less when the simulator stops or the pod `rt` is being stopped. */
  private pause(ms: number, rt?: PodRuntime): Promise<void> {
    if (this.stopped || rt?.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const entry = { timer: setTimeout(() => this.endPause(entry), ms), resolve, rt };
      this.pauses.add(entry);
    });
  }

  private endPause(entry: { timer: NodeJS.Timeout; resolve: () => void }): void {
    clearTimeout(entry.timer);
    this.pauses.delete(entry);
    entry.resolve();
  }

  private list(kind: readonly [string, string]): KubeObject[] {
    return this.api.list(kind[0], kind[1], this.namespace);
  }

  /** Writes `status` onto the live object when it differs (read and written in one synchronous step). */
  private writeStatus(kind: readonly [string, string], name: string, uid: string, status: Json): void {
    const live = this.api.get(kind[0], kind[1], this.namespace, name);
    if (!live || live.metadata.uid !== uid || same(live.status, status)) return;
    this.api.put({ ...live, status });
  }

  private podsOf(stsName: string): string[] {
    return this.list(POD).map((p) => p.metadata.name!).filter((n) => ordinalOf(stsName, n) !== undefined)
      .sort((a, b) => ordinalOf(stsName, a)! - ordinalOf(stsName, b)!);
  }

  // --- garbage collector

  /** Whether the owner a reference names exists with that uid; owners of kinds the double does not serve count as present. */
  private ownerExists(ref: Json): boolean {
    try {
      return this.api.get(ref.apiVersion, ref.kind, this.namespace, ref.name)?.metadata.uid === ref.uid;
    } catch {
      return true;
    }
  }

  private collectGarbage(): void {
    for (const kind of DEPENDENT_KINDS) {
      for (const obj of this.list(kind)) {
        const refs: Json[] = obj.metadata.ownerReferences ?? [];
        const gone = refs.filter((r) => !this.ownerExists(r));
        if (gone.length === 0) continue;
        const orphaned = gone.every((r) => this.deletedWith.get(r.uid) === 'Orphan');
        if (orphaned || gone.length < refs.length) {
          const kept = refs.filter((r) => !gone.includes(r));
          const metadata: Json = { ...obj.metadata, ownerReferences: kept };
          if (kept.length === 0) delete metadata.ownerReferences;
          this.api.put({ ...obj, metadata });
        } else if (obj.kind === 'Pod') {
          this.markDeleted(obj);
        } else if (obj.kind === 'PersistentVolumeClaim') {
          if (!this.claimInUse(obj.metadata.name!)) this.api.remove(...PVC, this.namespace, obj.metadata.name!);
          else this.markDeleted(obj);
        } else {
          this.api.remove(obj.apiVersion, obj.kind, this.namespace, obj.metadata.name!);
        }
      }
    }
  }

  /** What a graceful DELETE does: sets deletionTimestamp (and finalizers for a protected claim). */
  private markDeleted(obj: KubeObject, gracePeriodSeconds?: number): void {
    if (obj.metadata.deletionTimestamp && obj.metadata.uid === this.api.get(obj.apiVersion, obj.kind, this.namespace, obj.metadata.name!)?.metadata.uid) return;
    const metadata: Json = { ...obj.metadata, deletionTimestamp: obj.metadata.deletionTimestamp ?? now() };
    if (obj.kind === 'Pod') metadata.deletionGracePeriodSeconds = gracePeriodSeconds ?? obj.metadata.deletionGracePeriodSeconds ?? obj.spec.terminationGracePeriodSeconds ?? 30;
    else metadata.finalizers = [...new Set([...(obj.metadata.finalizers ?? []), 'kubernetes.io/pvc-protection'])];
    this.api.put({ ...obj, metadata });
  }

  // --- PVCs

  /**
   * Whether a pod the kubelet has taken on (scheduled, in Kubernetes' terms) mounts the claim and has not
   * finished, or still runs a process: pods waiting for the claim do not hold it, as in pvc-protection.
   */
  private claimInUse(claim: string): boolean {
    return [...this.runtimes.values()].some((rt) => rt.claims.includes(claim)
      && ((rt.phase !== 'Succeeded' && rt.phase !== 'Failed') || [...rt.init, ...rt.containers].some((c) => this.runner.running(rt.name, c.name))));
  }

  /** A claim removed through the API: back as terminating while in use, else its data goes. */
  private deleteClaim(claim: KubeObject): void {
    if (this.api.get(...PVC, this.namespace, claim.metadata.name!)) return;
    if (this.claimInUse(claim.metadata.name!)) this.markDeleted(claim);
    else this.runner.removeClaimData(claim.metadata.name!);
  }

  private reconcileClaims(): void {
    for (const pvc of this.list(PVC)) {
      const name = pvc.metadata.name!;
      if (pvc.metadata.deletionTimestamp) {
        if (!this.claimInUse(name)) {
          this.runner.removeClaimData(name);
          this.api.remove(...PVC, this.namespace, name);
        }
        continue;
      }
      const requested = pvc.spec?.resources?.requests?.storage;
      if (pvc.status?.phase !== 'Bound') {
        this.writeStatus(PVC, name, pvc.metadata.uid!, boundStatus(pvc.spec ?? {}));
      } else if (requested !== undefined && pvc.status.capacity?.storage !== requested) {
        this.writeStatus(PVC, name, pvc.metadata.uid!, { ...pvc.status, capacity: { ...pvc.status.capacity, storage: requested } });
      }
    }
  }

  // --- cert-manager (stand-in)

  /** Issues the Certificates due (spec not issued yet, or Secret gone) whose Issuer is ready; writes their Secrets. */
  private issueCertificates(): void {
    const due = this.list(CERTIFICATE).filter((c) => this.issuedFor.get(c.metadata.uid!) !== JSON.stringify(c.spec)
      || !c.spec?.secretName || !this.api.get(...SECRET, this.namespace, c.spec.secretName));
    if (due.length === 0) return;
    const issuer = new CertIssuer([...this.list(ISSUER), ...this.list(SECRET), ...due], this.namespace);
    try {
      issuer.issueAll();
    } catch (e) {
      // An Issuer missing or not ready (its CA Secret not written yet): cert-manager waits, so does this.
      if (!(e as Error).message.startsWith('cert-issuer: cannot issue')) throw e;
    }
    const written = new Set(issuer.secrets.map((s) => this.api.put(s).metadata.name));
    for (const c of due) if (written.has(c.spec.secretName)) this.issuedFor.set(c.metadata.uid!, JSON.stringify(c.spec));
  }

  // --- kubelet

  /** A pod deleted through the API while its containers may run: back at once as terminating. */
  private keepTerminatingPod(pod: KubeObject, gracePeriodSeconds: number | undefined): void {
    const rt = this.runtimes.get(pod.metadata.name!);
    if (!rt || rt.uid !== pod.metadata.uid || this.api.get(...POD, this.namespace, pod.metadata.name!)) return;
    if (rt.phase === 'Succeeded' || rt.phase === 'Failed') return;
    this.markDeleted(pod, gracePeriodSeconds);
  }

  private runKubelet(): void {
    const pods = this.list(POD);
    const byName = new Map(pods.map((p) => [p.metadata.name!, p]));
    for (const rt of this.runtimes.values()) {
      const pod = byName.get(rt.name);
      if (!pod || pod.metadata.uid !== rt.uid) this.terminate(rt, 0);
    }
    for (const pod of pods) {
      const name = pod.metadata.name!;
      const rt = this.runtimes.get(name);
      if (pod.metadata.deletionTimestamp) {
        if (rt && rt.uid === pod.metadata.uid) {
          this.terminate(rt, pod.metadata.deletionGracePeriodSeconds ?? 30);
          this.writeStatus(POD, name, rt.uid, this.podStatus(rt));
        } else if (!rt) {
          this.api.remove(...POD, this.namespace, name);
        }
        continue;
      }
      if (rt && rt.uid !== pod.metadata.uid) continue;
      if (rt) {
        this.writeStatus(POD, name, rt.uid, this.podStatus(rt));
      } else if (!isTerminal(pod)) {
        const waiting = this.unmountableClaim(pod);
        if (waiting) this.writeStatus(POD, name, pod.metadata.uid!, { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: waiting }] });
        else this.launch(pod);
      }
    }
  }

  /** Why the pod cannot mount its claims yet, or undefined. */
  private unmountableClaim(pod: KubeObject): string | undefined {
    for (const claim of claimsOf(pod.spec)) {
      const pvc = this.api.get(...PVC, this.namespace, claim);
      if (!pvc) return `persistentvolumeclaim "${claim}" not found`;
      if (pvc.metadata.deletionTimestamp) return `persistentvolumeclaim "${claim}" is being deleted`;
      if (pvc.status?.phase !== 'Bound') return `persistentvolumeclaim "${claim}" is not bound`;
    }
    return undefined;
  }

  private launch(pod: KubeObject): void {
    const container = (c: Json): ContainerState => ({
      name: c.name, image: c.image, restartCount: 0, started: false, ready: false,
      state: { waiting: { reason: 'ContainerCreating' } }, lastState: {},
    });
    const startTime = now();
    const rt: PodRuntime = {
      name: pod.metadata.name!,
      uid: pod.metadata.uid!,
      restartPolicy: pod.spec.restartPolicy ?? 'Always',
      startTime,
      claims: claimsOf(pod.spec),
      init: (pod.spec.initContainers ?? []).map(container),
      containers: pod.spec.containers.map(container),
      phase: 'Pending',
      initialized: false,
      ready: false,
      readyTransition: startTime,
      sandbox: false,
      stopping: false,
    };
    this.runtimes.set(rt.name, rt);
    this.runner.definePod({ name: rt.name, spec: pod.spec, labels: pod.metadata.labels });
    rt.task = this.track(this.runPod(rt));
    this.writeStatus(POD, rt.name, rt.uid, this.podStatus(rt));
  }

  /** The pod's life: init containers in order to completion, then every container. */
  private async runPod(rt: PodRuntime): Promise<void> {
    for (const c of rt.init) {
      for (;;) {
        const exit = await this.runContainer(rt, c, false);
        if (rt.stopping || this.stopped) return;
        if (exit.ok) break;
        if (rt.restartPolicy === 'Never') return this.finish(rt, 'Failed', `init container ${c.name} failed: ${exit.message}`);
        await this.pause(restartBackoffMs(++c.restartCount), rt);
      }
    }
    rt.initialized = true;
    rt.phase = 'Running';
    this.kick();
    const exits = await Promise.all(rt.containers.map((c) => this.keepRunning(rt, c)));
    if (rt.stopping || this.stopped || rt.restartPolicy === 'Always') return;
    const failed = exits.map((e, i) => (e.ok ? undefined : `container ${rt.containers[i].name} failed: ${e.message}`)).filter((m) => m);
    this.finish(rt, failed.length === 0 ? 'Succeeded' : 'Failed', failed.join('; ') || undefined);
  }

  private finish(rt: PodRuntime, phase: 'Succeeded' | 'Failed', message?: string): void {
    rt.phase = phase;
    rt.message = message;
    this.kick();
  }

  /** Runs a container; under restartPolicy Always, again after every exit until the pod stops. */
  private async keepRunning(rt: PodRuntime, c: ContainerState): Promise<{ ok: boolean; message?: string }> {
    for (;;) {
      const exit = await this.runContainer(rt, c, rt.restartPolicy === 'Always');
      if (rt.stopping || this.stopped || rt.restartPolicy !== 'Always') return exit;
      if (exit.ran) {
        c.lastState = c.state;
        c.state = { waiting: { reason: 'CrashLoopBackOff', message: `back-off restarting failed container ${c.name} in pod ${rt.name}` } };
        this.kick();
        await this.pause(restartBackoffMs(c.restartCount + 1), rt);
        c.restartCount++;
      } else {
        await this.pause(restartBackoffMs(1), rt);
      }
    }
  }

  /** One start of a container: probes while it runs (long-running containers), its exit recorded. */
  private async runContainer(rt: PodRuntime, c: ContainerState, longRunning: boolean): Promise<{ ok: boolean; ran: boolean; message?: string }> {
    if (rt.stopping || this.stopped) return { ok: false, ran: false, message: 'pod stopped' };
    let running;
    try {
      running = this.runner.start(rt.name, { container: c.name, keepEmptyDirs: rt.sandbox, runToCompletion: !longRunning });
    } catch (e) {
      const message = (e as Error).message;
      c.state = { waiting: { reason: /does not exist|has no key/.test(message) ? 'CreateContainerConfigError' : 'StartError', message } };
      this.kick();
      return { ok: false, ran: false, message };
    }
    rt.sandbox = true;
    const startedAt = now();
    c.state = { running: { startedAt } };
    c.started = false;
    this.kick();
    let exited = false;
    const exit = running.exited.then((e) => {
      exited = true;
      return e;
    });
    if (longRunning) await this.probe(rt, c, () => exited);
    const { code, signal } = await exit;
    c.started = false;
    this.setReady(rt, c, false);
    const exitCode = code ?? 128 + (signal === 'SIGKILL' ? 9 : signal === 'SIGTERM' ? 15 : 0);
    c.state = { terminated: { exitCode, ...(signal ? { signal } : {}), reason: exitCode === 0 ? 'Completed' : 'Error', startedAt, finishedAt: now() } };
    this.kick();
    const tail = this.runner.logTail(rt.name, 10);
    return { ok: exitCode === 0, ran: true, message: `exit code ${exitCode}${tail ? `; log tail:\n${tail}` : ''}` };
  }

  /** The startup probe until it passes, then the readiness probe, while the container runs. */
  private async probe(rt: PodRuntime, c: ContainerState, exited: () => boolean): Promise<void> {
    const spec = [...(this.api.get(...POD, this.namespace, rt.name)?.spec.containers ?? [])].find((s: Json) => s.name === c.name);
    const threshold = spec?.readinessProbe?.failureThreshold ?? 3;
    let failures = 0;
    while (!exited() && !rt.stopping && !this.stopped) {
      if (!c.started) {
        if (await this.runner.probe(rt.name, 'startupProbe', c.name)) {
          c.started = true;
          this.kick();
          continue;
        }
        await this.pause(STARTUP_PROBE_MS, rt);
      } else {
        const ok = await this.runner.probe(rt.name, 'readinessProbe', c.name);
        if (exited() || rt.stopping || this.stopped) return;
        failures = ok ? 0 : failures + 1;
        this.setReady(rt, c, ok || (c.ready && failures < threshold));
        await this.pause(READINESS_PROBE_MS, rt);
      }
    }
  }

  private setReady(rt: PodRuntime, c: ContainerState, ready: boolean): void {
    c.ready = ready;
    const podReady = rt.phase === 'Running' && rt.containers.every((x) => x.ready);
    if (podReady === rt.ready) return;
    rt.ready = podReady;
    rt.readyTransition = now();
    if (!this.stopped) this.runner.setReady(rt.name, podReady);
    this.kick();
  }

  /** Stops a pod's containers (SIGTERM, SIGKILL after the grace period), then forgets it and removes its object. */
  private terminate(rt: PodRuntime, graceSeconds: number): void {
    if (rt.termination) return;
    rt.stopping = true;
    // A terminating pod is not Ready (the kubelet reports it so while its containers stop).
    rt.containers.forEach((c) => this.setReady(rt, c, false));
    this.pauses.forEach((p) => p.rt === rt && this.endPause(p));
    rt.termination = this.track((async () => {
      await this.runner.stop(rt.name, graceSeconds);
      await rt.task;
      if (this.stopped) return;
      this.runtimes.delete(rt.name);
      await this.runner.removePod(rt.name);
      const live = this.api.get(...POD, this.namespace, rt.name);
      if (live?.metadata.uid === rt.uid) this.api.remove(...POD, this.namespace, rt.name);
      this.kick();
    })());
  }

  private podStatus(rt: PodRuntime): Json {
    const ready = rt.ready ? 'True' : 'False';
    const status = (c: ContainerState) => ({
      name: c.name, image: c.image, ready: c.ready, started: c.started, restartCount: c.restartCount, state: c.state, lastState: c.lastState,
    });
    const ip = this.runner.ip(rt.name);
    return {
      phase: rt.phase,
      conditions: [
        { type: 'PodScheduled', status: 'True', lastTransitionTime: rt.startTime },
        { type: 'Initialized', status: rt.initialized ? 'True' : 'False', lastTransitionTime: rt.startTime },
        { type: 'ContainersReady', status: ready, lastTransitionTime: rt.readyTransition },
        { type: 'Ready', status: ready, lastTransitionTime: rt.readyTransition },
      ],
      ...(rt.message ? { message: rt.message } : {}),
      hostIP: '127.0.0.1',
      podIP: ip,
      podIPs: [{ ip }],
      startTime: rt.startTime,
      ...(rt.init.length > 0 ? { initContainerStatuses: rt.init.map(status) } : {}),
      containerStatuses: rt.containers.map(status),
    };
  }

  // --- Job controller

  private reconcileJobs(): void {
    const pods = this.list(POD);
    for (const job of this.list(JOB)) {
      if (hasCondition(job, 'Complete') || hasCondition(job, 'Failed')) continue;
      const uid = job.metadata.uid!;
      const own = pods.filter((p) => controllerUid(p) === uid);
      const succeeded = own.filter((p) => p.status?.phase === 'Succeeded');
      const failed = own.filter((p) => p.status?.phase === 'Failed');
      const active = own.filter((p) => !isTerminal(p) && !p.metadata.deletionTimestamp);
      const status: Json = { ...job.status, startTime: job.status?.startTime ?? now() };
      const deadline = job.spec.activeDeadlineSeconds;
      let finished: Json | undefined;
      if (succeeded.length >= 1) {
        finished = { type: 'Complete', status: 'True', reason: 'CompletionsReached', message: 'Reached expected number of succeeded pods' };
        status.completionTime = now();
      } else if (failed.length > (job.spec.backoffLimit ?? 6)) {
        const last = failed[failed.length - 1];
        finished = { type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', message: `Job has reached the specified backoff limit; last failed pod ${last.metadata.name}: ${last.status?.message ?? ''}` };
      } else if (deadline !== undefined && Date.now() - Date.parse(status.startTime) > deadline * 1000) {
        finished = { type: 'Failed', status: 'True', reason: 'DeadlineExceeded', message: 'Job was active longer than specified deadline' };
      } else if (active.length === 0 && Date.now() >= this.lastFailure(failed) + jobBackoffMs(failed.length)) {
        const pod = this.api.put(jobPod(job, randomBytes(4).toString('hex').slice(0, 5)));
        active.push(pod);
      }
      if (finished) {
        active.forEach((p) => this.markDeleted(p));
        active.length = 0;
        status.conditions = [...(job.status?.conditions ?? []), { ...finished, lastProbeTime: now(), lastTransitionTime: now() }];
      }
      const counts: Json = { active: active.length, ready: active.filter((p) => hasCondition(p, 'Ready')).length, succeeded: succeeded.length, failed: failed.length };
      for (const [k, v] of Object.entries(counts)) {
        if (v > 0) status[k] = v;
        else delete status[k];
      }
      this.writeStatus(JOB, job.metadata.name!, uid, status);
    }
  }

  private lastFailure(failed: readonly KubeObject[]): number {
    const times = failed.flatMap((p) => (p.status?.containerStatuses ?? []).map((c: Json) => Date.parse(c.state?.terminated?.finishedAt ?? p.status?.startTime ?? '')));
    return Math.max(0, ...times.filter((t) => !Number.isNaN(t)));
  }

  // --- StatefulSet controller

  private reconcileStatefulSets(): void {
    const claims = new Map(this.list(PVC).map((c) => [c.metadata.name!, c]));
    for (const sts of this.list(STS)) {
      const name = sts.metadata.name!;
      const uid = sts.metadata.uid!;
      const updateRevision = revisionName(name, sts.spec.template);
      this.templates.set(updateRevision, sts.spec.template);
      const recorded = sts.status?.currentRevision;
      const currentRevision = recorded && this.templates.has(recorded) ? recorded : updateRevision;

      const pods = this.list(POD).filter((p) => ordinalOf(name, p.metadata.name!) !== undefined);
      for (const pod of pods) {
        if (!controllerUid(pod) && !pod.metadata.deletionTimestamp && selectorMatches(sts.spec.selector, pod.metadata.labels ?? {})) {
          pod.metadata.ownerReferences = [...(pod.metadata.ownerReferences ?? []), controllerRef(sts)];
          this.api.put(pod);
        }
      }
      const views = pods.filter((p) => controllerUid(p) === uid).map((p) => podView(name, p)!);
      const taken = new Set(pods.map((p) => p.metadata.name));

      for (const view of views) {
        if (!view.terminating && view.ordinal < (sts.spec.replicas ?? 1)) this.ensureClaims(sts, view.ordinal, claims);
      }
      for (const step of nextStatefulSetSteps(sts, views, currentRevision, updateRevision)) {
        if (step.action === 'create') {
          if (taken.has(`${name}-${step.ordinal}`)) continue;
          this.ensureClaims(sts, step.ordinal, claims);
          this.api.put(statefulSetPod(sts, this.templates.get(step.revision)!, step.revision, step.ordinal));
        } else {
          this.markDeleted(pods.find((p) => p.metadata.name === step.pod)!);
        }
      }
      if (sts.spec.persistentVolumeClaimRetentionPolicy?.whenScaled === 'Delete') this.deleteScaledClaims(sts, claims, taken);
      this.writeStatus(STS, name, uid, statefulSetStatus(sts, views, currentRevision, updateRevision, Date.now()));
    }
  }

  private ensureClaims(sts: KubeObject, ordinal: number, claims: Map<string, KubeObject>): void {
    for (const claim of statefulSetClaims(sts, ordinal)) {
      if (!claims.has(claim.metadata.name!)) claims.set(claim.metadata.name!, this.api.put(claim));
    }
  }

  /** whenScaled Delete: claims of ordinals at or above replicas go once their pod is gone. */
  private deleteScaledClaims(sts: KubeObject, claims: Map<string, KubeObject>, pods: Set<string | undefined>): void {
    const replicas = sts.spec.replicas ?? 1;
    for (const template of sts.spec.volumeClaimTemplates ?? []) {
      for (const [claim, pvc] of claims) {
        const pod = claim.slice(template.metadata.name.length + 1);
        const ordinal = claim.startsWith(`${template.metadata.name}-`) ? ordinalOf(sts.metadata.name!, pod) : undefined;
        if (ordinal === undefined || ordinal < replicas || pods.has(pod) || pvc.metadata.deletionTimestamp) continue;
        this.api.remove(...PVC, this.namespace, claim);
        claims.delete(claim);
      }
    }
  }
}
