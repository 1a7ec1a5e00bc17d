// kvstore-reconcile as people and Jobs run it: help, version, usage errors on stderr, store documents in
// JSON or YAML, finding the cluster, and dry runs against the API double.
import { execFileSync } from 'child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { loadYaml } from '@kubernetes/client-node';
import { Chart, Testing, Yaml } from 'cdk8s';
import { stringify as stringifyYaml } from 'yaml';
import { main } from '../../apps/reconcile';
import { KVStore, KVStoreProps, StoreDocument } from '../../lib';
import { CliError, errorLine, exitCode, findCluster, OPTION_NAMES, parseArgs, parseStoreText, SERVICE_ACCOUNT_TOKEN, UsageError } from '../../lib/reconciler/cli';
import { KubeError } from '../../lib/reconciler/client';
import { LeaseHeldError } from '../../lib/reconciler/lease';
import { RefusedError } from '../../lib/reconciler/reconcile';
import { ApiServer, reportRolledOut, startApiServer } from '../support/api-server';

const NS = 'shop';
const ROOT = join(__dirname, '..', '..');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** Every option the README and the reconciler's objects use, plus -h: help must explain each. */
const FLAGS = [
  '--store', '--crd', '--namespace', '--namespace-selector', '--all-namespaces', '--prune-image', '--prune-snapshots', '--prefix', '--pre-operation-prefix', '--keep', '--keep-file',
  '--maintain', '--recover-quorum-loss', '--dry-run', '--force', '--force-spec', '--etcd-endpoints', '--etcd-member-endpoints', '--etcd-tls-dir', '--lease-seconds', '--lease-wait-seconds', '--kubeconfig', '--context', '--json', '--help', '--version',
];

function documentFor(props: KVStoreProps = {}): StoreDocument {
  const chart = new Chart(Testing.app(), 'c', { namespace: NS });
  return new KVStore(chart, 'orders', props).document;
}

