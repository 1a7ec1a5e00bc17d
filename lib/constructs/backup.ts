// Backups and restores as Kubernetes objects: the scheduled snapshot CronJob and its PVC, the Job the
// reconciler runs for a snapshot before a risky operation, and the per-member restore Jobs. Pure
// object builders; the reconciler decides when to run them.
import { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import type { ICronJob } from 'kubernetes-models/batch/v1/CronJob';
import type { IEnvVar } from 'kubernetes-models/v1/EnvVar';
import type { IPersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IPodTemplateSpec } from 'kubernetes-models/v1/PodTemplateSpec';
import { EngineCommand, EngineContext, IEngine, TLS_DIRS, tlsSecretVolume } from '../engines/types';
import { KEEP_PVC_ANNOTATIONS, STORE_LABEL } from '../model/metadata';
import { backupCronJobName, preOperationSnapshotPrefix, pvcName, snapshotPrefix, StoreNames, tlsSecrets } from '../model/names';
import type { KVStoreSpec } from '../model/spec';
import { kubeObject } from './kube';
import { restrictedContainerSecurity, restrictedPodSecurity, storePodCommons } from './pod-security';
import type { StoreDefinition } from './store-definition';

/** Where snapshot volumes are mounted in backup and restore pods. */
export const BACKUP_MOUNT = '/backups';
/** The downward-API variable holding the Job name (unique per run): it names the snapshot file. */
const JOB_NAME_ENV = 'JOB_NAME';

/** What the backup and restore pods are built from (a StoreDefinition has it all). */
interface PodParts {
  readonly spec: KVStoreSpec;
  readonly engine: IEngine;
  readonly names: StoreNames;
}

function envOf(c: EngineCommand): IEnvVar[] {
  return c.env.map((e) => ({ name: e.name, value: e.value }));
}

/** The pod spec of the store's one-shot Jobs: run once, no API token, no service links, restricted. */
function oneShotPod(spec: KVStoreSpec, pod: Pick<IPodSpec, 'initContainers' | 'containers' | 'volumes'>): IPodSpec {
  return {
    restartPolicy: 'Never',
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    securityContext: restrictedPodSecurity(spec.runAsUser),
    ...storePodCommons(spec),
    ...pod,
  };
}

/**
 * The backup pod: an init container saves a snapshot from the client Service into the backup claim
 * (named after the Job, unique per run), then the reconciler image deletes all but the newest `keep` (pre-operation snapshots count too).
 */
export function backupPodTemplate(parts: PodParts, clientEndpoint: string): IPodTemplateSpec {
  const { spec, engine } = parts;
  const backup = spec.backup!;
  const save = engine.snapshots!.save(spec, clientEndpoint, `${BACKUP_MOUNT}/$(${JOB_NAME_ENV}).db`);
  // With TLS the snapshot connects with the library's client certificate.
  const tls = spec.tls ? tlsSecrets(spec).client : undefined;
  // The snapshot a restore reads is never pruned (a snapshot before the restore runs this template).
  const restoring = spec.restore && spec.restore.claimName === backup.claimName ? ['--keep-file', spec.restore.snapshot] : [];
  return {
    // The store's NetworkPolicy admits pods with this label to the client port.
    metadata: { labels: { [STORE_LABEL]: spec.name } },
    spec: oneShotPod(spec, {
      initContainers: [{
        name: 'snapshot',
        image: spec.image,
        imagePullPolicy: 'IfNotPresent',
        command: save.command,
        args: save.args,
        env: [
          { name: JOB_NAME_ENV, valueFrom: { fieldRef: { fieldPath: "metadata.labels['batch.kubernetes.io/job-name']" } } },
          ...envOf(save),
        ],
        volumeMounts: [
          { name: 'backups', mountPath: BACKUP_MOUNT }, { name: 'tmp', mountPath: '/tmp' },
          ...(tls ? [{ name: 'client-tls', mountPath: TLS_DIRS.client, readOnly: true }] : []),
        ],
        securityContext: restrictedContainerSecurity(),
      }],
      containers: [{
        name: 'prune',
        image: backup.pruneImage,
        imagePullPolicy: 'IfNotPresent',
        // The image's entrypoint is kvstore-reconcile.
        args: [
          '--prune-snapshots', BACKUP_MOUNT, '--prefix', snapshotPrefix(parts.names), '--pre-operation-prefix', preOperationSnapshotPrefix(parts.names),
          '--keep', String(backup.keep), ...restoring,
        ],
        volumeMounts: [{ name: 'backups', mountPath: BACKUP_MOUNT }],
        securityContext: restrictedContainerSecurity(),
      }],
      volumes: [
        { name: 'backups', persistentVolumeClaim: { claimName: backup.claimName } },
        { name: 'tmp', emptyDir: {} },
        ...(tls ? [tlsSecretVolume('client-tls', tls)] : []),
      ],
    }),
  };
}

/** The scheduled backup CronJob (and the PVC it writes to, unless the spec names an existing one). */
export class StoreBackup extends Construct {
  readonly cronJob: ApiObject;

  constructor(scope: Construct, id: string, props: { readonly store: StoreDefinition }) {
    super(scope, id);
    const parts = props.store;
    const backup = parts.spec.backup!;
    if (backup.storage !== undefined) {
      kubeObject<IPersistentVolumeClaim>(this, 'Claim', { apiVersion: 'v1', kind: 'PersistentVolumeClaim' }, {
        metadata: { name: backup.claimName, labels: parts.labels, annotations: { ...KEEP_PVC_ANNOTATIONS } },
        spec: {
          accessModes: ['ReadWriteOnce'],
          ...(backup.storageClassName !== undefined ? { storageClassName: backup.storageClassName } : {}),
          resources: { requests: { storage: backup.storage! } },
        },
      });
    }
    this.cronJob = kubeObject<ICronJob>(this, 'CronJob', { apiVersion: 'batch/v1', kind: 'CronJob' }, {
      metadata: { name: backupCronJobName(parts.names), labels: parts.labels },
      spec: {
        schedule: backup.schedule,
        // Two snapshots at once would compete for the same disk and the same members.
        concurrencyPolicy: 'Forbid',
        successfulJobsHistoryLimit: 3,
        failedJobsHistoryLimit: 3,
        jobTemplate: {
          metadata: { labels: { [STORE_LABEL]: parts.spec.name } },
          spec: { backoffLimit: 2, template: backupPodTemplate(parts, parts.clientEndpoint) },
        },
      },
    });
  }
}

/** A Job of one backup run from the CronJob's template (what `kubectl create job --from=cronjob/...` does). */
export function jobFromCronJob(cronJob: { metadata: { name: string; namespace?: string; labels?: Record<string, string> }; spec: any }, name: string, annotations: Record<string, string> = {}): any {
  const template = cronJob.spec.jobTemplate;
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name,
      ...(cronJob.metadata.namespace ? { namespace: cronJob.metadata.namespace } : {}),
      labels: { ...template.metadata?.labels },
      annotations: { 'cronjob.kubernetes.io/instantiate': 'manual', ...annotations },
    },
    spec: template.spec,
  };
}

