// The project definition: package.json, tsconfig*.json and the jest config are generated from here.
// Change this file and run `npx projen`; never edit the generated files by hand.
import { javascript, typescript } from 'projen';

/** What the reconciler entry (`cdk8s-kvstore/reconciler`) needs at run time beyond the construct entry. */
const RECONCILER_PEERS = ['@kubernetes/client-node@^1.4.0', 'etcd3@^1.1.2', 'cockatiel@^3.1.1'];

const project = new typescript.TypeScriptProject({
  name: 'cdk8s-kvstore',
  description: 'A cdk8s construct library for replicated key-value stores (etcd by default) on Kubernetes',
  defaultReleaseBranch: 'main',
  projenrcTs: true,
  packageManager: javascript.NodePackageManager.NPM,
  projenVersion: '0.103.25',
  typescriptVersion: '~5.9',
  // require(esm) of @kubernetes/client-node 1.x (the reconciler) needs 20.19.
  minNodeVersion: '20.19.0',
  license: 'Apache-2.0',
  authorName: 'cdk8s-kvstore developers',
  authorOrganization: true,
  keywords: ['cdk8s', 'kubernetes', 'etcd', 'statefulset', 'key-value'],
  // Where the package comes from (npm shows these; `npm publish --provenance` checks repository against
  // the workflow's repository).
  repository: 'https://github.com/cdk8s-kvstore/cdk8s-kvstore.git',
  homepage: 'https://github.com/cdk8s-kvstore/cdk8s-kvstore#readme',
  bugsUrl: 'https://github.com/cdk8s-kvstore/cdk8s-kvstore/issues',

  // Layout: library source in lib/, compiled output in build/ (build/lib is what we publish).
  srcdir: 'lib',
  libdir: 'build/lib',
  testdir: 'test',
  entrypoint: 'build/lib/index.js',
  entrypointTypes: 'build/lib/index.d.ts',
  sampleCode: false,

  // The construct entry needs nothing but cdk8s: no runtime dependencies. The reconciler entry's runtime
  // (Kubernetes client, etcd client, retries) are optional peers: installed by the reconciler image and
  // by whoever runs kvstore-reconcile, never by an app that only synthesizes.
  deps: [],
  // No cdk8s-plus: the library writes plain ApiObjects (lib/constructs/kube.ts), so an app may use any
  // cdk8s-plus version, or none.
  peerDeps: [
    'cdk8s@^2.70.106', 'constructs@^10.8.1',
    ...RECONCILER_PEERS,
  ],
  peerDependencyOptions: { pinnedDevDependency: false },
  devDeps: [
    ...RECONCILER_PEERS,
    // Build time only: the spec validator is compiled ahead (scripts/spec-validator.ts); yaml is for tests.
    'ajv@^8.17.1',
    'yaml@^2.8.0',
    'typedoc@^0.28.9',
    'typedoc-plugin-markdown@^4.14.1',
    'cdk8s@2.70.106',
    'cdk8s-plus-28@2.5.6',
    'constructs@10.8.1',
    'cdk8s-cli@2.207.60',
    '@types/node@^20',
    'ts-node@10.9.2',
    'kubernetes-models@4.5.1',
    // cert-manager's Certificate and Issuer types and schemas (4.4.4: the last CommonJS release, for Node 20).
    '@kubernetes-models/cert-manager@4.4.4',
    // prometheus-operator's PodMonitor, ServiceMonitor and PrometheusRule types and schemas (4.4.4, as above).
    '@kubernetes-models/prometheus-operator@4.4.4',
    'babel-jest@^30',
    '@babel/core@^7',
    '@babel/plugin-transform-modules-commonjs@^7',
  ],

  // No hosted CI, release automation or linters generated: CI is .ci/run.
  github: false,
  release: false,
  buildWorkflow: false,
  depsUpgrade: false,
  pullRequestTemplate: false,
  eslint: false,
  prettier: false,
  vscode: false,
  package: false,

  jest: true,
  jestOptions: {
    jestVersion: '^30',
    passWithNoTests: false,
    updateSnapshot: javascript.UpdateSnapshot.NEVER,
    coverageText: false,
    junitReporting: false,
    jestConfig: {
      testMatch: ['<rootDir>/test/**/*.test.ts'],
      // @kubernetes/client-node 1.x and its auth dependencies are ESM-only: babel turns them into
      // CommonJS for jest (Node itself loads them with require(esm)).
      transformIgnorePatterns: ['/node_modules/(?!(@kubernetes/client-node|openid-client|jose|oauth4webapi)/)'],
      testTimeout: 120_000,
      collectCoverage: false,
    },
  },
  tsJestOptions: {
    transformOptions: { isolatedModules: false },
  },
  tsconfig: {
    compilerOptions: {
      rootDir: '.',
      outDir: 'build',
      // Source maps beside the code, not inside it: an inline map (with its sources) triples what
      // every require() of the library has to parse.
      inlineSourceMap: false,
      sourceMap: true,
      inlineSources: true,
      // Internal members stay in the declarations: stripping them would let a consumer construct an
      // UpdateStrategy or an IEngine the library cannot use. typedoc hides them from API.md.
      stripInternal: false,
      lib: ['es2022'],
      target: 'ES2022',
      esModuleInterop: true,
      skipLibCheck: true,
    },
  },
  tsconfigDev: {
    compilerOptions: {
      lib: ['es2022'],
      target: 'ES2022',
      esModuleInterop: true,
      skipLibCheck: true,
    },
  },
});

