// etcd recovery from quorum loss (a majority of members gone for good), by etcd's two disaster-recovery
// procedures: restart the most advanced survivor once with --force-new-cluster and add the others back
// one at a time, or lay every member's data out from a snapshot. Whether to recover, from what and at
// what cost in data is decided by a pure function (planQuorumRecovery); the rest of this file probes
// the members, renders the survivor's one-off start and waits for it to serve.
// @see https://etcd.io/docs/v3.5/op-guide/recovery/
import type { Etcd3 } from 'etcd3';
import { EtcdClientTls, etcdClient, Member, retryAcross } from './etcd-membership';
import { POD_ENV } from './types';

/** Where a recovery takes the data from: a surviving member's own data, or a snapshot file. */
export type RecoverySource = 'survivor' | 'snapshot';

/**
 * The source the user asks for. `auto` takes the most advanced survivor unless the snapshot holds a
 * later revision than every survivor (or no member answers), then the snapshot.
 */
export type PreferredRecoverySource = RecoverySource | 'auto';

/** A member that answered the recovery probe (etcd's Maintenance.Status). */
export interface ReachableProbe {
  /** True: it answered. */
  readonly reachable: true;
  /** The member's name (its pod's name). */
  readonly name: string;
  /** The client URL it was asked at. */
  readonly endpoint: string;
  /** Member ID as etcd prints it (decimal string). */
  readonly id: string;
  /** The member's current raft term. */
  readonly raftTerm: number;
  /** The raft index the member knows committed: what it keeps through --force-new-cluster. */
  readonly raftIndex: number;
  /** The key-value revision it has applied (Status header.revision). */
  readonly revision: number;
  /** Whether it sees a leader (itself or another member). */
  readonly hasLeader: boolean;
  /** Whether it is a non-voting learner (it counts for no quorum and cannot lead a one-member cluster). */
  readonly isLearner: boolean;
}

/** A member that did not answer the recovery probe. */
export interface UnreachableProbe {
  /** False: no answer. */
  readonly reachable: false;
  /** The member's name (its pod's name). */
  readonly name: string;
  /** The client URL it was asked at. */
  readonly endpoint: string;
  /** The client's error message. */
  readonly error: string;
}

/** What one member answered to the recovery probe, or that it did not. */
export type MemberProbe = ReachableProbe | UnreachableProbe;

/** A snapshot file and the revision it holds, as `etcdctl snapshot status` reports it. */
export interface SnapshotInfo {
  /** The file name (as the restore is told it: in the backup claim). */
  readonly file: string;
  /** The key-value revision the snapshot holds. */
  readonly revision: number;
}

/** What planQuorumRecovery decides from. */
export interface QuorumRecoveryInput {
  /**
   * The voting members' names: the member list etcd gave last (learners left out), or the
   * StatefulSet's pod names when no list is at hand. The majority is counted among these.
   */
  readonly members: readonly string[];
  /** One probe per member that was asked; a listed member without a probe counts as not answering. */
  readonly probes: readonly MemberProbe[];
  /**
   * The newest good snapshot, if any.
   * @default - none: only a survivor can be recovered from
   */
  readonly snapshot?: SnapshotInfo;
  /** The user's permission to lose the data the plan says may be lost. Without it every recovery is refused. */
  readonly allowDataLoss: boolean;
  /** The source the user prefers. */
  readonly source: PreferredRecoverySource;
}

/**
 * `not-needed` (a majority answers with a leader), `wait` (a member still sees a leader: the majority
 * may be alive out of reach), `impossible` (nothing to recover from), `refused` (a procedure exists but
 * loses data and allowDataLoss is not set), or `recover`.
 */
export type RecoveryOutcome = 'not-needed' | 'wait' | 'impossible' | 'refused' | 'recover';

/** The probe's count against the majority. */
export interface QuorumView {
  /** How many voting members are listed. */
  readonly listed: number;
  /** How many of them make a majority. */
  readonly majority: number;
  /** The listed voting members that answered. */
  readonly answering: readonly string[];
  /** Those of them that see a leader. */
  readonly withLeader: readonly string[];
  /** The listed members that gave no answer (or answered as learners), each with why. */
  readonly silent: readonly SilentMember[];
}

