/**
 * keyward: TLS for Node.js whose private keys stay in a key holder.
 */
export { createServer, KeywardServer, serverConfigFrom, type KeywardServerOptions, type CertificateWithKey } from './node/server.js';
export {
  createHttpsServer,
  createHttp2SecureServer,
  tlsSocketOf,
  type KeywardHttpsServerOptions,
  type KeywardHttp2ServerOptions,
  type WithTlsAcceptor,
} from './node/http.js';
export { TlsAcceptor } from './node/acceptor.js';
export { startKeyProcess, KeyProcessKey, startPskProcess, KeyProcessPsk, type KeyProcessOptions, type PskProcessOptions } from './keys/keyProcess.js';
export { connectRemoteKey, connectRemotePsk, connectKeydAdmin, RemoteKey, RemotePsk, KeydClient, KeydAdmin, type RemoteKeyOptions, type KeydClientOptions } from './keys/remoteKey.js';
export { startKeyd, type Keyd, type StartKeydOptions } from './keyd/server.js';
export { loadKeydConfig, parseKeydConfig, KeydConfigError, type KeydConfig } from './keyd/config.js';
export { verifyAuditLog } from './keyd/audit.js';
export { KeywardProxy, DEFAULT_PROXY_LIMITS, type ProxyGeneration, type ProxyCertificate, type ProxyLimits, type ProxyOptions } from './proxy/proxyServer.js';
export { encodeProxyV2, decodeProxyV2, ProxyHeaderError, type ProxyHeaderInfo, type DecodedProxyV2 } from './proxy/proxyProtocol.js';
export { parseEndpoint, type Endpoint } from './proxy/endpoint.js';
export { openPkcs11Key, Pkcs11Key, type OpenPkcs11KeyOptions } from './keys/pkcs11Key.js';
export { KeywardTLSSocket, TlsHandshakeError, type KeywardTLSSocketOptions } from './node/tlsSocket.js';
export { connect, KeywardClientSocket, clientConfigFrom, type KeywardConnectOptions } from './node/clientSocket.js';
export { KeywardAgent, type KeywardAgentOptions } from './node/agent.js';
export { TicketKeyRing, type TicketKeyRingOptions } from './tls/resumption/ticketKeys.js';
export { CertificateVerificationError, verifyChain, type CheckServerIdentity } from './node/peerVerification.js';
export { TlsClientConnection } from './tls/engine/clientConnection.js';
export { resolveClientConfig, type ClientConfig, type ClientConfigInput, type ClientPskConfig, type ClientTls13PskConfig } from './tls/engine/clientConfig.js';
export { TlsConnection } from './tls/engine/connection.js';
export { TlsServerConnection } from './tls/engine/serverConnection.js';
export { certifiedKey, type CertifiedKey, type DelegatedCredentialSource } from './tls/engine/certificates.js';
export {
  DelegatedCredentialManager,
  checkCertificateCanDelegate,
  type DelegatedCredentialManagerOptions,
  type CurrentDelegatedCredential,
  type DelegatedCredentialEvent,
  type DelegatedCredentialStats,
  type DelegatedCredentialKeyType,
  type CanDelegate,
} from './keys/delegatedCredentials.js';
export { type DelegatedCredentialIssuer, type DelegatedCredentialRequest, type DelegationSide } from './keys/delegatedCredentialIssuer.js';
export { LocalDelegatedCredentialIssuer, type LocalDelegatedCredentialIssuerOptions } from './keys/localDelegatedCredentialIssuer.js';
export { resolveServerConfig, type ServerConfig, type ServerConfigInput, type Tls13PskServerConfig } from './tls/engine/config.js';
export type {
  EngineEvent,
  KeyOperationRequest,
  SignRequest,
  DecryptPremasterRequest,
  PskMasterSecretOperation,
  Tls13PskOperation,
  Tls13PskStepRequest,
  PeerVerificationRequest,
  PeerVerdict,
  NegotiatedInfo,
} from './tls/engine/events.js';
export { LocalKey, localKey } from './keys/localKey.js';
export { LocalPsk, localPsk, type LocalPskOptions } from './keys/localPsk.js';
export {
  KeyOperationError,
  type KeyOperations,
  type CertificateKey,
  type PremasterDecryption,
  type OperationContext,
  type PskOperations,
  type Tls13PskOperations,
} from './keys/keyOperations.js';
export { SignatureScheme } from './tls/crypto/signatureSchemes.js';
export { CipherSuite } from './tls/crypto/cipherSuites.js';
export { NamedGroup } from './tls/crypto/groups.js';
export { CertificateCompressionAlgorithm } from './tls/wire/compressedCertificate.js';
