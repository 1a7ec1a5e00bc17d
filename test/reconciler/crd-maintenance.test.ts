// CRD-mode maintenance (`kvstore-reconcile --crd --maintain`) without etcd: what a run's outcome puts in a
// KVStore resource's status (pure), the command line, and the program against the API double, where no
// run reaches etcd (a store mid-operation is refused before; a store without members has nothing to do).
// test/reconciler/day2-crd-maintenance.test.ts runs it on real etcd.
import { main } from '../../apps/reconcile';
import { parseArgs } from '../../lib/reconciler/cli';
import { KubeClient } from '../../lib/reconciler/client';
import { Condition, maintainedStatus, maintainResources, maintenanceOutcome, nextStatus } from '../../lib/reconciler/custom-resources';
import { Log } from '../../lib/reconciler/log';
import { LeaseHeldError } from '../../lib/reconciler/lease';
import { MaintenanceError } from '../../lib/reconciler/maintain';
import type { KubeObject } from '../../lib/reconciler/types';
import { ApiServer, startApiServer } from '../support/api-server';

const T0 = new Date('2030-01-01T00:00:00Z');
const T1 = new Date('2030-01-01T01:00:00Z');
const member = (name: string, before: number, after: number) => ({ id: '1', name, endpoint: `http://${name}:2379`, dbSizeBeforeBytes: before, dbSizeAfterBytes: after, durationMs: 10 });

/** A KVStore resource a reconcile has written status for. */
function resource(conditions: Condition[] = []): KubeObject {
  return {
    apiVersion: 'kvstore.cdk8s-kvstore.io/v1', kind: 'KVStore',
    metadata: { name: 'orders', namespace: 'shop', generation: 4 },
    spec: { size: 3 },
    status: { observedGeneration: 4, replicas: 3, readyReplicas: 3, members: [{ name: 'orders-0' }], specHash: 'abc', conditions },
  };
}

const ready: Condition = { type: 'Ready', status: 'True', reason: 'Reconciled', message: '3/3 members ready', lastTransitionTime: T0.toISOString(), observedGeneration: 4 };
const progressing: Condition = { type: 'Progressing', status: 'False', reason: 'AsExpected', message: '', lastTransitionTime: T0.toISOString(), observedGeneration: 4 };
const degraded: Condition = { type: 'Degraded', status: 'False', reason: 'AsExpected', message: '', lastTransitionTime: T0.toISOString(), observedGeneration: 4 };

describe('maintenanceOutcome: a run as the Maintained condition\'s status, reason and message', () => {
  test.each([
    ['a lost member replaced, then nothing to reclaim', { kind: 'defragmentation', replaced: ['orders-1'] }, { status: 'True', reason: 'MemberReplaced', message: 'replaced orders-1 on an empty volume (its data was lost)' }],
    ['a lost member replaced, then members defragmented', { kind: 'defragmentation', replaced: ['orders-1'], result: { defragmented: [member('orders-0', 100 * 2 ** 20, 40 * 2 ** 20)], disarmed: false } },
      { status: 'True', reason: 'MemberReplaced', message: 'replaced orders-1 on an empty volume (its data was lost); defragmented orders-0 (60.0 MiB reclaimed)' }],
    ['members defragmented, the leader last', { kind: 'defragmentation', result: { defragmented: [member('orders-1', 3 * 2 ** 20, 2 ** 20), member('orders-0', 2 ** 20, 2 ** 20)], disarmed: false } },
      { status: 'True', reason: 'Defragmented', message: 'defragmented orders-1, orders-0 (2.0 MiB reclaimed)' }],
    ['NOSPACE recovered', { kind: 'nospace-recovery', result: { defragmented: [member('orders-0', 8 * 2 ** 20, 2 ** 20)], disarmed: true } },
      { status: 'True', reason: 'SpaceRecovered', message: 'NOSPACE alarm disarmed after compacting; defragmented orders-0 (7.0 MiB reclaimed)' }],
    ['quorum recovered', { kind: 'quorum-recovery' }, { status: 'True', reason: 'QuorumRecovered', message: expect.stringMatching(/^quorum recovered from the most advanced survivor.*may be lost/) }],
    ['nothing to do', { kind: 'defragmentation' }, { status: 'True', reason: 'NothingToDo', message: 'every member answered and agreed on the leader; none had enough to reclaim' }],
    ['no live members', { kind: 'none' }, { status: 'True', reason: 'NoMembers', message: 'no live etcd members to maintain' }],
  ] as const)('%s', (_, result, expected) => {
    expect(maintenanceOutcome({ result: result as any })).toEqual(expected);
  });

  test.each([
    ['an unhealthy cluster', 'Unhealthy', new MaintenanceError('store shop/orders: maintenance not done: no leader', undefined, 'Unhealthy')],
    ['the alarm kept', 'AlarmKept', new MaintenanceError('store shop/orders: NOSPACE alarm kept', undefined, 'AlarmKept')],
    ['a quorum loss refused', 'QuorumLost', new MaintenanceError('store shop/orders: quorum lost, not recovered', undefined, 'QuorumLost')],
    ['a maintenance error of no particular kind', 'MaintenanceNotDone', new MaintenanceError('store shop/orders: x')],
    ['the Lease held by a reconcile', 'LeaseHeld', new LeaseHeldError('orders-reconciler', 'operator-1', T1)],
    ['anything else (an API error, too few healthy members to replace one)', 'MaintenanceFailed', new Error('only 1 of 3 voting members are ready')],
  ])('%s: False, reason %s, the error as message', (_, reason, error) => {
    expect(maintenanceOutcome({ error })).toEqual({ status: 'False', reason, message: error.message });
  });

  test('a long message is cut to 1000 characters', () => {
    expect(maintenanceOutcome({ error: new Error('x'.repeat(5000)) }).message).toHaveLength(1000);
  });
});

