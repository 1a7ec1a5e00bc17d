// One reconciler at a time per store: a coordination.k8s.io Lease with an expiry, so a crashed Job
// cannot block the next one for longer than the lease duration.
import { V1MicroTime } from '@kubernetes/client-node';
import { KubeClient, KubeError } from './client';
import { KubeObject, ObjectRef } from './types';

export class LeaseHeldError extends Error {
  constructor(readonly lease: string, readonly holder: string, readonly expires: Date) {
    super(`Lease ${lease} is held by ${holder} until ${expires.toISOString()}: another reconciler is running`);
    this.name = 'LeaseHeldError';
  }
}

export interface LeaseOptions {
  readonly name: string;
  readonly namespace: string;
  /** Who we are (the pod name). */
  readonly holder: string;
  /** @default 120 */
  readonly durationSeconds?: number;
  /** Injected for tests. */
  readonly now?: () => Date;
  /**
   * How long to wait for a Lease another live reconciler holds (it is released when that run ends,
   * or expires when it died) before giving up with LeaseHeldError.
   * @default 0 (give up at once)
   */
  readonly waitMs?: number;
  /** How often to look again while waiting. @default 1000 */
  readonly pollMs?: number;
  /** Told each time the Lease is found held while waiting. */
  readonly onWait?: (holder: string, expires: Date) => void;
}

const ref = (o: LeaseOptions): ObjectRef => ({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', name: o.name, namespace: o.namespace });

function leaseObject(o: LeaseOptions, spec: Record<string, unknown>, resourceVersion?: string): KubeObject {
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: o.name, namespace: o.namespace, ...(resourceVersion ? { resourceVersion } : {}) },
    spec,
  };
}

/** Whether a live lease is held by someone else and not yet expired. */
export function heldByOther(live: KubeObject, holder: string, now: Date): { holder: string; expires: Date } | undefined {
  const current = live.spec?.holderIdentity;
  if (!current || current === holder) return undefined;
  const renewed = new Date(live.spec.renewTime ?? live.spec.acquireTime ?? 0);
  const expires = new Date(renewed.getTime() + (live.spec.leaseDurationSeconds ?? 0) * 1000);
  return expires > now ? { holder: current, expires } : undefined;
}

/**
 * Takes the lease (creating it, or taking over an expired one), waiting up to `waitMs` while another
 * live reconciler holds it: a second run waits for the first instead of failing (and, as a Job,
 * burning a retry). Optimistic: a 409 means re-read.
 */
export async function acquireLease(client: KubeClient, o: LeaseOptions): Promise<void> {
  const deadline = Date.now() + (o.waitMs ?? 0);
  for (;;) {
    try {
      return await tryAcquireLease(client, o);
    } catch (e) {
      if (!(e instanceof LeaseHeldError) || Date.now() >= deadline) throw e;
      o.onWait?.(e.holder, e.expires);
      await new Promise((r) => setTimeout(r, Math.max(1, Math.min(o.pollMs ?? 1000, deadline - Date.now()))));
    }
  }
}

async function tryAcquireLease(client: KubeClient, o: LeaseOptions): Promise<void> {
  const now = o.now ?? (() => new Date());
  for (let attempt = 0; attempt < 5; attempt++) {
    const live = await client.read(ref(o));
    const time = now();
    // MicroTime: the API wants six fractional digits; a plain Date would be sent with three.
    const spec = { holderIdentity: o.holder, leaseDurationSeconds: o.durationSeconds ?? 120, acquireTime: new V1MicroTime(time), renewTime: new V1MicroTime(time) };
    try {
      if (!live) {
        await client.create(leaseObject(o, { ...spec, leaseTransitions: 0 }));
        return;
      }
      const other = heldByOther(live, o.holder, time);
      if (other) throw new LeaseHeldError(o.name, other.holder, other.expires);
      const transitions = (live.spec?.leaseTransitions ?? 0) + (live.spec?.holderIdentity === o.holder ? 0 : 1);
      await client.replace(leaseObject(o, { ...spec, leaseTransitions: transitions }, live.metadata.resourceVersion));
      return;
    } catch (e) {
      if (e instanceof KubeError && e.code === 409) continue;
      throw e;
    }
  }
  throw new Error(`Lease ${o.name}: gave up after 5 conflicting attempts`);
}

/**
 * Rewrites our lease with a new renewTime (and without a holder when releasing). Returns false,
 * writing nothing, when we do not hold it.
 */
async function rewriteOwnLease(client: KubeClient, o: LeaseOptions, renewTime: Date, release: boolean): Promise<{ held: boolean; holder?: string }> {
  const live = await client.read(ref(o));
  if (!live || live.spec?.holderIdentity !== o.holder) return { held: false, holder: live?.spec?.holderIdentity };
  const { holderIdentity, acquireTime, ...rest } = live.spec;
  await client.replace(leaseObject(o, {
    ...rest,
    ...(release ? {} : { holderIdentity }),
    // Times read back are strings; MicroTime keeps their six fractional digits on the way out.
    ...(acquireTime ? { acquireTime: new V1MicroTime(acquireTime) } : {}),
    renewTime: new V1MicroTime(renewTime),
  }, live.metadata.resourceVersion));
  return { held: true };
}

/** Gives the lease up so the next reconciler need not wait for it to expire. */
export async function releaseLease(client: KubeClient, o: LeaseOptions): Promise<void> {
  await rewriteOwnLease(client, o, new Date(0), true);
}

/** Extends our hold; throws when someone else holds the lease now (we must stop changing things). */
export async function renewLease(client: KubeClient, o: LeaseOptions): Promise<void> {
  const result = await rewriteOwnLease(client, o, (o.now ?? (() => new Date()))(), false);
  if (!result.held) throw new Error(`Lease ${o.name} was lost to ${result.holder ?? 'nobody'}: stopping before another change`);
}

/** Renews the lease when a third of its duration has passed since the last renewal. */
export function leaseKeeper(client: KubeClient, o: LeaseOptions): () => Promise<void> {
  const now = o.now ?? (() => new Date());
  let renewed = now().getTime();
  return async () => {
    if (now().getTime() - renewed < ((o.durationSeconds ?? 120) * 1000) / 3) return;
    await renewLease(client, o);
    renewed = now().getTime();
  };
}
