/**
 * The group keyward's default preference picks for a client, which depends on the Node the
 * test runs on: X25519MLKEM768 comes first where node:crypto has ML-KEM (Node 24.7+), x25519
 * first otherwise (see recommendedGroupPreference).
 */
import { nativeMlKem768 } from '../../src/tls/crypto/mlkem.js';

/** Whether this process's OpenSSL (node:tls) sends an X25519MLKEM768 share first (OpenSSL 3.5+). */
export const nodeTlsOffersHybrid = /^(3\.([5-9]|\d\d)|[4-9]\.)/.test(process.versions.openssl);

/** Group name keyward negotiates with a client that sends X25519MLKEM768 and X25519 shares (Chromium, Firefox). */
export const groupWithHybridClient = nativeMlKem768 ? 'X25519MLKEM768' : 'x25519';

/** Group name keyward negotiates with a node:tls client of this same process, default options. */
export const groupWithNodeTlsClient = nativeMlKem768 && nodeTlsOffersHybrid ? 'X25519MLKEM768' : 'x25519';
