/**
 * The small web application behind `keyward demo`'s proxy. It listens on a Unix socket,
 * reads the PROXY v2 header the proxy sends first (client address, SNI, ALPN, TLS version,
 * cipher, group, signature scheme), and serves a page saying what the connection
 * negotiated, where the key is, the proxy's live handshake counts and key-operation
 * latency, and the tail of keyd's audit log. Plain text for curl, HTML for browsers.
 */
import { open } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { clearStaleSocket } from '../proxy/endpoint.js';
import type { ProxyMetrics } from '../proxy/metrics.js';
import { decodeProxyV2, ProxyHeaderError, type DecodedProxyV2 } from '../proxy/proxyProtocol.js';

/** What the page says about the key and where to find the numbers. */
export interface DemoAppContext {
  /** Where the key is, in a sentence. */
  keyWhere: string;
  /** The same, as rows for the page (e.g. ['held by', 'keyd, pid 42']). */
  keyFacts: [string, string][];
  keyId: string;
  /** The proxy's metrics (read in process). */
  metrics: () => ProxyMetrics | undefined;
  /** keyd's audit log. */
  auditPath: string;
}

/** Live numbers the page shows and refreshes. */
export interface DemoStats {
  /** failed: ended with an alert or a timeout; abandoned: the client closed first (browsers open spare connections). */
  handshakes: { ok: number; failed: number; abandoned: number; byVersion: Record<string, number> };
  keyOperations: { count: number; meanMs: number | null; p50Ms: number | null };
  audit: Array<{ seq: number; time: string; client: string; op: string; outcome: string; keyId?: string; serverName?: string; latencyMs?: number }>;
}

const MAX_HEADER_BYTES = 16 + 0xffff;
const AUDIT_TAIL_BYTES = 32 * 1024;

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The last `n` lines of keyd's audit log (reads only the file's end). */
async function auditTail(path: string, n: number): Promise<DemoStats['audit']> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    return [];
  }
  try {
    const size = (await fh.stat()).size;
    const start = Math.max(0, size - AUDIT_TAIL_BYTES);
    const buf = Buffer.alloc(size - start);
    await fh.read(buf, 0, buf.length, start);
    const lines = buf.toString('utf8').split('\n').filter(Boolean);
    if (start > 0) lines.shift(); // a partial first line
    return lines.slice(-n).flatMap((l) => {
      try {
        const o = JSON.parse(l) as Record<string, unknown>;
        return [
          {
            seq: Number(o.seq),
            time: String(o.time),
            client: String(o.client),
            op: String(o.op),
            outcome: String(o.outcome),
            ...(typeof o.keyId === 'string' ? { keyId: o.keyId } : {}),
            ...(typeof o.serverName === 'string' ? { serverName: o.serverName } : {}),
            ...(typeof o.latencyMs === 'number' ? { latencyMs: o.latencyMs } : {}),
          },
        ];
      } catch {
        return [];
      }
    });
  } finally {
    await fh.close();
  }
}

/** Handshake counts and key-operation latency from the proxy's metrics. */
async function stats(ctx: DemoAppContext): Promise<DemoStats> {
  const out: DemoStats = { handshakes: { ok: 0, failed: 0, abandoned: 0, byVersion: {} }, keyOperations: { count: 0, meanMs: null, p50Ms: null }, audit: await auditTail(ctx.auditPath, 8) };
  const m = ctx.metrics();
  if (!m) return out;
  for (const v of (await m.handshakes.get()).values) {
    if (v.labels.outcome === 'ok') {
      out.handshakes.ok += v.value;
      const version = String(v.labels.version);
      out.handshakes.byVersion[version] = (out.handshakes.byVersion[version] ?? 0) + v.value;
    } else if (v.labels.outcome === 'ECONNRESET') out.handshakes.abandoned += v.value;
    else out.handshakes.failed += v.value;
  }
  // Sum the histogram over its label sets, then read the median off the cumulative buckets.
  const buckets = new Map<number, number>();
  let sum = 0;
  let count = 0;
  for (const v of (await m.keyOperationSeconds.get()).values) {
    if (v.labels.outcome !== 'ok') continue;
    if (v.metricName?.endsWith('_bucket')) {
      const raw = (v.labels as Record<string, string | number>).le;
      const le = raw === '+Inf' ? Infinity : Number(raw);
      buckets.set(le, (buckets.get(le) ?? 0) + v.value);
    } else if (v.metricName?.endsWith('_sum')) sum += v.value;
    else if (v.metricName?.endsWith('_count')) count += v.value;
  }
  out.keyOperations.count = count;
  if (count > 0) {
    out.keyOperations.meanMs = Math.round((sum / count) * 1e5) / 100;
    const le = [...buckets.entries()].sort((a, b) => a[0] - b[0]).find(([, c]) => c >= count / 2)?.[0];
    out.keyOperations.p50Ms = le === undefined || le === Infinity ? null : le * 1000;
  }
  return out;
}

