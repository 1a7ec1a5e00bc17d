// The GitHub workflows (.github/workflows/) cannot run here: this checks what in them can go stale against
// the files they depend on: the README's test command, the default reconciler image, the Node version.
import { existsSync, readFileSync } from 'fs';
import { join, relative } from 'path';
import { parseDocument } from 'yaml';
import { DEFAULT_RECONCILER_IMAGE } from '../lib/model/version';

const ROOT = join(__dirname, '..');
const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');

interface Step { readonly name?: string; readonly id?: string; readonly uses?: string; readonly run?: string; readonly with?: Record<string, unknown>; readonly env?: Record<string, unknown> }
interface Job { readonly needs?: string | string[]; readonly permissions?: Record<string, string>; readonly outputs?: Record<string, string>; readonly steps: Step[] }
interface Workflow { readonly on: Record<string, unknown>; readonly permissions?: Record<string, string>; readonly jobs: Record<string, Job> }

/** A workflow file, parsed strictly (duplicate keys are errors). */
const parse = (file: string) => parseDocument(read(file), { strict: true, uniqueKeys: true, prettyErrors: true });

const TEST = '.github/workflows/test.yml';
const RELEASE = '.github/workflows/release.yml';
const testWorkflow = parse(TEST).toJS() as Workflow;
const release = parse(RELEASE).toJS() as Workflow;

/** The README's test command: the second sh block of "Set-up on a fresh machine". */
function readmeTestCommand(): string {
  const readme = read('README.md');
  const start = readme.indexOf('\n## Set-up on a fresh machine\n');
  expect(start).toBeGreaterThanOrEqual(0);
  const end = readme.indexOf('\n## ', start + 1);
  const blocks = [...readme.slice(start, end < 0 ? undefined : end).matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1].trim());
  expect(blocks.length).toBeGreaterThanOrEqual(2);
  return blocks[1];
}

/** How the workflows run a command as root with the job's PATH (the setup-node Node): the real-etcd tests need root. */
const AS_ROOT = 'sudo -E env "PATH=$PATH" ';

/** The step of `job` that runs the tests: the one whose run ends with `npm test`. */
function testStep(job: Job): Step {
  const steps = job.steps.filter((s) => /\bnpm test$/.test(s.run?.trim() ?? ''));
  expect(steps).toHaveLength(1);
  return steps[0];
}

/** The test job runs the README's test command, npm test as root, under CI=true, after installing etcd. */
function expectReadmeTests(file: string, job: Job): void {
  const step = testStep(job);
  const run = step.run!.trim();
  expect({ file, command: run.split(AS_ROOT).join('') }).toEqual({ file, command: readmeTestCommand() });
  expect({ file, asRoot: run.endsWith(`${AS_ROOT}npm test`) }).toEqual({ file, asRoot: true });
  expect({ file, CI: step.env?.CI }).toEqual({ file, CI: 'true' });
  const etcd = job.steps.findIndex((s) => /apt-get install -y etcd-server etcd-client\b/.test(s.run ?? ''));
  expect({ file, etcdInstalledBeforeTests: etcd >= 0 && etcd < job.steps.indexOf(step) }).toEqual({ file, etcdInstalledBeforeTests: true });
}

const stepUsing = (job: Job, action: string) => job.steps.filter((s) => s.uses?.split('@')[0] === action);

test('both workflows are YAML without errors or warnings', () => {
  for (const file of [TEST, RELEASE]) {
    const doc = parse(file);
    expect({ file, errors: doc.errors.map(String), warnings: doc.warnings.map(String) }).toEqual({ file, errors: [], warnings: [] });
  }
});

describe('test.yml', () => {
  test('runs on push and pull_request', () => {
    expect(Object.keys(testWorkflow.on).sort()).toEqual(['pull_request', 'push']);
  });

  test("the test job runs the README's test command with real etcd, as root, under CI=true", () => {
    expectReadmeTests(TEST, testWorkflow.jobs.test);
  });

  test('the e2e-kind job runs test/e2e/kind.sh with kind installed, after building the library', () => {
    const job = testWorkflow.jobs['e2e-kind'];
    expect(existsSync(join(ROOT, 'test/e2e/kind.sh'))).toBe(true);
    const e2e = job.steps.findIndex((s) => s.run?.trim() === 'bash test/e2e/kind.sh');
    const kind = job.steps.findIndex((s) => s.uses?.startsWith('helm/kind-action@'));
    const build = job.steps.findIndex((s) => /\bprojen compile\b|\btsc --build\b/.test(s.run ?? ''));
    expect({ e2e: e2e >= 0, kindFirst: kind >= 0 && kind < e2e, buildFirst: build >= 0 && build < e2e }).toEqual({ e2e: true, kindFirst: true, buildFirst: true });
  });
});

