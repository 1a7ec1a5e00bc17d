// etcd membership operations for the reconciler: list, add as learner, promote, remove — one member
// at a time, only with quorum — through the etcd3 client library. The decision of what to change is a
// pure function (nextMembershipStep); this file's class only carries the steps out.
import { noop } from 'cockatiel';
import { Etcd3, IMember, IOptions } from 'etcd3';

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
    // By peer URL, not name: a member that never started has no name yet.
    const last = [...surplus].sort((a, b) => (b.peerURLs[0] ?? '').localeCompare(a.peerURLs[0] ?? '', 'en', { numeric: true }))[0];
    return { action: 'remove', id: last.id, name: last.name };
  }
  return undefined;
}

const toMember = (m: IMember): Member => ({ id: m.ID, name: m.name, peerURLs: m.peerURLs, isLearner: !!m.isLearner });

export interface EtcdMembershipOptions {
  /** Per-call deadline. @default 5000 */
  readonly callTimeoutMs?: number;
  /** How long one operation keeps retrying (a learner catching up, members reconnecting). @default 60000 */
  readonly retryTimeoutMs?: number;
  /** Called between retry rounds (the reconciler renews its Lease there). */
  readonly onRetry?: () => Promise<void>;
  /**
   * Mutual TLS: the CA that signed the members' certificate, the client certificate and key (PEM).
   * @default - plain HTTP
   */
  readonly tls?: EtcdClientTls;
}

/** A client certificate for a TLS store. */
export interface EtcdClientTls {
  /** The CA certificate(s) that signed the members' certificate (PEM, ca.crt). */
  readonly ca: Buffer;
  /** The client certificate (PEM, tls.crt). */
  readonly cert: Buffer;
  /** The client certificate's private key (PEM, tls.key). */
  readonly key: Buffer;
  /**
   * The name to verify the members' certificate against, whatever address an endpoint has (the client
   * Service's name, which the member certificate carries).
   * @default - each endpoint's host
   */
  readonly serverName?: string;
}

/** An etcd3 client's options for mutual TLS with `tls`, verifying `serverName` whatever address it dials. */
export function etcdTlsOptions(tls: EtcdClientTls): Partial<Pick<IOptions, 'credentials' | 'grpcOptions'>> {
  return {
    credentials: { rootCertificate: tls.ca, certChain: tls.cert, privateKey: tls.key },
    ...(tls.serverName ? { grpcOptions: { 'grpc.ssl_target_name_override': tls.serverName, 'grpc.default_authority': tls.serverName } } : {}),
  };
}

/**
 * A client of one endpoint for the reconciler's engine calls: mutual TLS when given, a deadline on
 * every unary call, and no circuit breaker (the caller decides what to retry, and where).
 */
export function etcdClient(host: string, options: Pick<EtcdMembershipOptions, 'tls' | 'callTimeoutMs'> = {}): Etcd3 {
  return new Etcd3({
    hosts: host,
    ...(options.tls ? etcdTlsOptions(options.tls) : {}),
    dialTimeout: 3000,
    faultHandling: { host: () => noop, global: noop },
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + (options.callTimeoutMs ?? 5000) }),
  });
}

/**
 * `call` at each of `clients` in turn until one answers; errors matching `retryable` try the next,
 * rounds 250 ms apart (`onRetry` between them), until `retryTimeoutMs` has passed.
 */
