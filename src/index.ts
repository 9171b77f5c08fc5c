/**
 * keyward: TLS for Node.js whose private keys stay in a key holder.
 */
export { createServer, KeywardServer, serverConfigFrom, type KeywardServerOptions, type CertificateWithKey } from './node/server.js';
export { createHttpsServer, createHttp2SecureServer } from './node/http.js';
export { KeywardTLSSocket, TlsHandshakeError } from './node/tlsSocket.js';
export { TlsServerConnection } from './tls/engine/serverConnection.js';
export { certifiedKey, type CertifiedKey } from './tls/engine/certificates.js';
export { resolveServerConfig, type ServerConfig, type ServerConfigInput } from './tls/engine/config.js';
export type { EngineEvent, KeyOperationRequest, NegotiatedInfo } from './tls/engine/events.js';
export { LocalKey, localKey } from './keys/localKey.js';
export { KeyOperationError, type KeyOperations, type OperationContext, type PskOperations } from './keys/keyOperations.js';
export { SignatureScheme } from './tls/crypto/signatureSchemes.js';
export { CipherSuite } from './tls/crypto/cipherSuites.js';
export { NamedGroup } from './tls/crypto/groups.js';
