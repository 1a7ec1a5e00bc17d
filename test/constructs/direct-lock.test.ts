import { spawnSync } from 'child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'fs';
import { tmpdir } from 'os';
import { join, resolve } from 'path';
import { App, Chart } from 'cdk8s';
import { Engine, KVStore, KVStoreProps } from '../../lib';
import { LOCK_FILE_CONTEXT, lockFilePath, lockIssues, readLock } from '../../lib/constructs/direct-lock';

const ROOT = resolve(__dirname, '../..');
let dir: string;
let lock: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kvstore-lock-'));
  lock = join(dir, 'kvstore.lock.json');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** One synthesis of one store with the lock at `lock`, as `cdk8s synth` would run it. */
function synth(props: KVStoreProps, options: { namespace?: string; name?: string } = {}): string {
  const app = new App({ outdir: join(dir, 'dist') });
  app.node.setContext(LOCK_FILE_CONTEXT, lock);
  const chart = new Chart(app, 'prod', { namespace: options.namespace ?? 'shop' });
  new KVStore(chart, options.name ?? 'cache', props);
  return app.synthYaml();
}

describe('lockIssues (pure)', () => {
  const at = { size: 3, tls: false };
  test('a store the lock has not seen, or one that changed nothing, has none', () => {
    expect(lockIssues('shop/cache', 'kvstore.lock.json', undefined, { size: 5, tls: true })).toEqual([]);
    expect(lockIssues('shop/cache', 'kvstore.lock.json', at, at)).toEqual([]);
  });

  test('a scale-up names the members that cannot join', () => {
    const [issue] = lockIssues('shop/cache', 'kvstore.lock.json', at, { size: 5, tls: false });
    expect(issue.field).toBe('size');
    expect(issue.value).toBe(5);
    expect(issue.allowed).toMatch(/^3, the size kvstore\.lock\.json records/);
    expect(issue.reason).toMatch(/3 → 5 starts members etcd never registered/);
    expect(issue.reason).toMatch(/remove "shop\/cache" from kvstore\.lock\.json/);
  });

  test('a scale-down says when the removed members, still voting, outnumber the rest', () => {
    expect(lockIssues('k', 'f', { size: 3, tls: false }, { size: 1, tls: false })[0].reason).toMatch(/3 → 1 leaves the removed members voting, which loses quorum/);
    expect(lockIssues('k', 'f', { size: 5, tls: false }, { size: 3, tls: false })[0].reason).toMatch(/5 → 3 leaves the removed members voting;/);
    expect(lockIssues('k', 'f', { size: 4, tls: false }, { size: 2, tls: false })[0].reason).toMatch(/loses quorum/);
  });

  test('turning TLS on or off is refused', () => {
    expect(lockIssues('k', 'f', at, { size: 3, tls: true })).toEqual([expect.objectContaining({ field: 'tls', value: 'on', reason: expect.stringMatching(/http peer URL it no longer serves/) })]);
    expect(lockIssues('k', 'f', { size: 3, tls: true }, at)).toEqual([expect.objectContaining({ field: 'tls', value: 'off', reason: expect.stringMatching(/registered at https peer URLs/) })]);
  });
});

describe('where the lock is', () => {
  const scope = () => new App();
  test('off by default outside the cdk8s CLI, so unit tests of an app write nothing', () => {
    expect(lockFilePath(scope(), {})).toBeUndefined();
  });
  test('the working directory under the cdk8s CLI (CDK8S_OUTDIR)', () => {
    expect(lockFilePath(scope(), { CDK8S_OUTDIR: 'dist' })).toBe(resolve('kvstore.lock.json'));
  });
  test('KVSTORE_LOCK_FILE names it or turns it off; the context wins over both', () => {
    expect(lockFilePath(scope(), { KVSTORE_LOCK_FILE: 'env/prod.lock.json' })).toBe(resolve('env/prod.lock.json'));
    expect(lockFilePath(scope(), { KVSTORE_LOCK_FILE: 'off', CDK8S_OUTDIR: 'dist' })).toBeUndefined();
    const app = scope();
    app.node.setContext(LOCK_FILE_CONTEXT, false);
    expect(lockFilePath(app, { KVSTORE_LOCK_FILE: 'x.json', CDK8S_OUTDIR: 'dist' })).toBeUndefined();
    const named = scope();
    named.node.setContext(LOCK_FILE_CONTEXT, 'ctx.json');
    expect(lockFilePath(named, { KVSTORE_LOCK_FILE: 'x.json' })).toBe(resolve('ctx.json'));
  });
});