export async function retryAcross<T>(clients: readonly Etcd3[], call: (c: Etcd3) => Promise<T>, retryable: RegExp, options: Pick<EtcdMembershipOptions, 'retryTimeoutMs' | 'onRetry'> = {}): Promise<T> {
  const deadline = Date.now() + (options.retryTimeoutMs ?? 60_000);
  for (;;) {
    let last: Error | undefined;
    for (const client of clients) {
      try {
        return await call(client);
      } catch (e) {
        if (!retryable.test((e as Error).message)) throw e;
        last = e as Error;
      }
    }
    if (Date.now() > deadline) throw last!;
    await options.onRetry?.();
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Errors worth another try, at another endpoint or a little later: a member that is down or was just
 * removed, a learner (which serves no linearizable reads), no leader yet, and etcd's strict
 * reconfiguration check ("unhealthy cluster": members connected for less than a few seconds).
 */
const RETRYABLE = /unhealthy cluster|UNAVAILABLE|ECONNREFUSED|not supported for learner|leader changed|no leader|deadline|timed out/i;

/**
 * Membership calls against a running cluster. One client per endpoint, tried in turn: the members of
 * a store come and go during exactly these operations, so a call must not depend on any one of them.
 */
export class EtcdMembership {
  private readonly clients: Etcd3[];

  constructor(endpoints: string[], private readonly options: EtcdMembershipOptions = {}) {
    if (endpoints.length === 0) throw new Error('EtcdMembership needs at least one endpoint');
    this.clients = endpoints.map((host) => etcdClient(host, options));
  }

  /** `call` at each endpoint in turn until one answers, rounds 250 ms apart, until the deadline. */
  private anywhere<T>(call: (c: Etcd3) => Promise<T>, retryable: RegExp = RETRYABLE): Promise<T> {
    return retryAcross(this.clients, call, retryable, this.options);
  }

  async list(): Promise<Member[]> {
    return this.anywhere(async (c) => (await c.cluster.memberList({ linearizable: true })).members.map(toMember));
  }

  /**
   * Registers a member as a non-voting learner: it cannot affect quorum until promoted. A retry whose
   * earlier attempt did register it (the answer was lost) finds it registered.
   */
  async addLearner(peerURL: string): Promise<Member> {
    try {
      return await this.anywhere(async (c) => toMember((await c.cluster.memberAdd({ peerURLs: [peerURL], isLearner: true })).member));
    } catch (e) {
      if (!/already exists/i.test((e as Error).message)) throw e;
      const existing = (await this.list()).find((m) => m.peerURLs.includes(peerURL));
      if (!existing) throw e;
      return existing;
    }
  }

  /** Promotes a learner once it has caught up with the leader (etcd refuses before that). */
  async promote(id: string): Promise<void> {
    try {
      await this.anywhere((c) => c.cluster.memberPromote({ ID: id }), new RegExp(`${RETRYABLE.source}|in sync with leader`, 'i'));
    } catch (e) {
      // A retry after a promotion whose answer was lost: it is a voting member now.
      if (!/can only promote a learner member$/i.test((e as Error).message)) throw e;
    }
  }

  /** Registers a member's peer URLs (etcd dials it there from then on). */
  async updatePeerURLs(id: string, peerURLs: string[]): Promise<void> {
    await this.anywhere((c) => c.cluster.memberUpdate({ ID: id, peerURLs }));
  }

  /** Removes a member; one already gone (an earlier attempt did it) counts as removed. */
  async remove(id: string): Promise<void> {
    try {
      await this.anywhere((c) => c.cluster.memberRemove({ ID: id }));
    } catch (e) {
      if (!/member not found/i.test((e as Error).message)) throw e;
    }
  }

  /**
   * Waits until the member at endpoint `index` has applied everything the leader had committed when
   * first asked (raft applied index against the leader's committed index): caught up, not only
   * started. The leader is found through any endpoint that answers.
   */
  async waitCaughtUp(index: number): Promise<{ memberApplied: number; leaderCommitted: number }> {
    const status = (c: Etcd3) => c.maintenance.status();
    // The leader as the members see it now (asked again if none is known, or it moved meanwhile).
    const leader = await retryAcross([this.clients[0]], async () => {
      let leaderId = '0';
      for (const c of this.clients) leaderId = leaderId !== '0' ? leaderId : await status(c).then((s) => s.leader, () => '0');
      if (leaderId === '0') throw new Error('UNAVAILABLE: no leader known yet');
      for (const c of this.clients) {
        const s = await status(c).catch(() => undefined);
        if (s?.header.member_id === leaderId) return s;
      }
      throw new Error(`UNAVAILABLE: the leader ${leaderId} does not answer at any endpoint`);
    }, RETRYABLE, this.options);
    const target = Number(leader.raftIndex);
    const member = this.clients[index];
    return this.anywhere(async (c) => {
      if (c !== member) throw new Error('UNAVAILABLE: waiting for the member itself');
      const applied = Number((await status(c)).raftAppliedIndex);
      if (applied < target) throw new Error(`UNAVAILABLE: applied index ${applied}, leader had committed ${target}`);
      return { memberApplied: applied, leaderCommitted: target };
    });
  }

  close(): void {
    for (const c of this.clients) c.close();
  }
}
