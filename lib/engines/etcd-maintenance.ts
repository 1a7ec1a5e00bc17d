// etcd maintenance for the reconciler: defragmentation (a member's free pages given back to the disk)
// and recovery from a NOSPACE alarm (compact, defragment, disarm), one member at a time, followers
// first, the leader last. What to do is decided by pure functions (planDefragmentation,
// planNospaceRecovery, nospaceDisarm); the EtcdMaintenance class only carries a plan out.
import { AlarmAction, AlarmType, Etcd3, IStatusResponse } from 'etcd3';
import { EtcdClientTls, etcdClient, Member, retryAcross } from './etcd-membership';

const MiB = 2 ** 20;

/** One member's answer to etcd's Maintenance.Status, sizes in bytes. */
export interface MemberStatus {
  /** The client URL it was asked at. */
  readonly endpoint: string;
  /** Member ID as etcd prints it (decimal string). */
  readonly id: string;
  /** The member's name from the member list ('' when it has published none). */
  readonly name: string;
  /** etcd's `dbSize`: the size of the database file. The quota counts this, and only defragmentation shrinks it. */
  readonly dbSizeBytes: number;
  /** etcd's `dbSizeInUse` (3.4 and later): the part of the file in use; the rest is free pages. */
  readonly dbSizeInUseBytes: number;
  /** The leader's ID as this member sees it ('0' for none). */
  readonly leaderId: string;
  /** Whether this member sees itself as the leader. */
  readonly isLeader: boolean;
  /** Raft index committed as this member knows it. */
  readonly raftIndex: number;
  /** Raft index this member has applied. */
  readonly raftAppliedIndex: number;
  /** Whether the member is a non-voting learner. */
  readonly isLearner: boolean;
  /** The key-value store revision this member has applied. */
  readonly revision: string;
  /** etcd's error lines of the status (alarms as `memberID:<id> alarm:NOSPACE`, no leader). */
  readonly errors: readonly string[];
}

/** An endpoint that gave no status. */
export interface UnreachableMember {
  /** The client URL asked. */
  readonly endpoint: string;
  /** The client's error message. */
  readonly error: string;
}

/** A member as etcd lists it: its id and name. */
export type ListedMember = Pick<Member, 'id' | 'name'>;

/** A raised etcd alarm. */
export interface EtcdAlarm {
  /** The member that raised it (decimal string). */
  readonly memberId: string;
  /** `NOSPACE` (the database reached its quota: writes refused) or `CORRUPT` (the members' data differ). */
  readonly alarm: string;
}

/** The cluster as the maintenance sees it: each endpoint's status, the member list, the alarms. */
export interface ClusterStatus {
  /** The status of every endpoint that answered, in the order given. */
  readonly members: readonly MemberStatus[];
  /** The endpoints that did not answer. */
  readonly unreachable: readonly UnreachableMember[];
  /** The members etcd lists (empty when no endpoint gave the list). */
  readonly listed: readonly ListedMember[];
  /** The raised alarms. */
  readonly alarms: readonly EtcdAlarm[];
}

/** What every plan needs to know about the store. */
export interface MaintenanceOptions {
  /** The store's --quota-backend-bytes (the engine's quotaBackendBytes for its spec). */
  readonly quotaBackendBytes: number;
  /**
   * Disarm a NOSPACE alarm only when every member's database file is under this share of the quota.
   * Below 1 so a disarmed store has room to write before the alarm comes back: a store disarmed at 99%
   * would be refused again within a few writes, and each recovery drops the key history.
   * @default 0.8
   */
  readonly disarmBelowRatio?: number;
}

/** Thresholds of a defragmentation plan. */
export interface DefragmentationOptions extends MaintenanceOptions {
  /**
   * Skip a member with fewer reclaimable bytes (dbSize − dbSizeInUse) than this. Defragmentation
   * rewrites the whole file and blocks the member's reads and writes while it runs, so it must win
   * back enough to be worth the pause: 64 MiB is about 1% of the default 5 GiB quota (10Gi volume);
   * a tenth of a smaller quota.
   * @default - 64 MiB, or a tenth of quotaBackendBytes if that is less
   */
  readonly minReclaimableBytes?: number;
  /**
   * Skip a member whose reclaimable bytes are under this share of its database file: rewriting a
   * large file to shrink it by a few percent costs more than it gives.
   * @default 0.1
   */
  readonly minReclaimableRatio?: number;
}

