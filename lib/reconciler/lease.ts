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

/** Takes the lease (creating it, or taking over an expired one). Optimistic: a 409 means re-read. */
export async function acquireLease(client: KubeClient, o: LeaseOptions): Promise<void> {
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

/** Gives the lease up so the next reconciler need not wait for it to expire. */
export async function releaseLease(client: KubeClient, o: LeaseOptions): Promise<void> {
  const live = await client.read(ref(o));
  if (!live || live.spec?.holderIdentity !== o.holder) return;
  const { holderIdentity: _h, acquireTime, ...rest } = live.spec;
  await client.replace(leaseObject(o, {
    ...rest,
    ...(acquireTime ? { acquireTime: new V1MicroTime(acquireTime) } : {}),
    renewTime: new V1MicroTime(0),
  }, live.metadata.resourceVersion));
}

/** Extends our hold; throws when someone else holds the lease now (we must stop changing things). */
export async function renewLease(client: KubeClient, o: LeaseOptions): Promise<void> {
  const live = await client.read(ref(o));
  if (!live || live.spec?.holderIdentity !== o.holder) {
    throw new Error(`Lease ${o.name} was lost to ${live?.spec?.holderIdentity ?? 'nobody'}: stopping before another change`);
  }
  const { acquireTime, ...rest } = live.spec;
  const now = (o.now ?? (() => new Date()))();
  await client.replace(leaseObject(o, {
    ...rest,
    ...(acquireTime ? { acquireTime: new V1MicroTime(acquireTime) } : {}),
    renewTime: new V1MicroTime(now),
  }, live.metadata.resourceVersion));
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
