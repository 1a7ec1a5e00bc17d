// The kvstore-reconcile command line: its options, help text, exit codes, how it finds the cluster, how it
// reads a store document, and the one-line error it prints for each failure. Decisions only, and no runtime:
// --help and --version work before the reconciler's peer dependencies are installed; apps/reconcile.ts
// loads those, reads, connects and writes.
import { delimiter, join } from 'path';
import { parseStoreDocument, StoreDocument } from '../model/document';
import { isLabelKey, isLabelValue, isNamespaceName } from '../model/schema';
import type { KubeError } from './client';
import type { LeaseHeldError } from './lease';
import { Log, LogFields } from './log';
import type { Plan } from './plan';
import type { RefusedError } from './reconcile';
import type { ObjectRef } from './types';

/** The program's name, as npm installs it. */
export const PROGRAM = 'kvstore-reconcile';

/** Exit codes: what a Job's backoffLimit, a CI step or a shell script can tell apart. */
export const EXIT = {
  /** Done (a dry run: planned, nothing refused). */
  ok: 0,
  /** Failed: an input could not be read, the API or etcd failed, a wait timed out, a CRD-mode store failed. */
  failed: 1,
  /** Refused: the plan holds a change only --force may make (or none may); nothing was changed. */
  refused: 2,
  /** The command line is wrong; nothing was read or changed. */
  usage: 64,
} as const;

/** A command line that cannot run: exit 64. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A failure already said in the user's words, naming the file, flag or object: exit 1. */
export class CliError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CliError';
  }
}

type Mode = 'store' | 'crd' | 'prune';

interface OptionSpec {
  /** `--store`. */
  readonly name: string;
  /** A one-letter alias (`-h`). */
  readonly short?: string;
  /** The value's placeholder (`FILE`); absent for a flag. */
  readonly value?: string;
  /** The modes it belongs to; absent: every mode. */
  readonly modes?: readonly Mode[];
  /** What it does (wrapped to the terminal's 80 columns). */
  readonly help: string;
}

const RECONCILE: readonly Mode[] = ['store', 'crd'];