let dir: string;
let stdout: string[];
let stderr: string[];
const streams = () => ({ stdout: (t: string) => void stdout.push(t), stderr: (t: string) => void stderr.push(t) });
const out = () => stdout.join('');
const err = () => stderr.join('');
const lastLine = (text: string) => text.trimEnd().split('\n').pop();
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kvstore-reconcile-'));
  stdout = [];
  stderr = [];
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('help and version', () => {
  test.each([['--help'], ['-h']])('%s explains every flag, the modes, finding the cluster and the exit codes, on stdout, exit 0', async (flag) => {
    expect(await main([flag], undefined, streams())).toBe(0);
    const help = out();
    for (const f of FLAGS) expect(help).toMatch(new RegExp(`^\\s+(-h, )?${f}\\b`, 'm'));
    expect(help).toMatch(/^ {2}-h, --help +Print this help/m);
    expect(help).toMatch(/--crd \(--namespace NS,\.\.\. \| --namespace-selector K=V,\.\.\. \|\s+--all-namespaces\)/);
    // An option too long for its column has its help on the lines below.
    expect(help).toMatch(/^ {2}--namespace-selector K=V,\.\.\.\n {28}Only the KVStore resources in the namespaces/m);
    expect(help).toMatch(/--prune-snapshots DIR --prefix PREFIX --keep N\s+\[--pre-operation-prefix PRE\] \[--keep-file NAME\]/);
    expect(help.split('\n').filter((l) => [...l].length > 80)).toEqual([]);
    for (const source of ['KUBECONFIG', '~/.kube/config', 'KUBERNETES_SERVICE_HOST', '--context NAME']) expect(help).toContain(source);
    for (const code of ['0', '1', '2', '64']) expect(help).toMatch(new RegExp(`^  ${code} +\\S`, 'm'));
    expect(err()).toBe('');
  });

  test('help wins over everything else on the line', async () => {
    expect(await main(['--bogus', '--store', '--help'], undefined, streams())).toBe(0);
    expect(out()).toContain('Usage:');
  });

  test('the parser knows exactly the options the help lists', () => {
    expect([...OPTION_NAMES].sort()).toEqual([...FLAGS].sort());
  });

  /** Runs `script` in a fresh Node process with ts-node, after `main` (apps/reconcile.ts) is defined; prints its last write. */
  const node = (script: string) => JSON.parse(execFileSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', [
    `require(${JSON.stringify(join(ROOT, 'lib/model/quantity.ts'))});`,
    'const before = new Set(Object.keys(require.cache));',
    script.replace('MAIN', `require(${JSON.stringify(join(ROOT, 'apps/reconcile.ts'))}).main`),
  ].join('\n')], { cwd: ROOT, encoding: 'utf8' }));

  test('--help loads no package: it works before the reconciler\'s peer dependencies are installed', () => {
    const result = node(`MAIN(['--help'], undefined, { stdout() {} }).then((code) => process.stdout.write(JSON.stringify({ code,
      packages: [...new Set(Object.keys(require.cache).filter((f) => !before.has(f)).map((f) => /node_modules\\/((@[^/]+\\/)?[^/]+)/.exec(f)?.[1]).filter(Boolean))] })));`);
    expect(result).toEqual({ code: 0, packages: [] });
  });

  test('a reconcile without @kubernetes/client-node installed says what to install', () => {
    const result = node(`const Module = require('module');
      const resolve = Module._resolveFilename;
      Module._resolveFilename = function (request, ...rest) {
        if (request === '@kubernetes/client-node') throw Object.assign(new Error("Cannot find module '" + request + "'"), { code: 'MODULE_NOT_FOUND' });
        return resolve.call(this, request, ...rest);
      };
      const streams = { out: '', err: '' };
      MAIN(['--store', 'store.json'], undefined, { stdout: (t) => { streams.out += t; }, stderr: (t) => { streams.err += t; } })
        .then((code) => process.stdout.write(JSON.stringify({ code, ...streams })));`);
    expect(result).toEqual({ code: 1, out: '', err: 'error: kvstore-reconcile needs @kubernetes/client-node, which is not installed: npm install @kubernetes/client-node@^1 etcd3@^1 cockatiel@^3\n' });
  });

  test('--version prints the package version, exit 0', async () => {
    expect(await main(['--version'], undefined, streams())).toBe(0);
    expect(out()).toBe(`${VERSION}\n`);
    expect(err()).toBe('');
  });
});

