// Kubernetes Events for the reconciler's steps: the pure mapping from log lines, the Event object, and
// the recorder and the runs' records (GitOps-mode outcome annotations, CRD-mode lastReconcileTime and
// lastError) against the API double.
import { Chart, Testing } from 'cdk8s';
import { KVStore, KVStoreProps, StoreDocument } from '../../lib';
import { LAST_ERROR_ANNOTATION, LAST_RECONCILE_TIME_ANNOTATION } from '../../lib/model/metadata';
import { KubeClient } from '../../lib/reconciler/client';
import { nextStatus, reconcileResources } from '../../lib/reconciler/custom-resources';
import {
  eventForFailure, eventForLine, eventName, eventObject, microTime, NOTE_MAX_BYTES, REPORTING_CONTROLLER, STEP_REASONS, truncateNote,
} from '../../lib/reconciler/events';
import { Log, LogLine } from '../../lib/reconciler/log';
import type { KubeObject as ReconcilerObject } from '../../lib/reconciler/types';
import { MaintenanceError } from '../../lib/reconciler/maintain';
import { OUTCOME_FIELD_MANAGER, reconcileStore, RefusedError, runOutcomeAnnotations } from '../../lib/reconciler/reconcile';
import { ApiServer, KubeObject, reportRolledOut, startApiServer } from '../support/api-server';

const info = (msg: string, fields: Record<string, unknown> = {}): LogLine => ({ level: 'info', msg, fields });

describe('eventForLine: which log line is which Event (pure)', () => {
  test.each([
    ['[1/3] created StatefulSet/orders', { action: 'create', object: 'StatefulSet/orders', step: 1, steps: 3 }, 'Created', 'Apply', 'Normal'],
    ['member orders-3 registered as a learner (id 1f)', { action: 'add-learner', member: 'orders-3' }, 'MemberAdded', 'AddMember', 'Normal'],
    ['member orders-3 promoted to a voting member', { action: 'promote', member: 'orders-3' }, 'MemberPromoted', 'PromoteMember', 'Normal'],
    ['member orders-4 removed from the cluster; its PVCs are kept', { action: 'remove', member: 'orders-4' }, 'MemberRemoved', 'RemoveMember', 'Normal'],
    ['PVC data-orders-0: requested 2Gi (was 1Gi)', { action: 'grow', pvc: 'data-orders-0' }, 'ClaimGrown', 'Resize', 'Normal'],
    ['member orders-1 is lost (its pod crash-loops: 4 restarts): replacing it', { action: 'replace', member: 'orders-1' }, 'ReplacingMember', 'ReplaceMember', 'Warning'],
    ['restore point: snap.db at revision 7', { action: 'restore-point' }, 'RestorePoint', 'Restore', 'Warning'],
    ['NOSPACE alarm raised', { action: 'nospace' }, 'NospaceAlarm', 'RecoverSpace', 'Warning'],
    ['defragmented orders-0', { action: 'defragment', member: 'orders-0' }, 'Defragmented', 'Defragment', 'Normal'],
    ['Scaling: adding member orders-3: 3 → 4 of 5', { operation: 'Scaling' }, 'Scaling', 'Scaling', 'Normal'],
    ['a step of tomorrow', { action: 'new-thing' }, 'NewThing', 'NewThing', 'Normal'],
  ])('%s', (msg, fields, reason, action, type) => {
    expect(eventForLine(info(msg, fields))).toEqual({ reason, action, type, note: msg });
  });

  test('lines that are no step are none: the plan as printed, waits, decisions not to act', () => {
    expect(eventForLine(info('  ~ StatefulSet/orders'))).toBeUndefined();
    expect(eventForLine(info('waiting for StatefulSet/orders: 2/3 ready'))).toBeUndefined();
    expect(eventForLine(info('orders-0: 1 MiB reclaimable: skip', { action: 'skip' }))).toBeUndefined();
    expect(eventForLine(info('maintenance: no member has enough to reclaim', { action: 'maintenance-skip' }))).toBeUndefined();
  });

  test('an error line that is a step is a Warning; the Lease wait has one note whatever the expiry, so repeats are one Event', () => {
    expect(eventForLine({ level: 'error', msg: 'x', fields: { action: 'create' } })?.type).toBe('Warning');
    const wait = (until: string) => eventForLine(info(`Lease orders-reconciler is held by job-a (until ${until} unless renewed): waiting for it`, { action: 'lease-wait', holder: 'job-a' }));
    expect(wait('10:00')).toEqual(wait('10:01'));
    expect(wait('10:00')).toMatchObject({ reason: 'WaitingForLease', note: "the store's Lease is held by job-a: waiting for it" });
  });

  test('every reason is UpperCamelCase', () => {
    for (const reason of STEP_REASONS) expect(reason).toMatch(/^[A-Z][A-Za-z0-9]*$/);
  });

  test('a note is at most 1 kB of UTF-8, cut with …', () => {
    expect(truncateNote('short')).toBe('short');
    const cut = truncateNote('é'.repeat(1000));
    expect(Buffer.byteLength(cut, 'utf8')).toBeLessThanOrEqual(NOTE_MAX_BYTES);
    expect(cut.endsWith('…')).toBe(true);
    expect(eventForLine(info('x'.repeat(5000), { action: 'create' }))!.note).toHaveLength(1022);
  });
});