/** Every option, in help order. The parser knows exactly these. */
const OPTIONS: readonly OptionSpec[] = [
  { name: '--store', value: 'FILE', modes: ['store'], help: 'Reconcile the one store a store document describes. FILE is JSON (it starts with `{`) or YAML: a KVStore\'s `document`, or the `store.json` key of its `<store>-kvstore-spec` ConfigMap.' },
  { name: '--crd', modes: ['crd'], help: 'Reconcile every KVStore resource whose spec changed or whose objects drifted, and write each one\'s status. Needs one of --namespace, --namespace-selector and --all-namespaces.' },
  { name: '--namespace', value: 'NS,...', modes: ['crd'], help: 'Only the KVStore resources in these namespaces (comma-separated): the ones the reconciler is bound in.' },
  { name: '--namespace-selector', value: 'K=V,...', modes: ['crd'], help: 'Only the KVStore resources in the namespaces carrying all these labels (comma-separated). First binds the ClusterRole kvstore-reconciler to the ServiceAccount kvstore-reconciler of namespace $POD_NAMESPACE in each (a RoleBinding), and removes the bindings it made where a namespace no longer matches.' },
  { name: '--all-namespaces', modes: ['crd'], help: 'The KVStore resources in every namespace.' },
  { name: '--prune-image', value: 'IMAGE', modes: ['crd'], help: 'The backup prune image of resources whose spec.backup names none (KVStoreOperator passes its own image). Default: the image this version publishes.' },
  { name: '--prune-snapshots', value: 'DIR', modes: ['prune'], help: 'Delete all but the newest N snapshots of a store in DIR: scheduled ones (PREFIX<digits>.db) and pre-operation ones (PRE<8 hex digits>[-<attempt>].db) together. Talks to no cluster (the backup CronJob\'s second container runs this).' },
  { name: '--prefix', value: 'PREFIX', modes: ['prune'], help: 'The scheduled snapshots\' file name prefix (required).' },
  { name: '--pre-operation-prefix', value: 'PRE', modes: ['prune'], help: 'The pre-operation snapshots\' file name prefix. Without it they are left alone.' },
  { name: '--keep', value: 'N', modes: ['prune'], help: 'How many to keep: an integer of at least 1 (required).' },
  { name: '--keep-file', value: 'NAME', modes: ['prune'], help: 'A file in DIR never to delete (the snapshot a restore reads).' },
  { name: '--maintain', modes: RECONCILE, help: 'Maintain the live store instead of reconciling it (the maintenance CronJobs run this): replace a member whose data is lost, recover from a NOSPACE alarm (compact, defragment every member, disarm), else defragment the members with at least 64 MiB and 10% of their file to reclaim, followers first and the leader last, only while the cluster is healthy. Exit 1 when the cluster is unhealthy or the alarm stays. With --crd: the etcd store of every KVStore resource in scope, one after another (one failing does not stop the others; exit 1 if any failed), each outcome written to its resource\'s Maintained condition; binds no namespace (--namespace-selector: only where the reconciler is bound).' },
  { name: '--recover-quorum-loss', modes: RECONCILE, help: 'With --maintain: when a majority of members is gone for good, recover from the most advanced survivor (etcd\'s --force-new-cluster procedure: writes acknowledged after its revision may be lost; the run prints the plan first). Without it such a run refuses, printing the plan.' },
  { name: '--dry-run', modes: RECONCILE, help: 'Print the plan as a diff and change nothing: + create, ~ update (each field old → new), ± re-create, ⇑ resize, - prune, ⟲ restore, ⇅ members, ! refused.' },
  { name: '--force-spec', value: 'HASH', modes: ['store'], help: 'With --force: force only the store document whose spec hash is HASH; any other runs without force (the reconciler Job passes its own spec\'s, so a retried older Job never forces a newer spec).' },
  { name: '--force', modes: RECONCILE, help: 'Make the changes the plan refuses but force may make: immutable StatefulSet fields (re-created with orphan propagation: pods and PVCs stay), an engine change, a restore over a live store. Read the refusals (--dry-run) first.' },
  { name: '--etcd-endpoints', value: 'URL,...', modes: RECONCILE, help: 'etcd client URLs (http://host:port, https:// with TLS) for membership changes. Default: the store\'s client Service (reachable only inside the cluster).' },
  { name: '--etcd-member-endpoints', value: 'URL,...', modes: ['store'], help: 'Each member\'s own client URL, by ordinal (http://host:port; https:// is used where the member speaks TLS), for what concerns one member: an upgrade\'s catch-up check, the TLS switch, maintenance. Default: each member\'s DNS name under the headless Service (reachable only inside the cluster).' },
  { name: '--etcd-tls-dir', value: 'DIR', modes: RECONCILE, help: 'With TLS: the directory with the client certificate (tls.crt, tls.key, ca.crt of the <store>-client-tls Secret). Default: /etc/kvstore/client-tls, where the reconciler Job mounts it.' },
  { name: '--lease-seconds', value: 'N', modes: RECONCILE, help: 'How long the store\'s Lease lasts unless renewed: a crashed run blocks the next one at most this long. Default: 120.' },
  { name: '--lease-wait-seconds', value: 'N', modes: RECONCILE, help: 'How long to wait for the store\'s Lease while another live reconciler holds it (0: give up at once). Default: 600 with --store or --maintain (a retried or newer Job, or a maintenance run, waits rather than failing), 0 with --crd (the next pass tries again).' },
  { name: '--kubeconfig', value: 'FILE', modes: RECONCILE, help: 'The kubeconfig file to use (see "Finding the cluster").' },
  { name: '--context', value: 'NAME', modes: RECONCILE, help: 'The kubeconfig context to use. Default: its current-context.' },
  { name: '--json', help: 'Log one JSON object per line (time, level, msg, fields) instead of text.' },
  { name: '--help', short: '-h', help: 'Print this help and exit.' },
  { name: '--version', help: 'Print the cdk8s-kvstore version and exit.' },
];

const MODE_FLAGS: Record<Mode, string> = { store: '--store', crd: '--crd', prune: '--prune-snapshots' };

/** The names of every option (tests check the help against them). */
export const OPTION_NAMES: readonly string[] = OPTIONS.map((o) => o.name);