describe('usage errors: exit 64, one line on stderr naming the flag, nothing on stdout', () => {
  test.each([
    [['--store', 'x.json', '--bogus'], /^error: unknown option --bogus; run kvstore-reconcile --help for usage\n$/],
    [['--store'], /^error: --store needs a value \(--store FILE\)/],
    [['--store', '--dry-run'], /^error: --store needs a value/],
    [[], /^error: choose what to do: --store FILE, --crd, or --prune-snapshots DIR/],
    [['--store', 'a.json', '--crd', '--all-namespaces'], /^error: --store and --crd cannot be used together/],
    [['--crd'], /^error: --crd needs --namespace NS, --namespace-selector K=V or --all-namespaces/],
    [['--crd', '--namespace', 'a', '--all-namespaces'], /^error: --namespace and --all-namespaces cannot be used together: choose one/],
    [['--crd', '--namespace', 'a', '--namespace-selector', 'team=a'], /^error: --namespace and --namespace-selector cannot be used together: choose one/],
    [['--crd', '--namespace-selector', 'team=a', '--all-namespaces'], /^error: --namespace-selector and --all-namespaces cannot be used together: choose one/],
    [['--crd', '--namespace', 'a', '--namespace-selector', 'team=a', '--all-namespaces'], /^error: --namespace, --namespace-selector and --all-namespaces cannot be used together: choose one/],
    [['--crd', '--namespace-selector', 'team'], /^error: --namespace-selector: "team" is not KEY=VALUE \(a label key and a label value; several separated by commas\)/],
    [['--crd', '--namespace-selector', 'team==a'], /^error: --namespace-selector: "team==a" is not KEY=VALUE/],
    [['--crd', '--namespace-selector', 'team!=a'], /^error: --namespace-selector: "team!=a" is not KEY=VALUE/],
    [['--crd', '--namespace-selector', 'bad key=a'], /^error: --namespace-selector: "bad key=a" is not KEY=VALUE/],
    [['--crd', '--namespace-selector', 'team=a,team=b'], /^error: --namespace-selector: team is given two values \("a" and "b"\)/],
    [['--crd', '--namespace-selector', ','], /^error: --namespace-selector: "," holds no KEY=VALUE/],
    [['--store', 'a.json', '--namespace-selector', 'team=a'], /^error: --namespace-selector cannot be used with --store/],
    [['--crd', '--namespace', ','], /^error: --namespace: "," is not a namespace name/],
    [['--store', 'a.json', '--namespace', 'a'], /^error: --namespace cannot be used with --store/],
    [['--store', 'a.json', '--prefix', 'a'], /^error: --prefix cannot be used with --store/],
    [['--prune-snapshots', '/b', '--prefix', 'p-', '--keep', '1', '--dry-run'], /^error: --dry-run cannot be used with --prune-snapshots/],
    [['--prune-snapshots', '/b', '--prefix', 'p-'], /^error: --prune-snapshots needs --keep N/],
    [['--prune-snapshots', '/b', '--prefix', 'p-', '--keep', '0'], /^error: --keep must be an integer of at least 1, got "0"/],
    [['--store', 'a.json', '--lease-seconds', '1.5'], /^error: --lease-seconds must be an integer of at least 1, got "1.5"/],
    [['--store', 'a.json', '--etcd-member-endpoints', 'kv-0:2379'], /^error: --etcd-member-endpoints: "kv-0:2379" is not an http:\/\/ or https:\/\/ URL/],
    [['--store', 'a.json', '--recover-quorum-loss'], /^error: --recover-quorum-loss needs --maintain/],
    [['--store', 'a.json', '--maintain', '--dry-run'], /^error: --maintain takes neither --dry-run nor --force/],
    [['--crd', '--all-namespaces', '--recover-quorum-loss'], /^error: --recover-quorum-loss needs --maintain/],
    [['--crd', '--all-namespaces', '--maintain', '--dry-run'], /^error: --maintain takes neither --dry-run nor --force/],
    [['--store', 'a.json', '--lease-wait-seconds', '-1'], /^error: --lease-wait-seconds must be an integer of at least 0, got "-1"/],
    [['--store', 'a.json', '--etcd-endpoints', 'kv-0:2379'], /^error: --etcd-endpoints: "kv-0:2379" is not an http:\/\/ or https:\/\/ URL/],
    [['--store', 'a.json', '--force', '--force'], /^error: --force given twice/],
    [['--store', 'a.json', '--force-spec', '0123456789'], /^error: --force-spec needs --force/],
    [['--store', 'a.json', '--force', '--force-spec', 'latest'], /^error: --force-spec must be a spec hash \(10 hex digits\), got "latest"/],
    [['--crd', '--all-namespaces', '--force', '--force-spec', '0123456789'], /^error: --force-spec cannot be used with --crd/],
    [['--store', 'a.json', '--force=yes'], /^error: --force takes no value/],
    [['--store', 'a.json', 'extra'], /^error: unexpected argument "extra"/],
  ])('%j', async (argv, message) => {
    expect(await main(argv, undefined, streams())).toBe(64);
    expect(err()).toMatch(message);
    expect(err().trimEnd().split('\n')).toHaveLength(1);
    expect(out()).toBe('');
  });

  test('with --json the error is a JSON record on stderr', async () => {
    expect(await main(['--json', '--bogus'], undefined, streams())).toBe(64);
    expect(JSON.parse(err())).toMatchObject({ level: 'error', msg: expect.stringMatching(/^unknown option --bogus/) });
    expect(out()).toBe('');
  });

  test('--name=value is the same as --name value', () => {
    expect(parseArgs(['--store=a.json', '--lease-seconds=30', '--context=prod'])).toMatchObject({ mode: 'store', file: 'a.json', leaseSeconds: 30, context: 'prod' });
    expect(parseArgs(['--store=a.json', '--lease-wait-seconds=0'])).toMatchObject({ mode: 'store', leaseWaitSeconds: 0 });
  });

  test('the reconciler objects\' own command lines parse as before', () => {
    expect(parseArgs(['--store', '/etc/kvstore/store.json', '--force'])).toMatchObject({ mode: 'store', file: '/etc/kvstore/store.json', force: true, dryRun: false });
    expect(parseArgs(['--crd', '--namespace', 'shop'])).toMatchObject({ mode: 'crd', namespaces: ['shop'] });
    expect(parseArgs(['--crd', '--namespace', 'shop,billing,shop'])).toMatchObject({ mode: 'crd', namespaces: ['shop', 'billing'] });
    expect(() => parseArgs(['--crd', '--namespace', 'shop,Bad_NS'])).toThrow(/--namespace: "Bad_NS" is not a namespace name/);
    expect(parseArgs(['--crd', '--all-namespaces'])).not.toHaveProperty('namespace');
    expect(parseArgs(['--crd', '--namespace-selector', 'team=shop,kvstore.example.com/enabled=true,team=shop,tier=']))
      .toMatchObject({ mode: 'crd', namespaceSelector: { 'team': 'shop', 'kvstore.example.com/enabled': 'true', 'tier': '' } });
    expect(parseArgs(['--crd', '--namespace-selector', 'team=shop'])).not.toHaveProperty('namespaces');
    expect(parseArgs(['--crd', '--all-namespaces', '--prune-image', 'r.example.com/rec:1'])).toMatchObject({ mode: 'crd', pruneImage: 'r.example.com/rec:1' });
    expect(parseArgs(['--crd', '--all-namespaces', '--maintain', '--recover-quorum-loss'])).toMatchObject({ mode: 'crd', maintain: true, recoverQuorumLoss: true });
    expect(parseArgs(['--prune-snapshots', '/backups', '--prefix', 'orders-backup-', '--keep', '5', '--keep-file', 's.db']))
      .toEqual({ mode: 'prune', dir: '/backups', prefix: 'orders-backup-', keep: 5, keepFile: 's.db', json: false });
    expect(parseArgs(['--prune-snapshots', '/backups', '--prefix', 'orders-backup-', '--pre-operation-prefix', 'orders-pre-', '--keep', '5']))
      .toEqual({ mode: 'prune', dir: '/backups', prefix: 'orders-backup-', preOperationPrefix: 'orders-pre-', keep: 5, json: false });
    expect(parseArgs(['--store', 'a', '--etcd-endpoints', 'http://a:2379,,http://b:2379', '--lease-seconds', '3']))
      .toMatchObject({ etcdEndpoints: ['http://a:2379', 'http://b:2379'], leaseSeconds: 3 });
    expect(() => parseArgs(['--bogus'])).toThrow(UsageError);
  });
});

