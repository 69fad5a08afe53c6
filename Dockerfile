# The Lifeboat worker image used by docker-compose.yml. The worker runs the sources through tsx;
# other commands (wal-push, wal-fetch) run the prebuilt bundle made below (bin/cli-bundle.js).
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends zstd sqlite3 ca-certificates python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --allow-scripts=better-sqlite3
COPY bin ./bin
COPY src ./src
COPY workflows ./workflows
COPY activities ./activities
COPY tsconfig.json ./
COPY scripts/build-cli.mjs ./scripts/
RUN node scripts/build-cli.mjs
ENV LIFEBOAT_CONFIG=/etc/lifeboat/lifeboat.config.yaml
# Two malloc arenas: 50-90 MB lower peak memory (see recommendedWorkerEnv in src/worker.ts).
ENV MALLOC_ARENA_MAX=2
# A small young generation: 30-40 MB lower peak memory (see recommendedWorkerNodeFlags in src/worker.ts).
ENTRYPOINT ["node", "--max-semi-space-size=2", "bin/lifeboat.js"]
CMD ["worker"]
