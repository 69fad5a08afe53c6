import { readFile } from 'node:fs/promises';
import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { LifeboatError } from '../errors.js';

/**
 * A minimal Redis client (RESP2): the handful of commands Lifeboat sends (AUTH, PING, INFO, CONFIG
 * GET, DBSIZE, EXISTS, GET, SELECT) over TCP or TLS. Written here rather than depending on a client
 * library because those few commands are all it needs and the errors must be Lifeboat's own:
 * unreachable server, refused credentials or missing ACL permissions become typed failures that
 * name the server and say what to fix. Replies are binary-safe (bulk strings stay Buffers). The
 * replication stream of a backup is read by `redis-cli --rdb` (src/kinds/redis/backup.ts).
 */

/** How to reach a Redis server; secrets only as references (the env var's name, file paths). */
export interface RedisConnection {
  host: string;
  port: number;
  /** An ACL user (AUTH user password); none: the default user. */
  user?: string | undefined;
  /** The NAME of the environment variable holding the password. */
  passwordEnv?: string | undefined;
  tls?: RedisTls | undefined;
  connectTimeoutSeconds: number;
}

export interface RedisTls {
  caCert?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
  serverName?: string | undefined;
  insecure: boolean;
}

/** A reply: simple string, integer, bulk string (Buffer; null for nil), array, or an error reply. */
export type RedisReply = string | number | Buffer | null | RedisReply[] | RedisErrorReply;

export class RedisErrorReply {
  constructor(readonly message: string) {}
}

/** "host:port", for messages. */
export function describeRedis(connection: Pick<RedisConnection, 'host' | 'port' | 'tls'>): string {
  return `${connection.tls ? 'rediss' : 'redis'}://${connection.host}:${connection.port}`;
}

/** The password from connection.passwordEnv; undefined when none is configured. */
export function redisPassword(connection: RedisConnection, env: NodeJS.ProcessEnv): string | undefined {
  if (!connection.passwordEnv) return undefined;
  const value = env[connection.passwordEnv];
  if (value === undefined || value === '') {
    throw new LifeboatError(
      'CredentialsUnavailable',
      `the environment variable ${connection.passwordEnv} (connection.passwordEnv of the target) is not set in the worker's environment`,
      `Set ${connection.passwordEnv} to the password${connection.user ? ` of ACL user ${connection.user}` : ''} for ${describeRedis(connection)} where the worker runs, and start the run again`,
    );
  }
  return value;
}

function encodeCommand(args: Array<string | Buffer>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = typeof arg === 'string' ? Buffer.from(arg) : arg;
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** Parses one reply at `offset`; undefined when the buffer does not hold all of it yet. */
export function parseReply(buffer: Buffer, offset = 0): { reply: RedisReply; next: number } | undefined {
  const lineEnd = buffer.indexOf('\r\n', offset);
  if (lineEnd === -1) return undefined;
  const type = String.fromCharCode(buffer[offset]!);
  const line = buffer.toString('utf8', offset + 1, lineEnd);
  const afterLine = lineEnd + 2;
  switch (type) {
    case '+':
      return { reply: line, next: afterLine };
    case '-':
      return { reply: new RedisErrorReply(line), next: afterLine };
    case ':':
      return { reply: Number(line), next: afterLine };
    case '$': {
      const length = Number(line);
      if (length < 0) return { reply: null, next: afterLine };
      if (buffer.length < afterLine + length + 2) return undefined;
      return { reply: Buffer.from(buffer.subarray(afterLine, afterLine + length)), next: afterLine + length + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { reply: null, next: afterLine };
      const items: RedisReply[] = [];
      let next = afterLine;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buffer, next);
        if (!item) return undefined;
        items.push(item.reply);
        next = item.next;
      }
      return { reply: items, next };
    }
    default:
      throw new Error(`unexpected reply from Redis: ${JSON.stringify(buffer.toString('utf8', offset, Math.min(buffer.length, offset + 40)))}`);
  }
}