/** What every reconcile (--store and --crd) shares. */
export interface ReconcileFlags {
  readonly force: boolean;
  readonly dryRun: boolean;
  readonly json: boolean;
  readonly etcdEndpoints?: string[];
  readonly etcdMemberEndpoints?: string[];
  readonly etcdTlsDir?: string;
  readonly leaseSeconds?: number;
  readonly leaseWaitSeconds?: number;
  readonly kubeconfig?: string;
  readonly context?: string;
}

/** A command line, parsed and checked. */
export type Command =
  | { readonly mode: 'help' }
  | { readonly mode: 'version' }
  | ({ readonly mode: 'store'; readonly file: string; readonly forceSpec?: string; readonly maintain?: boolean; readonly recoverQuorumLoss?: boolean } & ReconcileFlags)
  | ({ readonly mode: 'crd'; readonly namespaces?: string[]; readonly namespaceSelector?: Record<string, string>; readonly pruneImage?: string; readonly maintain?: boolean; readonly recoverQuorumLoss?: boolean } & ReconcileFlags)
  | { readonly mode: 'prune'; readonly dir: string; readonly prefix: string; readonly preOperationPrefix?: string; readonly keep: number; readonly keepFile?: string; readonly json: boolean };

function namespaceList(text: string): string[] {
  const names = text.split(',').map((n) => n.trim()).filter(Boolean);
  const bad = names.find((n) => !isNamespaceName(n));
  if (names.length === 0 || bad !== undefined) throw new UsageError(`--namespace: ${JSON.stringify(bad ?? text)} is not a namespace name (a DNS-1123 label; several separated by commas)`);
  return [...new Set(names)];
}

function labelMap(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const eq = pair.indexOf('=');
    const [key, value] = eq < 0 ? [pair, undefined] : [pair.slice(0, eq), pair.slice(eq + 1)];
    if (value === undefined || !isLabelKey(key) || !isLabelValue(value)) {
      throw new UsageError(`--namespace-selector: ${JSON.stringify(pair)} is not KEY=VALUE (a label key and a label value; several separated by commas)`);
    }
    if (key in labels && labels[key] !== value) throw new UsageError(`--namespace-selector: ${key} is given two values (${JSON.stringify(labels[key])} and ${JSON.stringify(value)})`);
    labels[key] = value;
  }
  if (Object.keys(labels).length === 0) throw new UsageError(`--namespace-selector: ${JSON.stringify(text)} holds no KEY=VALUE`);
  return labels;
}

const positiveInteger = (flag: string, text: string): number => {
  if (!/^[0-9]+$/.test(text) || Number(text) < 1) throw new UsageError(`${flag} must be an integer of at least 1, got ${JSON.stringify(text)}`);
  return Number(text);
};

const nonNegativeInteger = (flag: string, text: string): number => {
  if (!/^[0-9]+$/.test(text)) throw new UsageError(`${flag} must be an integer of at least 0, got ${JSON.stringify(text)}`);
  return Number(text);
};

function endpointList(text: string, flag = '--etcd-endpoints'): string[] {
  const urls = text.split(',').map((u) => u.trim()).filter(Boolean);
  if (urls.length === 0) throw new UsageError(`${flag} needs at least one URL (http://host:port,...)`);
  const bad = urls.find((u) => !/^https?:\/\/[^\s/]+/.test(u));
  if (bad) throw new UsageError(`${flag}: ${JSON.stringify(bad)} is not an http:// or https:// URL (http://host:port)`);
  return urls;
}

/**
 * Parses and checks a command line (`process.argv.slice(2)`). `--name value` and `--name=value` both work;
 * `-h`/`--help` and `--version` win over everything else. Throws UsageError in the user's words.
 */
