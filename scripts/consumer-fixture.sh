#!/usr/bin/env bash
# Consumer fixture: the library as an app author gets it. Packs it (`npm pack`; prepack builds), then
# makes two apps from cdk8s-cli's `typescript-app` template, one with the template's cdk8s-plus-33 and
# one without any cdk8s-plus, installs the tarball into each from the npm registry and
#   - type-checks every ```ts block of README.md, pasted alone as a file, plus the app's main.ts, under
#     the template's tsconfig (strict, noUnusedLocals, no skipLibCheck: our .d.ts files must pass too);
#   - runs the app as the template's cdk8s.yaml says (`npx ts-node main.ts`) and checks the manifests.
# `cdk8s init typescript-app` itself cannot run here: its post-init hook runs `cdk8s import k8s`, which
# downloads the Kubernetes schema from the internet. So the template's files are copied instead and
# its package.json is rendered with the versions `cdk8s init` would pick (those cdk8s-cli resolves),
# keeping the dependencies and the typescript/@types/node/ts-node devDependencies (not cdk8s-cli or
# jest: the app is run directly and has no tests). Reaches the npm registry. Run from anywhere;
# KEEP_FIXTURE=1 keeps the temp dir. Failing README blocks are reported by README line.
set -euo pipefail
cd "$(dirname "$0")/.."
export ROOT="$PWD"
TEMPLATE="$ROOT/node_modules/cdk8s-cli/templates/typescript-app"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/kvstore-consumer.XXXXXX")"
trap '[ "${KEEP_FIXTURE:-}" = 1 ] && echo "kept $TMP" || rm -rf "$TMP"' EXIT
failed=()
step() { echo "[consumer-fixture ${SECONDS}s] $*"; }

step "npm pack"
npm pack --pack-destination "$TMP" >"$TMP/pack.log" 2>&1 || { cat "$TMP/pack.log"; exit 1; }
tarball="$(ls "$TMP"/cdk8s-kvstore-*.tgz)"

# The fixture app: a namespaced chart with a store, a GitOps-mode store and (lines marked
# `// cdk8s-plus`, dropped in the app without it) a cdk8s-plus-33 client Deployment.
MAIN_TS="$(cat <<'EOF'
import { App, Chart } from 'cdk8s';
import * as kplus from 'cdk8s-plus-33'; // cdk8s-plus
import { KVStore } from 'cdk8s-kvstore';

const app = new App();
const chart = new Chart(app, 'prod', { namespace: 'shop' });
const cache = new KVStore(chart, 'cache', { size: 3, storageSize: '10Gi' });
new KVStore(chart, 'orders', { size: 3, reconciler: {} });
console.log(`cache at ${cache.clientHost}:${cache.clientPort} for pods labelled ${JSON.stringify(cache.clientPodLabels)}`);
const api = new kplus.Deployment(chart, 'api', { // cdk8s-plus
  containers: [{ image: 'registry.example.com/api:1', portNumber: 8080, envVariables: { // cdk8s-plus
    KV_ENDPOINT: kplus.EnvValue.fromValue(`http://${cache.clientHost}:${cache.clientPort}`) } }], // cdk8s-plus
}); // cdk8s-plus
for (const [key, value] of Object.entries(cache.clientPodLabels)) api.podMetadata.addLabel(key, value); // cdk8s-plus
app.synth();
EOF
)"