/**
 * The Job that lays out member `ordinal`'s data from a snapshot, on the member's own data PVC(s),
 * before its pod starts; with `ordinal` 'check', the Job that only checks the snapshot is readable.
 * Runs in the engine's image.
 */
export function restoreJob(parts: PodParts & { readonly namespace: string; readonly context: EngineContext }, ordinal: number | 'check', name: string): any {
  const { spec, engine } = parts;
  const restore = spec.restore!;
  const file = `${BACKUP_MOUNT}/${restore.snapshot}`;
  const cmd = ordinal === 'check' ? engine.snapshots!.check(file) : engine.snapshots!.restore(parts.context, ordinal, file);
  const claims = ordinal === 'check' ? [] : spec.volumeClaimTemplates.map((t) => ({ ...t, claim: pvcName(parts.names, t.name, ordinal) }));
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace: parts.namespace, labels: { [STORE_LABEL]: spec.name } },
    spec: {
      backoffLimit: 2,
      template: {
        metadata: { labels: { [STORE_LABEL]: spec.name } },
        spec: oneShotPod(spec, {
          containers: [{
            name: ordinal === 'check' ? 'check' : 'restore',
            image: spec.image,
            imagePullPolicy: 'IfNotPresent',
            command: cmd.command,
            args: cmd.args,
            env: envOf(cmd),
            volumeMounts: [
              { name: 'backups', mountPath: BACKUP_MOUNT, readOnly: true },
              ...claims.map((t) => ({ name: t.name, mountPath: t.mountPath })),
              { name: 'tmp', mountPath: '/tmp' },
            ],
            securityContext: restrictedContainerSecurity(),
          }],
          volumes: [
            { name: 'backups', persistentVolumeClaim: { claimName: restore.claimName, readOnly: true } },
            ...claims.map((t) => ({ name: t.name, persistentVolumeClaim: { claimName: t.claim } })),
            { name: 'tmp', emptyDir: {} },
          ],
        }),
      },
    },
  };
}
