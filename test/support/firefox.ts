/**
 * Headless Firefox ESR driven over Marionette, Firefox's own remote protocol (no
 * geckodriver, no Selenium): a fresh profile, a small client for Marionette's JSON-over-TCP
 * protocol, the test CA trusted in the profile's NSS database, and what Firefox itself says
 * about a page's TLS connection (group, scheme, delegated credential), read in the chrome
 * context.
 *
 * Every command has a timeout; Firefox runs in a process group of its own (it starts
 * content processes), which `close()` ends by its pid, and which is killed too if the test
 * process exits first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';

/** Marionette's wire protocol version this client speaks. */
const MARIONETTE_PROTOCOL = 3;
const DEFAULT_COMMAND_TIMEOUT_MS = 10_000;

/**
 * Profile preferences: Marionette on a port of Firefox's choosing (written to the profile's
 * MarionetteActivePort), no first-run pages, updates, telemetry or system roots, and no
 * OCSP fetches for the test chain. Marionette adds its own recommended test preferences.
 */
const BASE_PREFS: Readonly<Record<string, string | number | boolean>> = {
  'marionette.port': 0,
  'browser.shell.checkDefaultBrowser': false,
  'browser.startup.homepage_override.mstone': 'ignore',
  'datareporting.policy.dataSubmissionEnabled': false,
  'toolkit.telemetry.reportingpolicy.firstRun': false,
  'app.update.disabledForTesting': true,
  'network.proxy.type': 0,
  'security.enterprise_roots.enabled': false,
  'security.OCSP.enabled': 0,
};

function userJs(prefs: Readonly<Record<string, string | number | boolean>>): string {
  return Object.entries(prefs)
    .map(([k, v]) => `user_pref(${JSON.stringify(k)}, ${JSON.stringify(v)});\n`)
    .join('');
}

/** What Firefox reports about the TLS connection of the page in the selected tab (nsITransportSecurityInfo). */
export interface FirefoxSecurityInfo {
  /** 3 = TLS 1.2, 4 = TLS 1.3. */
  protocolVersion: number;
  /** e.g. "TLS_AES_128_GCM_SHA256". */
  cipherName: string;
  /** NSS's group name: "mlkem768x25519", "x25519", "P256", ... */
  keaGroupName: string;
  /** e.g. "ECDSA-P256-SHA256". */
  signatureSchemeName: string;
  /** Whether the server signed with a delegated credential (RFC 9345) that Firefox accepted. */
  isDelegatedCredential: boolean;
  /** The server certificate's subject, e.g. "CN=localhost". */
  serverCertSubject: string;
}

/** Options for {@link launchFirefox}. */
export interface FirefoxOptions {
  /** An empty directory for the profile (the caller removes it). */
  profileDir: string;
  /** More preferences for user.js. */
  prefs?: Readonly<Record<string, string | number | boolean>>;
  /** Limit for start-up until Marionette answers (default 20 s). */
  startTimeoutMs?: number;
  /** Limit per Marionette command (default 10 s). */
  commandTimeoutMs?: number;
}

type Reply = { error: { error: string; message: string } | null; result: unknown };

/** Process groups still running, killed if the test process exits before `close()`. */
const liveGroups = new Set<number>();
let exitHookInstalled = false;

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // Gone already.
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A running headless Firefox with one Marionette connection. */
export class Firefox {
  private buffer = Buffer.alloc(0);
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private greeting?: (msg: unknown) => void;
  private closed = false;
  private readonly exited: Promise<void>;

  private constructor(
    private readonly child: ChildProcess,
    private readonly socket: net.Socket,
    private readonly stderr: () => string,
    private readonly commandTimeoutMs: number,
  ) {
    this.exited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
    socket.on('data', (d: Buffer) => this.onData(d));
    const fail = (why: string) => {
      for (const [id, p] of this.pending) {
        clearTimeout(p.timer);
        this.pending.delete(id);
        p.reject(new Error(`Marionette connection ${why}\n${this.stderr()}`));
      }
    };
    socket.on('error', (e) => fail(`failed: ${e.message}`));
    socket.on('close', () => fail('closed'));
  }

  /** The pid of Firefox's main process (also its process group id). */
  get pid(): number {
    return this.child.pid!;
  }

