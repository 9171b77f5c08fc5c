/**
 * `keyward keyd --check`: beyond the configuration's syntax, whether the files it names
 * exist and belong together, without starting keyd: the TLS certificate, its key, the
 * client CA and its CRLs; the store and its key-encryption key (the store is opened, which never
 * writes); the audit log's folder and last line, and the audit public key; the audit
 * sink's files; PKCS#11 modules and PIN files. Messages name the setting and the file,
 * never a secret.
 */
import { X509Certificate, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { keyIdOf } from '../keys/keyId.js';
import { readAuditTail } from './audit.js';
import { CRL_WARNINGS_MS, loadClientCrls, timeLeft } from './clientCrl.js';
import { resolveKekSource, type KeydConfig } from './config.js';
import { SealedStore } from './store.js';

/** One finding: `ok` false is a problem that would stop keyd or break a feature. */
export interface ConfigCheck {
  ok: boolean;
  /** The setting, e.g. "tls.key". */
  setting: string;
  message: string;
}

const why = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? (e as Error).message;

async function readable(path: string): Promise<string | undefined> {
  try {
    await access(path, fsConstants.R_OK);
    return undefined;
  } catch (e) {
    return `cannot read ${path} (${why(e)})`;
  }
}

function certificates(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

/** A certificate chain file and its key file: both readable, and the key is the leaf's. */
async function checkCertAndKey(out: ConfigCheck[], certSetting: string, certFile: string, keySetting: string, keyFile: string): Promise<void> {
  let leaf: X509Certificate | undefined;
  try {
    leaf = certificates(await readFile(certFile, 'utf8'))[0];
    if (!leaf) out.push({ ok: false, setting: certSetting, message: `${certFile} holds no PEM certificate` });
  } catch (e) {
    out.push({ ok: false, setting: certSetting, message: `${certFile}: ${(e as NodeJS.ErrnoException).code ? `cannot read (${why(e)})` : 'a certificate does not parse'}` });
  }
  let key: KeyObject | undefined;
  let raw: Buffer | undefined;
  try {
    raw = await readFile(keyFile);
    key = createPrivateKey(raw);
  } catch (e) {
    // The parser's message could quote key text: say only what went wrong.
    out.push({ ok: false, setting: keySetting, message: `${keyFile}: ${(e as NodeJS.ErrnoException).code?.startsWith('E') ? `cannot read (${why(e)})` : 'not a private key (PEM)'}` });
  } finally {
    raw?.fill(0);
  }
  if (!leaf || !key) return;
  if (!leaf.checkPrivateKey(key)) {
    out.push({ ok: false, setting: keySetting, message: `${keyFile} is not the key of the certificate in ${certFile}` });
    return;
  }
  const now = Date.now();
  if (Date.parse(leaf.validTo) < now) out.push({ ok: false, setting: certSetting, message: `${certFile}: the certificate expired on ${leaf.validTo}` });
  else if (Date.parse(leaf.validFrom) > now) out.push({ ok: false, setting: certSetting, message: `${certFile}: the certificate is valid only from ${leaf.validFrom}` });
  else out.push({ ok: true, setting: certSetting, message: `${certFile} (${leaf.subject.replace(/\n/g, ', ')}, until ${leaf.validTo}) matches the key in ${keyFile}` });
}

async function checkCaFile(out: ConfigCheck[], setting: string, file: string): Promise<void> {
  try {
    const n = certificates(await readFile(file, 'utf8')).length;
    out.push(n > 0 ? { ok: true, setting, message: `${file}: ${n} CA certificate(s)` } : { ok: false, setting, message: `${file} holds no PEM certificate` });
  } catch (e) {
    out.push({ ok: false, setting, message: `${file}: ${(e as NodeJS.ErrnoException).code ? `cannot read (${why(e)})` : 'a certificate does not parse'}` });
  }
}

/** Checks the files a valid configuration names; `env` gives store.passphraseEnv. */
export async function checkKeydFiles(config: KeydConfig, env: NodeJS.ProcessEnv = process.env): Promise<ConfigCheck[]> {
  const out: ConfigCheck[] = [];
  if (config.tls) {
    await checkCertAndKey(out, 'tls.cert', config.tls.certFile, 'tls.key', config.tls.keyFile);
    await checkCaFile(out, 'tls.clientCa', config.tls.clientCaFile);
    const crlFile = config.tls.crlFile;
    if (crlFile) {
      await loadClientCrls(crlFile, config.tls.clientCaFile).then(
        (c) => {
          const left = c.nextUpdate ? c.nextUpdate.getTime() - Date.now() : Infinity;
          const next = c.nextUpdate ? `, next update by ${c.nextUpdate.toISOString()} (in ${timeLeft(left)})` : ', no next update';
          out.push({ ok: true, setting: 'tls.crl', message: `${crlFile}: ${c.crls} CRL(s) of tls.clientCa, ${c.revokedCount} certificate(s) revoked${next}` });
          if (left <= CRL_WARNINGS_MS[0]) {
            out.push({ ok: true, setting: 'tls.crl', message: `warning: ${crlFile} runs out in ${timeLeft(left)}; after that every front of its CA is refused: load a new one before ${c.nextUpdate!.toISOString()} (keyward certs revoke)` });
          }
          // A warning, not an error: the other CAs' fronts are served (docs/keyd.md, revoking a front).
          for (const ca of c.uncovered) out.push({ ok: true, setting: 'tls.crl', message: `warning: tls.clientCa holds the CA ${ca}, but ${crlFile} has no CRL of it: every front of that CA is refused` });
        },
        (e: Error) => out.push({ ok: false, setting: 'tls.crl', message: (e as NodeJS.ErrnoException).code ? `cannot read ${crlFile} or tls.clientCa (${why(e)})` : e.message }),
      );
    }
  }
  if (config.listen.unix) {
    const dir = dirname(config.listen.unix.path);
    const bad = await access(dir, fsConstants.W_OK).then(
      () => undefined,
      (e: unknown) => why(e),
    );
    out.push(bad ? { ok: false, setting: 'listen.unix', message: `cannot create the socket in ${dir} (${bad})` } : { ok: true, setting: 'listen.unix', message: `${dir} is writable` });
  }

  // The store, opened with its key-encryption key: that checks the passphrase or key file too.
  let auditKey: KeyObject | undefined;
  try {
    const kek = await resolveKekSource(config.store, env);
    if (await SealedStore.exists(config.store.dir)) {
      const store = await SealedStore.open(config.store.dir, kek);
      try {
        out.push({ ok: true, setting: 'store', message: `${config.store.dir} opens: ${store.keys().length} key(s), ${store.psks().length} PSK(s)` });
        for (const w of store.warnings) out.push({ ok: true, setting: 'store', message: `warning: ${w}` });
        auditKey = store.existingAuditKey()?.publicKey;
      } finally {
        store.close();
      }
    } else if (config.store.create) {
      out.push({ ok: true, setting: 'store.dir', message: `${config.store.dir} holds no store yet: keyd will create one` });
    } else {
      out.push({ ok: false, setting: 'store.dir', message: `${config.store.dir} holds no store, and store.create is false` });
    }
  } catch (e) {
    out.push({ ok: false, setting: 'store', message: (e as Error).message });
  }

  const audit = config.audit;
  const auditDir = dirname(audit.file);
  try {
    await access(auditDir, fsConstants.W_OK);
    const tail = await readAuditTail(audit.file);
    out.push({ ok: true, setting: 'audit.file', message: tail.seq === 0 ? `${audit.file} will be created` : `${audit.file} continues at seq ${tail.seq + 1}` });
  } catch (e) {
    out.push({ ok: false, setting: 'audit.file', message: (e as NodeJS.ErrnoException).code ? `cannot write in ${auditDir} (${why(e)})` : (e as Error).message });
  }
  const pubFile = audit.checkpoints?.publicKeyFile;
  if (pubFile && auditKey) {
    try {
      const pub = createPublicKey(await readFile(pubFile));
      out.push(
        keyIdOf(pub) === keyIdOf(auditKey)
          ? { ok: true, setting: 'audit.checkpoints.publicKeyFile', message: `${pubFile} is the store's audit key (${keyIdOf(pub)})` }
          : { ok: false, setting: 'audit.checkpoints.publicKeyFile', message: `${pubFile} holds another key than the store's audit key ${keyIdOf(auditKey)} (keyd would replace it)` },
      );
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') out.push({ ok: false, setting: 'audit.checkpoints.publicKeyFile', message: `${pubFile}: not a public key` });
    }
  }
  const sink = audit.sink;
  if (sink) {
    if (sink.caFile) await checkCaFile(out, 'audit.sink.ca', sink.caFile);
    if (sink.certFile && sink.keyFile) await checkCertAndKey(out, 'audit.sink.cert', sink.certFile, 'audit.sink.key', sink.keyFile);
  }

  for (const [i, p] of config.pkcs11.entries()) {
    const files = [p.module, ...(p.pinFile ? [p.pinFile] : []), ...(p.certificateFile ? [p.certificateFile] : [])];
    let bad: string | undefined;
    for (const f of files) bad ??= await readable(f);
    out.push(bad ? { ok: false, setting: `pkcs11[${i}]`, message: bad } : { ok: true, setting: `pkcs11[${i}]`, message: `${files.join(' and ')} readable` });
  }
  const kekToken = config.store.pkcs11Kek;
  if (kekToken) {
    const bad = (await readable(kekToken.module)) ?? (kekToken.pinFile ? await readable(kekToken.pinFile) : undefined);
    if (bad) out.push({ ok: false, setting: 'store.pkcs11Kek', message: bad });
  }
  // A store folder that is a file, say, shows here rather than at start.
  if (await stat(config.store.dir).then((s) => !s.isDirectory(), () => false)) out.push({ ok: false, setting: 'store.dir', message: `${config.store.dir} is not a folder` });
  return out;
}