describe('the Event object (pure)', () => {
  test('failures: Refused, a maintenance reason, …Failed; all Warnings', () => {
    expect(eventForFailure(new RefusedError({ steps: [], refusals: [], unchanged: [] } as any), 'reconcile')).toMatchObject({ reason: 'Refused', type: 'Warning', action: 'Reconcile' });
    expect(eventForFailure(new MaintenanceError('x', undefined, 'AlarmKept'), 'maintain')).toEqual({ reason: 'AlarmKept', type: 'Warning', action: 'Maintain', note: 'x' });
    expect(eventForFailure(new Error('boom'), 'reconcile')).toEqual({ reason: 'ReconcileFailed', type: 'Warning', action: 'Reconcile', note: 'boom' });
    expect(eventForFailure(new Error('boom'), 'maintain').reason).toBe('MaintenanceFailed');
  });

  test('eventTime with six fractional digits; name `<regarding>.<hex>`; regarding with its uid', () => {
    const time = new Date('2025-01-02T03:04:05.678Z');
    expect(microTime(time)).toBe('2025-01-02T03:04:05.678000Z');
    expect(eventName('orders', time.getTime(), 0xabc)).toBe(`orders.${time.getTime().toString(16)}000abc`);
    expect(eventName('x'.repeat(253), 1, 1)).toHaveLength(253);
    const regarding = { apiVersion: 'apps/v1', kind: 'StatefulSet', namespace: 'shop', name: 'orders', uid: 'u-1' };
    expect(eventObject({ reason: 'Created', action: 'Apply', type: 'Normal', note: 'n' }, regarding, { name: 'orders.1', time, reportingInstance: 'job-1' })).toEqual({
      apiVersion: 'events.k8s.io/v1', kind: 'Event', metadata: { name: 'orders.1', namespace: 'shop' },
      regarding, reason: 'Created', action: 'Apply', type: 'Normal', note: 'n',
      eventTime: '2025-01-02T03:04:05.678000Z', reportingController: REPORTING_CONTROLLER, reportingInstance: 'job-1',
    });
  });
});

