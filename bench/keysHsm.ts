/**
 * SoftHSM2 part of bench/keys, in its own process (SoftHSM reads its configuration when
 * first initialized): a temporary token with a P-256 and an RSA-2048 key generated
 * inside it; then, alternating, signs/s through pkcs11Key's worker pool (the event loop
 * stays free) and through a synchronous C_SignInit + C_Sign on the main thread, one sign
 * per turn of the event loop (the loop is blocked during each C_Sign). For each mode: the
 * longest and 99th-percentile event-loop delay (monitorEventLoopDelay, 1 ms resolution),
 * the share of time the loop was busy and the main thread's busy time per sign
 * (event-loop utilization). Prints one JSON line.
 *
 *   node dist/bench/keysHsm.js SECONDS INFLIGHT REPEATS
 */
import { createHash, verify } from 'node:crypto';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { setImmediate as yieldLoop } from 'node:timers/promises';
import pkcs11js from 'pkcs11js';
import { openPkcs11Key } from '../src/keys/pkcs11Key.js';
import { acquirePkcs11Module } from '../src/keys/pkcs11Module.js';
import { SignatureScheme } from '../src/tls/crypto/signatureSchemes.js';
import { createSoftHsmToken, type SoftHsmKey, type SoftHsmToken } from '../test/support/softhsm.js';
import { certificateVerifyInput, medianOf } from './keysProc.js';

const seconds = Number(process.argv[2] ?? 3);
const inflight = Number(process.argv[3] ?? 16);
const repeats = Number(process.argv[4] ?? 2);

interface ModeResult {
  rate: number;
  /** Longest event-loop stall seen, ms. */
  maxStallMs: number;
  /** 99th percentile of the event-loop delay, ms. */
  p99StallMs: number;
  /** Share of the time the event loop was busy (event-loop utilization, 0..1). */
  loopBusy: number;
  /** Main-thread busy time per sign, µs. */
  mainUsPerSign: number;
}

const CTX = { tlsVersion: 'TLSv1.3' as const, purpose: 'tls13-server-certificate-verify' as const };

/** Runs `body` for `seconds` while watching the event loop. */
async function measure(body: (until: number) => Promise<number>): Promise<ModeResult> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const elu0 = performance.eventLoopUtilization();
  const t0 = performance.now();
  const n = await body(t0 + seconds * 1000);
  const ms = performance.now() - t0;
  const elu = performance.eventLoopUtilization(elu0);
  h.disable();
  return { rate: n / (ms / 1000), maxStallMs: h.max / 1e6, p99StallMs: h.percentile(99) / 1e6, loopBusy: elu.utilization, mainUsPerSign: (elu.active * 1000) / n };
}

async function poolRun(token: SoftHsmToken, key: SoftHsmKey, scheme: SignatureScheme): Promise<ModeResult> {
  const k = await openPkcs11Key({ uri: key.uri, module: token.module, pin: token.pin });
  try {
    // Warm-up: start the workers and their sessions.
    await Promise.all(Array.from({ length: inflight }, () => k.sign(scheme, certificateVerifyInput(), CTX, new AbortController().signal)));
    return await measure(async (until) => {
      let n = 0;
      const worker = async (): Promise<void> => {
        while (performance.now() < until) {
          await k.sign(scheme, certificateVerifyInput(), CTX, new AbortController().signal);
          n++;
        }
      };
      await Promise.all(Array.from({ length: inflight }, worker));
      return n;
    });
  } finally {
    await k.close();
  }
}

async function syncRun(token: SoftHsmToken, key: SoftHsmKey, rsa: boolean): Promise<ModeResult> {
  const mod = acquirePkcs11Module(token.module);
  const lib = mod.lib;
  const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trimEnd() === token.label);
  if (!slot) throw new Error('bench token not found');
  const session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
  try {
    try {
      lib.C_Login(session, pkcs11js.CKU_USER, token.pin);
    } catch {
      // Logged in already through another session of this process.
    }
    lib.C_FindObjectsInit(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
      { type: pkcs11js.CKA_ID, value: Buffer.from(key.id) },
    ]);
    const handle = lib.C_FindObjects(session);
    lib.C_FindObjectsFinal(session);
    if (!handle) throw new Error('bench key not found in the token');
    const mechs = new Set(lib.C_GetMechanismList(slot));
    // The same mechanisms pkcs11Key picks on SoftHSM: hash-and-sign on the token when offered.
    const ecOnToken = mechs.has(pkcs11js.CKM_ECDSA_SHA256);
    const pss: pkcs11js.RsaPSS = { type: pkcs11js.CK_PARAMS_RSA_PSS, hashAlg: pkcs11js.CKM_SHA256, mgf: pkcs11js.CKG_MGF1_SHA256, saltLen: 32 };
    const mechanism: pkcs11js.Mechanism = rsa ? { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS_PSS, parameter: pss } : { mechanism: ecOnToken ? pkcs11js.CKM_ECDSA_SHA256 : pkcs11js.CKM_ECDSA };
    const out = Buffer.alloc(rsa ? 256 : 64);
    const signOnce = (): Buffer => {
      const msg = certificateVerifyInput();
      lib.C_SignInit(session, mechanism, handle);
      return lib.C_Sign(session, rsa || ecOnToken ? msg : createHash('sha256').update(msg).digest(), out);
    };
    // Check once that this loop makes real signatures.
    const probe = certificateVerifyInput();
    lib.C_SignInit(session, mechanism, handle);
    const sig = lib.C_Sign(session, rsa || ecOnToken ? probe : createHash('sha256').update(probe).digest(), Buffer.alloc(out.length));
    const ok = rsa
      ? verify('sha256', probe, { key: key.publicKey, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: 32 }, sig)
      : verify('sha256', probe, { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, sig);
    if (!ok) throw new Error('synchronous C_Sign produced a bad signature');
    return await measure(async (until) => {
      let n = 0;
      while (performance.now() < until) {
        signOnce();
        n++;
        // One sign per turn, as a server signing inline when each request needs it.
        await yieldLoop();
      }
      return n;
    });
  } finally {
    try {
      lib.C_CloseSession(session);
    } catch {
      // Ignore.
    }
    mod.release();
  }
}

const token = await createSoftHsmToken({ label: 'keyward-bench' });
try {
  const keys = { p256: await token.generateKey('ec-p256', 'bench-p256'), rsa: await token.generateKey('rsa-2048', 'bench-rsa') };
  const out: Record<string, { pool: ModeResult; sync: ModeResult }> = {};
  for (const [name, key, scheme] of [
    ['P-256', keys.p256, SignatureScheme.ecdsa_secp256r1_sha256],
    ['RSA-2048 PSS', keys.rsa, SignatureScheme.rsa_pss_rsae_sha256],
  ] as const) {
    const pool: ModeResult[] = [];
    const sync: ModeResult[] = [];
    for (let i = 0; i < repeats; i++) {
      pool.push(await poolRun(token, key, scheme));
      sync.push(await syncRun(token, key, name.startsWith('RSA')));
    }
    out[name] = { pool: medianOf(pool), sync: medianOf(sync) };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
} finally {
  token.cleanup();
}
