// Kubernetes Events for the reconciler's steps (events.k8s.io/v1, not core/v1: the API Kubernetes'
// own controllers record with since 1.19, with regarding/note/action/reportingController, which core/v1
// only has as deprecated-style aliases; `kubectl describe` and `kubectl events` read both): which log
// line becomes which Event (pure), the Event object itself (pure), and a recorder that posts them
// best-effort, in order, in the background: recording an Event never fails a reconcile and never holds
// it up for long.
import { randomBytes } from 'crypto';
import type { KubeClient } from './client';
import type { Log, LogLine } from './log';
import type { KubeObject, ObjectRef } from './types';

/** The `reportingController` of every Event the reconciler records. */
export const REPORTING_CONTROLLER = 'cdk8s-kvstore.io/reconciler';

/** The API allows a note of at most 1 kB. */
export const NOTE_MAX_BYTES = 1024;

/** What an Event says, before it is about an object. */
export interface EventSpec {
  /** Why, in UpperCamelCase: `MemberAdded`. */
  readonly reason: string;
  /** What was done (or failed), in UpperCamelCase: `AddMember`. */
  readonly action: string;
  readonly type: 'Normal' | 'Warning';
  /** For people: the log line, at most 1 kB. */
  readonly note: string;
}

/** The object an Event is about: `regarding` (with its uid, `kubectl describe` finds the Event). */
export interface EventRegarding extends ObjectRef {
  /** The object's uid, which `kubectl describe` matches Events on; absent before it exists. */
  readonly uid?: string;
}

type Mapping = readonly [reason: string, action: string, type?: 'Warning'];

/**
 * The log lines that are steps (their `action` field), as Events. A step that is only a decision not
 * to act (a member with too little to reclaim) is none: an hourly maintenance would only repeat it.
 */
const STEP_EVENTS: Readonly<Record<string, Mapping | undefined>> = {
  // The plan's steps, one per object.
  'create': ['Created', 'Apply'],
  'update': ['Updated', 'Apply'],
  'recreate': ['Recreated', 'Recreate'],
  'resize': ['Resized', 'Resize'],
  'wait-rollout': ['RolledOut', 'WaitRollout'],
  'prune': ['Pruned', 'Prune'],
  'force-ignored': ['ForceIgnored', 'Reconcile'],
  'lease-wait': ['WaitingForLease', 'AcquireLease'],
  // Snapshots, volumes, membership (scale, replacement, quorum recovery).
  'snapshot': ['SnapshotSaved', 'Snapshot'],
  'snapshot-skipped': ['SnapshotSkipped', 'Snapshot', 'Warning'],
  'grow': ['ClaimGrown', 'Resize'],
  'wipe': ['ClaimDeleted', 'DeleteClaim'],
  'add-learner': ['MemberAdded', 'AddMember'],
  'promote': ['MemberPromoted', 'PromoteMember'],
  'remove': ['MemberRemoved', 'RemoveMember'],
  'replace': ['ReplacingMember', 'ReplaceMember', 'Warning'],
  'stop-members': ['MembersStopped', 'StopMembers'],
  'recover-quorum': ['RecoveringQuorum', 'RecoverQuorum', 'Warning'],
  'force-new-cluster': ['ForceNewCluster', 'RecoverQuorum', 'Warning'],
  'standalone': ['SurvivorStandalone', 'RecoverQuorum'],
  'recovered': ['QuorumRecovered', 'RecoverQuorum'],
  // Restore, upgrade, TLS, CA rotation, users.
  'restore-point': ['RestorePoint', 'Restore', 'Warning'],
  'restore': ['Restored', 'Restore'],
  'upgrade': ['MemberUpgraded', 'Upgrade'],
  'peer-url': ['PeerUrlUpdated', 'EnableTls'],
  'tls-on': ['MemberTlsEnabled', 'EnableTls'],
  'ca-rotation': ['CaRotationPhase', 'RotateCa'],
  'trust': ['TrustRecorded', 'RecordTrust'],
  'auth': ['AuthUpdated', 'ReconcileAuth'],
  // Maintenance (the engine's steps: see EtcdMaintenance.run).
  'nospace': ['NospaceAlarm', 'RecoverSpace', 'Warning'],
  'compact': ['Compacted', 'Compact'],
  'defragment': ['Defragmented', 'Defragment'],
  'disarm': ['AlarmDisarmed', 'RecoverSpace'],
  'keep-alarm': ['AlarmKept', 'RecoverSpace', 'Warning'],
  'stop': ['MaintenanceStopped', 'Maintain', 'Warning'],
};