/** One member's turn in a plan. */
export interface MemberTurn {
  /** `defragment` or `skip`. */
  readonly action: 'defragment' | 'skip';
  /** The member, as it was when planned. */
  readonly member: MemberStatus;
  /** Why, in words: `kv-1: 120 MiB of 130 MiB reclaimable: defragment`. */
  readonly reason: string;
}

/** What a maintenance run is to do, decided from a ClusterStatus by a planner. */
export interface MaintenancePlan {
  /** Why nothing is to be done at all (an unhealthy cluster, no alarm to recover from); undefined otherwise. */
  readonly skipped?: string;
  /** Compact the key history up to this revision first (NOSPACE recovery); undefined for none. */
  readonly compactRevision?: string;
  /** Every member, followers in name order, the leader last, each with what to do and why. */
  readonly turns: readonly MemberTurn[];
  /** Whether to disarm the NOSPACE alarm at the end, once nospaceDisarm() agrees on fresh status. */
  readonly disarmNospace: boolean;
  /** The quota and ratio the disarm decision uses. */
  readonly options: MaintenanceOptions;
}

/** Whether to disarm the NOSPACE alarm, and why (not). */
export interface DisarmDecision {
  /** True to disarm. */
  readonly disarm: boolean;
  /** Why, in words. */
  readonly reason: string;
}

/** `1.5 MiB`, `120 MiB`, `2.0 GiB`: sizes for people. */
export function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
  if (bytes >= MiB) return `${(bytes / MiB).toFixed(bytes >= 10 * MiB ? 0 : 1)} MiB`;
  if (bytes >= 1024) return `${Math.round(bytes / 1024)} KiB`;
  return `${bytes} B`;
}

const nameOf = (m: { name: string; id: string }) => m.name || m.id;
const byName = (a: MemberStatus, b: MemberStatus) => nameOf(a).localeCompare(nameOf(b), 'en', { numeric: true });

/**
 * Why the cluster is not fit for maintenance, or undefined when it is: every listed member answered
 * at an endpoint given, none is a learner (a membership change in progress), all agree on one leader
 * that is among them, and no CORRUPT alarm is raised (that one needs a person and a backup, not a
 * defragmentation).
 */
export function unhealthyReason(status: ClusterStatus): string | undefined {
  const names = (ms: ReadonlyArray<{ name: string; id: string }>) => ms.map(nameOf).join(', ');
  if (status.unreachable.length > 0) {
    return `no status from ${status.unreachable.map((u) => `${u.endpoint} (${u.error})`).join(', ')}`;
  }
  if (status.listed.length === 0) return 'no endpoint gave the member list';
  const unasked = status.listed.filter((l) => !status.members.some((m) => m.id === l.id));
  if (unasked.length > 0) return `no status from member(s) ${names(unasked)}: no endpoint given answers for them`;
  const unlisted = status.members.filter((m) => !status.listed.some((l) => l.id === m.id));
  if (unlisted.length > 0) return `${unlisted.map((m) => m.endpoint).join(', ')} answered as member(s) etcd does not list`;
  const learners = status.members.filter((m) => m.isLearner);
  if (learners.length > 0) return `${names(learners)} is a learner: a membership change is in progress`;
  const leaderless = status.members.filter((m) => m.leaderId === '0');
  if (leaderless.length > 0) return `${names(leaderless)} sees no leader`;
  const leaders = [...new Set(status.members.map((m) => m.leaderId))];
  if (leaders.length > 1) return `the members disagree on the leader (${status.members.map((m) => `${nameOf(m)} sees ${m.leaderId}`).join(', ')})`;
  if (!status.members.some((m) => m.id === leaders[0])) return `the leader ${leaders[0]} is not among the members`;
  if (status.alarms.some((a) => a.alarm === 'CORRUPT')) return 'a CORRUPT alarm is raised: the members\' data differ; restore from a backup';
  return undefined;
}