export function parseArgs(argv: readonly string[]): Command {
  if (argv.includes('--help') || argv.includes('-h')) return { mode: 'help' };
  if (argv.includes('--version')) return { mode: 'version' };
  const given = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i];
    if (!token.startsWith('-')) throw new UsageError(`unexpected argument ${JSON.stringify(token)}: every value follows its option (--store FILE)`);
    const eq = token.indexOf('=');
    const name = token.startsWith('--') && eq > 0 ? token.slice(0, eq) : token;
    const spec = OPTIONS.find((o) => o.name === name);
    if (!spec) throw new UsageError(`unknown option ${name}`);
    if (given.has(name)) throw new UsageError(`${name} given twice`);
    if (!spec.value) {
      if (eq > 0) throw new UsageError(`${name} takes no value`);
      given.set(name, true);
      continue;
    }
    const value = eq > 0 ? token.slice(eq + 1) : argv[++i];
    if (value === undefined || (eq < 0 && value.startsWith('--')) || value === '') throw new UsageError(`${name} needs a value (${name} ${spec.value})`);
    given.set(name, value);
  }
  const text = (name: string) => given.get(name) as string | undefined;

  const modes = (Object.keys(MODE_FLAGS) as Mode[]).filter((m) => given.has(MODE_FLAGS[m]));
  if (modes.length === 0) throw new UsageError('choose what to do: --store FILE, --crd, or --prune-snapshots DIR');
  if (modes.length > 1) throw new UsageError(`${modes.map((m) => MODE_FLAGS[m]).join(' and ')} cannot be used together: choose one`);
  const mode = modes[0];
  for (const name of given.keys()) {
    const spec = OPTIONS.find((o) => o.name === name)!;
    if (spec.modes && !spec.modes.includes(mode)) throw new UsageError(`${name} cannot be used with ${MODE_FLAGS[mode]}`);
  }
  const json = given.has('--json');

  if (mode === 'prune') {
    if (!given.has('--prefix')) throw new UsageError('--prune-snapshots needs --prefix PREFIX');
    if (!given.has('--keep')) throw new UsageError('--prune-snapshots needs --keep N');
    return {
      mode, dir: text('--prune-snapshots')!, prefix: text('--prefix')!, keep: positiveInteger('--keep', text('--keep')!), json,
      ...(given.has('--pre-operation-prefix') ? { preOperationPrefix: text('--pre-operation-prefix') } : {}),
      ...(given.has('--keep-file') ? { keepFile: text('--keep-file') } : {}),
    };
  }
  const flags: ReconcileFlags = {
    force: given.has('--force'),
    dryRun: given.has('--dry-run'),
    json,
    ...(given.has('--etcd-endpoints') ? { etcdEndpoints: endpointList(text('--etcd-endpoints')!) } : {}),
    ...(given.has('--etcd-member-endpoints') ? { etcdMemberEndpoints: endpointList(text('--etcd-member-endpoints')!, '--etcd-member-endpoints') } : {}),
    ...(given.has('--etcd-tls-dir') ? { etcdTlsDir: text('--etcd-tls-dir') } : {}),
    ...(given.has('--lease-seconds') ? { leaseSeconds: positiveInteger('--lease-seconds', text('--lease-seconds')!) } : {}),
    ...(given.has('--lease-wait-seconds') ? { leaseWaitSeconds: nonNegativeInteger('--lease-wait-seconds', text('--lease-wait-seconds')!) } : {}),
    ...(given.has('--kubeconfig') ? { kubeconfig: text('--kubeconfig') } : {}),
    ...(given.has('--context') ? { context: text('--context') } : {}),
  };
  if (given.has('--force-spec') && !given.has('--force')) throw new UsageError('--force-spec needs --force');
  if (given.has('--force-spec') && !/^[0-9a-f]{10}$/.test(text('--force-spec')!)) throw new UsageError(`--force-spec must be a spec hash (10 hex digits), got ${JSON.stringify(text('--force-spec'))}`);
  if (given.has('--maintain') && (given.has('--dry-run') || given.has('--force'))) throw new UsageError('--maintain takes neither --dry-run nor --force');
  if (given.has('--recover-quorum-loss') && !given.has('--maintain')) throw new UsageError('--recover-quorum-loss needs --maintain');
  const maintain = { ...(given.has('--maintain') ? { maintain: true } : {}), ...(given.has('--recover-quorum-loss') ? { recoverQuorumLoss: true } : {}) };
  if (mode === 'store') return { mode, file: text('--store')!, ...flags, ...(given.has('--force-spec') ? { forceSpec: text('--force-spec') } : {}), ...maintain };
  const scopes = ['--namespace', '--namespace-selector', '--all-namespaces'].filter((name) => given.has(name));
  if (scopes.length === 0) throw new UsageError('--crd needs --namespace NS, --namespace-selector K=V or --all-namespaces');
  if (scopes.length > 1) throw new UsageError(`${scopes.slice(0, -1).join(', ')} and ${scopes[scopes.length - 1]} cannot be used together: choose one`);
  return {
    mode, ...flags,
    ...(given.has('--namespace') ? { namespaces: namespaceList(text('--namespace')!) } : {}),
    ...(given.has('--namespace-selector') ? { namespaceSelector: labelMap(text('--namespace-selector')!) } : {}),
    ...(given.has('--prune-image') ? { pruneImage: text('--prune-image') } : {}),
    ...maintain,
  };
}

