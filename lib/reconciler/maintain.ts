// Scheduled maintenance of a live etcd store (`kvstore-reconcile --store FILE --maintain`), under the
// store's Lease: a NOSPACE alarm is recovered from (compact, defragment, disarm), otherwise the members
// with enough to reclaim are defragmented, followers first and the leader last, only while the
// cluster is healthy. What to do is decided by the engine's pure planners (etcd-maintenance.ts).
import type { EtcdClientTls } from '../engines/etcd-membership';
import type { MaintenancePlan, MaintenanceResult } from '../engines/etcd-maintenance';
import { Log } from './log';

/** What a maintenance run did. */
export interface MaintainResult {
  /** `quorum-recovery`, `nospace-recovery`, `defragmentation`, or `none` (no live store). */
  readonly kind: 'quorum-recovery' | 'nospace-recovery' | 'defragmentation' | 'none';
  /** The engine's result: members defragmented, alarm disarmed or kept, why it stopped. */
  readonly result?: MaintenanceResult;
  /** The members replaced on an empty volume before (lost ones: see StoreReconciler.maintain), by pod name; absent when none. */
  readonly replaced?: readonly string[];
}

/** Why maintenance was not done, as a CamelCase reason (CRD mode's Maintained condition carries it). */
export type MaintenanceFailure = 'Unhealthy' | 'AlarmKept' | 'QuorumLost' | 'OperationInProgress' | 'MaintenanceNotDone';

/** A maintenance run that could not do what it had to (an unhealthy cluster, an alarm kept): the CronJob's Job fails. */
export class MaintenanceError extends Error {
  constructor(
    message: string,
    /** What the run did before it stopped, when it ran. */
    readonly result?: MaintenanceResult,
    /** Why, in one word. */
    readonly reason: MaintenanceFailure = 'MaintenanceNotDone',
  ) {
    super(message);
    this.name = 'MaintenanceError';
  }
}

/** What one maintenance run needs. */
export interface MaintainContext {
  /** The store, `<namespace>/<name>`, for the errors. */
  readonly store: string;
  /** One client URL per member, by ordinal. */
  readonly endpoints: string[];
  readonly tls?: EtcdClientTls;
  /** The store's --quota-backend-bytes. */
  readonly quotaBackendBytes: number;
  /** Renews the Lease (between retries and members). */
  readonly keepAlive: () => Promise<void>;
  readonly log: Log;
  /** Reports progress (CRD mode writes it to status). */
  readonly progress: (operation: string, message: string) => Promise<void>;
  /** How long to wait for the cluster to be healthy between members. */
  readonly retryTimeoutMs?: number;
  /** How long the first look waits for every member to answer and agree on a leader. @default 30000 */
  readonly healthyWithinMs?: number;
}

/** One maintenance run: plans from the members' status, carries the plan out, logs every step. */
export async function maintainMembers(ctx: MaintainContext): Promise<MaintainResult> {
  const { EtcdMaintenance, planDefragmentation, planNospaceRecovery, unhealthyReason } = await import('../engines/etcd-maintenance');
  const { log } = ctx;
  const maintenance = new EtcdMaintenance(ctx.endpoints, { onRetry: ctx.keepAlive, ...(ctx.tls ? { tls: ctx.tls } : {}), ...(ctx.retryTimeoutMs ? { retryTimeoutMs: ctx.retryTimeoutMs } : {}) });
  try {
    // A member just replaced or restarted may need a moment: healthy within the wait, or the plan says why not.
    let status = await maintenance.status();
    for (const deadline = Date.now() + (ctx.healthyWithinMs ?? 30_000); unhealthyReason(status) && Date.now() < deadline;) {
      await ctx.keepAlive();
      await new Promise((r) => setTimeout(r, 500));
      status = await maintenance.status();
    }
    const nospace = status.alarms.some((a) => a.alarm === 'NOSPACE');
    const kind = nospace ? 'nospace-recovery' : 'defragmentation';
    const plan: MaintenancePlan = nospace
      ? planNospaceRecovery(status, { quotaBackendBytes: ctx.quotaBackendBytes })
      : planDefragmentation(status, { quotaBackendBytes: ctx.quotaBackendBytes });
    if (nospace) log.info(`NOSPACE alarm raised: the store refuses writes (etcdserver: mvcc: database space exceeded); recovering: compact, defragment every member, disarm`, { action: 'nospace' });
    // Both planners skip only an unhealthy cluster (a member down, no leader, a learner, CORRUPT): the run fails, saying why.
    if (plan.skipped) throw new MaintenanceError(`store ${ctx.store}: maintenance not done: ${plan.skipped}`, undefined, 'Unhealthy');
    for (const t of plan.turns) log.info(`  ${t.reason}`);
    if (plan.turns.every((t) => t.action === 'skip') && !plan.disarmNospace && plan.compactRevision === undefined) {
      log.info('maintenance: no member has enough to reclaim', { action: 'maintenance-skip' });
      return { kind };
    }
    await ctx.progress(nospace ? 'RecoveringSpace' : 'Defragmenting', nospace ? 'compact, defragment every member, disarm NOSPACE' : `defragmenting ${plan.turns.filter((t) => t.action === 'defragment').length} member(s), the leader last`);
    const result = await maintenance.run(plan, (e) => log.info(e.message, {
      action: e.action,
      ...(e.defragmented ? { member: e.defragmented.name, beforeBytes: e.defragmented.dbSizeBeforeBytes, afterBytes: e.defragmented.dbSizeAfterBytes, ms: e.defragmented.durationMs } : {}),
    }));
    if (result.stopped) throw new MaintenanceError(`store ${ctx.store}: maintenance stopped: ${result.stopped}`, result, 'Unhealthy');
    if (nospace && !result.disarmed) throw new MaintenanceError(`store ${ctx.store}: NOSPACE alarm kept: ${result.alarm ?? 'the database is still over the quota'}`, result, 'AlarmKept');
    return { kind, result };
  } finally {
    maintenance.close();
  }
}