describe('store documents', () => {
  test('a missing store file: exit 1 (the command line is fine, its input is not), --store and the file named on stderr', async () => {
    const missing = join(dir, 'missing.json');
    expect(await main(['--store', missing], undefined, streams())).toBe(1);
    expect(err()).toBe(`error: --store ${missing}: cannot read ${missing}: no such file or directory\n`);
    expect(out()).toBe('');
  });

  test('a directory as the store file', async () => {
    mkdirSync(join(dir, 'store.d'));
    expect(await main(['--store', join(dir, 'store.d')], undefined, streams())).toBe(1);
    expect(err()).toMatch(/^error: --store \S+store\.d: cannot read \S+store\.d: it is a directory\n$/);
  });

  test('YAML (as cdk8s writes it) and JSON give the same document', () => {
    const doc = documentFor({ size: 5, labels: { team: 'payments' } });
    expect(parseStoreText(Yaml.stringify(doc), 'store.yaml', loadYaml)).toEqual(doc);
    expect(parseStoreText(JSON.stringify(doc, null, 2), 'store.json', loadYaml)).toEqual(doc);
  });

  test.each([
    ['{"kind": ', /^--store f: not valid JSON: /],
    ['kind: [', /^--store f: not valid YAML: /],
    ['a: 1\n---\nb: 2\n', /^--store f: not valid YAML: expected a single document/],
    ['', /^--store f: the file is empty/],
    ['kind: Nope\n', /^--store f: not a store document: expected apiVersion kvstore\.cdk8s-kvstore\.io\/v1 and kind StoreDocument, got undefined "Nope"/],
  ])('%j is refused naming the file', (text, message) => {
    expect(() => parseStoreText(text, 'f', loadYaml)).toThrow(CliError);
    expect(() => parseStoreText(text, 'f', loadYaml)).toThrow(message);
  });

  test('an unquoted YAML timestamp is refused, not silently turned into a date', () => {
    // cdk8s writes YAML 1.1 and quotes it; a YAML 1.2 writer (the yaml package's default) does not.
    expect(parseStoreText(Yaml.stringify(documentFor({ labels: { released: '2024-01-31' } })), 'f', loadYaml).spec.labels).toEqual({ released: '2024-01-31' });
    const yaml = stringifyYaml(documentFor({ labels: { released: '2024-01-31' } }));
    expect(yaml).toMatch(/released: 2024-01-31$/m);
    expect(() => parseStoreText(yaml, 'f', loadYaml)).toThrow(/^--store f: spec\.labels\.released is an unquoted YAML timestamp \(read as 2024-01-31T00:00:00\.000Z\); quote it/);
  });
});

