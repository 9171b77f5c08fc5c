import { KeyOperationError } from '../keys/keyOperations.js';
import type { KeyOperationRequest } from '../tls/engine/events.js';

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
    }
  } catch (err) {
    return Promise.reject(err);
  }
  return Promise.resolve(op).then((result) => {
    if (!(result instanceof Uint8Array)) throw new KeyOperationError('internal', 'key holder returned something other than bytes');
    return result;
  });
}
