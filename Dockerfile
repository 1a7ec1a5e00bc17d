# The reconciler image (the GitOps Job, the CRD-mode CronJob and the backup pruner run it).
#   docker build -t registry.example.com/kvstore-reconciler:0.1.0 .   (tag with the package version)
# Base images are pinned by digest; bump them deliberately (the tag is beside each digest).
ARG NODE_IMAGE=node:20-bookworm-slim@sha256:2cf067cfed83d5ea958367df9f966191a942351a2df77d6f0193e162b5febfc0
ARG RUNTIME_IMAGE=gcr.io/distroless/nodejs20-debian12:nonroot@sha256:2cd820156cf039c8b54ae2d2a97e424b6729070714de8707a6b79f20d56f6a9a

# Build and pack the library exactly as npm publishes it (prepack builds).
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY . .
RUN npm pack --pack-destination /dist && node scripts/reconciler-deps.js > /dist/deps.txt

# Production dependencies only: the packed library, cdk8s and constructs (the reconciler renders
# with the construct code) and the reconciler's optional peers, at the versions the lockfile tested.
FROM ${NODE_IMAGE} AS install
WORKDIR /app
COPY --from=build /dist /dist
RUN echo '{"name":"kvstore-reconciler-image","private":true}' > package.json \
 && npm install --omit=dev --ignore-scripts --no-audit --no-fund /dist/cdk8s-kvstore-*.tgz $(cat /dist/deps.txt)

FROM ${RUNTIME_IMAGE}
WORKDIR /app
COPY --from=install /app/node_modules ./node_modules
USER 65532:65532
ENTRYPOINT ["/nodejs/bin/node", "node_modules/cdk8s-kvstore/build/apps/reconcile.js"]
