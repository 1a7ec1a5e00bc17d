// etcd authentication for a TLS store's clients: with client-certificate authentication on, etcd takes
// a certificate's common name as the user. The plan (pure) turns the live users and roles and the
// spec's clients into steps; `reconcileAuth` reads, plans and applies them with the root certificate.
import { Etcd3 } from 'etcd3';
import type { ClientSpec } from '../model/spec';
import { EtcdClientTls, etcdTlsOptions } from './etcd-membership';

/** The library's own user (the common name of `<store>-client-tls`); etcd needs it before auth is on. */
export const ROOT = 'root';
/** Roles the library manages are named `kvstore-<client>`: others (a user's own) are left alone. */
export const ROLE_PREFIX = 'kvstore-';

/** One permission of a role on a key range, as etcd keeps it (key and rangeEnd as byte strings: latin1 of the bytes). */
export interface RangePermission {
  readonly permType: 'Read' | 'Write' | 'Readwrite';
  readonly key: string;
  readonly rangeEnd: string;
}

/** What etcd holds: users with their roles, roles with their permissions. */
export interface AuthState {
  readonly users: ReadonlyMap<string, readonly string[]>;
  readonly roles: ReadonlyMap<string, readonly RangePermission[]>;
}

export type AuthStep =
  | { readonly action: 'add-role'; readonly role: string }
  | { readonly action: 'grant'; readonly role: string; readonly perm: RangePermission }
  | { readonly action: 'revoke'; readonly role: string; readonly perm: RangePermission }
  | { readonly action: 'add-user'; readonly user: string }
  | { readonly action: 'grant-role'; readonly user: string; readonly role: string }
  | { readonly action: 'delete-user'; readonly user: string }
  | { readonly action: 'delete-role'; readonly role: string }
  | { readonly action: 'enable' };

/** A key prefix (UTF-8) as the byte string RangePermission holds. */
const bytesOf = (prefix: string) => Buffer.from(prefix, 'utf8').toString('latin1');

/** The end of the range of every key starting with `prefix` (etcd's GetPrefixRangeEnd), as a byte string. */
export function prefixRangeEnd(prefix: string): string {
  const bytes = Buffer.from(prefix, 'utf8');
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i] < 0xff) {
      const end = Buffer.from(bytes.subarray(0, i + 1));
      end[i]++;
      return end.toString('latin1');
    }
  }
  return '\0';
}

const key = (p: RangePermission) => `${p.permType} ${p.key} ${p.rangeEnd}`;

/** The permissions a client's role should have. */
export function clientPermissions(client: ClientSpec): RangePermission[] {
  return [
    ...client.read.map((prefix): RangePermission => ({ permType: 'Read', key: bytesOf(prefix), rangeEnd: prefixRangeEnd(prefix) })),
    ...client.readWrite.map((prefix): RangePermission => ({ permType: 'Readwrite', key: bytesOf(prefix), rangeEnd: prefixRangeEnd(prefix) })),
  ];
}

/**
 * Users a client would take over: an existing user of that name holding any role but the client's own
 * (say, a hand-made user with the root role). The reconciler refuses them rather than widen or narrow
 * someone else's user.
 */
export function authConflicts(state: AuthState, clients: readonly ClientSpec[] | undefined): string[] {
  return (clients ?? []).flatMap((c) => {
    const roles = state.users.get(c.name) ?? [];
    const foreign = roles.filter((r) => r !== `${ROLE_PREFIX}${c.name}`);
    return foreign.length ? [`client ${c.name}: etcd already has a user ${c.name} with role(s) ${foreign.join(', ')}, which the library did not give it; rename the client or remove that user`] : [];
  });
}

/**
 * The steps from `state` to `clients` (undefined: none any more). Only what differs: a role gains or
 * loses the permissions that changed; users and roles of clients no longer listed are deleted; the root
 * user comes first and authentication stays on (once on, it never goes off: a former client's
 * certificate, which cert-manager leaves in its Secret, would otherwise get full access again).
 */