// The compiled example app is what `cdk8s synth` runs (no type-checking per synth).
project.tsconfig?.addInclude('apps/**/*.ts');
project.tsconfigDev.addInclude('apps/**/*.ts');
project.tsconfig?.addInclude('bench/**/*.ts');
project.tsconfigDev.addInclude('bench/**/*.ts');

// Tasks find the local binaries without projen asking npx for its PATH at every task (~0.8 s each).
project.tasks.addEnvironment('PATH', '$(node -p "require(\'path\').resolve(\'node_modules/.bin\') + require(\'path\').delimiter + process.env.PATH")');

// jest 30 pulls unrs-resolver; a lockfile made here only installs with this version.
project.package.addField('overrides', { 'unrs-resolver': '1.12.2' });
// The release this checkout builds: also part of the reconciler Job's name and the ApplySet tooling
// annotation, so a new release re-runs the reconciler. CHANGELOG.md says what changed.
project.package.addVersion('0.1.0');
project.package.addField('files', [
  'build/lib/**/*.js', 'build/lib/**/*.js.map', 'build/lib/**/*.d.ts', 'build/apps/reconcile.js',
  'crd/kvstore.yaml', 'README.md', 'API.md', 'ARCHITECTURE.md', 'CHANGELOG.md', 'LICENSE',
]);
// Packing an unbuilt checkout would ship no code: npm pack and npm publish build first.
project.addTask('prepack', { description: 'Build before packing', steps: [{ exec: 'tsc --build' }] });
project.package.addField('peerDependenciesMeta', Object.fromEntries(RECONCILER_PEERS.map((p) => [p.slice(0, p.lastIndexOf('@')), { optional: true }])));
// Two entries: the construct entry (main) and the reconciler's; nothing else is importable.
// Resolvers that ignore `exports` (TypeScript's moduleResolution node10, which `cdk8s init` apps use)
// find the reconciler entry's types here.
project.package.addField('typesVersions', { '*': { reconciler: ['build/lib/reconciler/index.d.ts'] } });
project.package.addField('exports', {
  '.': { types: './build/lib/index.d.ts', default: './build/lib/index.js' },
  './reconciler': { types: './build/lib/reconciler/index.d.ts', default: './build/lib/reconciler/index.js' },
  './package.json': './package.json',
});
project.addBins({ 'kvstore-reconcile': 'build/apps/reconcile.js' });

project.gitignore.exclude('/dist/', '/build/', '/bench/out/');

// The README's main command. Runs the compiled app directly (what `cdk8s synth` would run, without
// loading the CLI) after an up-to-date check of the build: the no-change case costs well under 2 s.
// The store lock where `cdk8s synth` keeps it (beside cdk8s.yaml): the CLI turns it on, this task by name.
project.addTask('synth', {
  description: 'Compile and synthesize the example app into dist/',
  env: { KVSTORE_LOCK_FILE: 'kvstore.lock.json' },
  steps: [{ exec: 'tsc --build' }, { exec: 'rm -rf dist' }, { exec: 'node build/apps/main.js' }],
});
project.addTask('examples', {
  description: 'Regenerate the committed example output (examples/gitops/, examples/operator/)',
  steps: [{ exec: 'tsc --build' }, { exec: 'node build/apps/gitops.js' }, { exec: 'node build/apps/operator.js' }],
});
project.addTask('codegen', {
  description: 'Regenerate the compiled spec validator, crd/kvstore.yaml and the KVStore resource class from lib/model and lib/constructs',
  steps: [
    { exec: 'ts-node --transpile-only scripts/spec-validator.ts' },
    { exec: 'ts-node --transpile-only scripts/crd.ts' },
    // `cdk8s import crd/kvstore.yaml`, written into lib/ so the typed class is compiled and shipped
    // (exported as KVStoreResource).
    { exec: 'ts-node --transpile-only scripts/kvstore-resource.ts' },
  ],
});
project.gitattributes.addAttributes('/crd/kvstore.yaml', 'linguist-generated');
project.gitattributes.addAttributes('/lib/constructs/kv-store-resource.generated.ts', 'linguist-generated');
project.gitattributes.addAttributes('/lib/model/spec-validator.generated.ts', 'linguist-generated');
project.gitattributes.addAttributes('/API.md', 'linguist-generated');
project.addTask('docs', {
  description: 'Regenerate API.md (typedoc) and the README props table from the doc comments and lib/model/fields.ts',
  steps: [
    { exec: 'typedoc' },
    { exec: 'ts-node --transpile-only scripts/api-md.ts' },
    { exec: 'ts-node --transpile-only scripts/readme-props.ts' },
  ],
});
project.addTask('bench', {
  description: 'Run the benchmarks (speed and memory targets)',
  steps: [{ spawn: 'compile' }, { exec: 'node build/bench/run.js' }],
});

project.tryFindObjectFile('package.json')?.addOverride('jest.transform', {
  '^.+\\.[t]sx?$': ['ts-jest', { tsconfig: 'test/tsconfig.json', isolatedModules: false }],
  '^.+\\.m?js$': ['babel-jest', { plugins: ['@babel/plugin-transform-modules-commonjs'] }],
});

// Only test/**/*.test.ts are tests (projen's default pattern would also match lib/model/spec.ts).
project.tryFindObjectFile('package.json')?.addOverride('jest.testMatch', ['<rootDir>/test/**/*.test.ts']);

project.synth();
