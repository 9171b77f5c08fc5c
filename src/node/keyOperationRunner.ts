import { KeyOperationError } from '../keys/keyOperations.js';
import type { KeyOperationRequest, Tls13PskOperation } from '../tls/engine/events.js';

/**
 * Starts the key holder's work for one engine request, whatever its kind and whichever the
 * role: the one place the Node adapters call a key holder. A backend that throws instead of
 * rejecting, or answers something other than bytes, fails only this operation.
 */
export function runKeyOperation(req: KeyOperationRequest, signal: AbortSignal): Promise<Uint8Array> {
  let op: Promise<Uint8Array>;
  try {
    switch (req.kind) {
      case 'sign':
        op = req.key.sign(req.scheme, req.message, req.context, signal);
        break;
      case 'decryptPremaster':
        // LocalKey's decryption is synchronous (about 1 ms for RSA-2048); the isolated backends are asynchronous.
        op = req.key.decryptPremaster(req.ciphertext, req.clientVersion, req.context, signal);
        break;
      case 'pskMasterSecret':
        op = req.holder.tls12MasterSecret(req.request, req.context, signal);
        break;
      case 'tls13Psk':
        op = runTls13PskStep(req, signal);
        break;
    }
  } catch (err) {
    return Promise.reject(err);
  }
  return Promise.resolve(op).then((result) => {
    if (!(result instanceof Uint8Array)) throw new KeyOperationError('internal', 'key holder returned something other than bytes');
    return result;
  });
}

/** A TLS 1.3 external-PSK step through its holder, its answer as the bytes Tls13PskOperation names. */
async function runTls13PskStep(req: Tls13PskOperation, signal: AbortSignal): Promise<Uint8Array> {
  const { holder, step: s, context } = req;
  switch (s.step) {
    case 'binder':
      return holder.tls13Binder(s.request, context, signal);
    case 'verify-binder': {
      const accepted: unknown = await holder.tls13VerifyBinder(s.request, context, signal);
      if (typeof accepted !== 'boolean') throw new KeyOperationError('internal', 'PSK holder answered a binder check with something other than a boolean');
      return Uint8Array.of(accepted ? 1 : 0);
    }
    case 'handshake-secrets': {
      const t = await holder.tls13HandshakeSecrets(s.request, context, signal);
      return joined(t.client, t.server);
    }
    case 'application-secrets': {
      const t = await holder.tls13ApplicationSecrets(s.request, context, signal);
      return joined(t.client, t.server, t.exporter);
    }
    case 'resumption-master-secret':
      if (!holder.tls13ResumptionMasterSecret) throw new KeyOperationError('unsupported', 'this PSK holder gives no resumption master secret');
      return holder.tls13ResumptionMasterSecret(s.request, context, signal);
  }
}

/** The secrets one after the other; the holder's copies are zeroed. */
function joined(...secrets: unknown[]): Buffer {
  if (!secrets.every((x) => x instanceof Uint8Array)) throw new KeyOperationError('internal', 'PSK holder answered something other than bytes');
  const parts = secrets as Uint8Array[];
  const out = Buffer.concat(parts);
  for (const p of parts) p.fill(0);
  return out;
}