const unreachableCodes = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EAI_AGAIN', 'ECONNRESET', 'EPIPE']);

export class RedisClient {
  private buffered: Buffer = Buffer.alloc(0);
  private readonly waiting: Array<{ resolve(reply: RedisReply): void; reject(error: Error): void }> = [];
  private closedWith: Error | undefined;

  private constructor(
    private readonly socket: Socket,
    readonly connection: RedisConnection,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
      for (;;) {
        const parsed = this.waiting.length > 0 ? parseReply(this.buffered) : undefined;
        if (!parsed) break;
        this.buffered = this.buffered.subarray(parsed.next);
        this.waiting.shift()!.resolve(parsed.reply);
      }
    });
    const fail = (error: Error) => {
      this.closedWith ??= error;
      for (const waiter of this.waiting.splice(0)) waiter.reject(error);
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error(`${describeRedis(connection)} closed the connection`)));
  }

  /**
   * Connects and authenticates (AUTH [user] password when a password is configured), then PINGs.
   * Unreachable server: RedisConnectionFailed; refused credentials: RedisAuthFailed.
   */
  static async connect(connection: RedisConnection, env: NodeJS.ProcessEnv): Promise<RedisClient> {
    const password = redisPassword(connection, env);
    const where = describeRedis(connection);
    const timeoutMs = connection.connectTimeoutSeconds * 1000;
    let socket: Socket;
    try {
      socket = await new Promise<Socket>((resolve, reject) => {
        const onError = (error: Error) => reject(error);
        let opened: Socket;
        if (connection.tls) {
          const tls = connection.tls;
          void Promise.all([tls.caCert ? readFile(tls.caCert) : undefined, tls.cert ? readFile(tls.cert) : undefined, tls.key ? readFile(tls.key) : undefined]).then(
            ([ca, cert, key]) => {
              opened = connectTls({
                host: connection.host,
                port: connection.port,
                servername: tls.serverName ?? connection.host,
                rejectUnauthorized: !tls.insecure,
                ...(ca ? { ca } : {}),
                ...(cert ? { cert } : {}),
                ...(key ? { key } : {}),
              });
              opened.setTimeout(timeoutMs, () => opened.destroy(Object.assign(new Error(`no answer within ${connection.connectTimeoutSeconds}s`), { code: 'ETIMEDOUT' })));
              opened.once('secureConnect', () => resolve(opened));
              opened.once('error', onError);
            },
            reject,
          );
        } else {
          opened = connectTcp({ host: connection.host, port: connection.port });
          opened.setTimeout(timeoutMs, () => opened.destroy(Object.assign(new Error(`no answer within ${connection.connectTimeoutSeconds}s`), { code: 'ETIMEDOUT' })));
          opened.once('connect', () => resolve(opened));
          opened.once('error', onError);
        }
      });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'EACCES') {
        throw new LifeboatError('InvalidConfig', `cannot read a TLS file of ${where}: ${(error as Error).message}`, 'Check connection.tls of the target');
      }
      throw new LifeboatError(
        'RedisConnectionFailed',
        `cannot reach Redis at ${where} (${(error as Error).message})`,
        'Check connection.host and connection.port (and connection.tls) of the target, and that the server is running and accepts connections from the worker',
        { cause: error },
      );
    }
    socket.setTimeout(0);
    socket.removeAllListeners('error');
    const client = new RedisClient(socket, connection);
    try {
      if (password !== undefined) {
        const auth = await client.call(connection.user ? ['AUTH', connection.user, password] : ['AUTH', password]);
        if (auth instanceof RedisErrorReply) throw authFailure(connection, auth.message);
      }
      const pong = await client.call(['PING']);
      if (pong instanceof RedisErrorReply) throw /NOAUTH|NOPERM|WRONGPASS/.test(pong.message) ? authFailure(connection, pong.message) : new Error(`PING to ${where}: ${pong.message}`);
      return client;
    } catch (error) {
      client.close();
      if (error instanceof LifeboatError) throw error;
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== undefined && unreachableCodes.has(code)) {
        throw new LifeboatError('RedisConnectionFailed', `Redis at ${where} dropped the connection (${(error as Error).message})`, 'Check the server and its TLS settings against connection.tls');
      }
      throw error;
    }
  }

  /** Sends one command; the reply, error replies included (as RedisErrorReply). */
  call(args: Array<string | Buffer>, timeoutMs = 30_000): Promise<RedisReply> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    return new Promise<RedisReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        const error = new Error(`${describeRedis(this.connection)} did not answer ${String(args[0])} within ${timeoutMs / 1000}s`);
        this.socket.destroy(error);
        reject(error);
      }, timeoutMs);
      this.waiting.push({
        resolve: (reply) => {
          clearTimeout(timer);
          resolve(reply);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.socket.write(encodeCommand(args));
    });
  }

  /** Like call(), but an error reply throws (NOPERM / NOAUTH as RedisAuthFailed). */
  async command(args: Array<string | Buffer>, timeoutMs?: number): Promise<Exclude<RedisReply, RedisErrorReply>> {
    const reply = await this.call(args, timeoutMs);
    if (reply instanceof RedisErrorReply) {
      if (/^(NOPERM|NOAUTH|WRONGPASS)/.test(reply.message)) throw authFailure(this.connection, reply.message);
      throw new Error(`${args.map(String).slice(0, 2).join(' ')} on ${describeRedis(this.connection)} failed: ${reply.message}`);
    }
    return reply;
  }

  /** INFO <section> as a map of field -> value. */
  async info(section: string): Promise<Map<string, string>> {
    const text = String(await this.command(['INFO', section]));
    const fields = new Map<string, string>();
    for (const line of text.split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon > 0 && !line.startsWith('#')) fields.set(line.slice(0, colon), line.slice(colon + 1));
    }
    return fields;
  }

  /** CONFIG GET <name>: the value, or undefined when the server has no such setting. */
  async configGet(name: string): Promise<string | undefined> {
    const reply = await this.command(['CONFIG', 'GET', name]);
    if (!Array.isArray(reply) || reply.length < 2) return undefined;
    return String(reply[1]);
  }

  close(): void {
    this.socket.destroy();
  }
}