/** The members in the order they are worked on: followers by name, the leader last. */
function ordered(status: ClusterStatus): MemberStatus[] {
  return [...status.members].sort((a, b) => Number(a.isLeader) - Number(b.isLeader) || byName(a, b));
}

const hasNospace = (status: ClusterStatus) => status.alarms.some((a) => a.alarm === 'NOSPACE');

const skippedPlan = (skipped: string, options: MaintenanceOptions): MaintenancePlan => ({ skipped, turns: [], disarmNospace: false, options });

/**
 * Which members to defragment, in order: only while the cluster is healthy (see unhealthyReason),
 * one member at a time, followers in name order, the leader last (a member stalls while it is
 * defragmented; a stalled leader holds up every write and, past the election timeout, costs an
 * election). A member is skipped when it has less to reclaim (dbSize − dbSizeInUse) than
 * `minReclaimableBytes` or than `minReclaimableRatio` of its file.
 *
 * etcd refreshes dbSizeInUse when it next commits to the database: a store not written to since a
 * compaction still counts what the compaction freed, and is defragmented from the first plan after a
 * write. With a NOSPACE alarm raised the plan also disarms it at the end if the files are then under
 * the limit (see nospaceDisarm); planNospaceRecovery, which compacts first, is the one for a store
 * that hit its quota.
 */
export function planDefragmentation(status: ClusterStatus, options: DefragmentationOptions): MaintenancePlan {
  const unhealthy = unhealthyReason(status);
  if (unhealthy) return skippedPlan(`defragmentation skipped: ${unhealthy}`, options);
  const floor = options.minReclaimableBytes ?? Math.min(64 * MiB, Math.floor(options.quotaBackendBytes / 10));
  const ratio = options.minReclaimableRatio ?? 0.1;
  const turns = ordered(status).map((m): MemberTurn => {
    const reclaimable = Math.max(0, m.dbSizeBytes - m.dbSizeInUseBytes);
    const leader = m.isLeader ? ' (the leader, last)' : '';
    if (reclaimable < floor) {
      return { action: 'skip', member: m, reason: `${nameOf(m)}: ${formatBytes(reclaimable)} reclaimable, under the ${formatBytes(floor)} floor: skip` };
    }
    if (reclaimable < ratio * m.dbSizeBytes) {
      return { action: 'skip', member: m, reason: `${nameOf(m)}: ${formatBytes(reclaimable)} of ${formatBytes(m.dbSizeBytes)} reclaimable, under ${Math.round(ratio * 100)}% of its database: skip` };
    }
    return { action: 'defragment', member: m, reason: `${nameOf(m)}: ${formatBytes(reclaimable)} of ${formatBytes(m.dbSizeBytes)} reclaimable: defragment${leader}` };
  });
  return { turns, disarmNospace: hasNospace(status), options };
}

/**
 * Recovery of a store whose NOSPACE alarm is raised (every write refused with "etcdserver: mvcc:
 * database space exceeded"; reads and deletes still work): compact the key history up to the current
 * revision, defragment every member whatever it has to reclaim (followers in name order, the leader
 * last), then disarm the alarm if every member's database file is under the limit (see nospaceDisarm).
 *
 * Compacting to the current revision keeps the latest version of every key: no current key or value
 * is lost, but the history older than now is dropped (a watch or a read at an older revision gets
 * "required revision has been compacted"). If the live data alone fills the quota, compaction and
 * defragmentation cannot help: the alarm stays, the store stays read-only, and the quota must grow.
 * Only while the cluster is healthy (see unhealthyReason): a member that does not answer could not be
 * defragmented, and would raise the alarm again.
 */