describe('release.yml', () => {
  const jobs = release.jobs;

  test('runs on pushed v* tags only, and checks the tag against package.json', () => {
    expect(release.on).toEqual({ push: { tags: ['v*'] } });
    const check = jobs.test.steps.find((s) => s.run?.includes('"v$version"'));
    expect(check?.run).toContain('version=$(node -p "require(\'./package.json\').version")');
    expect(check?.run).toContain('"$GITHUB_REF_NAME" != "v$version"');
  });

  test("tests with the README's test command before anything is published", () => {
    expectReadmeTests(RELEASE, jobs.test);
    expect([jobs.image.needs].flat()).toContain('test');
    expect([jobs.npm.needs].flat()).toEqual(expect.arrayContaining(['test', 'image']));
  });

  test('tags the reconciler image with DEFAULT_RECONCILER_IMAGE, read from the compiled lib/model/version.ts', () => {
    const job = jobs.image;
    const [build] = stepUsing(job, 'docker/build-push-action');
    expect(build.with?.push).toBe(true);
    expect(build.with?.context).toBe('.');
    const ref = /^\$\{\{ steps\.([\w-]+)\.outputs\.([\w-]+) \}\}$/.exec(String(build.with?.tags));
    expect(ref).not.toBeNull();
    const source = job.steps.find((s) => s.id === ref![1]);
    // Where tsc puts lib/model/version.ts (tsconfig.json: outDir, rootDir).
    const { compilerOptions } = JSON.parse(read('tsconfig.json').replace(/^\/\/.*$/gm, '')) as { compilerOptions: { outDir: string; rootDir: string } };
    const compiled = join(compilerOptions.outDir, relative(compilerOptions.rootDir, 'lib/model/version.ts')).replace(/\.ts$/, '.js');
    expect(source?.run).toMatch(/\btsc --build\b/);
    expect(source?.run).toContain(`test -f ${compiled}`);
    expect(source?.run).toContain(`echo "${ref![2]}=$(node -p "require('./${compiled}').DEFAULT_RECONCILER_IMAGE")" >> "$GITHUB_OUTPUT"`);
    expect(read('lib/model/version.ts')).toMatch(/^export const DEFAULT_RECONCILER_IMAGE\b/m);
    // The login is to the registry the image is pushed to, with the job's token and package write access.
    const [login] = stepUsing(job, 'docker/login-action');
    expect(login.with).toEqual({ registry: DEFAULT_RECONCILER_IMAGE.split('/')[0], username: '${{ github.actor }}', password: '${{ secrets.GITHUB_TOKEN }}' });
    expect(job.permissions).toEqual({ contents: 'read', packages: 'write' });
  });

  test('publishes to npm with provenance and NPM_TOKEN', () => {
    const job = jobs.npm;
    const publish = job.steps.filter((s) => s.run?.includes('npm publish'));
    expect(publish.map((s) => [s.run?.trim(), s.env])).toEqual([['npm publish --provenance --access public', { NODE_AUTH_TOKEN: '${{ secrets.NPM_TOKEN }}' }]]);
    expect(stepUsing(job, 'actions/setup-node')[0]?.with?.['registry-url']).toBe('https://registry.npmjs.org');
    expect(job.permissions).toEqual({ 'contents': 'read', 'id-token': 'write' });
  });

  test('publishes only once the image it defaults to can be pulled without credentials, for amd64 and arm64', () => {
    const job = jobs.npm;
    const inspect = job.steps.findIndex((s) => /^docker manifest inspect "\$\{\{ needs\.image\.outputs\.ref \}\}"/.test(s.run?.trim() ?? ''));
    const publish = job.steps.findIndex((s) => s.run?.includes('npm publish'));
    expect({ inspect: inspect >= 0, beforePublish: inspect < publish }).toEqual({ inspect: true, beforePublish: true });
    expect(jobs.image.outputs?.ref).toBe('${{ steps.image.outputs.ref }}');
    expect(stepUsing(jobs.image, 'docker/build-push-action')[0]?.with?.platforms).toBe('linux/amd64,linux/arm64');
    expect(stepUsing(jobs.image, 'docker/setup-qemu-action')).toHaveLength(1);
  });
});

describe('both workflows', () => {
  const all = [[TEST, testWorkflow], [RELEASE, release]] as const;
  const jobs = all.flatMap(([file, w]) => Object.entries(w.jobs).map(([name, job]) => ({ file, name, job })));

  test('grant nothing by default and read-only contents to every job unless it needs more', () => {
    for (const [file, w] of all) expect({ file, permissions: w.permissions }).toEqual({ file, permissions: {} });
    const beyondRead = jobs.filter(({ job }) => JSON.stringify(job.permissions) !== JSON.stringify({ contents: 'read' })).map(({ file, name }) => `${file}:${name}`);
    expect(beyondRead.sort()).toEqual([`${RELEASE}:image`, `${RELEASE}:npm`]);
  });

  test('pin every action by major version tag', () => {
    const uses = jobs.flatMap(({ job }) => job.steps.map((s) => s.uses).filter((u): u is string => u !== undefined));
    expect(uses.length).toBeGreaterThan(0);
    expect(uses.filter((u) => !/^[\w-]+\/[\w-]+@v\d+$/.test(u))).toEqual([]);
  });

  test("set up the Node major of package.json's engines and of the Dockerfile's base images, with the npm cache", () => {
    const engines = (JSON.parse(read('package.json')) as { engines?: { node?: string } }).engines?.node;
    const dockerfile = read('Dockerfile');
    const dockerMajors = [...dockerfile.matchAll(/^ARG (?:NODE|RUNTIME)_IMAGE=\S*?node(?:js)?:?(\d+)/gm)].map((m) => m[1]);
    expect(dockerMajors).toHaveLength(2);
    const majors = new Set([...dockerMajors, ...(engines ? [/\d+/.exec(engines)![0]] : [])]);
    expect(majors.size).toBe(1);
    const [major] = majors;
    for (const { file, name, job } of jobs) {
      const setups = stepUsing(job, 'actions/setup-node').map((s) => ({ node: String(s.with?.['node-version']), cache: s.with?.cache }));
      expect({ file, name, setups }).toEqual({ file, name, setups: [{ node: major, cache: 'npm' }] });
    }
  });
});
