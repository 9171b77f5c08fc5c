/**
 * Which upstream a connection goes to, by the SNI the client sent: an exact name, then a
 * single-label wildcard (`*.example.com` matches `a.example.com`, not `example.com` or
 * `a.b.example.com`), then the default upstream.
 */
import type { Endpoint } from './endpoint.js';

export class UpstreamRoutes {
  readonly #exact = new Map<string, Endpoint>();
  readonly #wildcard = new Map<string, Endpoint>();

  constructor(
    readonly defaultUpstream: Endpoint,
    routes: Readonly<Record<string, Endpoint>> = {},
  ) {
    for (const [name, upstream] of Object.entries(routes)) {
      const n = name.toLowerCase().replace(/\.$/, '');
      if (n.startsWith('*.')) this.#wildcard.set(n.slice(2), upstream);
      else this.#exact.set(n, upstream);
    }
  }

  /** The upstream for a connection whose SNI is `serverName` (false or undefined when none was sent). */
  upstreamFor(serverName: string | false | undefined): Endpoint {
    if (!serverName) return this.defaultUpstream;
    const n = serverName.toLowerCase().replace(/\.$/, '');
    const exact = this.#exact.get(n);
    if (exact) return exact;
    const dot = n.indexOf('.');
    const wild = dot > 0 ? this.#wildcard.get(n.slice(dot + 1)) : undefined;
    return wild ?? this.defaultUpstream;
  }
}
