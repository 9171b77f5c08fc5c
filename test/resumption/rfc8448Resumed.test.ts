/**
 * RFC 8448 section 4 (Resumed 0-RTT Handshake) from the client side: given the RFC's
 * ticket, PSK and ticket age, its random and x25519 key, and the RFC client's extension
 * order, keyward's client sends the RFC's ClientHello record byte for byte — binder
 * included, computed over the truncated hello.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { CipherSuite } from '../../src/tls/crypto/cipherSuites.js';
import { generateKeyExchange, NamedGroup } from '../../src/tls/crypto/groups.js';
import { resolveClientConfig } from '../../src/tls/engine/clientConfig.js';
import { TlsClientConnection } from '../../src/tls/engine/clientConnection.js';
import { localKeyStages } from '../../src/tls/engine/keyStages13.js';
import type { ClientSession } from '../../src/tls/resumption/clientSession.js';
import { ExtensionType } from '../../src/tls/wire/constants.js';
import { earlyDataExt, paddingExt, renegotiationInfoExt, signatureAlgorithmsExt, supportedGroupsExt } from '../../src/tls/wire/extensionCodecs.js';
import type { Extension } from '../../src/tls/wire/extensions.js';
import { parseNewSessionTicket13 } from '../../src/tls/wire/messages13.js';
import { resumed0Rtt, rfcClientGroups, rfcClientSchemes, simple1RttTicket } from '../support/rfc8448ResumptionVectors.js';

const NOW = 1_548_000_000_000;
const nst = parseNewSessionTicket13(simple1RttTicket.newSessionTicket.subarray(4));
const bindersTail = Buffer.concat([Buffer.of(0x00, 0x21, 0x20), resumed0Rtt.binder]);
const clientHello = Buffer.concat([resumed0Rtt.clientHelloPrefix, bindersTail]);
const clientHelloRecord = Buffer.concat([Buffer.of(22, 3, 1, clientHello.length >> 8, clientHello.length & 0xff), clientHello]);

/** The RFC client's session: section 3's ticket, received 6 ms before the ClientHello. */
const session: ClientSession = {
  version: 'TLSv1.3',
  cipherSuite: CipherSuite.TLS_AES_128_GCM_SHA256,
  secret: simple1RttTicket.psk,
  ticket: nst.ticket,
  sessionId: new Uint8Array(0),
  receivedAt: NOW - ((resumed0Rtt.obfuscatedTicketAge - nst.ageAdd) >>> 0),
  lifetime: nst.lifetime,
  ageAdd: nst.ageAdd,
  maxEarlyData: nst.maxEarlyDataSize ?? 0,
  serverName: 'server',
  alpnProtocol: undefined,
  extendedMasterSecret: false,
  peerCertificates: [],
};

/**
 * The RFC client's extensions in its order, keyward's own where keyward builds the same
 * (server_name, key_share, supported_versions, psk_key_exchange_modes, record_size_limit,
 * pre_shared_key), NSS's lists and its early_data and padding around them.
 */
function rfcExtensions(built: Extension[]): Extension[] {
  const own = (t: number) => {
    const e = built.find((x) => x.type === t);
    assert.ok(e, `the client built extension ${t}`);
    return e;
  };
  return [
    own(ExtensionType.server_name),
    renegotiationInfoExt.encode(new Uint8Array(0)),
    supportedGroupsExt.encode(rfcClientGroups),
    own(ExtensionType.key_share),
    earlyDataExt.encode(),
    own(ExtensionType.supported_versions),
    signatureAlgorithmsExt.encode(rfcClientSchemes),
    own(ExtensionType.psk_key_exchange_modes),
    own(ExtensionType.record_size_limit),
    paddingExt.encode(87),
    own(ExtensionType.pre_shared_key),
  ];
}

describe('RFC 8448 section 4 from the client side', () => {
  it('the vectors agree: the binder hash is SHA-256 of the prefix, and the local key stages give the RFC binder', () => {
    assert.deepEqual(createHash('sha256').update(resumed0Rtt.clientHelloPrefix).digest(), resumed0Rtt.binderHash);
    const binder = localKeyStages('sha256', simple1RttTicket.psk).binder(resumed0Rtt.binderHash);
    assert.deepEqual('value' in binder && binder.value, resumed0Rtt.binder);
  });

  it('offers the section 3 ticket in the RFC ClientHello record, byte for byte (binder over the truncated hello)', () => {
    const config = resolveClientConfig({
      serverName: 'server',
      minVersion: 'TLSv1.3',
      tls13CipherSuites: [CipherSuite.TLS_AES_128_GCM_SHA256, CipherSuite.TLS_CHACHA20_POLY1305_SHA256, CipherSuite.TLS_AES_256_GCM_SHA384],
      groups: [NamedGroup.x25519],
      compatibilityMode: false,
      helloExtensions: rfcExtensions,
      session,
    });
    const conn = new TlsClientConnection(config, {
      random: (n) => {
        assert.equal(n, 32, 'the client draws only its random');
        return Buffer.from(resumed0Rtt.clientHelloPrefix.subarray(6, 38));
      },
      keyShareFactory: (g) => generateKeyExchange(g, resumed0Rtt.clientX25519Private),
      now: () => NOW,
    });
    const out = Buffer.concat(conn.takeOutput());
    assert.deepEqual(conn.takeEvents(), []);
    assert.equal(out.toString('hex'), clientHelloRecord.toString('hex'));
  });
});