/** A listed member the probe counts as not answering. */
export interface SilentMember {
  /** The member's name. */
  readonly name: string;
  /** The client's error, `not probed`, or `answers as a learner`. */
  readonly error: string;
}

/** What a recovery may cost, against the best evidence at hand (the survivors' revisions, the snapshot's). */
export interface DataLoss {
  /**
   * Revisions known to be lost on this path: from a snapshot, the best survivor's revision minus the
   * snapshot's; from a survivor, the revisions a newer snapshot holds beyond it (else 0). Undefined when
   * it cannot be known: no member answers.
   */
  readonly lostRevisions?: number;
  /**
   * Writes acknowledged after this revision may be lost beyond lostRevisions: the lost members may have
   * committed later revisions, which cannot be read. Undefined when no member answers and there is no
   * snapshot.
   */
  readonly mayLoseAfterRevision?: number;
  /** The statement, in words. */
  readonly statement: string;
}

/** Recovery from the most advanced survivor: --force-new-cluster once, then the others added back. */
export interface ForceNewClusterProcedure {
  /** `survivor`. */
  readonly source: 'survivor';
  /** The member restarted once with --force-new-cluster on its own data. */
  readonly survivor: ReachableProbe;
  /** The other listed members, in name order: each wiped, added back as a learner, promoted once caught up. */
  readonly rejoin: readonly string[];
  /** What it may cost. */
  readonly dataLoss: DataLoss;
}

/** Recovery from a snapshot: every member's data laid out from it, as a new logical cluster. */
export interface SnapshotRestoreProcedure {
  /** `snapshot`. */
  readonly source: 'snapshot';
  /** The snapshot restored. */
  readonly snapshot: SnapshotInfo;
  /** Every listed member, each restored from the snapshot with a new cluster token. */
  readonly restore: readonly string[];
  /** What it may cost. */
  readonly dataLoss: DataLoss;
}

/** A way to recover: from a survivor or from a snapshot. */
export type RecoveryProcedure = ForceNewClusterProcedure | SnapshotRestoreProcedure;

/** What planQuorumRecovery decided. */
export interface QuorumRecoveryPlan {
  /** What to do. */
  readonly outcome: RecoveryOutcome;
  /** Why, in one sentence. */
  readonly reason: string;
  /** The probe's count against the majority. */
  readonly quorum: QuorumView;
  /** The procedure to carry out (`recover`) or the one refused (`refused`); undefined otherwise. */
  readonly procedure?: RecoveryProcedure;
}

const byName = (a: string, b: string) => a.localeCompare(b, 'en', { numeric: true });
const list = (names: readonly string[]) => names.join(', ');

/**
 * The most advanced voting survivors first: the highest committed raft index (what --force-new-cluster
 * keeps: committed logs are prefixes of one another, so the highest index holds every entry the others
 * do), then the highest revision, then the highest term, then the name. Not the term first: without
 * quorum a member campaigns again and again (etcd 3.4 runs no pre-vote by default), so its term counts
 * its elections, not what its log holds.
 */
function mostAdvancedFirst(probes: readonly ReachableProbe[]): ReachableProbe[] {
  return [...probes].sort((a, b) => b.raftIndex - a.raftIndex || b.revision - a.revision || b.raftTerm - a.raftTerm || byName(a.name, b.name));
}

function quorumView(input: QuorumRecoveryInput): { view: QuorumView; answering: ReachableProbe[] } {
  const listed = [...new Set(input.members)].sort(byName);
  const probeOf = (name: string) => input.probes.find((p) => p.name === name);
  const answering = listed.map(probeOf).filter((p): p is ReachableProbe => !!p?.reachable && !p.isLearner);
  return {
    answering,
    view: {
      listed: listed.length,
      majority: Math.floor(listed.length / 2) + 1,
      answering: answering.map((p) => p.name),
      withLeader: answering.filter((p) => p.hasLeader).map((p) => p.name),
      silent: listed.flatMap((name) => {
        const p = probeOf(name);
        if (!p) return [{ name, error: 'not probed' }];
        if (!p.reachable) return [{ name, error: p.error }];
        return p.isLearner ? [{ name, error: 'answers as a learner' }] : [];
      }),
    },
  };
}