describe('a direct-mode store against its lock', () => {
  test('the first synthesis records the store; the same spec again passes and leaves the file as it was', () => {
    synth({ size: 3 });
    const first = readFileSync(lock, 'utf8');
    expect(JSON.parse(first).stores).toEqual({ 'shop/cache': { size: 3, tls: false } });
    synth({ size: 3 });
    expect(readFileSync(lock, 'utf8')).toBe(first);
  });

  test('a size change is refused at synth time, naming the store, the field, the value and the way out; the lock keeps the live size', () => {
    synth({ size: 3 });
    expect(() => synth({ size: 5 })).toThrow(/KVStore 'cache': size must be 3, the size .*kvstore\.lock\.json records for this store .*got 5 .*remove "shop\/cache"/);
    expect(readLock(lock)).toEqual({ 'shop/cache': { size: 3, tls: false } });
  });

  test('adding TLS to a live direct-mode store is refused', () => {
    synth({ size: 3 });
    expect(() => synth({ size: 3, tls: {} })).toThrow(/KVStore 'cache': tls must be off, as .* records for this store \(turning it on needs reconciler\), got "on"/);
  });

  test('with a reconciler the change is the reconciler\'s: recorded, so the store may leave it later at that size', () => {
    synth({ size: 3 });
    synth({ size: 5, reconciler: {} });
    expect(readLock(lock)['shop/cache']).toEqual({ size: 5, tls: false });
    synth({ size: 5 });
    expect(() => synth({ size: 3 })).toThrow(/size must be 5/);
  });

  test('removing the store\'s entry states that the store is new: any size passes and is recorded', () => {
    synth({ size: 3 });
    synth({ size: 1 }, { name: 'other' });
    const file = JSON.parse(readFileSync(lock, 'utf8'));
    delete file.stores['shop/cache'];
    writeFileSync(lock, JSON.stringify(file));
    synth({ size: 5 });
    expect(readLock(lock)).toEqual({ 'shop/cache': { size: 5, tls: false }, 'shop/other': { size: 1, tls: false } });
  });

  test('stores are keyed by namespace and name: the same name elsewhere is another store', () => {
    synth({ size: 3 });
    synth({ size: 5 }, { namespace: 'staging' });
    expect(Object.keys(readLock(lock))).toEqual(['shop/cache', 'staging/cache']);
  });

  test('the file is the same bytes whatever order the stores are synthesized in', () => {
    synth({ size: 3 }, { name: 'b' });
    synth({ size: 1 }, { name: 'a' });
    const one = readFileSync(lock, 'utf8');
    rmSync(lock);
    synth({ size: 1 }, { name: 'a' });
    synth({ size: 3 }, { name: 'b' });
    expect(readFileSync(lock, 'utf8')).toBe(one);
  });

  test('a store of a custom engine (its image bootstraps it) is not recorded', () => {
    synth({ engine: Engine.custom({ clientPort: 6379 }), containerImage: 'redis:7.4', size: 1 });
    expect(existsSync(lock)).toBe(false);
  });

  test('a damaged lock fails the synthesis, naming the file', () => {
    writeFileSync(lock, '{"stores": {"shop/cache": {"size": "3"}}}');
    expect(() => synth({ size: 3 })).toThrow(/kvstore\.lock\.json: entry "shop\/cache" must be \{ "size": <integer>, "tls": <boolean> \}/);
    writeFileSync(lock, 'not json');
    expect(() => synth({ size: 3 })).toThrow(/not the kvstore lock/);
  });
});

test('through the cdk8s CLI: the lock lives beside cdk8s.yaml, and a size change fails `cdk8s synth`', () => {
  writeFileSync(join(dir, 'cdk8s.yaml'), 'language: typescript\napp: node app.js\n');
  writeFileSync(join(dir, 'app.js'), [
    `require(${JSON.stringify(join(ROOT, 'node_modules/ts-node'))}).register({ transpileOnly: true, project: ${JSON.stringify(join(ROOT, 'tsconfig.json'))} });`,
    "const { App, Chart } = require('cdk8s');",
    `const { KVStore } = require(${JSON.stringify(join(ROOT, 'lib'))});`,
    'const app = new App();',
    "new KVStore(new Chart(app, 'prod', { namespace: 'shop' }), 'cache', { size: Number(process.env.SIZE) });",
    'app.synth();',
  ].join('\n'));
  const cdk8s = (size: number) => spawnSync(join(ROOT, 'node_modules/.bin/cdk8s'), ['synth'], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, SIZE: String(size), NODE_PATH: join(ROOT, 'node_modules'), KVSTORE_LOCK_FILE: '' },
    timeout: 60_000,
  });
  const first = cdk8s(3);
  expect({ status: first.status, yaml: existsSync(join(dir, 'dist/prod.k8s.yaml')) }).toEqual({ status: 0, yaml: true });
  expect(readLock(lock)).toEqual({ 'shop/cache': { size: 3, tls: false } });

  const resized = cdk8s(5);
  expect(resized.status).not.toBe(0);
  expect(resized.stdout + resized.stderr).toMatch(/size must be 3, the size kvstore\.lock\.json records for this store/);
  expect(readLock(lock)).toEqual({ 'shop/cache': { size: 3, tls: false } });
}, 90_000);