export function planAuth(state: AuthState, clients: readonly ClientSpec[] | undefined): AuthStep[] {
  const steps: AuthStep[] = [];
  const managedRoles = [...state.roles.keys()].filter((r) => r.startsWith(ROLE_PREFIX)).sort();
  const wanted = new Map((clients ?? []).map((c) => [`${ROLE_PREFIX}${c.name}`, c]));
  if (!state.users.has(ROOT)) steps.push({ action: 'add-user', user: ROOT });
  if (!(state.users.get(ROOT) ?? []).includes(ROOT)) steps.push({ action: 'grant-role', user: ROOT, role: ROOT });
  for (const [role, client] of [...wanted].sort(([x], [y]) => x.localeCompare(y))) {
    const have = state.roles.get(role);
    if (!have) steps.push({ action: 'add-role', role });
    const want = clientPermissions(client);
    for (const perm of (have ?? []).filter((h) => !want.some((w) => key(w) === key(h)))) steps.push({ action: 'revoke', role, perm });
    for (const perm of want.filter((w) => !(have ?? []).some((h) => key(w) === key(h)))) steps.push({ action: 'grant', role, perm });
    if (!state.users.has(client.name)) steps.push({ action: 'add-user', user: client.name });
    if (!(state.users.get(client.name) ?? []).includes(role)) steps.push({ action: 'grant-role', user: client.name, role });
  }
  // Clients no longer listed: their role, and their user when it has no role but ours.
  for (const role of managedRoles.filter((r) => !wanted.has(r))) {
    const user = role.slice(ROLE_PREFIX.length);
    if ((state.users.get(user) ?? []).every((r) => r === role) && state.users.has(user)) steps.push({ action: 'delete-user', user });
    steps.push({ action: 'delete-role', role });
  }
  steps.push({ action: 'enable' });
  return steps;
}

/** A step as a log line. */
export function describeAuthStep(step: AuthStep): string {
  switch (step.action) {
    case 'grant':
    case 'revoke':
      return `${step.action} ${step.perm.permType === 'Read' ? 'read' : 'read-write'} on prefix ${JSON.stringify(Buffer.from(step.perm.key, 'latin1').toString('utf8'))} ${step.action === 'grant' ? 'to' : 'from'} role ${step.role}`;
    case 'add-role':
    case 'delete-role':
      return `${step.action.replace('-', ' ')} ${step.role}`;
    case 'add-user':
    case 'delete-user':
      return `${step.action.replace('-', ' ')} ${step.user}`;
    case 'grant-role':
      return `grant role ${step.role} to user ${step.user}`;
    case 'enable':
      return 'enable authentication';
  }
}

/** Reads the users and roles (the caller is root, or authentication is off). */
export async function readAuth(client: Etcd3): Promise<AuthState> {
  const users = new Map<string, string[]>();
  for (const name of (await client.auth.userList()).users ?? []) users.set(name, (await client.auth.userGet({ name })).roles ?? []);
  const roles = new Map<string, RangePermission[]>();
  for (const role of (await client.auth.roleList()).roles ?? []) {
    roles.set(role, ((await client.auth.roleGet({ role })).perm ?? []).map((p) => ({
      permType: p.permType, key: Buffer.from(p.key).toString('latin1'), rangeEnd: Buffer.from(p.range_end).toString('latin1'),
    })));
  }
  return { users, roles };
}

/** Applies one step. Users get no password: they authenticate by certificate. */
export async function applyAuthStep(client: Etcd3, step: AuthStep): Promise<void> {
  const a = client.auth;
  switch (step.action) {
    case 'add-role': await a.roleAdd({ name: step.role }); return;
    case 'delete-role': await a.roleDelete({ role: step.role }); return;
    case 'grant': await a.roleGrantPermission({ name: step.role, perm: { permType: step.perm.permType, key: Buffer.from(step.perm.key, 'latin1'), range_end: Buffer.from(step.perm.rangeEnd, 'latin1') } }); return;
    case 'revoke': await a.roleRevokePermission({ role: step.role, key: Buffer.from(step.perm.key, 'latin1'), range_end: Buffer.from(step.perm.rangeEnd, 'latin1') }); return;
    case 'add-user': await a.userAdd({ name: step.user, options: { no_password: true } }); return;
    case 'delete-user': await a.userDelete({ name: step.user }); return;
    case 'grant-role': await a.userGrantRole({ user: step.user, role: step.role }); return;
    case 'enable': await a.authEnable(); return;
  }
}

/** A client of the store for authentication calls, with the library's client certificate. */
export function authClient(endpoints: string[], tls: EtcdClientTls): Etcd3 {
  return new Etcd3({
    hosts: endpoints,
    ...etcdTlsOptions(tls),
    dialTimeout: 3000,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 10_000 }),
  });
}

/** Reads, plans and applies; returns the steps taken (an enable that was already on counts as none). */
export async function reconcileAuth(client: Etcd3, clients: readonly ClientSpec[] | undefined, log: (line: string) => void = () => undefined): Promise<AuthStep[]> {
  const state = await readAuth(client);
  const conflicts = authConflicts(state, clients);
  if (conflicts.length) throw new Error(`${conflicts.join('; ')} (nothing was changed)`);
  const steps = planAuth(state, clients);
  const changed = steps.filter((s) => s.action !== 'enable');
  for (const step of steps) {
    await applyAuthStep(client, step);
    if (step.action !== 'enable' || changed.length > 0) log(describeAuthStep(step));
  }
  return changed.length > 0 ? steps : [];
}