function survivorLoss(best: ReachableProbe, lost: readonly string[], snapshot: SnapshotInfo | undefined): DataLoss {
  const r = best.revision;
  const base = `writes acknowledged after revision ${r} may be lost: the lost majority (${list(lost)}) may have committed revisions beyond ${r}, `
    + 'at most as many as they had beyond it, which cannot be read';
  if (!snapshot) return { lostRevisions: 0, mayLoseAfterRevision: r, statement: `${base}.` };
  if (snapshot.revision > r) {
    const n = snapshot.revision - r;
    return {
      lostRevisions: n,
      mayLoseAfterRevision: r,
      statement: `${base}; and the snapshot ${snapshot.file} holds revision ${snapshot.revision}, ${n} revision(s) beyond ${best.name}: `
        + 'those are lost for certain on this path (restoring the snapshot keeps them).',
    };
  }
  return {
    lostRevisions: 0,
    mayLoseAfterRevision: r,
    statement: `${base}. The snapshot ${snapshot.file} (revision ${snapshot.revision}) is ${r - snapshot.revision} revision(s) behind ${best.name}: it holds nothing ${best.name} lacks.`,
  };
}

function snapshotLoss(snapshot: SnapshotInfo, best: ReachableProbe | undefined): DataLoss {
  const s = snapshot.revision;
  if (!best) {
    return {
      mayLoseAfterRevision: s,
      statement: `unknown: no member answers, so nothing says how far the store had gone beyond the snapshot ${snapshot.file} (revision ${s}); every write after revision ${s} is lost.`,
    };
  }
  const r = best.revision;
  if (r <= s) {
    return {
      lostRevisions: 0,
      mayLoseAfterRevision: s,
      statement: `no revision a member that answers holds is lost: the snapshot ${snapshot.file} (revision ${s}) is at or beyond ${best.name} (revision ${r}); `
        + `writes acknowledged after revision ${s} by the lost members may be lost, which cannot be read.`,
    };
  }
  return {
    lostRevisions: r - s,
    mayLoseAfterRevision: r,
    statement: `${r - s} revision(s) are lost: the snapshot ${snapshot.file} holds revision ${s} and ${best.name} answers at revision ${r} `
      + `(revisions ${s + 1} to ${r}); and any the lost members had committed beyond ${r}, which cannot be read.`,
  };
}

/**
 * Whether and how to recover a store that lost quorum, and at what cost in data. Recovery is only for
 * a majority gone for good: `not-needed` while a majority of the listed voting members answers with a
 * leader; `wait` while fewer answer but one still sees a leader (with etcd's check-quorum a leader
 * that loses its majority steps down within an election timeout, and a follower loses its leader as
 * fast, so a leader seen means the majority may be alive out of the prober's reach: forcing a new
 * cluster then would leave two clusters serving). Otherwise the source: the most advanced survivor
 * (see mostAdvancedFirst: highest committed raft index, then revision, term, name), or the snapshot,
 * as `input.source` asks (`auto`: the survivor unless the snapshot is ahead of every survivor, or no
 * member answers). `impossible` when the source asked for is not there. Every recovery loses data
 * (the lost members' writes cannot be read), so it is `refused`, with the statement of what it may
 * lose, unless `allowDataLoss`.
 */