/** The `action` log fields that are not Events (decisions not to act), so that every other one is. */
export const SILENT_ACTIONS: readonly string[] = ['skip', 'maintenance-skip'];

/** The reasons of the Events a line can become (the README lists them). */
export const STEP_REASONS: readonly string[] = [...new Set(Object.values(STEP_EVENTS).map((m) => m![0]))];

/** A note as the API takes it: at most NOTE_MAX_BYTES of UTF-8, cut with `…`. Pure. */
export function truncateNote(note: string): string {
  if (Buffer.byteLength(note, 'utf8') <= NOTE_MAX_BYTES) return note;
  let cut = note.slice(0, NOTE_MAX_BYTES);
  while (Buffer.byteLength(`${cut}…`, 'utf8') > NOTE_MAX_BYTES) cut = cut.slice(0, -1);
  return `${cut}…`;
}

/**
 * The Event a log line is, if any (pure): a line with an `action` field is a step (see STEP_EVENTS);
 * one with an `operation` field is a day-2 operation moving on (reason and action: the operation,
 * `Scaling`); an error line is a Warning. Anything else (the plan as printed, waits) is none.
 */
export function eventForLine(line: LogLine): EventSpec | undefined {
  const action = typeof line.fields.action === 'string' ? line.fields.action : undefined;
  const operation = typeof line.fields.operation === 'string' ? line.fields.operation : undefined;
  let mapping: Mapping | undefined;
  if (action !== undefined) {
    if (SILENT_ACTIONS.includes(action)) return undefined;
    mapping = STEP_EVENTS[action] ?? [upperCamel(action), upperCamel(action)];
  } else if (operation !== undefined) {
    mapping = [operation, operation];
  } else {
    return undefined;
  }
  const [reason, eventAction, type] = mapping;
  // Said again at every poll with the holder's renewed expiry: one note, so the repeats make a series.
  const note = action === 'lease-wait' && typeof line.fields.holder === 'string' ? `the store's Lease is held by ${line.fields.holder}: waiting for it` : line.msg.trim();
  return { reason, action: eventAction, type: line.level === 'error' ? 'Warning' : type ?? 'Normal', note: truncateNote(note) };
}

/** How a run ended in failure, as an Event (pure): `Refused`, `LeaseHeld`, a maintenance reason, or `…Failed`. */
export function eventForFailure(error: unknown, run: 'reconcile' | 'maintain'): EventSpec {
  const e = error as { name?: string; message?: string; reason?: unknown };
  const message = e?.message ?? String(error);
  const reason = e?.name === 'RefusedError' ? 'Refused'
    : e?.name === 'LeaseHeldError' ? 'LeaseHeld'
      : e?.name === 'MaintenanceError' && typeof e.reason === 'string' ? e.reason
        : run === 'reconcile' ? 'ReconcileFailed' : 'MaintenanceFailed';
  return { reason, action: run === 'reconcile' ? 'Reconcile' : 'Maintain', type: 'Warning', note: truncateNote(message) };
}

/** A run that changed something, as an Event (pure). */
export function reconciledEvent(store: string, mutatingRequests: number): EventSpec {
  return { reason: 'Reconciled', action: 'Reconcile', type: 'Normal', note: `store ${store} reconciled (${mutatingRequests} change(s))` };
}

/** `MicroTime`: RFC 3339 with exactly six fractional digits, as the API server parses it. Pure. */
export function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/**
 * `<regarding name>.<hex>`, as client-go names Events (there `%x` of the time in ns): here the time in
 * ms and 24 random bits, so two reconcilers never collide. At most 253 characters. Pure.
 */
export function eventName(regardingName: string, timeMs: number, random: number): string {
  const suffix = `${timeMs.toString(16)}${(random & 0xffffff).toString(16).padStart(6, '0')}`;
  return `${regardingName.slice(0, 253 - suffix.length - 1)}.${suffix}`;
}

