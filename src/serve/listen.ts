import { once } from 'node:events';
import type { Server } from 'node:http';
import { LifeboatError } from '../errors.js';

/** "127.0.0.1:9464" or "[::1]:9464" as the host and port node:net takes (the config schema checked the form). */
export function parseListenAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(address.slice(colon + 1)) };
}

/** Listens on address; AddressInUse when another process has it, InvalidConfig when it cannot be had here. */
export async function listenOn(server: Server, address: string, what: string): Promise<{ host: string; port: number }> {
  const { host, port } = parseListenAddress(address);
  server.listen(port, host);
  try {
    await once(server, 'listening');
  } catch (error) {
    throw listenFailure(error, address, what);
  }
  const bound = server.address();
  return { host, port: typeof bound === 'object' && bound !== null ? bound.port : port };
}

export function listenFailure(error: unknown, address: string, what: string): unknown {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') {
    return new LifeboatError('AddressInUse', `${what} cannot listen on ${address}: another process is listening there`, 'Stop that process or choose another address (serve.listen, worker.metricsListen or --listen)', { cause: error });
  }
  if (code === 'EADDRNOTAVAIL' || code === 'EACCES' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new LifeboatError('InvalidConfig', `${what} cannot listen on ${address} (${code}): ${code === 'EACCES' ? 'the port is privileged' : 'no such local address'}`, 'Use an address of this host, e.g. 127.0.0.1:9464', { cause: error });
  }
  return error;
}