export function planQuorumRecovery(input: QuorumRecoveryInput): QuorumRecoveryPlan {
  const { view, answering } = quorumView(input);
  if (view.listed === 0) return { outcome: 'impossible', reason: 'no member is listed: give the member list etcd gave last, or the StatefulSet\'s pod names', quorum: view };
  const counted = `${view.answering.length} of ${view.listed} member(s) answer${view.answering.length ? ` (${list(view.answering)})` : ''}, ${view.withLeader.length} with a leader; a majority is ${view.majority}`;
  if (view.withLeader.length >= view.majority) {
    return {
      outcome: 'not-needed',
      reason: `quorum holds: ${counted}. Nothing to recover: a lost minority is replaced by the usual membership change.`,
      quorum: view,
    };
  }
  // A majority answering is no quorum loss, whatever they see now (an election takes a second or two).
  if (view.answering.length >= view.majority) {
    return {
      outcome: 'wait',
      reason: `no quorum loss: ${counted}. A majority answers, so it elects a leader once an election is over: probe again.`,
      quorum: view,
    };
  }
  if (view.withLeader.length > 0) {
    return {
      outcome: 'wait',
      reason: `quorum may still hold: ${counted}, but ${list(view.withLeader)} still see(s) a leader. The other members may be alive out of reach `
        + '(a network partition), or the leader was lost a moment ago (members notice within the election timeout, 1 s by default). '
        + 'Forcing a new cluster now could leave two clusters serving: probe again.',
      quorum: view,
    };
  }
  const lostMajority = `quorum lost: ${counted}`;
  const best = mostAdvancedFirst(answering)[0];
  const snapshot = input.snapshot;
  const wanted: RecoverySource | undefined = input.source === 'auto'
    ? (best && (!snapshot || best.revision >= snapshot.revision) ? 'survivor' : snapshot ? 'snapshot' : undefined)
    : input.source;
  let procedure: RecoveryProcedure;
  if (wanted === 'survivor') {
    if (!best) {
      return {
        outcome: 'impossible',
        reason: `${lostMajority}; no voting member answers, so there is no survivor to recover from${snapshot ? `: the snapshot ${snapshot.file} (revision ${snapshot.revision}) can be restored instead (source snapshot or auto)` : ''}.`,
        quorum: view,
      };
    }
    const rejoin = [...new Set(input.members)].filter((m) => m !== best.name).sort(byName);
    const lost = view.silent.map((s) => s.name);
    procedure = { source: 'survivor', survivor: best, rejoin, dataLoss: survivorLoss(best, lost, snapshot) };
  } else if (wanted === 'snapshot') {
    if (!snapshot) {
      return {
        outcome: 'impossible',
        reason: `${lostMajority}; no snapshot is given to restore${best ? `: ${best.name} (revision ${best.revision}) can be recovered from instead (source survivor or auto)` : ''}.`,
        quorum: view,
      };
    }
    procedure = { source: 'snapshot', snapshot, restore: [...new Set(input.members)].sort(byName), dataLoss: snapshotLoss(snapshot, best) };
  } else {
    return {
      outcome: 'impossible',
      reason: `${lostMajority}; no voting member answers and no snapshot is given: the data went with the members, there is nothing to recover from. `
        + 'Restore a backup taken elsewhere into a new store, or recreate the store empty.',
      quorum: view,
    };
  }
  if (!input.allowDataLoss) {
    return { outcome: 'refused', reason: `${lostMajority}; recovering may lose data and allowDataLoss is not set: ${procedure.dataLoss.statement}`, quorum: view, procedure };
  }
  const from = procedure.source === 'survivor'
    ? `from survivor ${procedure.survivor.name}, the most advanced member that answers`
    : `from the snapshot ${procedure.snapshot.file}`;
  return { outcome: 'recover', reason: `${lostMajority}; recovering ${from}.`, quorum: view, procedure };
}

