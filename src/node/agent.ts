import type { ClientRequestArgs } from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { connect, type KeywardClientSocket, type KeywardConnectOptions } from './clientSocket.js';

/** Options of {@link KeywardAgent}: https.Agent's, and keyward connect options for every connection. */
export interface KeywardAgentOptions extends https.AgentOptions {
  /** Added to each connection's options (a key holder for client certificates, engine settings...). */
  connect?: Partial<KeywardConnectOptions>;
}

/**
 * An `https.Agent` whose connections are keyward client sockets. Like node's own agent it
 * keeps the last TLS session of each origin (`agent.getName(options)`), at most
 * `maxCachedSessions` (default 100, 0 keeps none), offers it on the next connection, and
 * forgets it when a connection that used it ends in an error.
 */
export class KeywardAgent extends https.Agent {
  private readonly sessions = new Map<string, Buffer>();
  private readonly maxSessions: number;
  private readonly connectOptions: Partial<KeywardConnectOptions>;

  constructor(options: KeywardAgentOptions = {}) {
    const { connect: connectOptions, ...agentOptions } = options;
    super(agentOptions);
    this.connectOptions = connectOptions ?? {};
    this.maxSessions = options.maxCachedSessions ?? 100;
  }

  /** The request's options (host, port, servername, ca, rejectUnauthorized...) are keyward connect options. */
  override createConnection(options: ClientRequestArgs): Duplex {
    const name = this.getName(options);
    const socket: KeywardClientSocket = connect({ ...this.connectOptions, ...(options as KeywardConnectOptions), session: this.sessions.get(name) ?? (options as KeywardConnectOptions).session });
    socket.on('session', (session: Buffer) => this.keep(name, session));
    socket.once('close', (hadError: boolean) => {
      if (hadError) this.sessions.delete(name);
    });
    return socket;
  }

  private keep(name: string, session: Buffer): void {
    if (this.maxSessions === 0) return;
    // Map order is insertion order: re-inserting keeps the least recently stored first.
    this.sessions.delete(name);
    this.sessions.set(name, session);
    while (this.sessions.size > this.maxSessions) this.sessions.delete(this.sessions.keys().next().value!);
  }
}