/** Words into lines of at most `width` characters; a one-character word (`+`) stays with the next. */
function wrap(text: string, width: number): string[] {
  const words = text.split(' ').reduce<string[]>((acc, w) => (acc.length && acc[acc.length - 1].length === 1 ? [...acc.slice(0, -1), `${acc[acc.length - 1]} ${w}`] : [...acc, w]), []);
  const lines: string[] = [];
  for (const word of words) {
    const last = lines.length - 1;
    if (last >= 0 && lines[last].length + 1 + word.length <= width) lines[last] += ` ${word}`;
    else lines.push(word);
  }
  return lines;
}

const HELP_COLUMN = 28;

const optionHelp = (names: readonly string[]) => OPTIONS.filter((o) => names.includes(o.name)).flatMap((o) => {
  const head = `  ${o.short ? `${o.short}, ` : ''}${o.name}${o.value ? ` ${o.value}` : ''}`;
  const lines = wrap(o.help, 80 - HELP_COLUMN).map((line) => `${''.padEnd(HELP_COLUMN)}${line}`);
  // A head too long for its column gets a line of its own, as argparse does.
  return head.length < HELP_COLUMN - 1 ? [`${head.padEnd(HELP_COLUMN)}${lines[0].trimStart()}`, ...lines.slice(1)] : [head, ...lines];
});

/** The --help text, within 80 columns. */
export function helpText(version: string): string {
  return [
    `${PROGRAM} ${version}`,
    'Makes a cdk8s-kvstore store\'s objects in a cluster match its spec: re-renders',
    'the store, plans against what is live, applies the plan under a Lease. Also',
    'prunes backup snapshots.',
    '',
    'Usage:',
    `  ${PROGRAM} --store FILE [--dry-run] [--force] [options]`,
    `  ${PROGRAM} --store FILE --maintain [--recover-quorum-loss] [options]`,
    `  ${PROGRAM} --crd (--namespace NS,... | --namespace-selector K=V,... |`,
    '                    --all-namespaces) [--maintain [--recover-quorum-loss]]',
    '                    [options]',
    `  ${PROGRAM} --prune-snapshots DIR --prefix PREFIX --keep N`,
    '                    [--pre-operation-prefix PRE] [--keep-file NAME] [--json]',
    `  ${PROGRAM} --help | --version`,
    '',
    'What to do (exactly one):',
    ...optionHelp(['--store', '--maintain', '--recover-quorum-loss', '--crd', '--namespace', '--namespace-selector', '--all-namespaces', '--prune-image', '--prune-snapshots', '--prefix', '--pre-operation-prefix', '--keep', '--keep-file']),
    '',
    'Reconcile and maintenance options (--store and --crd):',
    ...optionHelp(['--dry-run', '--force', '--force-spec', '--etcd-endpoints', '--etcd-member-endpoints', '--etcd-tls-dir', '--lease-seconds', '--lease-wait-seconds', '--kubeconfig', '--context']),
    '',
    'Other options:',
    ...optionHelp(['--json', '--help', '--version']),
    '',
    'Finding the cluster (the first that applies, as kubectl does):',
    '  1. --kubeconfig FILE',
    `  2. KUBECONFIG (several files separated by '${delimiter}' are merged)`,
    '  3. ~/.kube/config',
    '  4. in a pod (KUBERNETES_SERVICE_HOST is set): the pod\'s service account token',
    '  --context NAME picks one of its contexts (default: its current-context).',
    '  The credentials need the permissions the reconciler\'s Role grants, in the',
    '  store\'s namespace.',
    '',
    'Output: the log on stdout; errors on stderr, one line each, naming the file,',
    'flag or object and what to do.',
    '',
    'Exit codes:',
    '  0   done (for --dry-run: planned, nothing refused)',
    '  1   failed: the store file or kubeconfig cannot be read or is invalid, an',
    '      API or etcd call failed, a wait timed out, or (--crd) a store failed',
    '      (its status says why); running again resumes',
    '  2   refused (--store): the plan holds a change only --force may make, or',
    '      one nothing may make; nothing was changed',
    '  64  usage: the command line is wrong; nothing was read or changed',
    '',
  ].join('\n');
}

