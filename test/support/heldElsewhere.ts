import type { KeyOperations } from '../../src/keys/keyOperations.js';

/**
 * `key` as a key holder other than an in-process LocalKey (a key process, keyd or an HSM
 * is one to the engine): its signatures are verified before they reach a peer, so tests
 * of that check answer with a bad signature through one of these.
 */
export function heldElsewhere(key: KeyOperations): KeyOperations {
  return {
    publicKey: key.publicKey,
    schemes: key.schemes,
    keyId: key.keyId,
    sign: (scheme, message, ctx, signal) => key.sign(scheme, message, ctx, signal),
  };
}
