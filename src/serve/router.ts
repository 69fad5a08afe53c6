import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * The routes of `lifeboat serve`: a method and an exact path each. Every family of routes
 * (metrics, status, and later chatops) is one module under src/serve/routes/ that returns its
 * routes; server.ts adds them here. Handlers answer from memory: nothing a request does may wait
 * for a repository (chatops' `backups` reads one, and answers through Slack's response_url when
 * that takes longer than its answer budget).
 */
export type Handler = (request: IncomingMessage, response: ServerResponse, url: URL) => Promise<void> | void;

export interface Route {
  method: 'GET' | 'POST';
  path: string;
  handler: Handler;
}

export class Router {
  private readonly routes = new Map<string, Map<string, Handler>>();

  add(...routes: Route[]): this {
    for (const { method, path, handler } of routes) {
      const byMethod = this.routes.get(path) ?? new Map<string, Handler>();
      if (byMethod.has(method)) throw new Error(`route ${method} ${path} is defined twice`);
      byMethod.set(method, handler);
      this.routes.set(path, byMethod);
    }
    return this;
  }

  async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://lifeboat.invalid');
    const byMethod = this.routes.get(url.pathname);
    if (byMethod === undefined) return sendText(response, 404, `no route ${url.pathname}; try /metrics or /status\n`);
    const method = request.method === 'HEAD' ? 'GET' : (request.method ?? 'GET');
    const handler = byMethod.get(method);
    if (handler === undefined) {
      response.setHeader('Allow', [...byMethod.keys()].join(', '));
      return sendText(response, 405, `${request.method} is not allowed on ${url.pathname}\n`);
    }
    try {
      await handler(request, response, url);
    } catch (error) {
      if (!response.headersSent) sendText(response, 500, `${error instanceof Error ? error.message : String(error)}\n`);
      else response.destroy(error instanceof Error ? error : undefined);
    }
  }
}

export function sendText(response: ServerResponse, status: number, body: string, contentType = 'text/plain; charset=utf-8'): void {
  response.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) });
  response.end(body);
}

export function sendJson(response: ServerResponse, status: number, value: unknown): void {
  sendText(response, status, `${JSON.stringify(value, null, 2)}\n`, 'application/json; charset=utf-8');
}