describe('finding the cluster', () => {
  const none = () => false;
  const home = (path: string) => path === join('/home/me', '.kube', 'config');

  test('--kubeconfig, then KUBECONFIG, then ~/.kube/config, then the pod\'s service account', () => {
    const everything = { KUBECONFIG: '/a:/b', HOME: '/home/me', KUBERNETES_SERVICE_HOST: '10.0.0.1' };
    const all = (p: string) => home(p) || p === SERVICE_ACCOUNT_TOKEN;
    expect(findCluster('/flag', everything, all)).toEqual({ kind: 'files', files: ['/flag'], origin: '--kubeconfig /flag' });
    expect(findCluster(undefined, everything, all)).toMatchObject({ kind: 'files', files: ['/a', '/b'] });
    expect(findCluster(undefined, { ...everything, KUBECONFIG: '' }, all)).toMatchObject({ kind: 'files', files: ['/home/me/.kube/config'] });
    expect(findCluster(undefined, { KUBERNETES_SERVICE_HOST: '10.0.0.1', HOME: '/home/me' }, (p) => p === SERVICE_ACCOUNT_TOKEN)).toEqual({ kind: 'in-cluster' });
  });

  test('in a pod without a token, and nowhere at all, say so', () => {
    expect(() => findCluster(undefined, { KUBERNETES_SERVICE_HOST: '10.0.0.1' }, none)).toThrow(/running in a pod \(KUBERNETES_SERVICE_HOST is set\) but \/var\/run\/secrets\/kubernetes\.io\/serviceaccount\/token is missing/);
    expect(() => findCluster(undefined, { HOME: '/home/me' }, none)).toThrow(/^no kubeconfig found/);
  });

  test('no kubeconfig anywhere: the clear message on stderr, exit 1', async () => {
    const saved = { KUBECONFIG: process.env.KUBECONFIG, HOME: process.env.HOME, KUBERNETES_SERVICE_HOST: process.env.KUBERNETES_SERVICE_HOST };
    try {
      delete process.env.KUBECONFIG;
      delete process.env.KUBERNETES_SERVICE_HOST;
      process.env.HOME = mkdtempSync(join(dir, 'home-'));
      const store = file('store.json', JSON.stringify(documentFor()));
      expect(await main(['--store', store, '--dry-run'], undefined, streams())).toBe(1);
      expect(err()).toBe('error: no kubeconfig found: set KUBECONFIG, pass --kubeconfig FILE, or run in a pod with a service account\n');
      expect(out()).toBe('');
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});

describe('error lines', () => {
  const sts = { apiVersion: 'apps/v1', kind: 'StatefulSet', namespace: NS, name: 'orders' };
  const store = { store: { namespace: NS, name: 'orders' } };

  test('an API error names the namespaced object and, for 403, what to do; exit 1', () => {
    const e = new KubeError('apply', sts, 403, 'statefulsets.apps "orders" is forbidden: User "me" cannot patch resource "statefulsets"');
    expect(errorLine(e, store)).toBe('store shop/orders: apply StatefulSet shop/orders failed (HTTP 403): statefulsets.apps "orders" is forbidden: User "me" cannot patch resource "statefulsets"; ' +
      'the user or service account lacks this permission: apply the Role the construct renders, or use credentials that have it');
    expect(exitCode(e)).toBe(1);
  });

  test('a refusal even force cannot make is marked, and says so; exit 2', () => {
    const e = new RefusedError({ steps: [], unchanged: [], refusals: [{ ref: sts, field: 'metadata.annotations.kvstore.cdk8s-kvstore.io/restored-from', from: 'snap-1.db', to: undefined, reason: 'the members could not rejoin', forceable: false }] });
    expect(errorLine(e, store)).toBe('store shop/orders: refused 1 change(s), nothing was changed: StatefulSet shop/orders metadata.annotations.kvstore.cdk8s-kvstore.io/restored-from: "snap-1.db" → (none) ' +
      '(the members could not rejoin) [not even with --force]; change the spec back (--force cannot make a change marked so)');
    expect(exitCode(e)).toBe(2);
  });

  test('a Lease held by another run: wait, then run again', () => {
    const e = new LeaseHeldError('orders-reconciler', 'orders-reconcile-abc', new Date('2030-01-01T00:00:00Z'));
    expect(errorLine(e, store)).toBe('store shop/orders: Lease orders-reconciler is held by orders-reconcile-abc until 2030-01-01T00:00:00.000Z: another reconciler is running; ' +
      'wait for it to finish (or for the Lease to expire at 2030-01-01T00:00:00.000Z) and run again');
    expect(exitCode(e)).toBe(1);
  });
});

describe('against the API double', () => {
  let server: ApiServer;
  let stopController: () => void;

  beforeEach(async () => {
    server = await startApiServer();
    stopController = reportRolledOut(server, NS, ['orders']);
  });

  afterEach(async () => {
    stopController();
    await server.stop();
  });

  /** A kubeconfig file whose current context points nowhere; `api-server-double` reaches the double. */
  const kubeconfigFile = () => {
    const config = JSON.parse(server.kubeConfig().exportConfig());
    config.clusters.push({ name: 'nowhere', cluster: { server: 'http://127.0.0.1:1', 'insecure-skip-tls-verify': true } });
    config.contexts.push({ name: 'nowhere', context: { cluster: 'nowhere', user: 'api-server-double' } });
    config['current-context'] = 'nowhere';
    return file('kubeconfig', JSON.stringify(config));
  };

  test('--dry-run of a YAML document prints the plan as a diff and a summary, changes nothing', async () => {
    const store = file('store.yaml', Yaml.stringify(documentFor()));
    expect(await main(['--store', store, '--dry-run'], server.kubeConfig(), streams())).toBe(0);
    expect(out()).toMatch(/^store shop\/orders\nplan: 7 to create, 0 to update/);
    expect(out()).toContain('  + StatefulSet/orders\n');
    expect(lastLine(out())).toBe('dry run: 8 step(s), 0 refusal(s); nothing was changed');
    expect(server.mutatingRequests()).toEqual([]);
    expect(err()).toBe('');

    // The same document as JSON plans the same.
    const yamlRun = out();
    stdout = [];
    expect(await main(['--store', file('store.json', JSON.stringify(documentFor())), '--dry-run'], server.kubeConfig(), streams())).toBe(0);
    expect(out()).toBe(yamlRun);
  });

  test('--dry-run with a refused change: the summary on stdout, one line naming the namespaced object on stderr, exit 2', async () => {
    expect(await main(['--store', file('big.json', JSON.stringify(documentFor({ storageSize: '10Gi' })))], server.kubeConfig(), streams())).toBe(0);
    const before = server.mutatingRequests().length;
    stdout = [];
    expect(await main(['--store', file('small.json', JSON.stringify(documentFor({ storageSize: '1Gi' }))), '--dry-run'], server.kubeConfig(), streams())).toBe(2);
    // The bootstrap ConfigMap's quota follows the storage: planned, and not made either.
    expect(out()).toContain('  ~ ConfigMap/orders-bootstrap\n');
    expect(lastLine(out())).toBe('dry run: 1 step(s), 1 refusal(s); nothing was changed');
    expect(err()).toMatch(/^error: store shop\/orders: refused 1 change\(s\), nothing was changed: StatefulSet shop\/orders spec\.volumeClaimTemplates\[0\]\.spec\.resources\.requests\.storage: "10Gi" → "1Gi" \(storage cannot shrink[^\n]*pass --force to make the change anyway\n$/);
    expect(server.mutatingRequests()).toHaveLength(before);
  });

  test('a Lease held by another live run: --lease-wait-seconds 0 gives up at once (exit 1); by default it waits until the Lease expires, then runs', async () => {
    const now = new Date();
    server.put({
      apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'orders-reconciler', namespace: NS },
      spec: { holderIdentity: 'another-run', leaseDurationSeconds: 2, acquireTime: now.toISOString(), renewTime: now.toISOString() },
    });
    const store = file('store.json', JSON.stringify(documentFor()));
    expect(await main(['--store', store, '--lease-wait-seconds', '0'], server.kubeConfig(), streams())).toBe(1);
    expect(err()).toMatch(/Lease orders-reconciler is held by another-run/);
    expect(server.mutatingRequests().filter((r) => !r.path.includes('/leases'))).toEqual([]);
    stdout = [];
    expect(await main(['--store', store], server.kubeConfig(), streams())).toBe(0);
    expect(out()).toMatch(/Lease orders-reconciler is held by another-run \(until [^)]+ unless renewed\): waiting for it\n/);
    expect(out()).toContain('store orders reconciled');
  });

  test('--json: the plan and the summary as JSON records on stdout', async () => {
    expect(await main(['--store', file('store.json', JSON.stringify(documentFor())), '--dry-run', '--json'], server.kubeConfig(), streams())).toBe(0);
    const records = out().trim().split('\n').map((l) => JSON.parse(l));
    expect(records[records.length - 1]).toMatchObject({ level: 'info', msg: 'dry run: 8 step(s), 0 refusal(s); nothing was changed', dryRun: true, steps: 8, refusals: 0 });
  });

  test('--kubeconfig FILE --context NAME picks the context; KUBECONFIG does the same', async () => {
    const kubeconfig = kubeconfigFile();
    const store = file('store.json', JSON.stringify(documentFor()));
    expect(await main(['--store', store, '--dry-run', '--kubeconfig', kubeconfig, '--context', 'api-server-double'], undefined, streams())).toBe(0);
    expect(lastLine(out())).toBe('dry run: 8 step(s), 0 refusal(s); nothing was changed');
    const saved = process.env.KUBECONFIG;
    try {
      process.env.KUBECONFIG = kubeconfig;
      stdout = [];
      expect(await main(['--store', store, '--dry-run', '--context', 'api-server-double'], undefined, streams())).toBe(0);
      expect(lastLine(out())).toBe('dry run: 8 step(s), 0 refusal(s); nothing was changed');
      process.env.KUBECONFIG = join(dir, 'no-such-kubeconfig');
      expect(await main(['--store', store, '--dry-run'], undefined, streams())).toBe(1);
      expect(err()).toBe(`error: KUBECONFIG (${join(dir, 'no-such-kubeconfig')}): cannot read ${join(dir, 'no-such-kubeconfig')}: no such file or directory; fix KUBECONFIG or pass --kubeconfig FILE\n`);
    } finally {
      if (saved === undefined) delete process.env.KUBECONFIG;
      else process.env.KUBECONFIG = saved;
    }
  });

  test('an unknown --context names the contexts there', async () => {
    const kubeconfig = kubeconfigFile();
    const store = file('store.json', JSON.stringify(documentFor()));
    expect(await main(['--store', store, '--kubeconfig', kubeconfig, '--context', 'prod'], undefined, streams())).toBe(1);
    expect(err()).toBe(`error: --context prod: --kubeconfig ${kubeconfig} has no such context (it has: api-server-double, nowhere)\n`);
    expect(server.requests).toEqual([]);
  });

  test('a plain-http server without insecure-skip-tls-verify: the client\'s refusal, and what to do', async () => {
    const config = JSON.parse(server.kubeConfig().exportConfig());
    delete config.clusters[0].cluster['insecure-skip-tls-verify'];
    const kubeconfig = file('kubeconfig', JSON.stringify(config));
    expect(await main(['--store', file('store.json', JSON.stringify(documentFor())), '--dry-run', '--kubeconfig', kubeconfig], undefined, streams())).toBe(1);
    expect(err()).toMatch(/^error: store shop\/orders: read \S+ shop\/\S+ failed: .*HTTP protocol is not allowed when skipTLSVerify is not set or false; the kubeconfig's server is plain http: use its https address, or set insecure-skip-tls-verify: true/);
    expect(err().trimEnd().split('\n')).toHaveLength(1);
  });

  test('--crd --namespace-selector binds the reconciler in the labelled namespaces, naming its ServiceAccount in POD_NAMESPACE; without POD_NAMESPACE, exit 1 before any request', async () => {
    server.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { team: 'shop' } } });
    const saved = process.env.POD_NAMESPACE;
    try {
      delete process.env.POD_NAMESPACE;
      expect(await main(['--crd', '--namespace-selector', 'team=shop'], server.kubeConfig(), streams())).toBe(1);
      expect(err()).toBe('error: --namespace-selector needs POD_NAMESPACE: the namespace of the ServiceAccount kvstore-reconciler that its RoleBindings name (the operator\'s CronJob sets it)\n');
      expect(server.requests).toEqual([]);
      process.env.POD_NAMESPACE = 'kvstores';
      stderr = [];
      expect(await main(['--crd', '--namespace-selector', 'team=shop'], server.kubeConfig(), streams())).toBe(0);
      expect(out()).toContain('created RoleBinding shop/kvstore-reconciler (namespace matches team=shop)');
      expect((server.get('rbac.authorization.k8s.io/v1', 'RoleBinding', NS, 'kvstore-reconciler') as any).subjects).toEqual([{ kind: 'ServiceAccount', name: 'kvstore-reconciler', namespace: 'kvstores' }]);
      expect(err()).toBe('');
    } finally {
      if (saved === undefined) delete process.env.POD_NAMESPACE;
      else process.env.POD_NAMESPACE = saved;
    }
  });

  test('an unreachable API server is named, with what to check', async () => {
    const store = file('store.json', JSON.stringify(documentFor()));
    expect(await main(['--store', store, '--dry-run', '--kubeconfig', kubeconfigFile()], undefined, streams())).toBe(1);
    expect(err()).toMatch(/^error: store shop\/orders: read \S+ shop\/\S+ failed: .*ECONNREFUSED.*; cannot reach the API server at http:\/\/127\.0\.0\.1:1: check that the cluster is up and that --context or KUBECONFIG points at it\n$/);
  });
});