export function planNospaceRecovery(status: ClusterStatus, options: MaintenanceOptions): MaintenancePlan {
  if (!hasNospace(status)) return skippedPlan('NOSPACE recovery skipped: no NOSPACE alarm is raised', options);
  const unhealthy = unhealthyReason(status);
  if (unhealthy) return skippedPlan(`NOSPACE recovery skipped: ${unhealthy}`, options);
  // The highest revision any member has applied exists, so etcd accepts it for compaction.
  const revision = status.members.map((m) => BigInt(m.revision)).reduce((a, b) => (b > a ? b : a)).toString();
  const turns = ordered(status).map((m): MemberTurn => ({
    action: 'defragment',
    member: m,
    reason: `${nameOf(m)}: ${formatBytes(m.dbSizeBytes)} (${formatBytes(m.dbSizeInUseBytes)} in use) of the ${formatBytes(options.quotaBackendBytes)} quota: defragment after compacting to revision ${revision}${m.isLeader ? ' (the leader, last)' : ''}`,
  }));
  return { compactRevision: revision, turns, disarmNospace: true, options };
}

/**
 * Whether to disarm the NOSPACE alarm now: only when one is raised, the cluster is healthy and every
 * member's database file is under `disarmBelowRatio` of the quota (etcd checks the file size, not the
 * part in use, against the quota). When the part in use alone is over that limit, the live data fills
 * the quota and the answer says the quota must grow.
 */
export function nospaceDisarm(status: ClusterStatus, options: MaintenanceOptions): DisarmDecision {
  if (!hasNospace(status)) return { disarm: false, reason: 'no NOSPACE alarm is raised' };
  const unhealthy = unhealthyReason(status);
  if (unhealthy) return { disarm: false, reason: `NOSPACE alarm kept: ${unhealthy}` };
  const ratio = options.disarmBelowRatio ?? 0.8;
  const limit = Math.floor(options.quotaBackendBytes * ratio);
  const limitText = `${formatBytes(limit)} (${Math.round(ratio * 100)}% of the ${formatBytes(options.quotaBackendBytes)} quota)`;
  const full = status.members.filter((m) => m.dbSizeInUseBytes >= limit);
  if (full.length > 0) {
    return {
      disarm: false,
      reason: `NOSPACE alarm kept: the live data alone is over ${limitText} on ${full.map((m) => `${nameOf(m)} (${formatBytes(m.dbSizeInUseBytes)} in use)`).join(', ')}. `
        + 'The store stays read-only (reads and deletes work, writes are refused) until the quota grows '
        + '(engine.quotaBackendBytes, with storageSize to hold it) or keys are deleted.',
    };
  }
  const large = status.members.filter((m) => m.dbSizeBytes >= limit);
  if (large.length > 0) {
    return { disarm: false, reason: `NOSPACE alarm kept: the database file is over ${limitText} on ${large.map((m) => `${nameOf(m)} (${formatBytes(m.dbSizeBytes)})`).join(', ')}; defragment it first` };
  }
  const largest = Math.max(...status.members.map((m) => m.dbSizeBytes));
  return { disarm: true, reason: `NOSPACE alarm disarmed: every database file is under ${limitText}, the largest ${formatBytes(largest)}` };
}

/** Options of EtcdMaintenance. */
export interface EtcdMaintenanceOptions {
  /** Per-call deadline of the quick calls (status, member list, alarms). @default 5000 */
  readonly callTimeoutMs?: number;
  /**
   * Per-call deadline of a defragmentation and of a compaction, which take time in proportion to
   * the data: seconds for a few hundred MiB, minutes near the 8 GiB ceiling.
   * @default 300000
   */
  readonly defragmentTimeoutMs?: number;
  /**
   * How long one operation keeps retrying while members are unreachable, and a run waits for the
   * cluster to be healthy again between members (an election after a defragmentation). @default 60000
   */
  readonly retryTimeoutMs?: number;
  /** Called between retry rounds (the reconciler renews its Lease there). */
  readonly onRetry?: () => Promise<void>;
  /**
   * Mutual TLS: the CA that signed the members' certificate, the client certificate and key (PEM).
   * @default - plain HTTP
   */
  readonly tls?: EtcdClientTls;
}