/** The negotiated facts of one connection, from its PROXY v2 header. */
function facts(h: DecodedProxyV2 | undefined, httpVersion: string): [string, string][] {
  const client = h?.source ? (h.source.address.includes(':') ? `[${h.source.address}]:${h.source.port}` : `${h.source.address}:${h.source.port}`) : '?';
  return [
    ['protocol', h?.tls?.version ?? '?'],
    ['cipher', h?.tls?.cipher ?? '?'],
    ['group', h?.tls?.group ?? '?'],
    ['signature', h?.tls?.signatureScheme ?? '?'],
    ['alpn', h?.alpn ?? 'none'],
    ['sni', h?.authority ?? 'none'],
    ['http', `HTTP/${httpVersion}`],
    ['client', client],
    ['connection id', h?.uniqueId ?? '?'],
  ];
}

const STYLE = `
:root{--bg:#0f1720;--card:#17212b;--ink:#e6edf3;--dim:#8b98a5;--accent:#4cc38a;--warn:#e5a50a;--line:#26323f}
@media (prefers-color-scheme: light){:root{--bg:#f4f6f8;--card:#fff;--ink:#17212b;--dim:#5b6875;--accent:#14804a;--warn:#9a6700;--line:#dde3ea}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
main{max-width:1040px;margin:0 auto;padding:20px 16px 40px}
header h1{margin:0;font-size:1.6rem}
header p{margin:.3rem 0 1rem;color:var(--dim)}
.badge{display:inline-block;padding:2px 10px;border-radius:999px;background:var(--accent);color:#fff;font-size:.8rem;font-weight:600;vertical-align:middle;margin-left:.4rem}
.grid{display:grid;gap:14px;grid-template-columns:repeat(auto-fit,minmax(300px,1fr))}
section{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:14px 16px}
section h2{margin:0 0 .6rem;font-size:1rem;color:var(--dim);text-transform:uppercase;letter-spacing:.06em}
dl{display:grid;grid-template-columns:auto 1fr;gap:4px 14px;margin:0}
dt{color:var(--dim)}
dd{margin:0;font-family:ui-monospace,"DejaVu Sans Mono",monospace;overflow-wrap:anywhere}
.big{font-size:2rem;font-weight:700;line-height:1.1}
.stats{display:flex;gap:22px;flex-wrap:wrap}
.stats div span{display:block;color:var(--dim);font-size:.85rem}
.wide{grid-column:1/-1}
table{width:100%;border-collapse:collapse;font-size:.85rem}
th,td{text-align:left;padding:4px 6px;border-bottom:1px solid var(--line);white-space:nowrap}
td.k{font-family:ui-monospace,"DejaVu Sans Mono",monospace}
.scroll{overflow-x:auto}
.ok{color:var(--accent)} .bad{color:var(--warn)}
footer{margin-top:16px;color:var(--dim);font-size:.85rem}
code{font-family:ui-monospace,"DejaVu Sans Mono",monospace;overflow-wrap:anywhere}
`;

const SCRIPT = `
async function refresh(){try{const s=await (await fetch('/stats.json',{cache:'no-store'})).json();
document.getElementById('hs-ok').textContent=s.handshakes.ok;
document.getElementById('hs-failed').textContent=s.handshakes.failed;
document.getElementById('hs-abandoned').textContent=s.handshakes.abandoned;
document.getElementById('kop-mean').textContent=s.keyOperations.meanMs==null?'–':s.keyOperations.meanMs+' ms';
document.getElementById('kop-p50').textContent=s.keyOperations.p50Ms==null?'–':'≤ '+s.keyOperations.p50Ms+' ms';
document.getElementById('kop-count').textContent=s.keyOperations.count;
const tb=document.getElementById('audit');tb.textContent='';
for(const a of s.audit){const tr=document.createElement('tr');
for(const [v,c] of [[a.seq,''],[a.time.slice(11,23),''],[a.client,'k'],[a.op,''],[a.outcome,a.outcome==='ok'?'ok':'bad'],[(a.keyId||'').slice(0,12),'k'],[a.serverName||'',''],[a.latencyMs==null?'':a.latencyMs+' ms','']]){const td=document.createElement('td');td.textContent=String(v);if(c)td.className=c;tr.appendChild(td)}
tb.appendChild(tr)}}catch(e){}}
setInterval(refresh,2000);
`;

function auditRows(audit: DemoStats['audit']): string {
  return audit
    .map(
      (a) =>
        `<tr><td>${a.seq}</td><td>${esc(a.time.slice(11, 23))}</td><td class="k">${esc(a.client)}</td><td>${esc(a.op)}</td><td class="${a.outcome === 'ok' ? 'ok' : 'bad'}">${esc(a.outcome)}</td><td class="k">${esc((a.keyId ?? '').slice(0, 12))}</td><td>${esc(a.serverName ?? '')}</td><td>${a.latencyMs === undefined ? '' : `${a.latencyMs} ms`}</td></tr>`,
    )
    .join('');
}