/** The plan for people: what was found, what is to be done step by step, and what it may lose. */
export function describeRecoveryPlan(plan: QuorumRecoveryPlan): string[] {
  const lines = [`${plan.outcome}: ${plan.reason}`];
  if (plan.quorum.silent.length > 0) lines.push(`no answer from ${plan.quorum.silent.map((s) => `${s.name} (${s.error})`).join(', ')}`);
  const p = plan.procedure;
  if (!p) return lines;
  const prefix = plan.outcome === 'refused' ? 'would ' : '';
  if (p.source === 'survivor') {
    const s = p.survivor;
    lines.push(
      `${prefix}recover from survivor ${s.name} (member ${s.id}, raft index ${s.raftIndex}, term ${s.raftTerm}, revision ${s.revision}):`,
      `  1. stop ${s.name}; start it once with --force-new-cluster on its own data: etcd rewrites the membership to ${s.name} alone and keeps its data`,
      `  2. once it serves as a 1-member cluster, stop it and start it as usual (never with the flag again)`,
      ...p.rejoin.map((m, i) => `  ${3 + i}. add ${m} back: wipe its data, register it as a learner, start it with ETCD_INITIAL_CLUSTER_STATE=existing, promote it once caught up`),
    );
  } else {
    lines.push(
      `${prefix}recover from the snapshot ${p.snapshot.file} (revision ${p.snapshot.revision}):`,
      `  1. stop every member; lay out the data of ${list(p.restore)} from the snapshot with a new cluster token (etcdctl snapshot restore, a new data directory each)`,
      '  2. start every member: a new logical cluster holding the snapshot\'s data',
    );
  }
  lines.push(`data loss: ${p.dataLoss.statement}`);
  if (plan.outcome === 'refused') lines.push('set allowDataLoss to recover this way');
  return lines;
}

/**
 * The snapshot as `etcdctl snapshot status -w json` (etcdutl on 3.6) reports it:
 * `{"hash":…,"revision":6,"totalKey":9,"totalSize":20480}`.
 */
export function parseSnapshotStatus(json: string, file: string): SnapshotInfo {
  let status: { revision?: unknown };
  try {
    status = JSON.parse(json);
  } catch (e) {
    throw new Error(`snapshot ${file}: the status is not JSON (${(e as Error).message}): ${json.slice(0, 200)}`);
  }
  const revision = status?.revision;
  if (typeof revision !== 'number' || !Number.isSafeInteger(revision) || revision < 0) {
    throw new Error(`snapshot ${file}: the status gives no revision: ${json.slice(0, 200)}`);
  }
  return { file, revision };
}

/**
 * The survivor's one-off start with --force-new-cluster: the member container's args as EtcdEngine
 * renders them (`engine.container(ctx).args`) with `--force-new-cluster` added and `$(POD_NAME)` pinned
 * to the survivor's pod name.
 *
 * Rendered for a pod of its own (the recommended wiring: a one-off pod on the survivor's PVCs while the
 * StatefulSet runs no member), not for the StatefulSet's template: the flag must act exactly once.
 * etcd rewrites the membership every time it starts with it, so a member left with the flag would drop,
 * at its next restart, every member added back since. Pinning the name keeps the pod's own name out of
 * the member's identity (etcd publishes `--name` and the advertised client URL from it); the peer URL
 * comes from the data, whatever the flags say. Everything else stays as rendered, so the start has the
 * member's own data and WAL directories, TLS and the bootstrap ConfigMap's quota (load it with envFrom
 * too: without ETCD_QUOTA_BACKEND_BYTES etcd would apply its 2 GiB default to a larger database).
 * The caller must check first that the data directory holds the member's data: on an empty one etcd
 * ignores the flag and bootstraps from the initial cluster instead.
 */
export function forceNewClusterArgs(memberArgs: readonly string[], survivorPod: string): string[] {
  for (const flag of ['--name=', '--data-dir=']) {
    if (!memberArgs.some((a) => a.startsWith(flag))) throw new Error(`forceNewClusterArgs: the member's args have no ${flag}…: not an etcd member's container (${memberArgs.join(' ')})`);
  }
  const podName = `$(${POD_ENV.name})`;
  const args = memberArgs.filter((a) => a !== '--force-new-cluster' && !a.startsWith('--force-new-cluster=')).map((a) => a.split(podName).join(survivorPod));
  return [...args, '--force-new-cluster'];
}

/** A member as etcd lists it (EtcdMembership.list() gives these): its id, name and peer URLs. */
export type RegisteredMember = Pick<Member, 'id' | 'name' | 'peerURLs'>;