describe('maintainedStatus: the Maintained condition, and nothing else of the status', () => {
  test('added beside the conditions a reconcile wrote, which stay as they are, with the rest of the status', () => {
    const before = resource([ready, progressing, degraded]);
    const status = maintainedStatus(before, { status: 'True', reason: 'MemberReplaced', message: 'replaced orders-1' }, T1);
    expect(status).toEqual({
      ...before.status,
      conditions: [ready, progressing, degraded, { type: 'Maintained', status: 'True', reason: 'MemberReplaced', message: 'replaced orders-1', lastTransitionTime: T1.toISOString(), observedGeneration: 4 }],
    });
  });

  test('replaced in place; its lastTransitionTime kept while its status is the same, moved when it flips', () => {
    const maintained: Condition = { type: 'Maintained', status: 'True', reason: 'Defragmented', message: 'x', lastTransitionTime: T0.toISOString(), observedGeneration: 3 };
    const same = maintainedStatus(resource([maintained, ready]), { status: 'True', reason: 'NothingToDo', message: 'y' }, T1);
    expect(same.conditions).toEqual([{ ...maintained, reason: 'NothingToDo', message: 'y', observedGeneration: 4 }, ready]);
    const flipped = maintainedStatus(resource([maintained, ready]), { status: 'False', reason: 'Unhealthy', message: 'no leader' }, T1);
    expect(flipped.conditions).toEqual([{ type: 'Maintained', status: 'False', reason: 'Unhealthy', message: 'no leader', lastTransitionTime: T1.toISOString(), observedGeneration: 4 }, ready]);
  });

  test('a resource without status yet gets only the condition', () => {
    const { status: _s, ...bare } = resource();
    expect(maintainedStatus(bare as KubeObject, { status: 'Unknown', reason: 'ReplacingMember', message: 'm' }, T1))
      .toEqual({ conditions: [{ type: 'Maintained', status: 'Unknown', reason: 'ReplacingMember', message: 'm', lastTransitionTime: T1.toISOString(), observedGeneration: 4 }] });
  });

  test('a reconcile\'s nextStatus keeps the Maintained condition a maintenance run wrote', () => {
    const maintained: Condition = { type: 'Maintained', status: 'False', reason: 'Unhealthy', message: 'no leader', lastTransitionTime: T0.toISOString(), observedGeneration: 4 };
    const status = nextStatus(resource([ready, progressing, degraded, maintained]), { state: 'progressing', reason: 'Scaling', message: 'adding orders-3' }, undefined, T1);
    expect((status.conditions as Condition[]).map((c) => [c.type, c.status])).toEqual([['Ready', 'False'], ['Progressing', 'True'], ['Degraded', 'False'], ['Maintained', 'False']]);
    expect((status.conditions as Condition[])[3]).toBe(maintained);
  });
});

describe('the command line', () => {
  test('--maintain and --recover-quorum-loss with --crd, in any scope', () => {
    expect(parseArgs(['--crd', '--all-namespaces', '--maintain'])).toEqual(expect.objectContaining({ mode: 'crd', maintain: true }));
    expect(parseArgs(['--crd', '--all-namespaces', '--maintain'])).not.toHaveProperty('recoverQuorumLoss');
    expect(parseArgs(['--crd', '--namespace', 'shop,billing', '--prune-image', 'r.example.com/rec:1', '--maintain', '--recover-quorum-loss']))
      .toMatchObject({ mode: 'crd', namespaces: ['shop', 'billing'], pruneImage: 'r.example.com/rec:1', maintain: true, recoverQuorumLoss: true });
    expect(parseArgs(['--crd', '--namespace-selector', 'team=shop', '--maintain'])).toMatchObject({ mode: 'crd', namespaceSelector: { team: 'shop' }, maintain: true });
    // A reconcile is no maintenance.
    expect(parseArgs(['--crd', '--all-namespaces'])).not.toHaveProperty('maintain');
  });

  test.each([
    [['--crd', '--all-namespaces', '--recover-quorum-loss'], /^--recover-quorum-loss needs --maintain$/],
    [['--crd', '--all-namespaces', '--maintain', '--dry-run'], /^--maintain takes neither --dry-run nor --force$/],
    [['--crd', '--all-namespaces', '--maintain', '--force'], /^--maintain takes neither --dry-run nor --force$/],
    [['--crd', '--maintain'], /^--crd needs --namespace NS, --namespace-selector K=V or --all-namespaces$/],
    [['--crd', '--all-namespaces', '--maintain', '--etcd-member-endpoints', 'http://a:2379'], /^--etcd-member-endpoints cannot be used with --crd$/],
  ])('%j is refused', (argv, message) => {
    expect(() => parseArgs(argv)).toThrow(message);
  });
});