  /**
   * Starts `firefox-esr --headless --marionette` on a fresh profile (user.js preferences),
   * connects to Marionette and checks its protocol version. `-remote-allow-system-access`
   * opens the chrome context to {@link trustCa}, {@link securityInfo} and {@link pref}.
   */
  static async launch(opts: FirefoxOptions): Promise<Firefox> {
    const { profileDir } = opts;
    await writeFile(join(profileDir, 'user.js'), userJs({ ...BASE_PREFS, ...opts.prefs }));
    const child = spawn('firefox-esr', ['--headless', '--marionette', '-remote-allow-system-access', '--no-remote', '--profile', profileDir, 'about:blank'], {
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, MOZ_CRASHREPORTER_DISABLE: '1' },
    });
    if (child.pid === undefined) throw new Error('cannot start firefox-esr');
    const pid = child.pid;
    liveGroups.add(pid);
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.on('exit', () => liveGroups.forEach(killGroup));
    }
    let err = '';
    child.stderr?.on('data', (d: Buffer) => {
      if (err.length < 64 * 1024) err += d.toString('utf8');
    });
    const stderr = () => `firefox stderr:\n${err.slice(-4000)}`;
    try {
      const port = await waitForMarionettePort(profileDir, child, opts.startTimeoutMs ?? 20_000, stderr);
      const socket = await connect(port);
      const ff = new Firefox(child, socket, stderr, opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS);
      await ff.handshake();
      return ff;
    } catch (e) {
      killGroup(pid);
      liveGroups.delete(pid);
      throw e;
    }
  }

  private onData(d: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, d]);
    // Each message is "<byte length>:<JSON>".
    for (;;) {
      const colon = this.buffer.indexOf(0x3a);
      if (colon < 0) return;
      const length = Number(this.buffer.subarray(0, colon).toString('latin1'));
      if (!Number.isInteger(length) || length < 0) {
        this.socket.destroy(new Error(`bad Marionette frame header ${JSON.stringify(this.buffer.subarray(0, colon + 1).toString('latin1'))}`));
        return;
      }
      if (this.buffer.length < colon + 1 + length) return;
      const msg: unknown = JSON.parse(this.buffer.subarray(colon + 1, colon + 1 + length).toString('utf8'));
      this.buffer = this.buffer.subarray(colon + 1 + length);
      this.onMessage(msg);
    }
  }

  private onMessage(msg: unknown): void {
    // Replies are [1, id, error, result]; the first message is a greeting object.
    if (Array.isArray(msg) && msg[0] === 1) {
      const p = this.pending.get(msg[1] as number);
      if (!p) return;
      clearTimeout(p.timer);
      this.pending.delete(msg[1] as number);
      p.resolve({ error: msg[2] as Reply['error'], result: msg[3] });
    } else {
      this.greeting?.(msg);
    }
  }

  private async handshake(): Promise<void> {
    const hello = await new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no Marionette greeting in ${this.commandTimeoutMs} ms\n${this.stderr()}`)), this.commandTimeoutMs);
      this.greeting = (m) => {
        clearTimeout(timer);
        resolve(m);
      };
    });
    const h = hello as { applicationType?: string; marionetteProtocol?: number };
    if (h.applicationType !== 'gecko' || h.marionetteProtocol !== MARIONETTE_PROTOCOL) throw new Error(`unexpected Marionette greeting ${JSON.stringify(hello)}`);
  }

  /** Sends one command and waits (bounded) for its reply; a Marionette error rejects. */
  command(name: string, params: Record<string, unknown> = {}, timeoutMs = this.commandTimeoutMs): Promise<unknown> {
    if (this.closed) return Promise.reject(new Error(`Marionette ${name}: Firefox is closed`));
    const id = this.nextId++;
    const body = JSON.stringify([0, id, name, params]);
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`Marionette ${name} got no reply in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.socket.write(`${Buffer.byteLength(body)}:${body}`);
    }).then(({ error, result }) => {
      if (error) throw new Error(`Marionette ${name}: ${error.error}: ${error.message}`);
      return result;
    });
  }

  /** WebDriver:NewSession; page loads and scripts are bounded by the command timeout. */
  async newSession(): Promise<{ browserVersion: string }> {
    // Marionette takes the capabilities themselves as the parameters.
    const r = (await this.command('WebDriver:NewSession', {
      acceptInsecureCerts: false,
      pageLoadStrategy: 'normal',
      timeouts: { pageLoad: this.commandTimeoutMs - 1000, script: this.commandTimeoutMs - 1000, implicit: 0 },
    })) as { capabilities: { browserVersion: string } };
    return { browserVersion: r.capabilities.browserVersion };
  }

  /** Loads `url` in the current tab and waits for its load event; a TLS failure rejects with Firefox's error page code. */
  async navigate(url: string): Promise<void> {
    await this.command('WebDriver:Navigate', { url });
  }

  /** Runs `script` (a function body; `arguments` holds `args`) in the current context and returns its value. */
  async executeScript<T>(script: string, args: unknown[] = []): Promise<T> {
    const r = (await this.command('WebDriver:ExecuteScript', { script, args })) as { value: T };
    return r.value;
  }

  private async inChrome<T>(fn: () => Promise<T>): Promise<T> {
    await this.command('Marionette:SetContext', { value: 'chrome' });
    try {
      return await fn();
    } finally {
      await this.command('Marionette:SetContext', { value: 'content' });
    }
  }

  /** What Firefox says about the selected tab's TLS connection; null if the page is not https. */
  securityInfo(): Promise<FirefoxSecurityInfo | null> {
    return this.inChrome(() =>
      this.executeScript<FirefoxSecurityInfo | null>(`
        const si = gBrowser.selectedBrowser.securityUI.secInfo;
        if (!si) return null;
        return {
          protocolVersion: si.protocolVersion,
          cipherName: si.cipherName,
          keaGroupName: si.keaGroupName,
          signatureSchemeName: si.signatureSchemeName,
          isDelegatedCredential: si.isDelegatedCredential,
          serverCertSubject: si.serverCert ? si.serverCert.subjectName : '',
        };`),
    );
  }

  /**
   * Trusts a CA certificate (PEM) for TLS servers from now on, in the running profile's NSS
   * database (nsIX509CertDB, trust "C,,"), as certutil would before start.
   */
  async trustCa(certPem: string): Promise<void> {
    const base64 = new X509Certificate(certPem).raw.toString('base64');
    await this.inChrome(() =>
      this.executeScript<void>(
        `const [der] = arguments;
         Cc['@mozilla.org/security/x509certdb;1'].getService(Ci.nsIX509CertDB).addCertFromBase64(der, 'C,,');`,
        [base64],
      ),
    );
  }

  /** Reads a preference's current value (chrome context). */
  pref(name: string): Promise<string | number | boolean | null> {
    return this.inChrome(() =>
      this.executeScript<string | number | boolean | null>(
        `const [n] = arguments;
         switch (Services.prefs.getPrefType(n)) {
           case Services.prefs.PREF_BOOL: return Services.prefs.getBoolPref(n);
           case Services.prefs.PREF_INT: return Services.prefs.getIntPref(n);
           case Services.prefs.PREF_STRING: return Services.prefs.getStringPref(n);
           default: return null;
         }`,
        [name],
      ),
    );
  }

  /** WebDriver:DeleteSession. */
  async deleteSession(): Promise<void> {
    await this.command('WebDriver:DeleteSession');
  }

  /**
   * Asks Firefox to quit, waits up to 5 s for it to exit, then kills its process group by
   * its pid (content processes included) whatever happened. Never rejects.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.command('Marionette:Quit', { flags: ['eForceQuit'] }, 3_000);
    } catch {
      // Killed below.
    }
    this.closed = true;
    this.socket.destroy();
    await Promise.race([this.exited, sleep(5_000)]);
    killGroup(this.pid);
    liveGroups.delete(this.pid);
  }
}

/** Polls the profile's MarionetteActivePort file, which Firefox writes once Marionette listens. */
async function waitForMarionettePort(profileDir: string, child: ChildProcess, timeoutMs: number, stderr: () => string): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`firefox-esr exited (${String(child.exitCode ?? child.signalCode)}) before Marionette started\n${stderr()}`);
    const text = await readFile(join(profileDir, 'MarionetteActivePort'), 'utf8').catch(() => '');
    const port = Number(text.trim());
    if (text.trim() !== '' && Number.isInteger(port) && port > 0) return port;
    await sleep(50);
  }
  throw new Error(`Marionette did not start within ${timeoutMs} ms\n${stderr()}`);
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const timer = setTimeout(() => s.destroy(new Error(`cannot connect to Marionette on port ${port}`)), 5_000);
    s.once('connect', () => {
      clearTimeout(timer);
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}
