/**
 * Protocol values of RFC 8448, "Example Handshake Traces for TLS 1.3" (M. Thomson, January 2019),
 * as hex: section 2 (the server's RSA key), section 3 (Simple 1-RTT Handshake) and section 5
 * (HelloRetryRequest). Only values the RFC prints are here; each was checked for consistency
 * with node:crypto (the key's primes multiply to the modulus, the protected records open under
 * the RFC's traffic keys to the RFC's plaintext messages, the CertificateVerify signatures
 * verify against the certificate) before it was written down.
 */

/** Decodes hex split over lines; whitespace is ignored, anything else that is not hex throws. */
function hex(...parts: string[]): Buffer {
  const s = parts.join('').replace(/\s+/g, '');
  if (!/^(?:[0-9a-f]{2})*$/i.test(s)) throw new Error('RFC 8448 vector is not whole hex bytes');
  return Buffer.from(s, 'hex');
}

/** Section 2: the server's RSA key, whose certificate (CN=rsa) the Certificate messages carry. */
export const rfc8448ServerRsaKey = {
  /** modulus (public key) (128 octets). */
  modulus: hex(
    'b4bb498f8279303d980836399b36c6988c0c68de55e1bdb826d3901a2461eafd',
    '2de49a91d015abbc9a95137ace6c1af19eaa6af98c7ced43120998e187a80ee0',
    'ccb0524b1b018c3e0b63264d449a6d38e22a5fda430846748030530ef0461c8c',
    'a9d9efbfae8ea6d1d03e2bd193eff0ab9a8002c47428a6d35a8d88d79f7f1e3f',
  ),
  /** public exponent (3 octets). */
  publicExponent: hex('010001'),
  /** private exponent (128 octets). */
  privateExponent: hex(
    '04dea705d43a6ea7209dd8072111a83c81e322a59278b33480641eaf7c0a6985',
    'b8e31c44f6de62e1b4c2309f6126e77b7c41e923314bbfa3881305dc1217f16c',
    '819ce538e922f369828d0e57195d8c8488460207b2faa726bcf708bbd7db7f67',
    '9f893492fc2a622e08970aac441ce4e0c3088df25ae679233df8a3bda2ff9941',
  ),
  /** prime1 (64 octets). */
  prime1: hex(
    'e435fb7cc83737756dacea96ab7f59a2cc1069db7deb190e17e33a532b273f30',
    'a327aa0aaabc58cd67466af9845fadc675fe094af92c4bd1f2c1bc33dd2e0515',
  ),
  /** prime2 (64 octets). */
  prime2: hex(
    'cabd3bc0e0438664c8d4cc9f99977a94d9bbfead8e43870abae3f7eb8b4e0eee',
    '8af1d9b4719ba6196cf2cbbaeeebf8b3490afe9e9ffa74a88aa51fc645629303',
  ),
  /** exponent1 (64 octets). */
  exponent1: hex(
    '3f57345c27fe1b687e6e761627b78b1b826433dd760fa0bea6a6acf39490aa1b',
    '47cda4869d68f584dd5b5029bd32093b8258661fe715025e5d70a45a08d3d319',
  ),
  /** exponent2 (64 octets). */
  exponent2: hex(
    '183da01363bd2f2885cacbdc9964bf4764f1517636f86401286f71893c52ccfe',
    '40a6c23d0d086b47c6fb10d8fd1041e04def7e9a40ce957c417794e10412d139',
  ),
  /** coefficient (64 octets). */
  coefficient: hex(
    '839ca9a085e4286b2c90e466997a2c681f21339aa3477814e4dec11833050ed5',
    '0dd13cc038048a43c59b2acc416889c037665fe5afa605969f8c01dfa5ca969d',
  ),
} as const;