function authFailure(connection: RedisConnection, message: string): LifeboatError {
  const who = connection.user ? `ACL user ${connection.user}` : 'the default user';
  const permission = /^NOPERM/.test(message);
  return new LifeboatError(
    'RedisAuthFailed',
    `Redis at ${describeRedis(connection)} refused ${who}: ${message}`,
    permission
      ? `Grant ${who} what Lifeboat needs (docs/redis.md: +ping +info +sync +replconf +config|get +dbsize), or use another user`
      : connection.passwordEnv
        ? `Check the password in $${connection.passwordEnv} (connection.passwordEnv)${connection.user ? ` and connection.user` : ''}`
        : 'The server requires a password: set connection.passwordEnv to the NAME of an environment variable that holds it',
  );
}

/** Total keys and keys with a TTL over every database, from INFO keyspace (db0:keys=1,expires=0,...). */
export function keyspaceTotals(keyspace: Map<string, string>): { keys: number; expires: number; databases: Record<string, number> } {
  let keys = 0;
  let expires = 0;
  const databases: Record<string, number> = {};
  for (const [name, value] of keyspace) {
    if (!/^db\d+$/.test(name)) continue;
    const fields = Object.fromEntries(value.split(',').map((pair) => pair.split('=') as [string, string]));
    const count = Number(fields.keys ?? 0);
    databases[name] = count;
    keys += count;
    expires += Number(fields.expires ?? 0);
  }
  return { keys, expires, databases };
}