/** A member defragmented in a run, with its file size before and after. */
export interface DefragmentedMember {
  /** Member ID. */
  readonly id: string;
  /** Member name. */
  readonly name: string;
  /** The client URL it was defragmented through. */
  readonly endpoint: string;
  /** dbSize just before. */
  readonly dbSizeBeforeBytes: number;
  /** dbSize just after. */
  readonly dbSizeAfterBytes: number;
  /** How long the defragmentation call took. */
  readonly durationMs: number;
}

/** One thing a run did (or chose not to do), for the caller's log. */
export interface MaintenanceEvent {
  /** `compact`, `defragment`, `skip`, `disarm`, `keep-alarm` or `stop`. */
  readonly action: 'compact' | 'defragment' | 'skip' | 'disarm' | 'keep-alarm' | 'stop';
  /** One log line. */
  readonly message: string;
  /** The member and its sizes (`defragment` only). */
  readonly defragmented?: DefragmentedMember;
}

/** What a run did. */
export interface MaintenanceResult {
  /** Why the run did nothing, or stopped before the end; undefined when it ran every step. */
  readonly stopped?: string;
  /** The members defragmented, in order. */
  readonly defragmented: readonly DefragmentedMember[];
  /** Whether the NOSPACE alarm was disarmed. */
  readonly disarmed: boolean;
  /** Why the alarm was disarmed or kept (plans that asked for a disarm); undefined otherwise. */
  readonly alarm?: string;
}

/** Errors worth another try, at another endpoint or a little later: a member down or restarting, no leader. */
const RETRYABLE = /UNAVAILABLE|ECONNREFUSED|leader changed|no leader|deadline|timed out/i;
/**
 * A defragmentation is retried only when it never reached the member: one past its deadline may
 * still be running there, and another call would queue behind it.
 */
const DEFRAGMENT_RETRYABLE = /UNAVAILABLE|ECONNREFUSED/i;

const ALARM_NAMES: Record<string, string> = { Nospace: 'NOSPACE', Corrupt: 'CORRUPT', None: 'NONE' };

function toStatus(endpoint: string, s: IStatusResponse): Omit<MemberStatus, 'name'> {
  return {
    endpoint,
    id: s.header.member_id,
    dbSizeBytes: Number(s.dbSize),
    dbSizeInUseBytes: Number(s.dbSizeInUse),
    leaderId: s.leader || '0',
    isLeader: s.leader === s.header.member_id,
    raftIndex: Number(s.raftIndex),
    raftAppliedIndex: Number(s.raftAppliedIndex),
    isLearner: !!s.isLearner,
    revision: s.header.revision,
    errors: s.errors ?? [],
  };
}

/**
 * Maintenance calls against a running cluster, one client per member endpoint: a status and a
 * defragmentation concern exactly one member, so they go to its own endpoint; the cluster-wide calls
 * (member list, compaction, alarms) go to whichever endpoint answers.
 */
export class EtcdMaintenance {
  private readonly clients = new Map<string, Etcd3>();

  /** `endpoints`: one client URL per member (such as each member pod's). */
  constructor(endpoints: string[], private readonly options: EtcdMaintenanceOptions = {}) {
    if (endpoints.length === 0) throw new Error('EtcdMaintenance needs at least one endpoint');
    for (const host of endpoints) {
      this.clients.set(host, etcdClient(host, options));
    }
  }

  /** `call` at each of `clients` in turn until one answers, rounds 250 ms apart, until the retry deadline. */
  private retried<T>(clients: Etcd3[], call: (c: Etcd3) => Promise<T>, retryable: RegExp = RETRYABLE): Promise<T> {
    return retryAcross(clients, call, retryable, this.options);
  }


  private anywhere<T>(call: (c: Etcd3) => Promise<T>): Promise<T> {
    return this.retried([...this.clients.values()], call);
  }

  private client(endpoint: string): Etcd3 {
    const client = this.clients.get(endpoint);
    if (!client) throw new Error(`EtcdMaintenance: ${endpoint} is not one of the endpoints given (${[...this.clients.keys()].join(', ')})`);
    return client;
  }

