# The reconciler image (the Job and CronJob run it): docker build -t kvstore-reconciler:dev .
# The reconciler synthesizes with the same construct code, so the runtime keeps cdk8s and
# constructs, and it needs @kubernetes/client-node, etcd3 and cockatiel: all peer dependencies of
# the library (the last three optional), present here because `npm ci` installs the dev dependencies,
# which pin them. An `--omit=dev` install would leave them out.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY . .
RUN npx projen compile

FROM gcr.io/distroless/nodejs20-debian12:nonroot
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/build/lib ./build/lib
COPY --from=build /app/build/apps ./build/apps
USER 65532:65532
ENTRYPOINT ["/nodejs/bin/node", "build/apps/reconcile.js"]
