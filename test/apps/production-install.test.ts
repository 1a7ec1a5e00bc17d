// The reconciler from a production-only install, as the Dockerfile makes it: the packed library
// (`npm pack`, whose prepack builds) with cdk8s, constructs and the reconciler's optional peers at the
// versions scripts/reconciler-deps.js prints, `--omit=dev`. Reaches the npm registry for the install.
import { execFile, execFileSync } from 'child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { App, Chart } from 'cdk8s';
import { KVStore } from '../../lib';
import { ApiServer, startApiServer } from '../support/api-server';

const ROOT = join(__dirname, '..', '..');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

let dir: string;
let server: ApiServer | undefined;
const reconciler = () => join(dir, 'node_modules', 'cdk8s-kvstore', 'build', 'apps', 'reconcile.js');
/**
 * Runs the installed reconciler without blocking this process (the API double answers from it), with
 * an environment of its own: no KUBECONFIG, a HOME without a kubeconfig.
 */
function run(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [reconciler(), ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH, HOME: dir } },
      (error, stdout, stderr) => resolve({ status: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr }));
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kvstore-prod-'));
  execFileSync('npm', ['pack', '--pack-destination', dir], { cwd: ROOT, stdio: 'pipe' });
  const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'))!;
  const deps = execFileSync(process.execPath, [join(ROOT, 'scripts', 'reconciler-deps.js')], { encoding: 'utf8' }).trim().split('\n');
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'kvstore-reconciler-image', private: true }));
  execFileSync('npm', ['install', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', join(dir, tarball), ...deps], { cwd: dir, stdio: 'pipe' });
  server = await startApiServer();
}, 600_000);

afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('installs no development dependency', () => {
  for (const dev of ['typescript', 'jest', 'projen', 'ajv', 'yaml', 'ts-node', 'cdk8s-cli']) {
    expect({ dev, installed: existsSync(join(dir, 'node_modules', dev)) }).toEqual({ dev, installed: false });
  }
});

test('--version prints the package version', async () => {
  const result = await run(['--version']);
  expect({ status: result.status, stdout: result.stdout.trim() }).toEqual({ status: 0, stdout: VERSION });
});

test('--dry-run plans a store against the API double and changes nothing', async () => {
  const chart = new Chart(new App(), 'c', { namespace: 'shop' });
  const store = new KVStore(chart, 'orders', { size: 3, reconciler: { image: 'registry.example.com/kvstore-reconciler:1' } });
  writeFileSync(join(dir, 'store.json'), JSON.stringify(store.document));
  writeFileSync(join(dir, 'kubeconfig'), server!.kubeConfig().exportConfig());
  const result = await run(['--store', join(dir, 'store.json'), '--kubeconfig', join(dir, 'kubeconfig'), '--dry-run']);
  expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: '' });
  expect(result.stdout).toMatch(/StatefulSet\/orders/);
  expect(server!.mutatingRequests()).toEqual([]);
});