describe('the runs\' records (pure)', () => {
  const now = new Date('2025-01-02T03:04:05Z');
  const T = LAST_RECONCILE_TIME_ANNOTATION;
  const E = LAST_ERROR_ANNOTATION;

  test('GitOps mode: a change stamps the time; a no-op writes nothing unless it clears an error; a failure keeps the time', () => {
    expect(runOutcomeAnnotations({}, { succeeded: true, changed: true }, now)).toEqual({ [T]: now.toISOString() });
    expect(runOutcomeAnnotations({ [T]: 'then' }, { succeeded: true, changed: false }, now)).toBeUndefined();
    expect(runOutcomeAnnotations({}, { succeeded: true, changed: false }, now)).toBeUndefined();
    expect(runOutcomeAnnotations({ [T]: 'then', [E]: 'boom' }, { succeeded: true, changed: false }, now)).toEqual({ [T]: now.toISOString() });
    expect(runOutcomeAnnotations({ [T]: 'then' }, { succeeded: false, error: 'boom' }, now)).toEqual({ [T]: 'then', [E]: 'boom' });
    expect(runOutcomeAnnotations({}, { succeeded: false, error: 'x'.repeat(2000) }, now)).toEqual({ [E]: 'x'.repeat(1000) });
    expect(runOutcomeAnnotations({ [E]: 'boom' }, { succeeded: false, error: 'boom' }, now)).toBeUndefined();
  });

  test('CRD mode: lastReconcileTime on a change (or the first run, or clearing an error), lastError on a failure; a progress write keeps both', () => {
    const resource = (status?: object): ReconcilerObject => ({ apiVersion: 'kvstore.cdk8s-kvstore.io/v1', kind: 'KVStore', metadata: { name: 'orders', generation: 1 }, spec: {}, ...(status ? { status } : {}) });
    const ready = { state: 'ready' as const, reason: 'Reconciled', message: '3/3' };
    expect(nextStatus(resource(), { ...ready, run: { succeeded: true, changed: false } }, undefined, now)).toMatchObject({ lastReconcileTime: now.toISOString() });
    const later = new Date('2025-02-01T00:00:00Z');
    const done = resource({ lastReconcileTime: now.toISOString() });
    expect(nextStatus(done, { ...ready, run: { succeeded: true, changed: false } }, undefined, later).lastReconcileTime).toBe(now.toISOString());
    expect(nextStatus(done, { ...ready, run: { succeeded: true, changed: true } }, undefined, later).lastReconcileTime).toBe(later.toISOString());
    const failed = nextStatus(done, { state: 'degraded', reason: 'Refused', message: 'no', run: { succeeded: false, error: 'no' } }, undefined, later);
    expect(failed).toMatchObject({ lastReconcileTime: now.toISOString(), lastError: 'no' });
    const progress = nextStatus(resource(failed), { state: 'progressing', reason: 'Scaling', message: 'adding' }, undefined, later);
    expect(progress).toMatchObject({ lastReconcileTime: now.toISOString(), lastError: 'no' });
    const cleared = nextStatus(resource(failed), { ...ready, run: { succeeded: true, changed: false } }, undefined, later);
    expect(cleared.lastReconcileTime).toBe(later.toISOString());
    expect(cleared).not.toHaveProperty('lastError');
  });
});