  private get longDeadline() {
    return { deadline: Date.now() + (this.options.defragmentTimeoutMs ?? 300_000) };
  }

  /**
   * Every endpoint's status (asked once each, in parallel: one that does not answer is listed as
   * unreachable rather than waited for), the member list and the alarms. Throws only when members
   * answer but none gives the alarm list.
   */
  async status(): Promise<ClusterStatus> {
    const answers = await Promise.all([...this.clients].map(async ([endpoint, c]) => {
      try {
        return toStatus(endpoint, await c.maintenance.status());
      } catch (e) {
        return { endpoint, error: (e as Error).message };
      }
    }));
    const reached = [...this.clients].filter(([endpoint]) => answers.some((a) => a.endpoint === endpoint && !('error' in a))).map(([, c]) => c);
    let failure = '';
    const first = async <T>(call: (c: Etcd3) => Promise<T>): Promise<T | undefined> => {
      for (const c of reached) {
        try {
          return await call(c);
        } catch (e) {
          failure = (e as Error).message;
        }
      }
      return undefined;
    };
    const listed = (await first(async (c) => (await c.cluster.memberList({ linearizable: true })).members.map((m) => ({ id: m.ID, name: m.name })))) ?? [];
    const alarms = await first((c) => this.alarmsAt(c));
    // An unknown alarm list must not read as "no alarm" (a NOSPACE recovery would be skipped).
    if (!alarms && reached.length > 0) throw new Error(`no member answered the alarm list: ${failure}`);
    return {
      members: answers.flatMap((a) => ('error' in a ? [] : [{ ...a, name: listed.find((l) => l.id === a.id)?.name ?? '' }])),
      unreachable: answers.flatMap((a) => ('error' in a ? [a as UnreachableMember] : [])),
      listed,
      alarms: alarms ?? [],
    };
  }