/** The events.k8s.io/v1 Event (pure). */
export function eventObject(spec: EventSpec, regarding: EventRegarding, o: { name: string; time: Date; reportingInstance: string }): KubeObject {
  return {
    apiVersion: 'events.k8s.io/v1',
    kind: 'Event',
    metadata: { name: o.name, namespace: regarding.namespace ?? 'default' },
    regarding: {
      apiVersion: regarding.apiVersion, kind: regarding.kind, name: regarding.name,
      ...(regarding.namespace ? { namespace: regarding.namespace } : {}),
      ...(regarding.uid ? { uid: regarding.uid } : {}),
    },
    reason: spec.reason,
    action: spec.action,
    type: spec.type,
    note: spec.note,
    eventTime: microTime(o.time),
    reportingController: REPORTING_CONTROLLER,
    // The API requires it and allows at most 128 characters.
    reportingInstance: o.reportingInstance.slice(0, 128) || 'unknown',
  };
}

/** What a recorder needs. */
export interface EventRecorderOptions {
  /** The object the Events are about, read when an Event is posted (the StatefulSet's uid changes when it is re-created). */
  readonly regarding: () => Promise<EventRegarding>;
  /** `reportingInstance`: the reconciler's pod name. */
  readonly reportingInstance: string;
  /** Where the one warning goes when Events cannot be recorded (a log that is not tapped by this recorder). */
  readonly log: Log;
  /** @default - the system clock */
  readonly now?: () => Date;
}

/** Codes after which no further Event is tried in this run: it would fail the same way. */
const GIVE_UP = [401, 403, 404];

/**
 * Records Events best-effort, in the order given, in the background: `record` returns at once. An
 * Event that says again what one of this run said (same type, reason and note about the same object)
 * is not recorded again: no `series`, which would need `patch` on every Event of the namespace (Event
 * names cannot be known in advance to limit it), where `create` is all the reconciler is granted. A
 * failure is logged once; after a 401/403/404 or a timeout nothing more is tried (one attempt each,
 * no retry). `flush` waits for what is queued, for a bounded time.
 */
export class EventRecorder {
  private queue: Promise<void> = Promise.resolve();
  private readonly seen = new Set<string>();
  private warned = false;
  private disabled = false;

  constructor(private readonly client: KubeClient, private readonly options: EventRecorderOptions) {}

  /** The listener to tap a log with (Log.tap): each line that is a step becomes an Event. */
  readonly listener = (line: LogLine): void => {
    const spec = eventForLine(line);
    if (spec) this.record(spec);
  };

  /** Queues an Event, stamped now. */
  record(spec: EventSpec): void {
    const time = (this.options.now ?? (() => new Date()))();
    this.queue = this.queue.then(() => this.post(spec, time)).catch((e) => this.failed(e));
  }

  /** Waits until every queued Event is posted, or `maxWaitMs` went by (what is left goes on in the background). */
  async flush(maxWaitMs = 10_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.queue, new Promise<void>((r) => { timer = setTimeout(r, maxWaitMs); })]);
    clearTimeout(timer);
  }

  private async post(spec: EventSpec, time: Date): Promise<void> {
    if (this.disabled) return;
    const regarding = await this.options.regarding();
    const key = [spec.type, spec.reason, spec.note, regarding.kind, regarding.name, regarding.uid ?? ''].join('\0');
    if (this.seen.has(key)) return;
    // Before the request: a repeat is not tried again, whether this one is recorded or fails.
    this.seen.add(key);
    await this.client.createEvent(eventObject(spec, regarding, { name: eventName(regarding.name, time.getTime(), randomBytes(3).readUIntBE(0, 3)), time, reportingInstance: this.options.reportingInstance }));
  }

  private failed(e: unknown): void {
    const code = (e as { code?: unknown }).code;
    const reason = (e as Error).message ?? String(e);
    if ((typeof code === 'number' && GIVE_UP.includes(code)) || /timeout|aborted/i.test(reason)) this.disabled = true;
    if (this.warned) return;
    this.warned = true;
    this.options.log.info(`warning: could not record a Kubernetes Event (${reason}); Events are best-effort: the run goes on${this.disabled ? ' without them' : ''}`, { eventsFailed: true });
  }
}

function upperCamel(s: string): string {
  return s.split(/[^A-Za-z0-9]+/).filter(Boolean).map((w) => w[0].toUpperCase() + w.slice(1)).join('');
}