function html(ctx: DemoAppContext, f: [string, string][], s: DemoStats): string {
  const dl = (rows: Array<[string, string, string?]>) => `<dl>${rows.map(([k, v, id]) => `<dt>${esc(k)}</dt><dd${id ? ` id="${id}"` : ''}>${esc(v)}</dd>`).join('')}</dl>`;
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>keyward demo</title><style>${STYLE}</style></head><body><main>
<header><h1>keyward <span class="badge">key isolated</span></h1><p>This page came through <strong>keyward proxy</strong>, which terminated your TLS connection without ever holding its private key. The key was generated inside <strong>keyd</strong>, lives in its sealed store, and signed this handshake there.</p></header>
<div class="grid">
<section id="connection"><h2>This connection</h2>${dl(f)}</section>
<section id="key"><h2>Where the key is</h2>${dl([['key id', `${ctx.keyId.slice(0, 12)}…`], ...ctx.keyFacts, ['the proxy holds', 'the certificate and the public key only']])}</section>
<section id="live"><h2>Live, from the proxy's metrics</h2><div class="stats">
<div><span>handshakes</span><b class="big" id="hs-ok">${s.handshakes.ok}</b></div>
<div><span>failed</span><b class="big" id="hs-failed">${s.handshakes.failed}</b></div>
<div><span>key ops</span><b class="big" id="kop-count">${s.keyOperations.count}</b></div>
</div>${dl([
    ['key-op mean', s.keyOperations.meanMs === null ? '–' : `${s.keyOperations.meanMs} ms`, 'kop-mean'],
    ['key-op median', s.keyOperations.p50Ms === null ? '–' : `≤ ${s.keyOperations.p50Ms} ms`, 'kop-p50'],
    ['by version', Object.entries(s.handshakes.byVersion).map(([k, v]) => `${k}: ${v}`).join(', ') || '–'],
    ['client left mid-handshake', String(s.handshakes.abandoned), 'hs-abandoned'],
  ])}</section>
<section class="wide"><h2>keyd's audit log, last lines (hash-chained)</h2><div class="scroll"><table><thead><tr><th>seq</th><th>time</th><th>client</th><th>op</th><th>outcome</th><th>key</th><th>sni</th><th>latency</th></tr></thead><tbody id="audit">${auditRows(s.audit)}</tbody></table></div></section>
</div>
<footer>Refreshes every 2 s. Check the audit chain: <code>npx keyward audit verify ${esc(ctx.auditPath)}</code></footer>
</main><script>${SCRIPT}</script></body></html>`;
}

function text(ctx: DemoAppContext, f: [string, string][], s: DemoStats): string {
  const lines = [
    'keyward demo: this TLS connection was terminated by keyward proxy, which never held its private key',
    ...f.map(([k, v]) => `${k}: ${v}`),
    `key id: ${ctx.keyId}`,
    `private key: ${ctx.keyWhere}`,
    `handshakes: ${s.handshakes.ok} ok, ${s.handshakes.failed} failed, ${s.handshakes.abandoned} left by the client`,
    `key operations: ${s.keyOperations.count}, mean ${s.keyOperations.meanMs ?? '-'} ms`,
    'audit log (last lines):',
    ...s.audit.map((a) => `  ${a.seq} ${a.time} ${a.client} ${a.op} ${a.outcome}${a.keyId ? ` ${a.keyId.slice(0, 12)}` : ''}`),
  ];
  return lines.join('\n') + '\n';
}

/** A running demo application. */
export interface DemoApp {
  server: Server;
  close(): Promise<void>;
}

/** Starts the application on the Unix socket `path` (a socket file left by a dead process is replaced). */
export async function startDemoApp(path: string, ctx: DemoAppContext): Promise<DemoApp> {
  const headers = new WeakMap<Socket, DecodedProxyV2>();
  const http = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const url = (req.url ?? '/').split('?')[0];
      const s = await stats(ctx);
      if (url === '/stats.json') {
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(s));
        return;
      }
      if (url !== '/') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      const f = facts(headers.get(req.socket), req.httpVersion);
      if (String(req.headers.accept ?? '').includes('text/html')) res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(html(ctx, f, s));
      else res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(text(ctx, f, s));
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('internal error\n');
    });
  });
  // Reads the PROXY v2 header, then hands the connection to the HTTP server.
  const server = createNetServer((socket) => {
    let buf = Buffer.alloc(0);
    socket.on('error', () => undefined);
    const timer = setTimeout(() => socket.destroy(), 5_000);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      let h;
      try {
        h = decodeProxyV2(buf);
        if (!h && buf.length > MAX_HEADER_BYTES) throw new ProxyHeaderError('PROXY v2 header too long');
      } catch {
        socket.destroy();
        return;
      }
      if (!h) return;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      headers.set(socket, h);
      const rest = buf.subarray(h.length);
      if (rest.length > 0) socket.unshift(rest);
      http.emit('connection', socket);
      socket.resume();
    };
    socket.on('data', onData);
  });
  await clearStaleSocket(path);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    server,
    close: () =>
      new Promise<void>((resolve) => {
        http.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