  /** The status once unhealthyReason() finds nothing, or the last one read when the retry time is up. */
  private async settledStatus(): Promise<ClusterStatus> {
    const deadline = Date.now() + (this.options.retryTimeoutMs ?? 60_000);
    for (;;) {
      const status = await this.status();
      if (!unhealthyReason(status) || Date.now() > deadline) return status;
      await this.options.onRetry?.();
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  private async alarmsAt(c: Etcd3): Promise<EtcdAlarm[]> {
    const response = await c.maintenance.alarm({ action: AlarmAction.Get, memberID: 0, alarm: AlarmType.None });
    return response.alarms.map((a) => ({ memberId: a.memberID, alarm: ALARM_NAMES[a.alarm] ?? String(a.alarm).toUpperCase() }));
  }

  /** The raised alarms. */
  async alarms(): Promise<EtcdAlarm[]> {
    return this.anywhere((c) => this.alarmsAt(c));
  }

  /**
   * Deactivates every raised NOSPACE alarm (a CORRUPT one is never touched); returns those it
   * deactivated. Use nospaceDisarm() first: a member still over its quota raises it again.
   */
  async disarm(): Promise<EtcdAlarm[]> {
    const raised = (await this.alarms()).filter((a) => a.alarm === 'NOSPACE');
    for (const a of raised) {
      await this.anywhere((c) => c.maintenance.alarm({ action: AlarmAction.Deactivate, memberID: a.memberId, alarm: AlarmType.Nospace }));
    }
    return raised;
  }

  /**
   * Compacts the key history up to `revision` (older versions of keys dropped, the latest of each
   * kept), physically: the call returns once the member it went through has removed them from its
   * database (the others do so in the background). Through `endpoint` when given, else any. A
   * revision already compacted counts as done (an earlier attempt, or this member asked again: etcd
   * then answers once the member's own compaction has finished).
   */
  async compact(revision: string, endpoint?: string): Promise<void> {
    try {
      await this.retried(endpoint ? [this.client(endpoint)] : [...this.clients.values()], (c) => c.kv.compact({ revision, physical: true }, this.longDeadline));
    } catch (e) {
      if (!/required revision has been compacted/i.test((e as Error).message)) throw e;
    }
  }

  /**
   * Defragments the one member at `endpoint` (etcd defragments only the member that receives the
   * call): rewrites its database file without the free pages, in time proportional to the data in
   * use. The member stalls (no reads, writes or raft progress) while it runs. Deadline:
   * `defragmentTimeoutMs`.
   */
  async defragment(endpoint: string): Promise<void> {
    await this.retried([this.client(endpoint)], (c) => c.maintenance.defragment(this.longDeadline), DEFRAGMENT_RETRYABLE);
  }

  /**
   * Carries out `plan`, calling `onStep` for each thing done: the compaction, then one member at a
   * time, each only while the cluster is healthy (status read afresh before each, waiting up to
   * `retryTimeoutMs` for it to settle, else the run stops and says why) and, after a compaction, only
   * once that member has finished compacting; the leader last even if leadership moved since the plan
   * was made; then, if the plan asks, disarms the NOSPACE alarm when nospaceDisarm() agrees on fresh
   * status.
   */
  async run(plan: MaintenancePlan, onStep: (event: MaintenanceEvent) => void = () => undefined): Promise<MaintenanceResult> {
    if (plan.skipped) {
      onStep({ action: 'stop', message: plan.skipped });
      return { stopped: plan.skipped, defragmented: [], disarmed: false };
    }
    const pending = plan.turns.filter((t) => t.action === 'defragment');
    for (const t of plan.turns) if (t.action === 'skip') onStep({ action: 'skip', message: t.reason });
    if (plan.compactRevision !== undefined) {
      await this.compact(plan.compactRevision, pending[0]?.member.endpoint);
      onStep({ action: 'compact', message: `compacted the key history up to revision ${plan.compactRevision}` });
    }
    const defragmented: DefragmentedMember[] = [];
    while (pending.length > 0) {
      const now = await this.settledStatus();
      const unhealthy = unhealthyReason(now);
      if (unhealthy) {
        const stopped = `stopped before ${pending.map((t) => nameOf(t.member)).join(', ')}: ${unhealthy}`;
        onStep({ action: 'stop', message: stopped });
        return { stopped, defragmented, disarmed: false };
      }
      const index = Math.max(0, pending.findIndex((t) => !now.members.some((m) => m.id === t.member.id && m.isLeader)));
      const [turn] = pending.splice(index, 1);
      const before = now.members.find((m) => m.id === turn.member.id)!;
      // Asked again through this member, a compaction returns once the member has finished its own
      // (etcd answers a revision already compacted after its compaction barrier): defragmenting a
      // member mid-compaction would keep what the compaction was about to free.
      if (plan.compactRevision !== undefined) await this.compact(plan.compactRevision, before.endpoint);
      const started = Date.now();
      await this.defragment(before.endpoint);
      const durationMs = Date.now() - started;
      const after = toStatus(before.endpoint, await this.retried([this.client(before.endpoint)], (c) => c.maintenance.status()));
      const done: DefragmentedMember = {
        id: before.id, name: before.name, endpoint: before.endpoint, dbSizeBeforeBytes: before.dbSizeBytes, dbSizeAfterBytes: after.dbSizeBytes, durationMs,
      };
      defragmented.push(done);
      onStep({
        action: 'defragment',
        message: `${nameOf(before)}${before.isLeader ? ' (leader)' : ''}: defragmented in ${(durationMs / 1000).toFixed(1)} s, ${formatBytes(before.dbSizeBytes)} → ${formatBytes(after.dbSizeBytes)}`,
        defragmented: done,
      });
    }
    if (!plan.disarmNospace) return { defragmented, disarmed: false };
    const decision = nospaceDisarm(await this.settledStatus(), plan.options);
    if (decision.disarm) await this.disarm();
    onStep({ action: decision.disarm ? 'disarm' : 'keep-alarm', message: decision.reason });
    return { defragmented, disarmed: decision.disarm, alarm: decision.reason };
  }

  /** Closes every client. */
  close(): void {
    for (const c of this.clients.values()) c.close();
  }
}