describe('against the API double', () => {
  const NS = 'shop';
  let server: ApiServer;
  let stopController: () => void;
  let lines: string[];

  beforeEach(async () => {
    server = await startApiServer();
    lines = [];
    stopController = reportRolledOut(server, NS, ['orders']);
  });

  afterEach(async () => {
    stopController();
    await server.stop();
  });

  const documentFor = (props: KVStoreProps = {}): StoreDocument => new KVStore(new Chart(Testing.app(), 'c', { namespace: NS }), 'orders', props).document;
  const client = () => new KubeClient(server.kubeConfig(), { baseDelayMs: 5, maxDelayMs: 20 });
  const log = () => new Log(false, (l) => lines.push(l.trimEnd()));
  const options = { holder: 'orders-reconcile-abc12', pollMs: 20, rolloutTimeoutMs: 5000 };
  const reconcile = (props: KVStoreProps = {}, extra: object = {}) => reconcileStore(documentFor(props), client(), log(), { ...options, ...extra });
  const events = () => server.list('events.k8s.io/v1', 'Event', NS);
  const story = (from = 0) => events().sort((a, b) => a.eventTime.localeCompare(b.eventTime) || Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion))
    .slice(from).map((e) => `${e.type} ${e.reason} ${e.regarding.kind}/${e.regarding.name}`);
  const eventPosts = () => server.requests.filter((r) => r.method === 'POST' && r.path === `/apis/events.k8s.io/v1/namespaces/${NS}/events`);

  test('GitOps mode, a first run: one Event per step, in order; before the StatefulSet exists about the ApplySet parent, then about the StatefulSet with its uid', async () => {
    await reconcile();
    expect(eventPosts().map((r) => r.injectedStatus)).toEqual(Array(10).fill(undefined));
    // Created in the order the steps ran (each posted once the one before was).
    const posted = eventPosts().map((r) => r.body as KubeObject);
    expect(posted.map((e) => `${e.type} ${e.reason}: ${e.note}`)).toEqual([
      'Normal Created: created ConfigMap/orders-applyset',
      'Normal Created: created ConfigMap/orders-bootstrap',
      'Normal Created: created Service/orders-peers',
      'Normal Created: created Service/orders',
      'Normal Created: created StatefulSet/orders',
      'Normal RolledOut: StatefulSet/orders rolled out',
      'Normal Created: created PodDisruptionBudget/orders',
      'Normal Created: created NetworkPolicy/orders',
      'Normal Updated: updated ConfigMap/orders-bootstrap (data.ETCD_INITIAL_CLUSTER_STATE, metadata.annotations.kvstore.cdk8s-kvstore.io/applied-hash)',
      'Normal Reconciled: store shop/orders reconciled (10 change(s))',
    ]);
    // About the ApplySet parent until the StatefulSet exists (when the Event is posted: in the background,
    // a step or two behind), then about the StatefulSet, for good, with its uid.
    const sts = server.get('apps/v1', 'StatefulSet', NS, 'orders')!;
    const parent = server.get('v1', 'ConfigMap', NS, 'orders-applyset')!;
    const regarding = posted.map((e) => e.regarding);
    const first = regarding.findIndex((r) => r.kind === 'StatefulSet');
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThanOrEqual(5);
    expect(regarding.slice(0, first)).toEqual(Array(first).fill({ apiVersion: 'v1', kind: 'ConfigMap', namespace: NS, name: 'orders-applyset', uid: parent.metadata.uid }));
    expect(regarding.slice(first)).toEqual(Array(10 - first).fill({ apiVersion: 'apps/v1', kind: 'StatefulSet', namespace: NS, name: 'orders', uid: sts.metadata.uid }));
    for (const e of posted) {
      expect(e.reportingController).toBe('cdk8s-kvstore.io/reconciler');
      expect(e.reportingInstance).toBe('orders-reconcile-abc12');
      expect(e.metadata.name).toMatch(new RegExp(`^${e.regarding.name}\\.[0-9a-f]+$`));
      expect(e.eventTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    }
    // Stored as sent (the double decodes the MicroTime and validates as the real server does).
    expect(events()).toHaveLength(10);
    // The outcome annotation, under a field manager of its own: the parent's own applies keep it.
    expect(parent.metadata.annotations![LAST_RECONCILE_TIME_ANNOTATION]).toMatch(/^\d{4}-/);
    expect(parent.metadata.managedFields!.map((m) => m.manager).sort()).toEqual(['cdk8s-kvstore-reconciler', OUTCOME_FIELD_MANAGER]);

    // A second run with nothing to do: no Event, no write at all.
    const before = server.mutatingRequests().length;
    await reconcile();
    expect(server.mutatingRequests()).toHaveLength(before);
  });

  test('a refusal is a Warning on the StatefulSet and the last-error annotation; the next successful run drops it and stamps the time', async () => {
    await reconcile({ storageSize: '10Gi' });
    const stamped = server.get('v1', 'ConfigMap', NS, 'orders-applyset')!.metadata.annotations![LAST_RECONCILE_TIME_ANNOTATION];
    const from = events().length;
    await expect(reconcile({ storageSize: '5Gi' })).rejects.toThrow(RefusedError);
    expect(story(from)).toEqual(['Warning Refused StatefulSet/orders']);
    expect(events().find((e) => e.reason === 'Refused')!.note).toMatch(/storage cannot shrink/);
    let parent = server.get('v1', 'ConfigMap', NS, 'orders-applyset')!;
    expect(parent.metadata.annotations![LAST_ERROR_ANNOTATION]).toMatch(/^refused 1 change\(s\)/);
    expect(parent.metadata.annotations![LAST_RECONCILE_TIME_ANNOTATION]).toBe(stamped);
    // The same refusal again: the same Warning again (another run), the annotation not rewritten.
    const writes = server.mutatingRequests().filter((r) => r.query.fieldManager === OUTCOME_FIELD_MANAGER).length;
    await expect(reconcile({ storageSize: '5Gi' })).rejects.toThrow(RefusedError);
    expect(server.mutatingRequests().filter((r) => r.query.fieldManager === OUTCOME_FIELD_MANAGER)).toHaveLength(writes);
    // Back to the live spec: a no-op, which clears the error.
    await reconcile({ storageSize: '10Gi' });
    parent = server.get('v1', 'ConfigMap', NS, 'orders-applyset')!;
    expect(parent.metadata.annotations![LAST_ERROR_ANNOTATION]).toBeUndefined();
    expect(parent.metadata.annotations![LAST_RECONCILE_TIME_ANNOTATION] > stamped).toBe(true);
  });

  test.each([500, 403])('an API that fails to create Events (%i) fails nothing: the run reconciles, warns once; after a 403 it stops trying', async (status) => {
    server.failNext({ method: 'POST', pathPattern: /\/events$/, status, count: 100 });
    const result = await reconcile();
    expect(result.plan.steps.length).toBeGreaterThan(0);
    expect(server.get('apps/v1', 'StatefulSet', NS, 'orders')).toBeDefined();
    expect(lines.filter((l) => l.startsWith('warning: could not record a Kubernetes Event'))).toHaveLength(1);
    // One attempt per Event (no retry); a 403 would fail the same way for every other.
    expect(eventPosts()).toHaveLength(status === 403 ? 1 : 10);
    expect(events()).toEqual([]);
  });

  test('an Event API that hangs holds the run up for at most the request deadline, once', async () => {
    server.failNext({ method: 'POST', pathPattern: /\/events$/, delayMs: 8000, count: 100 });
    const started = Date.now();
    await reconcile();
    // One Event times out (5 s); after a timeout no other is tried.
    expect(Date.now() - started).toBeLessThan(7500);
    expect(eventPosts()).toHaveLength(1);
    expect(lines.filter((l) => l.startsWith('warning: could not record a Kubernetes Event'))).toHaveLength(1);
  }, 20_000);

  test('a dry run records nothing; recordEvents: false records no Event', async () => {
    await reconcile({}, { dryRun: true });
    await reconcile({}, { recordEvents: false });
    expect(eventPosts()).toEqual([]);
  });

  describe('CRD mode', () => {
    const kvstore = () => server.get('kvstore.cdk8s-kvstore.io/v1', 'KVStore', NS, 'orders') as KubeObject;
    const resource = (spec: object) => {
      const live = server.get('kvstore.cdk8s-kvstore.io/v1', 'KVStore', NS, 'orders');
      server.put({ apiVersion: 'kvstore.cdk8s-kvstore.io/v1', kind: 'KVStore', metadata: { name: 'orders', namespace: NS }, spec, ...(live?.status ? { status: live.status } : {}) } as any);
    };
    let clock = new Date('2025-03-01T00:00:00Z');
    const run = () => reconcileResources(server.kubeConfig(), client(), log(), { ...options, namespaces: [NS], now: () => clock });

    test('Events about the KVStore resource (its uid); status carries lastReconcileTime and lastError', async () => {
      resource({ size: 3, storageSize: '10Gi' });
      expect(await run()).toEqual({ reconciled: 1, failed: 0 });
      expect(new Set(events().map((e) => `${e.regarding.kind}/${e.regarding.name}/${e.regarding.uid}`))).toEqual(new Set([`KVStore/orders/${kvstore().metadata.uid}`]));
      expect(story().slice(-1)).toEqual(['Normal Reconciled KVStore/orders']);
      expect(kvstore().status).toMatchObject({ lastReconcileTime: clock.toISOString() });
      expect(kvstore().status.lastError).toBeUndefined();

      // Nothing to do: lastReconcileTime stays, nothing is written.
      clock = new Date('2025-03-02T00:00:00Z');
      const before = server.mutatingRequests().length;
      await run();
      expect(server.mutatingRequests()).toHaveLength(before);
      expect(kvstore().status.lastReconcileTime).toBe('2025-03-01T00:00:00.000Z');

      // Refused: lastError, a Warning; the time of the last success stays.
      resource({ size: 3, storageSize: '5Gi' });
      const from = events().length;
      expect(await run()).toEqual({ reconciled: 0, failed: 1 });
      expect(story(from)).toEqual(['Warning Refused KVStore/orders']);
      expect(kvstore().status.lastError).toMatch(/storage cannot shrink/);
      expect(kvstore().status.lastReconcileTime).toBe('2025-03-01T00:00:00.000Z');

      // Put back: success clears lastError and stamps the time.
      clock = new Date('2025-03-03T00:00:00Z');
      resource({ size: 3, storageSize: '10Gi' });
      expect(await run()).toEqual({ reconciled: 1, failed: 0 });
      expect(kvstore().status.lastError).toBeUndefined();
      expect(kvstore().status.lastReconcileTime).toBe('2025-03-03T00:00:00.000Z');
      // No outcome annotation in CRD mode: the status is the record.
      expect(server.mutatingRequests().filter((r) => r.query.fieldManager === OUTCOME_FIELD_MANAGER)).toEqual([]);
    });
  });
});
