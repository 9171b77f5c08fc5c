/**
 * What a TLS client (`keyward connect`, `keyward proxy --client`) authenticates with: a
 * client certificate whose key is in a key holder, and/or a PSK in a PSK holder,
 * opened from the same key settings (flags or configuration file) as a server front's.
 */
import type { CertificateKey, PskOperations, Tls13PskOperations } from '../keys/keyOperations.js';
import { certificateSpecs, keySourceOptions, pskSettings } from './frontOptions.js';
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
  const source = pskSettings(s)?.source;
  if (source === undefined) {
    if (pskIdentity !== undefined) throw new CliError('--psk-identity needs a PSK source: --psk-keyd, --psk-process --psk-file, or --psk-file');
    return certificate ? { certificate } : {};
  }
  if (pskIdentity === undefined) throw new CliError('a PSK needs --psk-identity (the identity this client sends)');
  const opened = await sources.openPsk(source);
  return { ...(certificate ? { certificate } : {}), psk: { holder: opened.holder, identity: pskIdentity, backend: opened.backend, describe: () => opened.describe() } };
}