/**
 * ETCD_INITIAL_CLUSTER for a member added back after a recovery: every current member (as etcd lists
 * them, `joining` included once registered as a learner) with its peer URLs. etcd checks a joining
 * member's list against the cluster's ("member count is unequal" otherwise), so after a recovery from,
 * say, member 2 of 3 the list is members 2 and 0, not the first two ordinals a scale-up renders.
 */
export function rejoinInitialCluster(members: readonly RegisteredMember[], joining: { readonly name: string; readonly peerURL: string }): string {
  const all = members.some((m) => m.peerURLs.includes(joining.peerURL)) ? members : [...members, { id: '', name: joining.name, peerURLs: [joining.peerURL] }];
  return all.flatMap((m) => {
    const name = m.peerURLs.includes(joining.peerURL) ? joining.name : m.name;
    if (!name) throw new Error(`member ${m.id} (${m.peerURLs.join(', ')}) has not published its name yet: finish adding it before ${joining.name}`);
    return m.peerURLs.map((u) => `${name}=${u}`);
  }).join(',');
}

/** Options of probeMembers and waitStandalone. */
export interface RecoveryClientOptions {
  /** Per-call deadline. @default 5000 */
  readonly callTimeoutMs?: number;
  /** How long waitStandalone keeps asking. @default 60000 */
  readonly retryTimeoutMs?: number;
  /**
   * Mutual TLS: the CA that signed the members' certificate, the client certificate and key (PEM).
   * @default - plain HTTP
   */
  readonly tls?: EtcdClientTls;
}

/**
 * Asks every member for its status once, all at the same time (Maintenance.Status answers without
 * quorum); a member that does not answer within the deadline is unreachable. `members`: each member's
 * name (its pod's) and client URL.
 */
export async function probeMembers(members: ReadonlyArray<{ readonly name: string; readonly endpoint: string }>, options: RecoveryClientOptions = {}): Promise<MemberProbe[]> {
  return Promise.all(members.map(async ({ name, endpoint }): Promise<MemberProbe> => {
    const client = etcdClient(endpoint, options);
    try {
      const s = await client.maintenance.status();
      return {
        reachable: true,
        name,
        endpoint,
        id: s.header.member_id,
        raftTerm: Number(s.raftTerm),
        raftIndex: Number(s.raftIndex),
        revision: Number(s.header.revision),
        hasLeader: !!s.leader && s.leader !== '0',
        isLearner: !!s.isLearner,
      };
    } catch (e) {
      return { reachable: false, name, endpoint, error: (e as Error).message };
    } finally {
      client.close();
    }
  }));
}

/** A member serving as a cluster of one. */
export interface StandaloneMember {
  /** Its member ID (unchanged by --force-new-cluster). */
  readonly id: string;
  /** The revision it serves at. */
  readonly revision: number;
}

/**
 * Waits until the member at `endpoint` serves as a cluster of one: it leads, it is the only member
 * listed, and a linearizable read through it succeeds (it reaches quorum: its own). Until
 * `retryTimeoutMs`.
 */
export async function waitStandalone(endpoint: string, options: RecoveryClientOptions = {}): Promise<StandaloneMember> {
  const client = etcdClient(endpoint, options);
  try {
    return await retryAcross([client], async (c: Etcd3) => {
      const s = await c.maintenance.status();
      const id = s.header.member_id;
      if (s.leader !== id) throw new Error(`not serving yet: it sees leader ${s.leader || 'none'}, not itself (${id})`);
      const members = (await c.cluster.memberList({ linearizable: true })).members;
      if (members.length !== 1 || members[0].ID !== id) throw new Error(`not serving yet: ${members.length} member(s) listed (${members.map((m) => m.name || m.ID).join(', ')})`);
      const read = await c.get('kvstore-recovery-probe').exec();
      return { id, revision: Number(read.header.revision) };
    }, /./, { retryTimeoutMs: options.retryTimeoutMs ?? 60_000 });
  } finally {
    client.close();
  }
}