/** Section 3: a full handshake with x25519, TLS_AES_128_GCM_SHA256 and an RSA certificate. */
export const simple1Rtt = {
  /** {client} send handshake record: complete record (the ClientHello) (201 octets). */
  clientHelloRecord: hex(
    '16030100c4010000c00303cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d99',
    '12ec18a2ef6283024dece7000006130113031302010000910000000b00090000',
    '06736572766572ff01000100000a00140012001d001700180019010001010102',
    '0103010400230000003300260024001d002099381de560e4bd43d23d8e435a7d',
    'bafeb3c06e51c13cae4d5413691e529aaf2c002b0003020304000d0020001e04',
    '0305030603020308040805080604010501060102010402050206020202002d00',
    '020101001c00024001',
  ),
  /** {server} create an ephemeral x25519 key pair: private key (32 octets). */
  serverX25519Private: hex('b1580eeadf6dd589b8ef4f2d5652578cc810e9980191ec8d058308cea216a21e'),
  /** {server} create an ephemeral x25519 key pair: public key (32 octets). */
  serverX25519Public: hex('c9828876112095fe66762bdbf7c672e156d6cc253b833df1dd69b1b04e751f0f'),
  /** ServerHello.random (32 octets). */
  serverRandom: hex('a6af06a4121860dc5e6e60249cd34c95930c8ac5cb1434dac155772ed3e26928'),
  /** {server} send handshake record: complete record (the ServerHello) (95 octets). */
  serverHelloRecord: hex(
    '160303005a020000560303a6af06a4121860dc5e6e60249cd34c95930c8ac5cb',
    '1434dac155772ed3e2692800130100002e00330024001d0020c9828876112095',
    'fe66762bdbf7c672e156d6cc253b833df1dd69b1b04e751f0f002b00020304',
  ),
  /** supported_groups the server lists in its EncryptedExtensions. */
  encryptedExtensionsGroups: [0x001d, 0x0017, 0x0018, 0x0019, 0x0100, 0x0101, 0x0102, 0x0103, 0x0104],
  /** {server} construct an EncryptedExtensions handshake message (40 octets). */
  encryptedExtensions: hex(
    '080000240022000a00140012001d00170018001901000101010201030104001c',
    '0002400100000000',
  ),
  /** {server} construct a Certificate handshake message (445 octets). */
  certificate: hex(
    '0b0001b9000001b50001b0308201ac30820115a003020102020102300d06092a',
    '864886f70d01010b0500300e310c300a06035504031303727361301e170d3136',
    '303733303031323335395a170d3236303733303031323335395a300e310c300a',
    '0603550403130372736130819f300d06092a864886f70d010101050003818d00',
    '30818902818100b4bb498f8279303d980836399b36c6988c0c68de55e1bdb826',
    'd3901a2461eafd2de49a91d015abbc9a95137ace6c1af19eaa6af98c7ced4312',
    '0998e187a80ee0ccb0524b1b018c3e0b63264d449a6d38e22a5fda4308467480',
    '30530ef0461c8ca9d9efbfae8ea6d1d03e2bd193eff0ab9a8002c47428a6d35a',
    '8d88d79f7f1e3f0203010001a31a301830090603551d1304023000300b060355',
    '1d0f0404030205a0300d06092a864886f70d01010b05000381810085aad2a0e5',
    'b9276b908c65f73a7267170618a54c5f8a7b337d2df7a594365417f2eae8f8a5',
    '8c8f8172f9319cf36b7fd6c55b80f21a03015156726096fd335e5e67f2dbf102',
    '702e608ccae6bec1fc63a42a99be5c3eb7107c3c54e9b9eb2bd5203b1c3b84e0',
    'a8b2f759409ba3eac9d91d402dcc0cc8f8961229ac9187b42b4de10000',
  ),
  /** {server} construct a CertificateVerify handshake message (rsa_pss_rsae_sha256) (136 octets). */
  certificateVerify: hex(
    '0f000084080400805a747c5d88fa9bd2e55ab085a61015b7211f824cd484145a',
    'b3ff52f1fda8477b0b7abc90db78e2d33a5c141a078653fa6bef780c5ea248ee',
    'aaa785c4f394cab6d30bbe8d4859ee511f602957b15411ac027671459e46445c',
    '9ea58c181e818e95b8c3fb0bf3278409d3be152a3da5043e063dda65cdf5aea2',
    '0d53dfacd42f74f3',
  ),
  /** {server} construct a Finished handshake message (36 octets). */
  serverFinished: hex(
    '140000209b9b141d906337fbd2cbdce71df4deda4ab42c309572cb7fffee5454',
    'b78f0718',
  ),
  /** {server} send handshake record: complete record (EE, Certificate, CertificateVerify, Finished) (679 octets). */
  serverFlightRecord: hex(
    '17030302a2d1ff334a56f5bff6594a07cc87b580233f500f45e489e7f33af35e',
    'df7869fcf40aa40aa2b8ea73f848a7ca07612ef9f945cb960b4068905123ea78',
    'b111b429ba9191cd05d2a389280f526134aadc7fc78c4b729df828b5ecf7b13b',
    'd9aefb0e57f271585b8ea9bb355c7c79020716cfb9b1183ef3ab20e37d57a6b9',
    'd7477609aee6e122a4cf51427325250c7d0e509289444c9b3a648f1d71035d2e',
    'd65b0e3cdd0cbae8bf2d0b227812cbb360987255cc744110c453baa4fcd61092',
    '8d809810e4b7ed1a8fd991f06aa6248204797e36a6a73b70a2559c09ead68694',
    '5ba246ab66e5edd8044b4c6de3fcf2a89441ac66272fd8fb330ef8190579b368',
    '4596c960bd596eea520a56a8d650f563aad27409960dca63d3e688611ea5e22f',
    '4415cf9538d51a200c27034272968a264ed6540c84838d89f72c24461aad6d26',
    'f59ecaba9acbbb317b66d902f4f292a36ac1b639c637ce343117b65962224531',
    '7b49eeda0c6258f100d7d961ffb138647e92ea330faeea6dfa31c7a84dc3bd7e',
    '1b7a6c7178af36879018e3f252107f243d243dc7339d5684c8b0378bf30244da',
    '8c87c843f5e56eb4c5e8280a2b48052cf93b16499a66db7cca71e4599426f7d4',
    '61e66f99882bd89fc50800becca62d6c74116dbd2972fda1fa80f85df881edbe',
    '5a37668936b335583b599186dc5c6918a396fa48a181d6b6fa4f9d62d513afbb',
    '992f2b992f67f8afe67f76913fa388cb5630c8ca01e0c65d11c66a1e2ac4c859',
    '77b7c7a6999bbf10dc35ae69f5515614636c0b9b68c19ed2e31c0b3b66763038',
    'ebba42f3b38edc0399f3a9f23faa63978c317fc9fa66a73f60f0504de93b5b84',
    '5e275592c12335ee340bbc4fddd502784016e4b3be7ef04dda49f4b440a30cb5',
    'd2af939828fd4ae3794e44f94df5a631ede42c1719bfdabf0253fe5175be898e',
    '750edc53370d2b',
  ),
  /** {server} derive write traffic keys for handshake data: key (16 octets). */
  serverHandshakeKey: hex('3fce516009c21727d0f2e4e86ee403bc'),
  /** {server} derive write traffic keys for handshake data: iv (12 octets). */
  serverHandshakeIv: hex('5d313eb2671276ee13000b30'),
  /** {server} derive read traffic keys for handshake data: key (16 octets). */
  clientHandshakeKey: hex('dbfaa693d1762c5b666af5d950258d01'),
  /** {server} derive read traffic keys for handshake data: iv (12 octets). */
  clientHandshakeIv: hex('5bd3c71b836e0b76bb73265f'),
  /** {server} derive write traffic keys for application data: key (16 octets). */
  serverApplicationKey: hex('9f02283b6c9c07efc26bb9f2ac92e356'),
  /** {server} derive write traffic keys for application data: iv (12 octets). */
  serverApplicationIv: hex('cf782b88dd83549aadf1e984'),
  /** {client} construct a Finished handshake message (36 octets). */
  clientFinished: hex(
    '14000020a8ec436d677634ae525ac1fcebe11a039ec17694fac6e98527b642f2',
    'edd5ce61',
  ),
  /** {client} send handshake record: complete record (the client Finished) (58 octets). */
  clientFinishedRecord: hex(
    '170303003575ec4dc238cce60b298044a71e219c56cc77b0517fe9b93c7a4bfc',
    '44d87f38f80338ac98fc46deb384bd1caeacab6867d726c40546',
  ),
  /** {client} send application_data record: payload (50 octets). */
  clientApplicationData: hex(
    '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f',
    '202122232425262728292a2b2c2d2e2f3031',
  ),
  /** {client} send application_data record: complete record (72 octets). */
  clientApplicationDataRecord: hex(
    '1703030043a23f7054b62c94d0affafe8228ba55cbefacea42f914aa66bcab3f',
    '2b9819a8a5b46b395bd54a9a20441e2b62974e1f5a6292a2977014bd1e3deae6',
    '3aeebb21694915e4',
  ),
  /** {client} send alert record: complete record (close_notify) (24 octets). */
  clientAlertRecord: hex('1703030013c9872760655666b74d7ff1153efd6db6d0b0e3'),
} as const;