# make_app NAME WITH_PLUS: a template app in $TMP/NAME with the tarball installed.
make_app() {
  local dir="$TMP/$1"
  mkdir "$dir"
  cp "$TEMPLATE/tsconfig.json" "$TEMPLATE/cdk8s.yaml" "$dir/"
  local deps
  deps="$(node - "$TEMPLATE/package.json" "$1" "$2" "$dir/package.json" <<'EOF'
const [tpl, name, plus, out] = process.argv.slice(2);
const cli = require.resolve('cdk8s-cli/package.json', { paths: [process.env.ROOT] });
const version = (m) => require(require.resolve(`${m}/package.json`, { paths: [require('path').dirname(cli)] })).version;
const vars = { $base: name, cdk8s_core_version: version('cdk8s'), cdk8s_plus_version: version('cdk8s-plus-33'),
  constructs_version: require(cli).dependencies.constructs.replace('^', '') };
const pkg = JSON.parse(require('fs').readFileSync(tpl, 'utf8').replace(/{{ (\S+) }}/g, (_, v) => vars[v] ?? ''));
for (const dep of Object.keys(pkg.dependencies)) if (plus !== 'plus' && dep.startsWith('cdk8s-plus-')) delete pkg.dependencies[dep];
for (const dep of Object.keys(pkg.devDependencies)) if (!['typescript', '@types/node', 'ts-node'].includes(dep)) delete pkg.devDependencies[dep];
require('fs').writeFileSync(out, `${JSON.stringify(pkg, null, 2)}\n`);
console.log(Object.entries({ ...pkg.dependencies, ...pkg.devDependencies }).map(([n, v]) => `${n}@${v}`).join(' '));
EOF
)"
  if [ "$2" = plus ]; then echo "$MAIN_TS"; else grep -v '// cdk8s-plus' <<<"$MAIN_TS"; fi >"$dir/main.ts"
  step "$1: npm install $deps $(basename "$tarball")"
  (cd "$dir" && npm install --no-audit --no-fund "$tarball" >"$dir/install.log" 2>&1) || { cat "$dir/install.log"; exit 1; }
  if [ "$2" != plus ] && ls "$dir/node_modules" | grep -q '^cdk8s-plus-'; then failed+=("$1: has a cdk8s-plus"); fi
}

# check_app NAME: type-checks the README blocks and main.ts, then synthesizes.
check_app() {
  local dir="$TMP/$1"
  node "$ROOT/scripts/readme-snippets.js" extract README.md "$dir"
  step "$1: tsc --noEmit -p . ($(cd "$dir" && npx tsc --version))"
  local tsc_status=0
  (cd "$dir" && npx tsc --noEmit -p . >"$dir/tsc.log" 2>&1) || tsc_status=$?
  if ! node "$ROOT/scripts/readme-snippets.js" report README.md "$dir" <"$dir/tsc.log"; then
    failed+=("$1: README TypeScript blocks")
  fi
  if grep -v '^snippet-' "$dir/tsc.log" | grep -q 'error TS'; then
    failed+=("$1: tsc errors outside the README blocks (main.ts or the package's .d.ts files, above)")
  elif [ "$tsc_status" -ne 0 ] && ! grep -q '^snippet-' "$dir/tsc.log"; then
    failed+=("$1: tsc failed (exit $tsc_status)")
  fi
  local synth
  synth="$(sed -n 's/^app: *//p' "$dir/cdk8s.yaml")"
  step "$1: synth ($synth)"
  if ! (cd "$dir" && $synth >"$dir/synth.log" 2>&1); then
    cat "$dir/synth.log"; failed+=("$1: synth"); return
  fi
  local kinds
  kinds="$(cat "$dir"/dist/*.yaml | sed -n 's/^kind: //p' | sort | uniq -c | tr -s ' \n' ' ')"
  echo "$1: dist/ has$kinds"
  for kind in StatefulSet Service PodDisruptionBudget NetworkPolicy ConfigMap Job; do
    grep -q "^kind: $kind$" "$dir"/dist/*.yaml || failed+=("$1: no $kind in dist/")
  done
}

# run_snippets NAME: every README block, compiled once, runs to the end (app.synth() included):
# compiling is not enough, a block could still be refused at synth time.
run_snippets() {
  local dir="$TMP/$1"
  step "$1: run the README blocks"
  (cd "$dir" && npx tsc -p . --outDir out >/dev/null 2>&1) || { failed+=("$1: compiling the README blocks to run them"); return; }
  for js in "$dir"/out/snippet-*.js; do
    local run="$dir/run-$(basename "$js" .js)"
    mkdir "$run"
    if ! (cd "$run" && node "$js" >"$run/log" 2>&1); then
      local line
      line="$(node -e "const m=require('$dir/snippets.json'); console.log(m['$(basename "$js" .js).ts'] ?? '?')")"
      echo "FAIL README.md:$line: the block does not run: $(grep -m1 -E 'Error|error' "$run/log")"
      failed+=("$1: README block at line $line does not run")
    fi
  done
}

make_app app-plus plus
make_app app-no-plus none
check_app app-plus
check_app app-no-plus
run_snippets app-no-plus

step "done"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'consumer fixture FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "consumer fixture: OK"
