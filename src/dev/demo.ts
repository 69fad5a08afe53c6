import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';

/**
 * The demo that `lifeboat dev` sets up once and reuses on every later start: a small SQLite shop
 * database that keeps changing, an encryption key, S3 credentials for the embedded S3 server, and a
 * config that backs the database up to a local repository and to S3, with the schedules an
 * installation would have (nightly backup, daily verify, weekly drill), in this machine's time zone.
 */
export interface DemoFiles {
  dir: string;
  configPath: string;
  databasePath: string;
  credentialsFile: string;
  env: Record<string, string>;
}

export const demoBucket = 'lifeboat-demo';
/** Where the demo config finds the S3 credentials; the values are in <dir>/s3-credentials.env. */
export const demoCredentialEnv = { accessKeyId: 'LIFEBOAT_DEMO_S3_ACCESS_KEY_ID', secretAccessKey: 'LIFEBOAT_DEMO_S3_SECRET_ACCESS_KEY' } as const;
const accessKeyEnv = demoCredentialEnv.accessKeyId;
const secretKeyEnv = demoCredentialEnv.secretAccessKey;

/** Credentials of the embedded S3 server: made once, kept in a 0600 file, never in the config. */
async function demoCredentials(file: string): Promise<Record<string, string>> {
  if (!existsSync(file)) {
    const lines = [`${accessKeyEnv}=lifeboat${randomBytes(6).toString('hex')}`, `${secretKeyEnv}=${randomBytes(24).toString('base64url')}`];
    await writeFile(file, `${lines.join('\n')}\n`, { mode: 0o600 });
  }
  const env: Record<string, string> = {};
  for (const line of (await readFile(file, 'utf8')).split('\n')) {
    const match = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (match) env[match[1]!] = match[2]!;
  }
  return env;
}

function createDemoDatabase(path: string): void {
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.exec(`
      CREATE TABLE IF NOT EXISTS customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE);
      CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
        placed_at TEXT NOT NULL, total_cents INTEGER NOT NULL);
    `);
    const addCustomer = db.prepare('INSERT OR IGNORE INTO customers (id, name, email) VALUES (?, ?, ?)');
    const addOrder = db.prepare('INSERT INTO orders (customer_id, placed_at, total_cents) VALUES (?, ?, ?)');
    db.transaction(() => {
      for (let id = 1; id <= 500; id++) addCustomer.run(id, `Customer ${id}`, `customer${id}@example.test`);
      for (let n = 0; n < 5000; n++) addOrder.run(1 + (n % 500), new Date(Date.UTC(2026, 0, 1) + n * 60_000).toISOString(), 100 + ((n * 7919) % 50_000));
    })();
  } finally {
    db.close();
  }
}

/**
 * Writes (or reuses) the demo under dir. The S3 repository uses the bucket `lifeboat dev` creates;
 * the README's tour test points it at the test stack's bucket and a prefix of its own instead.
 */
export async function prepareDemo(dir: string, s3Endpoint: string, s3: { bucket?: string; prefix?: string } = {}): Promise<DemoFiles> {
  await mkdir(dir, { recursive: true });
  const files = {
    dir,
    configPath: join(dir, 'lifeboat.config.yaml'),
    databasePath: join(dir, 'demo.sqlite'),
    credentialsFile: join(dir, 's3-credentials.env'),
  };
  const env = await demoCredentials(files.credentialsFile);
  if (!existsSync(files.databasePath)) createDemoDatabase(files.databasePath);
  const timezone = localTimezone();
  const keyFile = join(dir, 'demo.key');
  if (!existsSync(keyFile)) await writeFile(keyFile, randomBytes(32), { mode: 0o600 });
  const config = {
    repositories: {
      local: { type: 'fs', path: join(dir, 'repository') },
      s3: { type: 's3', endpoint: s3Endpoint, bucket: s3.bucket ?? demoBucket, prefix: s3.prefix ?? 'lifeboat/', accessKeyIdEnv: accessKeyEnv, secretAccessKeyEnv: secretKeyEnv },
    },
    targets: {
      demo: {
        type: 'sqlite',
        path: files.databasePath,
        repositories: ['local', 's3'],
        drill: {
          rtoTargetSeconds: 60,
          rpoTargetSeconds: 86_400,
          smokeChecks: [
            { name: 'orders are readable', sql: 'SELECT count(*) > 0 FROM orders', expect: 1 },
            { name: 'every order has its customer', sql: 'SELECT count(*) FROM orders LEFT JOIN customers c ON c.id = customer_id WHERE c.id IS NULL', expect: 0 },
          ],
        },
        schedules: {
          'nightly-backup': { runbook: 'backup', cron: '0 2 * * *', timezone, jitter: '10m' },
          // Each stored object is read back and hashed once a week, a seventh of them each day.
          'daily-verify': { runbook: 'verify', cron: '0 5 * * *', timezone, jitter: '10m', readData: '1/7' },
          'weekly-drill': { runbook: 'drill', cron: '0 4 * * SUN', timezone },
        },
      },
    },
    encryption: { keyFile },
  };
  // The endpoint can change between starts (another port), so the config is rewritten each time.
  await writeFile(files.configPath, `# Written by \`lifeboat dev\`; edit freely, it is rewritten on the next start.\n${stringify(config)}`);
  return { ...files, env };
}

/** This machine's IANA time zone (what a developer reads the schedules in), UTC when it has none. */
function localTimezone(): string {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  return zone && zone !== 'Etc/Unknown' ? zone : 'UTC';
}

/** A little write traffic, so each demo backup differs from the last. */
export function touchDemoDatabase(path: string): void {
  const db = new Database(path);
  try {
    db.prepare('INSERT INTO orders (customer_id, placed_at, total_cents) VALUES (?, ?, ?)').run(1 + Math.floor(Math.random() * 500), new Date().toISOString(), 4200);
  } finally {
    db.close();
  }
}