/** Why a file could not be read, in words. */
export function ioReason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file or directory';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'it is a directory';
  return (e as Error).message;
}

/** The first Date in a parsed document, with its path: YAML reads unquoted timestamps as dates. */
function findDate(value: unknown, path: string): { path: string; date: Date } | undefined {
  if (value instanceof Date) return { path, date: value };
  if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      const found = findDate(v, Array.isArray(value) ? `${path}[${k}]` : path ? `${path}.${k}` : k);
      if (found) return found;
    }
  }
  return undefined;
}

/**
 * A store document from a file's text: JSON when it starts with `{`, YAML otherwise (one document, read
 * with `loadYaml`: @kubernetes/client-node's, which the reconciler has anyway). Errors name the file.
 */
export function parseStoreText(text: string, file: string, loadYaml: (text: string) => unknown): StoreDocument {
  const body = text.replace(/^\uFEFF/, '');
  const where = `--store ${file}`;
  if (body.trim() === '') throw new CliError(`${where}: the file is empty; expected a store document (JSON or YAML)`);
  let parsed: unknown;
  if (body.trimStart().startsWith('{')) {
    try {
      parsed = JSON.parse(body);
    } catch (e) {
      throw new CliError(`${where}: not valid JSON: ${(e as Error).message}`);
    }
  } else {
    try {
      parsed = loadYaml(body);
    } catch (e) {
      throw new CliError(`${where}: not valid YAML: ${(e as Error).message.split('\n')[0]}`);
    }
    const date = findDate(parsed, '');
    if (date) throw new CliError(`${where}: ${date.path} is an unquoted YAML timestamp (read as ${date.date.toISOString()}); quote it to keep it a string`);
  }
  try {
    return parseStoreDocument(JSON.stringify(parsed));
  } catch (e) {
    throw new CliError(`${where}: ${(e as Error).message}`);
  }
}

/** Where the cluster's kubeconfig comes from. */
export type ClusterSource =
  | { readonly kind: 'files'; readonly files: readonly string[]; readonly origin: string }
  | { readonly kind: 'in-cluster' };

/** The service account token a pod is given. */
export const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/**
 * Where to find the cluster, in kubectl's order: --kubeconfig, KUBECONFIG, ~/.kube/config, the pod's
 * service account. `exists` is injected so the decision is testable.
 */
export function findCluster(kubeconfig: string | undefined, env: NodeJS.ProcessEnv, exists: (path: string) => boolean): ClusterSource {
  if (kubeconfig !== undefined) return { kind: 'files', files: [kubeconfig], origin: `--kubeconfig ${kubeconfig}` };
  const listed = (env.KUBECONFIG ?? '').split(delimiter).filter(Boolean);
  if (listed.length > 0) return { kind: 'files', files: listed, origin: `KUBECONFIG (${listed.join(delimiter)})` };
  const home = env.HOME ?? env.USERPROFILE;
  if (home && exists(join(home, '.kube', 'config'))) return { kind: 'files', files: [join(home, '.kube', 'config')], origin: join(home, '.kube', 'config') };
  if (env.KUBERNETES_SERVICE_HOST) {
    if (!exists(SERVICE_ACCOUNT_TOKEN)) {
      throw new CliError(`running in a pod (KUBERNETES_SERVICE_HOST is set) but ${SERVICE_ACCOUNT_TOKEN} is missing: give the pod a service account token (automountServiceAccountToken: true) or pass --kubeconfig FILE`);
    }
    return { kind: 'in-cluster' };
  }
  throw new CliError('no kubeconfig found: set KUBECONFIG, pass --kubeconfig FILE, or run in a pod with a service account');
}

/** `StatefulSet shop/orders`: how the command line names an object. */
export function describeObject(ref: ObjectRef): string {
  return `${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}`;
}

