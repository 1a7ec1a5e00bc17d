// CRD mode: the KVStore CRD plus a CronJob that reconciles every KVStore resource in scope, with its RBAC.
import { Chart } from 'cdk8s';
import { Construct } from 'constructs';
import type { ICronJob } from 'kubernetes-models/batch/v1/CronJob';
import type { IClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import type { IClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import type { IRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import type { IRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import type { IServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { COMPONENT_LABEL, KVSTORE_GROUP, KVSTORE_PLURAL, MANAGED_BY, MANAGED_BY_LABEL, NAME_LABEL, OPERATOR_COMPONENT, RECONCILER_POD_NAME } from '../model/metadata';
import { labelSelector } from '../model/names';
import { isLabelKey, isLabelValue, isNamespaceName } from '../model/schema';
import { DEFAULT_RECONCILER_IMAGE } from '../model/version';
import { clusterScoped, kubeObject } from './kube';
import { KVStoreCrd } from './kv-store-crd';
import { MAINTENANCE_SCHEDULE_ALLOWED, maintenanceSchedule, MaintenanceOptions } from './reconciler-bundle';
import { binderRules, OPERATOR_BINDER_ROLE, OPERATOR_ROLE, OPERATOR_SERVICE_ACCOUNT, operatorRules, reconcilerPodSpec } from './reconciler-rbac';

/** CRD mode: the reconciler CronJob and where it may act. */
export interface KVStoreOperatorProps {
  /**
   * The reconciler image (this package's Dockerfile builds it). Pin one you build and push to run an
   * image you control.
   * @default - DEFAULT_RECONCILER_IMAGE: the image the release workflow publishes for this library version
   */
  readonly image?: string;
  /**
   * How often the reconciler runs to pick up changed resources and drift.
   * @default '*&#47;5 * * * *' (every five minutes)
   */
  readonly schedule?: string;
  /**
   * The namespaces whose KVStore resources the reconciler reconciles: a ClusterRole holding the rules
   * and a RoleBinding in each of these namespaces (a ClusterRole bound by a RoleBinding grants only in
   * that namespace), never a cluster-wide grant. A namespace opts in by being listed.
   * @default - only the chart's namespace (a Role and a RoleBinding there)
   */
  readonly namespaces?: string[];
  /**
   * Namespaces opt in by carrying these labels (matchLabels), instead of being listed in `namespaces`:
   * the rules are in a ClusterRole bound nowhere by the synthesized manifests; the reconciler binds it
   * (a RoleBinding `kvstore-reconciler`) in each namespace that matches, and removes that binding when
   * the namespace stops matching. For that it is granted, cluster-wide, to list namespaces, create
   * RoleBindings and `bind` that one ClusterRole: whoever can label namespaces decides where it acts,
   * and its ServiceAccount is worth as much as a cluster-wide grant of the rules. `namespaces` is the
   * stricter choice.
   * @default - no selector: `namespaces`, or the chart's namespace
   * @see https://kubernetes.io/docs/reference/access-authn-authz/rbac/#restrictions-on-role-binding-creation-or-update
   */
  readonly namespaceSelector?: Record<string, string>;
  /**
   * Also synthesize the CustomResourceDefinition.
   * @default true
   */
  readonly installCrd?: boolean;
  /**
   * Scheduled maintenance of every etcd store in scope: a second CronJob, `kvstore-maintenance`, runs
   * `kvstore-reconcile --crd --maintain` with the same image, ServiceAccount and scope. For each KVStore
   * resource, under its store's Lease: quorum-loss recovery (only with `recoverQuorumLoss`), replacing a
   * lost member, NOSPACE recovery, defragmentation, as GitOps mode's `reconciler.maintenance` does for
   * one store. Each store's outcome is its resource's `Maintained` condition. Adds pod `delete` to the
   * operator's rules, and pod `create` with `recoverQuorumLoss`.
   * @default - no scheduled maintenance
   */
  readonly maintenance?: MaintenanceOptions;
}

/** The CRD-mode maintenance CronJob (one for every store in the operator's scope). */
export const OPERATOR_MAINTENANCE_CRONJOB = 'kvstore-maintenance';

/**
 * CRD mode: the KVStore CustomResourceDefinition and a CronJob that reconciles every KVStore resource in
 * its scope (the chart's namespace, the namespaces listed, or those selected by label), with the RBAC it needs.
 */
export class KVStoreOperator extends Construct {
  /** The ServiceAccount the reconciler runs as. */
  readonly serviceAccountName = OPERATOR_SERVICE_ACCOUNT;
  /** The Role (or ClusterRole) granting what the reconciler does. */
  readonly roleName = OPERATOR_ROLE;

  constructor(scope: Construct, id: string, props: KVStoreOperatorProps = {}) {
    super(scope, id);
    const image = props.image ?? DEFAULT_RECONCILER_IMAGE;
    if (!/^(\S+\s+){4}\S+$/.test(props.schedule ?? '*/5 * * * *')) {
      throw new Error(`KVStoreOperator '${id}': schedule must be a cron expression of five fields, got ${JSON.stringify(props.schedule)}`);
    }
    const namespaces = props.namespaces;
    const selector = props.namespaceSelector;
    if (namespaces && selector) {
      throw new Error(`KVStoreOperator '${id}': namespaces and namespaceSelector cannot be used together: list the namespaces, or select them by label, or give neither for the chart's namespace only`);
    }
    // The ServiceAccount lives in the chart's namespace; each binding names it there explicitly.
    const namespace = Chart.of(this).namespace;
    if ((namespaces || selector) && !namespace) {
      throw new Error(`KVStoreOperator '${id}': ${namespaces ? 'namespaces' : 'namespaceSelector'} needs the chart to have a namespace (the reconciler's own), got none`);
    }
    if (namespaces) {
      const bad = namespaces.find((n) => !isNamespaceName(n));
      if (namespaces.length === 0 || bad !== undefined || new Set(namespaces).size !== namespaces.length) {
        throw new Error(`KVStoreOperator '${id}': namespaces must be a non-empty list of distinct namespace names (DNS-1123 labels), got ${JSON.stringify(bad ?? namespaces)}`);
      }
    }
    if (selector) {
      const entries = Object.entries(selector);
      const bad = entries.find(([k, v]) => !isLabelKey(k) || typeof v !== 'string' || !isLabelValue(v));
      if (entries.length === 0 || bad) {
        throw new Error(`KVStoreOperator '${id}': namespaceSelector must be a non-empty map of label keys (an optional DNS prefix and "/", then up to 63 characters of [A-Za-z0-9-_.]) to label values (up to 63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric), got ${JSON.stringify(bad ? { [bad[0]]: bad[1] } : selector)}`);
      }
    }
    const maintenance = props.maintenance;
    const maintenanceCron = maintenance ? maintenanceSchedule(maintenance) : undefined;
    if (maintenance && maintenanceCron === undefined) {
      throw new Error(`KVStoreOperator '${id}': maintenance.schedule must be ${MAINTENANCE_SCHEDULE_ALLOWED}, got ${JSON.stringify(maintenance.schedule)}`);
    }
    if (props.installCrd ?? true) new KVStoreCrd(this, 'Crd');
    const labels = { [NAME_LABEL]: RECONCILER_POD_NAME, [MANAGED_BY_LABEL]: MANAGED_BY };
    kubeObject<IServiceAccount>(this, 'ServiceAccount', { apiVersion: 'v1', kind: 'ServiceAccount' }, { metadata: { name: this.serviceAccountName, labels }, automountServiceAccountToken: false });
    const rules = operatorRules(KVSTORE_GROUP, KVSTORE_PLURAL, maintenance ? { recoverQuorumLoss: !!maintenance.recoverQuorumLoss } : undefined);
    if (selector) {
      // The store rules, bound by the reconciler itself in each selected namespace (never cluster-wide).
      clusterScoped(kubeObject<IClusterRole>(this, 'Role', { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole' }, { metadata: { name: this.roleName, labels }, rules }));
      clusterScoped(kubeObject<IClusterRole>(this, 'BinderRole', { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole' }, { metadata: { name: OPERATOR_BINDER_ROLE, labels }, rules: binderRules() }));
      clusterScoped(kubeObject<IClusterRoleBinding>(this, 'BinderRoleBinding', { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding' }, {
        metadata: { name: OPERATOR_BINDER_ROLE, labels },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: OPERATOR_BINDER_ROLE },
        subjects: [{ kind: 'ServiceAccount', name: this.serviceAccountName, namespace }],
      }));
    } else if (namespaces) {
      clusterScoped(kubeObject<IClusterRole>(this, 'Role', { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole' }, { metadata: { name: this.roleName, labels }, rules }));
      for (const ns of namespaces) {
        kubeObject<IRoleBinding>(this, `RoleBinding-${ns}`, { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding' }, {
          metadata: { name: this.roleName, namespace: ns, labels },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: this.roleName },
          subjects: [{ kind: 'ServiceAccount', name: this.serviceAccountName, namespace }],
        });
      }
    } else {
      kubeObject<IRole>(this, 'Role', { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role' }, { metadata: { name: this.roleName, labels }, rules });
      kubeObject<IRoleBinding>(this, 'RoleBinding', { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding' }, {
        metadata: { name: this.roleName, labels },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: this.roleName },
        subjects: [{ kind: 'ServiceAccount', name: this.serviceAccountName }],
      });
    }
    // The component label is how a KVStore resource's NetworkPolicy tells the operator from other
    // stores' reconciler Jobs: maintenance talks to every member's client port, so it carries it too.
    const podTemplate = (args: string[]) => ({
      metadata: { labels: { ...labels, [COMPONENT_LABEL]: OPERATOR_COMPONENT } },
      spec: reconcilerPodSpec({
        serviceAccountName: this.serviceAccountName,
        image,
        // Its own image prunes the backups of stores that name no prune image (maintenance renders
        // the stores as reconcile does: a snapshot before replacing a member runs that template).
        args: ['--crd', ...scopeArgs(namespaces, selector), '--prune-image', image, ...args],
        env: [{ name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } }],
      }),
    });
    kubeObject<ICronJob>(this, 'Resource', { apiVersion: 'batch/v1', kind: 'CronJob' }, {
      metadata: { name: 'kvstore-reconciler', labels },
      spec: {
        schedule: props.schedule ?? '*/5 * * * *',
        // Never two reconcilers at once (the Lease guards each store as well).
        concurrencyPolicy: 'Forbid',
        startingDeadlineSeconds: 300,
        successfulJobsHistoryLimit: 1,
        failedJobsHistoryLimit: 3,
        jobTemplate: {
          spec: {
            backoffLimit: 1,
            activeDeadlineSeconds: 1800,
            template: podTemplate([]),
          },
        },
      },
    });
    if (maintenance && maintenanceCron !== undefined) {
      kubeObject<ICronJob>(this, 'Maintenance', { apiVersion: 'batch/v1', kind: 'CronJob' }, {
        metadata: { name: OPERATOR_MAINTENANCE_CRONJOB, labels },
        spec: {
          schedule: maintenanceCron,
          // One run at a time; a store whose Lease a reconcile holds is waited for (--lease-wait-seconds).
          concurrencyPolicy: 'Forbid',
          startingDeadlineSeconds: 300,
          successfulJobsHistoryLimit: 3,
          failedJobsHistoryLimit: 3,
          jobTemplate: {
            spec: {
              // A failed run (a store unhealthy, a member that did not come back) is the next schedule's
              // to retry; each store's Maintained condition says why.
              backoffLimit: 0,
              // Stores one after another, each replacement or recovery waiting up to 600 s per member.
              activeDeadlineSeconds: 3600,
              template: podTemplate(['--maintain', ...(maintenance.recoverQuorumLoss ? ['--recover-quorum-loss'] : [])]),
            },
          },
        },
      });
    }
  }
}

/** The reconciler's scope on its command line: listed namespaces, a label selector (keys sorted), or its own namespace. */
function scopeArgs(namespaces: string[] | undefined, selector: Record<string, string> | undefined): string[] {
  if (selector) return ['--namespace-selector', labelSelector(selector)];
  return ['--namespace', namespaces ? namespaces.join(',') : '$(POD_NAMESPACE)'];
}