describe('kvstore-reconcile --crd --maintain against the API double', () => {
  let api: ApiServer;
  let stdout: string[];
  let stderr: string[];
  const streams = () => ({ stdout: (t: string) => void stdout.push(t), stderr: (t: string) => void stderr.push(t) });
  beforeEach(async () => {
    api = await startApiServer();
    stdout = [];
    stderr = [];
  });
  afterEach(() => api.stop());

  const kvstore = (name: string) => api.get('kvstore.cdk8s-kvstore.io/v1', 'KVStore', 'shop', name) as KubeObject;
  const maintainedOf = (name: string) => (kvstore(name).status?.conditions as Condition[]).find((c) => c.type === 'Maintained');

  test('each store in turn: one refused (an operation under way) fails alone, with its reason in status; the next is maintained; exit 1', async () => {
    // GIVEN two stores: "a" in the middle of a membership change a reconcile left, "b" not created yet.
    for (const name of ['a', 'b']) {
      api.put({ ...resource([ready, progressing, degraded]), metadata: { name, namespace: 'shop', generation: 4 } });
    }
    api.put({ apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'a', namespace: 'shop', annotations: { 'kvstore.cdk8s-kvstore.io/operation': 'members → 5' } }, spec: { replicas: 4 } });
    // WHEN
    const code = await main(['--crd', '--namespace', 'shop', '--maintain'], api.kubeConfig(), streams());
    // THEN
    expect(code).toBe(1);
    expect(maintainedOf('a')).toMatchObject({ status: 'False', reason: 'OperationInProgress', message: expect.stringMatching(/^store shop\/a: "members → 5" is under way .*the reconciler finishes it first/), observedGeneration: kvstore('a').metadata.generation });
    expect(maintainedOf('b')).toMatchObject({ status: 'True', reason: 'NoMembers' });
    // What the reconcile wrote is untouched.
    for (const name of ['a', 'b']) expect((kvstore(name).status?.conditions as Condition[]).slice(0, 3)).toEqual([ready, progressing, degraded]);
    expect(kvstore('a').status).toMatchObject({ observedGeneration: 4, specHash: 'abc', members: [{ name: 'orders-0' }] });
    expect(stderr.join('')).toMatch(/^error: shop\/a: store shop\/a: "members → 5" is under way/);
    expect(stdout.join('')).toContain('maintenance: 1 store(s) maintained, 1 failed');
    // Nothing but the refusal's Warning Event (on the resource) and the two status writes: no Lease was taken, nothing applied.
    expect(api.requests.filter((r) => !['GET', 'LIST'].includes(r.method)).map((r) => `${r.method} ${r.path}`)).toEqual([
      'POST /apis/events.k8s.io/v1/namespaces/shop/events',
      'PUT /apis/kvstore.cdk8s-kvstore.io/v1/namespaces/shop/kvstores/a/status',
      'PUT /apis/kvstore.cdk8s-kvstore.io/v1/namespaces/shop/kvstores/b/status',
    ]);
    expect(api.list('events.k8s.io/v1', 'Event', 'shop').map((e) => [e.type, e.reason, e.action, `${e.regarding.kind}/${e.regarding.name}`, e.regarding.uid === kvstore('a').metadata.uid]))
      .toEqual([['Warning', 'OperationInProgress', 'Maintain', 'KVStore/a', true]]);
  });

  test('the library refuses a dry run before any request: maintenance has no plan to show', async () => {
    await expect(maintainResources(api.kubeConfig(), new KubeClient(api.kubeConfig()), new Log(false, () => undefined), { holder: 't', namespaces: ['shop'], dryRun: true }))
      .rejects.toThrow(/^maintenance has no dry run/);
    expect(api.requests.filter((r) => !r.discovery)).toEqual([]);
  });

  test('every store maintained: exit 0; a second run that finds the same writes nothing', async () => {
    api.put({ ...resource([ready]), metadata: { name: 'b', namespace: 'shop', generation: 4 } });
    expect(await main(['--crd', '--namespace', 'shop', '--maintain'], api.kubeConfig(), streams())).toBe(0);
    expect(maintainedOf('b')).toMatchObject({ status: 'True', reason: 'NoMembers' });
    const writes = () => api.requests.filter((r) => r.method === 'PUT').length;
    const before = writes();
    expect(await main(['--crd', '--namespace', 'shop', '--maintain'], api.kubeConfig(), streams())).toBe(0);
    expect(writes()).toBe(before);
    expect(stderr.join('')).toBe('');
  });
});
