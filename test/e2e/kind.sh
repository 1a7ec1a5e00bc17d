#!/usr/bin/env bash
# End-to-end on a real cluster, for machines with Docker and kind (not run in CI here: no Docker engine).
# GitOps mode: builds the reconciler image, loads it into a kind cluster, applies the synthesized
# bundle for a 3-member etcd store, waits for the Job and the StatefulSet, checks etcd health,
# re-applies the same bundle (the Job name is unchanged, nothing re-runs) and cleans up.
# Usage: test/e2e/kind.sh   (needs docker, kind, kubectl, node 20, npm)
set -euo pipefail
cd "$(dirname "$0")/../.."
CLUSTER=kvstore-e2e
IMAGE=kvstore-reconciler:e2e
NS=kvstore-e2e
OUT=$(mktemp -d)
cleanup() { kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; rm -rf "$OUT"; }
trap cleanup EXIT

kind create cluster --name "$CLUSTER" --wait 120s
docker build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"

npm ci && npx projen compile
cat > "$OUT/app.js" <<JS
const { App, Chart } = require('cdk8s');
const { KVStore } = require('$(pwd)/build/lib');
const app = new App({ outdir: '$OUT' });
const chart = new Chart(app, 'e2e', { namespace: '$NS', disableResourceNameHashes: true });
new KVStore(chart, 'cache', { size: 3, storageSize: '1Gi', reconciler: { image: '$IMAGE' } });
app.synth();
JS
node "$OUT/app.js"

kubectl create namespace "$NS"
kubectl apply -f "$OUT/e2e.k8s.yaml"
JOB=$(kubectl -n "$NS" get jobs -o name | head -1)
kubectl -n "$NS" wait --for=condition=complete "$JOB" --timeout=600s
kubectl -n "$NS" rollout status statefulset/cache --timeout=600s
kubectl -n "$NS" exec cache-0 -- etcdctl --endpoints=http://cache:2379 endpoint health --cluster
kubectl -n "$NS" exec cache-0 -- etcdctl --endpoints=http://cache:2379 put e2e ok
test "$(kubectl -n "$NS" exec cache-1 -- etcdctl --endpoints=http://cache:2379 get e2e --print-value-only)" = ok

# Re-applying the same output changes nothing: same Job name, no new run.
kubectl apply -f "$OUT/e2e.k8s.yaml"
test "$(kubectl -n "$NS" get jobs -o name | wc -l)" -eq 1
echo "e2e: passed"
