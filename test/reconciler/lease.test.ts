import { heldByOther } from '../../lib/reconciler/lease';

const lease = (spec: object) => ({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'l' }, spec });
const now = new Date('2026-11-21T12:00:00Z');

describe('heldByOther', () => {
  test('a lease renewed within its duration by someone else is held', () => {
    expect(heldByOther(lease({ holderIdentity: 'job-a', renewTime: '2026-11-21T11:59:00Z', leaseDurationSeconds: 120 }), 'job-b', now))
      .toEqual({ holder: 'job-a', expires: new Date('2026-11-21T12:01:00Z') });
  });

  test('an expired lease (a crashed reconciler) is free', () => {
    expect(heldByOther(lease({ holderIdentity: 'job-a', renewTime: '2026-11-21T11:57:00Z', leaseDurationSeconds: 120 }), 'job-b', now)).toBeUndefined();
  });

  test('our own lease and a released lease are free', () => {
    expect(heldByOther(lease({ holderIdentity: 'job-b', renewTime: '2026-11-21T11:59:59Z', leaseDurationSeconds: 120 }), 'job-b', now)).toBeUndefined();
    expect(heldByOther(lease({ renewTime: '2026-11-21T11:59:59Z', leaseDurationSeconds: 120 }), 'job-b', now)).toBeUndefined();
  });
});