/** Section 5: the client offers only an x25519 share; the server asks for secp256r1. */
export const helloRetry = {
  /** {client} send handshake record: complete record (the first ClientHello) (185 octets). */
  clientHello1Record: hex(
    '16030100b4010000b00303b0b1c5a5aa37c5919f2ed1d5c6fff7fcb784971694',
    '5a2b8cee9258a346677b6f000006130113031302010000810000000b00090000',
    '06736572766572ff01000100000a00080006001d00170018003300260024001d',
    '0020e8e8e3f3b93a25ed97a14a7dcacb8a272c6288e585c6484d05262fcad062',
    'ad1f002b0003020304000d0020001e0403050306030203080408050806040105',
    '01060102010402050206020202002d00020101001c00024001',
  ),
  /** {server} send handshake record: complete record (the HelloRetryRequest) (181 octets). */
  helloRetryRequestRecord: hex(
    '16030300b0020000ac0303cf21ad74e59a6111be1d8c021e65b891c2a211167a',
    'bb8c5e079e09e2c8a8339c001301000084003300020017002c0074007271dcd0',
    '4bb88bc3189119398a00000000eefafc76c146b823b096f8aacad365dd003095',
    '3f4edf625636e5f21bb2e23fcc654b1b5b40318d10d137abcbb87574e36e8a1f',
    '025f7dfa5d6e50781b5eda4aa15b0c8be778257d16aa3030e9e7841dd9e4c034',
    '2267e8ca0caf571fb2b7cff0f934b0002b00020304',
  ),
  /** the cookie the HelloRetryRequest carries (114 octets). */
  cookie: hex(
    '71dcd04bb88bc3189119398a00000000eefafc76c146b823b096f8aacad365dd',
    '0030953f4edf625636e5f21bb2e23fcc654b1b5b40318d10d137abcbb87574e3',
    '6e8a1f025f7dfa5d6e50781b5eda4aa15b0c8be778257d16aa3030e9e7841dd9',
    'e4c0342267e8ca0caf571fb2b7cff0f934b0',
  ),
  /** {client} send handshake record: complete record (the second ClientHello) (517 octets). */
  clientHello2Record: hex(
    '1603030200010001fc0303b0b1c5a5aa37c5919f2ed1d5c6fff7fcb784971694',
    '5a2b8cee9258a346677b6f000006130113031302010001cd0000000b00090000',
    '06736572766572ff01000100000a00080006001d001700180033004700450017',
    '004104a6da7392ec591e17abfd535964b99894d13befb221b3def2ebe3830eac',
    '8f0151812677c4d6d2237e85cf01d6910cfb83954e76ba7352830534159897e8',
    '065780002b0003020304000d0020001e04030503060302030804080508060401',
    '0501060102010402050206020202002c0074007271dcd04bb88bc3189119398a',
    '00000000eefafc76c146b823b096f8aacad365dd0030953f4edf625636e5f21b',
    'b2e23fcc654b1b5b40318d10d137abcbb87574e36e8a1f025f7dfa5d6e50781b',
    '5eda4aa15b0c8be778257d16aa3030e9e7841dd9e4c0342267e8ca0caf571fb2',
    'b7cff0f934b0002d00020101001c00024001001500af00000000000000000000',
    '0000000000000000000000000000000000000000000000000000000000000000',
    '0000000000000000000000000000000000000000000000000000000000000000',
    '0000000000000000000000000000000000000000000000000000000000000000',
    '0000000000000000000000000000000000000000000000000000000000000000',
    '0000000000000000000000000000000000000000000000000000000000000000',
    '0000000000',
  ),
  /** {server} create an ephemeral P-256 key pair: private key (32 octets). */
  serverP256Private: hex('8c510601f9765bfb8ed693449a48989859b5cfa879cb9f5443c41c5ff10634ed'),
  /** {server} create an ephemeral P-256 key pair: public key (65 octets). */
  serverP256Public: hex(
    '04583e054b7a66672ae020ad9d2686fcc85b5ad41a134a0f03ee72b893052bd8',
    '5b4c8de6776f5b04ac07d83540eab3e3d9c547bc6528c4317d294686093a6cad',
    '7d',
  ),
  /** ServerHello.random (32 octets). */
  serverRandom: hex('bb341d847fd789c47c387172dc0c9bf147fccacb5043d86ca4c598d3ff571b98'),
  /** {server} send handshake record: complete record (the ServerHello) (128 octets). */
  serverHelloRecord: hex(
    '160303007b020000770303bb341d847fd789c47c387172dc0c9bf147fccacb50',
    '43d86ca4c598d3ff571b9800130100004f003300450017004104583e054b7a66',
    '672ae020ad9d2686fcc85b5ad41a134a0f03ee72b893052bd85b4c8de6776f5b',
    '04ac07d83540eab3e3d9c547bc6528c4317d294686093a6cad7d002b00020304',
  ),
  /** supported_groups the server lists in its EncryptedExtensions. */
  encryptedExtensionsGroups: [0x0017, 0x0018, 0x001d],
  /** {server} construct an EncryptedExtensions handshake message (28 octets). */
  encryptedExtensions: hex('080000180016000a0008000600170018001d001c0002400100000000'),
  /** {server} construct a Certificate handshake message: the same 445 octets as section 3. */
  certificate: simple1Rtt.certificate,
  /** {server} construct a CertificateVerify handshake message (rsa_pss_rsae_sha256) (136 octets). */
  certificateVerify: hex(
    '0f0000840804008033ab13d4462707231b5dcae6c8190b63d1dabc74f28c3953',
    '70da0b07e5b83066d0246a31acd95df475bfd799a4a70d33ad93d3a317a9b2c0',
    'd237a5685b219e774112e391a247607d1aeff1bbd0a39f382ee1a5fe88ae99ec',
    '59228e6497e45d48ce275a6d5ef40d169fb6f9d33b052ed3dcdd6b5a48baafff',
    'bcb290128415bd38',
  ),
  /** {server} construct a Finished handshake message (36 octets). */
  serverFinished: hex(
    '140000208863e6bfb0420a927fa27f34336a70ae426e968e3eb884945b96856d',
    'ba3976d1',
  ),
  /** {server} send handshake record: complete record (EE, Certificate, CertificateVerify, Finished) (667 octets). */
  serverFlightRecord: hex(
    '170303029699bee20baf5b7fc727bfab6223928a381e6d0cf9c4da653f9d2a7b',
    '23f7de11cce842d5cf75631763450ffb8b0cc1d238e658af7a12adc86243114a',
    'b14a1da2fae42621ce483fb6242eabfaad52566b02b31d2eddedefeb80e66a99',
    '00d5f973b40c4fdf74719ecf1b68d7f9c3b6ceb903ca13dd1bb8f8187ae33417',
    'e1d152522c5822a1a03ad52c838c55953d610222874cce8e1790b229a2aa0b53',
    'c8d377ee720182951dc6181dc5d90bd1f0105ed1e84aa5f75957c6661897079e',
    '5ea5007449e3197bdc7c9beeedddeafdd844afa5c315ecfe65e576afe9098128',
    '80620ec7048b42d7f5c78d76f299d6d82534bdd8f512febc0ed3814aca470cd8',
    '000d3e1cb9962b052fbb950df683a52c2ba77ed3713b122937a6e5170964e2ab',
    '7969dcd980b3db9b458da7603124d6dc005e4d6e04b4d0c4baf3275db827dbba',
    '0a6db09672171fc057b3851d7e026841e2978fbd2346bbefdd0376bb1108fe9a',
    'cc92189f5650aa5e85d8e8c7b67ac510dba003d3d7e16350bb66d45013efd44c',
    '9b607c0d318c4c7d1a1f5cbc57e20611804e3787d7b4a4b5f08ed8fd70bdaead',
    'e02260b12ab842ef690b4a3ee7911e841b374ecd5ebbbc2a54d047b600336dd7',
    'd0c88b4bc10e58ee6cb656de7247fa20d8e91deb84628608cf80615b62e96c14',
    '91c7ac3755eb6901405d3474fe1ac79d106a0cee56c2577fc88480f96cb6b8c6',
    '81b7b68b53c146093908f350888175bdfb0b1e31ad61e30ba0adfe6d223aa03c',
    '0783b5001a57587c328a9afcfcfb978d1cd4328f7d9d60530e630befd96c0c81',
    '6ee20b0100768ae2a6df51fc68f172740a79af11398ee3be1252491fa9c69347',
    '9e877f94ab7c5f8cad480203e6ab7b87dd71e8a0729113df17f5eee86ce108d1',
    'd72007ec1cd13c85a6c149621e77b7d78d805a30f0be030c315e54',
  ),
  /** {server} derive write traffic keys for handshake data: key (16 octets). */
  serverHandshakeKey: hex('4646bfac1712c426cd78d8a24a8a6f6b'),
  /** {server} derive write traffic keys for handshake data: iv (12 octets). */
  serverHandshakeIv: hex('c7d395c08d62f297d13768ea'),
  /** {server} derive write traffic keys for application data: key (16 octets). */
  serverApplicationKey: hex('f27a5d97bd25550c4823b0f3e5d29388'),
  /** {server} derive write traffic keys for application data: iv (12 octets). */
  serverApplicationIv: hex('0dd631f7b71cbbc797c35fe7'),
  /** {client} send handshake record: complete record (the client Finished) (58 octets). */
  clientFinishedRecord: hex(
    '1703030035d74f1923c662fd34137c6f502f3dd2b93d951d1b3bc97e42afe23c',
    '31abea92fe91b474999e85e3b791ce252fe8c3e9f939a4120cb2',
  ),
} as const;
