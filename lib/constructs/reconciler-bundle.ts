// GitOps mode: the reconciler bundle a KVStore synthesizes instead of its own objects. The GitOps tool
// applies this bundle; the Job it contains applies the store's objects (see README "Who owns what").
import { createHash } from 'crypto';
import { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import type { ICronJob } from 'kubernetes-models/batch/v1/CronJob';
import type { IJob } from 'kubernetes-models/batch/v1/Job';
import type { IRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import type { IRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { canonicalJson } from '../model/document';
import { INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL, NAME_LABEL, RECONCILER_POD_NAME, STORE_LABEL } from '../model/metadata';
import { SpecError } from '../model/issues';
import { maintenanceCronJobName, reconcileJobName, reconcilerNames, tlsSecrets } from '../model/names';
import { CRON_PATTERN } from '../model/schema';
import { TLS_DIRS, tlsSecretVolume } from '../engines/types';
import { DEFAULT_RECONCILER_IMAGE, LIBRARY_VERSION } from '../model/version';
import { kubeObject } from './kube';
import { storePodCommons } from './pod-security';
import { reconcilerPodSpec, storeRules } from './reconciler-rbac';
import type { StoreDefinition } from './store-definition';

/** Annotations for the GitOps tool that applies the bundle. */
export enum GitOpsProfile {
  /** Plain manifests: any tool (or kubectl) applies them; a changed spec gives a new Job name. */
  PLAIN = 'plain',
  /** Argo CD: the Job is a Sync hook, deleted before the next one is created. */
  ARGO_CD = 'argocd',
  /** Flux: the Job (only the Job, never the StatefulSet) is recreated when its template changes. */
  FLUX = 'flux',
}

/** GitOps mode: how the store's reconciler Job runs. */
export interface ReconcilerOptions {
  /**
   * The reconciler image (this package's Dockerfile builds it). Pin one you build and push to run an
   * image you control.
   * @default - DEFAULT_RECONCILER_IMAGE: the image the release workflow publishes for this library version
   */
  readonly image?: string;
  /**
   * The GitOps tool that applies the bundle: decides the Job's annotations.
   * @default GitOpsProfile.PLAIN
   */
  readonly profile?: GitOpsProfile;
  /**
   * Let the reconciler make changes it would otherwise refuse (immutable StatefulSet fields are
   * changed by deleting the StatefulSet with orphan propagation and re-creating it).
   * @default false
   */
  readonly force?: boolean;
  /**
   * Scheduled maintenance of an etcd store: a CronJob running the reconciler image with `--maintain`
   * under the store's Lease. Each run recovers a store whose database hit its quota (NOSPACE: compact,
   * defragment, disarm) and defragments the members with enough to reclaim (followers first, the
   * leader last, only while the cluster is healthy).
   * @default - no scheduled maintenance
   */
  readonly maintenance?: MaintenanceOptions;
}

/** When scheduled maintenance runs, and what it may do: a store's (GitOps mode) or the operator's (CRD mode). */
export interface MaintenanceOptions {
  /**
   * Cron schedule of the maintenance CronJob. Hourly by default: a run that finds nothing to do
   * (no alarm, no member with at least 64 MiB and 10% of its file to reclaim) changes nothing, and a
   * store that hit its quota is writable again within the hour.
   * @default '23 * * * *' (hourly)
   */
  readonly schedule?: string;
  /**
   * When a majority of the members is gone for good (fewer than a majority answer and none sees a
   * leader), recover from the most advanced survivor: etcd's --force-new-cluster procedure, in a
   * one-off pod on its volumes, then every other member added back on an empty volume. Writes
   * acknowledged after the survivor's revision may be lost (the run logs the plan and its statement
   * first). Off, such a run refuses and logs the plan. Lets the reconciler create pods.
   * @default false
   */
  readonly recoverQuorumLoss?: boolean;
}

/** The maintenance CronJob's schedule unless one is given. */
export const DEFAULT_MAINTENANCE_SCHEDULE = '23 * * * *';

/** What a maintenance schedule may be (the CronJob's own syntax, as backup.schedule). */
export const MAINTENANCE_SCHEDULE_ALLOWED = 'a cron schedule of five fields such as "23 * * * *", or a macro such as @hourly';

/** The maintenance CronJob's schedule: the one given, else DEFAULT_MAINTENANCE_SCHEDULE; undefined when it is not a cron schedule. */
export function maintenanceSchedule(options: MaintenanceOptions): string | undefined {
  const schedule = options.schedule ?? DEFAULT_MAINTENANCE_SCHEDULE;
  return new RegExp(CRON_PATTERN).test(schedule) ? schedule : undefined;
}

/**
 * How long a reconciler Job may run: the longest operation it may make is a CA rotation or a TLS
 * switch, several rolling passes over every member, each wait bounded by the reconciler's rollout
 * timeout (600 s). Three passes over `size` members, plus a snapshot, the plan's rollout, the finish
 * and a restore, each 600 s at most. A deadline shorter than that would kill a healthy run half-way
 * (the next Job resumes it, but only after the Lease expires).
 */
export function reconcileJobDeadlineSeconds(size: number): number {
  return (3 * size + 4) * 600;
}

/** Where the Job's container reads the store document. */
export const DOCUMENT_PATH = '/etc/kvstore/store.json';

/** The store a bundle reconciles, and how. */
export interface ReconcilerBundleProps extends ReconcilerOptions {
  /** @internal */
  readonly store: StoreDefinition;
}

/**
 * GitOps mode's objects: the spec ConfigMap, the reconciler Job named after a hash of the spec, and
 * the ServiceAccount, Role and RoleBinding it runs with. A KVStore with `reconciler` creates one.
 */
export class ReconcilerBundle extends Construct {
  /** The name of this spec's Job. */
  readonly jobName: string;
  /** The ConfigMap holding the store document. */
  readonly configMapName: string;
  /** The reconciler Job. */
  readonly job: ApiObject;

  constructor(scope: Construct, id: string, props: ReconcilerBundleProps) {
    super(scope, id);
    const { store } = props;
    const profile = props.profile ?? GitOpsProfile.PLAIN;
    const image = props.image ?? DEFAULT_RECONCILER_IMAGE;
    const documentJson = store.documentJson;
    // Same spec, library version and reconciler settings → same Job name and bytes; any change → a new Job.
    const jobHash = createHash('sha256')
      .update(canonicalJson({ document: store.document, version: LIBRARY_VERSION, image, force: props.force ?? false }))
      .digest('hex').slice(0, 10);
    const names = reconcilerNames(store.spec.name);
    this.jobName = reconcileJobName(store.spec.name, jobHash);
    this.configMapName = names.configMap;
    const labels = {
      ...store.spec.labels,
      [NAME_LABEL]: RECONCILER_POD_NAME,
      [INSTANCE_LABEL]: store.spec.name,
      [MANAGED_BY_LABEL]: MANAGED_BY,
    };

    kubeObject<IConfigMap>(this, 'Spec', { apiVersion: 'v1', kind: 'ConfigMap' }, {
      metadata: { name: names.configMap, labels },
      data: { 'store.json': documentJson },
    });
    kubeObject<IServiceAccount>(this, 'ServiceAccount', { apiVersion: 'v1', kind: 'ServiceAccount' }, {
      metadata: { name: names.serviceAccount, labels },
      automountServiceAccountToken: false,
    });
    kubeObject<IRole>(this, 'Role', { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role' }, {
      metadata: { name: names.role, labels },
      rules: storeRules({ store: store.names, spec: store.spec, lease: names.lease, applySetParent: names.applySetParent, recoveryPods: !!props.maintenance?.recoverQuorumLoss }),
    });
    kubeObject<IRoleBinding>(this, 'RoleBinding', { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding' }, {
      metadata: { name: names.roleBinding, labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: names.role },
      subjects: [{ kind: 'ServiceAccount', name: names.serviceAccount }],
    });

    const jobAnnotations: Record<string, string> =
      profile === GitOpsProfile.ARGO_CD ? {
        'argocd.argoproj.io/hook': 'Sync',
        'argocd.argoproj.io/hook-delete-policy': 'BeforeHookCreation',
        // After wave 0, where the ConfigMap and RBAC the Job needs are applied.
        'argocd.argoproj.io/sync-wave': '1',
      }
        : profile === GitOpsProfile.FLUX ? { 'kustomize.toolkit.fluxcd.io/force': 'enabled' }
          : {};
    this.job = kubeObject<IJob>(this, 'Job', { apiVersion: 'batch/v1', kind: 'Job' }, {
      metadata: { name: this.jobName, labels, ...(Object.keys(jobAnnotations).length ? { annotations: jobAnnotations } : {}) },
      // No ttlSecondsAfterFinished: a GitOps tool would re-create a Job the TTL deleted, re-running it.
      spec: {
        // Retries of a failed run; a retry waits for a live run's Lease instead of failing (600 s).
        backoffLimit: 4,
        activeDeadlineSeconds: reconcileJobDeadlineSeconds(store.spec.size),
        template: {
          // The reconciler is a client of the store (membership operations go through the client port).
          metadata: { labels: { ...labels, [STORE_LABEL]: store.spec.name } },
          // Force only this spec: a retry of this Job after the ConfigMap moved on must not force the next one.
          spec: storeReconcilerPodSpec(store, image, ['--store', DOCUMENT_PATH, ...(props.force ? ['--force', '--force-spec', store.specHash] : [])]),
        },
      },
    });

    if (props.maintenance) {
      if (store.engine.spec.kind !== 'etcd') {
        throw new SpecError(store.spec.name, [{ field: 'reconciler.maintenance', value: props.maintenance, allowed: 'left out for a custom engine', reason: 'maintenance defragments etcd members and recovers etcd from NOSPACE' }]);
      }
      // A CronJob's name leaves 11 characters for the Jobs' suffix: 52 at most.
      if (maintenanceCronJobName(store.spec.name).length > 52) {
        throw new SpecError(store.spec.name, [{ field: 'reconciler.maintenance', value: props.maintenance, allowed: 'a store name of at most 40 characters with maintenance', reason: `the CronJob ${maintenanceCronJobName(store.spec.name)} would be longer than the 52 characters Kubernetes allows a CronJob's name` }]);
      }
      const schedule = maintenanceSchedule(props.maintenance);
      if (schedule === undefined) {
        throw new SpecError(store.spec.name, [{ field: 'reconciler.maintenance.schedule', value: props.maintenance.schedule, allowed: MAINTENANCE_SCHEDULE_ALLOWED }]);
      }
      kubeObject<ICronJob>(this, 'Maintenance', { apiVersion: 'batch/v1', kind: 'CronJob' }, {
        metadata: { name: maintenanceCronJobName(store.spec.name), labels },
        spec: {
          schedule,
          // One run at a time; a run that finds the Lease held (a reconcile under way) waits for it.
          concurrencyPolicy: 'Forbid',
          successfulJobsHistoryLimit: 3,
          failedJobsHistoryLimit: 3,
          jobTemplate: {
            metadata: { labels: { [STORE_LABEL]: store.spec.name } },
            spec: {
              // A failed run (an unhealthy cluster, a member that did not come back) is the next schedule's to retry.
              backoffLimit: 0,
              activeDeadlineSeconds: reconcileJobDeadlineSeconds(store.spec.size),
              template: {
                metadata: { labels: { ...labels, [STORE_LABEL]: store.spec.name } },
                spec: storeReconcilerPodSpec(store, image, ['--store', DOCUMENT_PATH, '--maintain', ...(props.maintenance.recoverQuorumLoss ? ['--recover-quorum-loss'] : [])]),
              },
            },
          },
        },
      });
    }
  }
}

/** The reconciler's pod for one store: its document, and with TLS the client certificate and the members' CA. */
function storeReconcilerPodSpec(store: StoreDefinition, image: string, args: string[]): IPodSpec {
  const names = reconcilerNames(store.spec.name);
  return reconcilerPodSpec({
    serviceAccountName: names.serviceAccount,
    image,
    args,
    volumeMounts: [
      { name: 'store', mountPath: '/etc/kvstore', readOnly: true },
      // With TLS, membership changes connect with the library's client certificate.
      ...(store.spec.tls ? [{ name: 'client-tls', mountPath: TLS_DIRS.client, readOnly: true }] : []),
      // With TLS, the CA the spec's members trust (the member Secret's ca.crt, nothing else): the
      // reconciler records it, and a CA rotation trusts it beside the one recorded before.
      ...(store.spec.tls ? [{ name: 'member-ca', mountPath: TLS_DIRS.memberCa, readOnly: true }] : []),
    ],
    volumes: [
      { name: 'store', configMap: { name: names.configMap } },
      ...(store.spec.tls ? [tlsSecretVolume('client-tls', tlsSecrets(store.spec).client)] : []),
      ...(store.spec.tls ? [{ name: 'member-ca', secret: { secretName: tlsSecrets(store.spec).member, defaultMode: 0o440, items: [{ key: 'ca.crt', path: 'ca.crt' }] } }] : []),
    ],
    // The store's tolerations and registry credentials: its reconciler image may be private too.
    commons: storePodCommons(store.spec),
  });
}
