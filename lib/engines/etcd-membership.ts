// etcd membership operations for the reconciler: list, add as learner, promote, remove — one member
// at a time, only with quorum — through the etcd3 client library. The decision of what to change is a
// pure function (membershipSteps); this file's class only carries the steps out.
import { noop } from 'cockatiel';
import { Etcd3, IMember } from 'etcd3';

export interface Member {
  /** Member ID as etcd prints it (decimal string). */
  readonly id: string;
  /** Empty until the member has started and published itself. */
  readonly name: string;
  readonly peerURLs: readonly string[];
  readonly isLearner: boolean;
}

/** One membership change; each needs quorum and is followed by a pod change by the caller. */
export type MembershipStep =
  | { readonly action: 'add-learner'; readonly name: string; readonly peerURL: string }
  | { readonly action: 'promote'; readonly name: string }
  | { readonly action: 'remove'; readonly id: string; readonly name: string };

/**
 * The next membership change that brings `current` towards `desired` (member names with their peer
 * URLs), or undefined when they match. One step at a time, as etcd requires: finish a learner first
 * (promote it), then add the lowest missing member, then remove the highest surplus one.
 */
export function nextMembershipStep(current: readonly Member[], desired: ReadonlyArray<{ name: string; peerURL: string }>): MembershipStep | undefined {
  const wanted = new Map(desired.map((d) => [d.peerURL, d.name]));
  const learner = current.find((m) => m.isLearner && m.peerURLs.some((u) => wanted.has(u)));
  if (learner) return { action: 'promote', name: wanted.get(learner.peerURLs.find((u) => wanted.has(u))!)! };
  const missing = desired.find((d) => !current.some((m) => m.peerURLs.includes(d.peerURL)));
  if (missing) return { action: 'add-learner', name: missing.name, peerURL: missing.peerURL };
  const surplus = current.filter((m) => !m.peerURLs.some((u) => wanted.has(u)));
  if (surplus.length > 0) {
    const last = [...surplus].sort((a, b) => b.name.localeCompare(a.name, 'en', { numeric: true }))[0];
    return { action: 'remove', id: last.id, name: last.name };
  }
  return undefined;
}

const toMember = (m: IMember): Member => ({ id: m.ID, name: m.name, peerURLs: m.peerURLs, isLearner: !!m.isLearner });

export interface EtcdMembershipOptions {
  /** Per-call deadline. @default 5000 */
  readonly callTimeoutMs?: number;
  /** How long promote waits for a learner to catch up. @default 60000 */
  readonly promoteTimeoutMs?: number;
}

/** Membership calls against a running cluster, through any of its client endpoints. */
export class EtcdMembership {
  private readonly client: Etcd3;

  constructor(endpoints: string[], private readonly options: EtcdMembershipOptions = {}) {
    this.client = new Etcd3({
      hosts: endpoints,
      dialTimeout: 3000,
      // No circuit breaker: "unhealthy cluster" refusals are expected while members connect, and
      // this class waits them out itself.
      faultHandling: { host: () => noop, global: noop },
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + (options.callTimeoutMs ?? 5000) }),
    });
  }

  async list(): Promise<Member[]> {
    return (await this.client.cluster.memberList({ linearizable: true })).members.map(toMember);
  }

  /** Registers a member as a non-voting learner: it cannot affect quorum until promoted. */
  async addLearner(peerURL: string): Promise<Member> {
    const added = await this.whileUnhealthy(() => this.client.cluster.memberAdd({ peerURLs: [peerURL], isLearner: true }));
    return toMember(added.member);
  }

  /**
   * etcd refuses reconfiguration ("unhealthy cluster") until every member has been connected for
   * a few seconds (its strict reconfiguration check): wait for that rather than fail.
   */
  private async whileUnhealthy<T>(call: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + (this.options.promoteTimeoutMs ?? 60_000);
    for (;;) {
      try {
        return await call();
      } catch (e) {
        if (!/unhealthy cluster/i.test((e as Error).message) || Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  /** Promotes a learner once it has caught up with the leader (etcd refuses before that). */
  async promote(id: string): Promise<void> {
    const deadline = Date.now() + (this.options.promoteTimeoutMs ?? 60_000);
    for (;;) {
      try {
        await this.client.cluster.memberPromote({ ID: id });
        return;
      } catch (e) {
        if (!/not in sync|learner/i.test((e as Error).message) || Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  async remove(id: string): Promise<void> {
    await this.whileUnhealthy(() => this.client.cluster.memberRemove({ ID: id }));
  }

  close(): void {
    this.client.close();
  }
}
