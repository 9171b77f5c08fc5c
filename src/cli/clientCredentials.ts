/**
 * What a TLS client (`keyward connect`, `keyward proxy --client`) authenticates with: a
 * client certificate whose key is in a key holder, and/or a PSK in a PSK holder,
 * opened from the same key settings (flags or configuration file) as a server front's.
 */
import type { CertificateKey, PskOperations, Tls13PskOperations } from '../keys/keyOperations.js';
import { suiteByName } from '../node/clientSocket.js';
import { suiteInfo } from '../tls/crypto/cipherSuites.js';
import { certificateSpecs, keySourceOptions, pskSource } from './frontOptions.js';
import { CliError, type KeySources } from './keySources.js';
import type { FrontSettings } from './roleConfig.js';
import { loadCertificates } from './serve.js';

/** A client certificate and where its key is. */
export interface ClientCertificate {
  cert: string;
  key: CertificateKey;
  /** 'key-process', 'keyd', 'pkcs11', 'local'. */
  backend: string;
  certPath: string;
  describe(): string;
}

/** A client's PSK (TLS 1.2, or TLS 1.3 external): the identity it sends, the holder of the key. */
export interface ClientPsk {
  holder: PskOperations & Tls13PskOperations;
  identity: string;
  backend: string;
  describe(): string;
}

/**
 * Opens the client certificate's key (at most one certificate) and the PSK named by `s`
 * through `sources` (the caller closes `sources`). `pskIdentity` goes with a PSK source.
 */
export async function openClientCredentials(s: FrontSettings, pskIdentity: string | undefined, sources: KeySources): Promise<{ certificate?: ClientCertificate; psk?: ClientPsk }> {
  const { certs, keys } = certificateSpecs(s);
  if (certs.length > 1) throw new CliError(`a client sends one certificate: give --cert once (got ${certs.length})`);
  let certificate: ClientCertificate | undefined;
  if (certs.length === 1) {
    const loaded = await loadCertificates({ listen: '', certs, keys, sources: keySourceOptions(s) }, sources);
    const served = loaded.served[0];
    certificate = { cert: loaded.certificates[0].cert.toString(), key: loaded.certificates[0].key as CertificateKey, backend: served.backend, certPath: served.certPath, describe: () => served.describe() };
  }
  const p = s.psk;
  if (p?.hint !== undefined || p?.unknown !== undefined) throw new CliError('--psk-hint and --psk-unknown are a server\'s: a client sends --psk-identity');
  const source = pskSource(s);
  if (source === undefined) {
    if (pskIdentity !== undefined) throw new CliError('--psk-identity needs a PSK source: --psk-keyd, --psk-process --psk-file, or --psk-file (in a file: psk.keyd or psk.file)');
    return certificate ? { certificate } : {};
  }
  if (pskIdentity === undefined) throw new CliError('a PSK needs --psk-identity (the identity this client sends; in the proxy\'s file: client.pskIdentity)');
  const opened = await sources.openPsk(source);
  return { ...(certificate ? { certificate } : {}), psk: { holder: opened.holder, identity: pskIdentity, backend: opened.backend, describe: () => opened.describe() } };
}

/** How a client offers its PSK: with TLS 1.2 PSK suites, as a TLS 1.3 external PSK (its hash, psk_ke only), or both. */
export interface ClientPskOffer {
  tls12: boolean;
  tls13?: { hash?: 'sha256' | 'sha384'; keyExchange?: 'psk_ke' };
}

/**
 * The versions a PSK client offers its PSK in: the one the version bounds leave, else those
 * of the cipher suites listed, else both (TLS 1.3 first, TLS 1.2 PSK suites as the
 * fallback). `hash` and `pskKe` (--psk-hash, --tls13-psk-ke) need a PSK and TLS 1.3.
 * `flags` names the options in errors (keyward connect's or the proxy's).
 */
export function clientPskOffer(
  hasPsk: boolean,
  o: { minVersion?: 'TLSv1.2' | 'TLSv1.3'; maxVersion?: 'TLSv1.2' | 'TLSv1.3'; cipherSuites?: readonly string[]; hash?: 'sha256' | 'sha384'; pskKe?: boolean },
  flags: { cipher: string } = { cipher: '--cipher' },
): ClientPskOffer | undefined {
  const tls13Only = o.hash !== undefined || o.pskKe === true;
  if (!hasPsk) {
    if (tls13Only) throw new CliError('--psk-hash and --tls13-psk-ke need a PSK (--psk-identity with --psk-keyd, --psk-process --psk-file or --psk-file)');
    return undefined;
  }
  let versions: string[] = ['TLSv1.3', 'TLSv1.2'];
  if (o.cipherSuites !== undefined) {
    try {
      versions = o.cipherSuites.map((name) => suiteInfo(suiteByName(name))!.version);
    } catch (err) {
      throw new CliError(`${flags.cipher}: ${(err as Error).message}`);
    }
  }
  if (o.minVersion === 'TLSv1.3') versions = versions.filter((v) => v === 'TLSv1.3');
  if (o.maxVersion === 'TLSv1.2') versions = versions.filter((v) => v === 'TLSv1.2');
  const tls13 = versions.includes('TLSv1.3');
  if (!tls13 && tls13Only) throw new CliError('--psk-hash and --tls13-psk-ke are for a TLS 1.3 PSK: this connection is TLS 1.2 only');
  return {
    tls12: versions.includes('TLSv1.2'),
    ...(tls13 ? { tls13: { ...(o.hash ? { hash: o.hash } : {}), ...(o.pskKe ? { keyExchange: 'psk_ke' as const } : {}) } } : {}),
  };
}