const show = (v: unknown) => (v === undefined ? '(none)' : JSON.stringify(v));

/** Told apart by name: this module must not load the classes (and with them the Kubernetes client). */
const isError = <T extends Error>(e: unknown, name: string): e is T => e instanceof Error && e.name === name;

/** A network failure reaching the API server, as the client reports it. */
const UNREACHABLE = /ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|EAI_AGAIN|ECONNRESET|socket hang up/;

/** What the error line of a failed run says, and where the failure happened. */
export interface ErrorContext {
  /** The store being reconciled (--store mode). */
  readonly store?: { readonly namespace: string; readonly name: string };
  /** The API server's URL. */
  readonly server?: string;
}

/** A failed run's error as one line: what failed, on which object, and what to do. */
export function errorLine(e: unknown, context: ErrorContext = {}): string {
  const store = context.store ? `store ${context.store.namespace}/${context.store.name}: ` : '';
  if (e instanceof CliError || e instanceof UsageError) return e.message;
  if (isError<RefusedError>(e, 'RefusedError')) {
    const refusals = e.plan.refusals.map((r) => `${describeObject(r.ref)} ${r.field}: ${show(r.from)} → ${show(r.to)} (${r.reason})${r.forceable === false ? ' [not even with --force]' : ''}`);
    const never = e.plan.refusals.some((r) => r.forceable === false);
    return `${store}refused ${refusals.length} change(s), nothing was changed: ${refusals.join('; ')}; ` +
      (never ? 'change the spec back (--force cannot make a change marked so)' : 'change the spec back, or pass --force to make the change anyway');
  }
  if (isError<LeaseHeldError>(e, 'LeaseHeldError')) {
    return `${store}${e.message}; wait for it to finish (or for the Lease to expire at ${e.expires.toISOString()}) and run again`;
  }
  if (isError<KubeError>(e, 'KubeError')) {
    const what = typeof e.ref === 'string' ? e.ref.replace(/ \(\)$/, '') : describeObject(e.ref);
    const line = `${store}${e.operation} ${what} failed${e.code ? ` (HTTP ${e.code})` : ''}: ${e.reason}`;
    if (e.code === 401) return `${line}; the credentials were refused: log in again or pick another --context`;
    if (e.code === 403) return `${line}; the user or service account lacks this permission: apply the Role the construct renders, or use credentials that have it`;
    if (e.code === 404 && typeof e.ref === 'string' && e.ref.startsWith('KVStore')) return `${line}; is the KVStore CRD installed (KVStoreOperator)?`;
    if (/HTTP protocol is not allowed/.test(e.reason)) return `${line}; the kubeconfig's server is plain http: use its https address, or set insecure-skip-tls-verify: true on the cluster (a local test cluster only)`;
    if (e.code === undefined && UNREACHABLE.test(e.reason)) return `${line}; cannot reach the API server${context.server ? ` at ${context.server}` : ''}: check that the cluster is up and that --context or KUBECONFIG points at it`;
    return line;
  }
  return `${store}${(e as Error).message ?? String(e)}`;
}

/** The exit code of a failed run. */
export function exitCode(e: unknown): number {
  if (e instanceof UsageError) return EXIT.usage;
  if (isError(e, 'RefusedError')) return EXIT.refused;
  return EXIT.failed;
}

/** The line a --store dry run ends with. */
export function dryRunSummary(plan: Plan): { msg: string; fields: LogFields } {
  return {
    msg: `dry run: ${plan.steps.length} step(s), ${plan.refusals.length} refusal(s); nothing was changed`,
    fields: { dryRun: true, steps: plan.steps.length, refusals: plan.refusals.length },
  };
}

/** Writes text somewhere (stdout, stderr, a test's buffer). */
export type Writer = (text: string) => void;

/** The command line's log: progress on stdout, each error as one line on stderr. */
export class CliLog extends Log {
  private readonly errors: Log;

  constructor(json: boolean, stdout: Writer, stderr: Writer) {
    super(json, stdout);
    this.errors = new Log(json, stderr);
  }

  /** One line on stderr (a multi-line message is joined with `; `). */
  override error(msg: string, fields: LogFields = {}): void {
    this.errors.error(msg.trim().split(/\s*\n\s*/).join('; '), fields);
  }
}
