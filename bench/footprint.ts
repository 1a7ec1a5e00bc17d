// Benchmark part: consumer install footprint — what `npm install` of the packed library adds to a cdk8s app's
// node_modules, and what the reconciler's optional peers add on top. Run alone: `node build/bench/footprint.js [root]`
// (root: a built checkout to pack, default this one).
import { spawnSync } from 'child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'fs';
import { join } from 'path';
import { ROOT, verdict, withTempDir } from './measure';

/** What a cdk8s app already has: the library's required peers, at the versions the library is developed against. */
export const APP_DEPS = ['cdk8s@2.70.106', 'constructs@10.8.1', 'cdk8s-plus-28@2.5.6'];
/** The reconciler entry's optional peers (what the reconciler image and kvstore-reconcile users install), from package.json. */
export const RECONCILER_PEERS: string[] = (() => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { peerDependencies: Record<string, string>; peerDependenciesMeta: Record<string, { optional?: boolean }> };
  return Object.keys(pkg.peerDependenciesMeta).filter((name) => pkg.peerDependenciesMeta[name].optional).map((name) => `${name}@${pkg.peerDependencies[name]}`);
})();

export interface Tarball {
  readonly file: string;
  readonly sizeKb: number;
  readonly unpackedKb: number;
  readonly files: number;
}

export interface Installed {
  /** `du -sk node_modules` (disk blocks). */
  readonly kb: number;
  /** `du -sk --apparent-size node_modules` (file bytes). */
  readonly apparentKb: number;
  readonly packages: number;
}

export interface FootprintResult {
  readonly tarball: Tarball;
  readonly app: Installed;
  readonly withLibrary: Installed;
  readonly withPeers: Installed;
}

/** The environment for npm run as a consumer would: without the npm_* variables of the `npm run bench` around us. */
function consumerEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')));
}

function npm(args: string[], cwd: string, timeoutMs = 300_000): string {
  const r = spawnSync('npm', args, { cwd, env: consumerEnv(), encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`npm ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr}${r.error ?? ''}`);
  return r.stdout;
}

/** Why the footprint cannot be measured here, or undefined when the registry answers. */
export function registryUnavailable(): string | undefined {
  const r = spawnSync('npm', ['ping'], { env: consumerEnv(), encoding: 'utf8', timeout: 30_000 });
  return r.status === 0 ? undefined : `the npm registry is unreachable (npm ping: ${(r.stderr || String(r.error ?? r.signal)).trim().split('\n').pop()})`;
}

/** `npm pack` of a built checkout into `dest`. */
export function pack(root: string, dest: string): Tarball {
  if (!existsSync(join(root, 'build', 'lib', 'index.js'))) throw new Error(`${root} is not built (no build/lib/index.js)`);
  const [info] = JSON.parse(npm(['pack', '--json', '--pack-destination', dest], root)) as Array<{ filename: string; size: number; unpackedSize: number; entryCount: number }>;
  return { file: join(dest, info.filename), sizeKb: info.size / 1024, unpackedKb: info.unpackedSize / 1024, files: info.entryCount };
}

function du(dir: string, ...flags: string[]): number {
  const r = spawnSync('du', ['-sk', ...flags, dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`du ${dir} failed: ${r.stderr}`);
  return Number(r.stdout.split('\t')[0]);
}

/** A fresh app in `dir` with `specs` installed; its node_modules size and package count. */
export function installApp(dir: string, specs: string[]): Installed {
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'footprint-app', version: '1.0.0', private: true }));
  npm(['install', '--no-audit', '--no-fund', ...specs], dir);
  const modules = join(dir, 'node_modules');
  const lock = JSON.parse(readFileSync(join(modules, '.package-lock.json'), 'utf8')) as { packages: Record<string, unknown> };
  return { kb: du(modules), apparentKb: du(modules, '--apparent-size'), packages: Object.keys(lock.packages).length };
}

/** Pack `root`, install three apps (cdk8s only; + the library; + the library and the reconciler's peers). */
export function footprintBench(root: string = ROOT): FootprintResult | string {
  const unavailable = registryUnavailable();
  if (unavailable) return unavailable;
  return withTempDir((dir) => {
    const sub = (name: string) => {
      const d = join(dir, name);
      mkdirSync(d);
      return d;
    };
    const tarball = pack(root, sub('pack'));
    const app = installApp(sub('app'), APP_DEPS);
    const withLibrary = installApp(sub('lib'), [...APP_DEPS, tarball.file]);
    const withPeers = installApp(sub('peers'), [...APP_DEPS, tarball.file, ...RECONCILER_PEERS]);
    return { tarball, app, withLibrary, withPeers };
  });
}

/** The report lines for the footprint result. */
export function footprintReport(r: FootprintResult): string[] {
  const mb = (kb: number) => `${(kb / 1024).toFixed(1)} MB`;
  const added = (a: Installed, b: Installed) =>
    `${mb(b.kb - a.kb)} (apparent ${mb(b.apparentKb - a.apparentKb)}), ${b.packages - a.packages} packages`;
  const libMb = (r.withLibrary.kb - r.app.kb) / 1024;
  return [
    `packed library: ${r.tarball.sizeKb.toFixed(0)} kB, ${r.tarball.unpackedKb.toFixed(0)} kB unpacked, ${r.tarball.files} files`,
    `app with ${APP_DEPS.join(' ')}: ${mb(r.app.kb)}, ${r.app.packages} packages`,
    `+ the library adds:                  ${added(r.app, r.withLibrary)}  (${verdict(libMb < 25)}: under 25 MB)`,
    `+ the reconciler's peers add on top: ${added(r.withLibrary, r.withPeers)}  (${RECONCILER_PEERS.join(' ')})`,
  ];
}

if (require.main === module) {
  const result = footprintBench(process.argv[2] ?? ROOT);
  const lines = typeof result === 'string' ? [`skipped: ${result}`] : footprintReport(result);
  process.stdout.write(lines.join('\n') + '\n');
}
