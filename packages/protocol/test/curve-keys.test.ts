/** CURVE keys as text: Z85, key files, allow-lists (curve-keys.ts). */
import t from 'tap';
import * as zmq from 'zeromq';
import {
  curvePublicKey,
  formatPublicKeyFile,
  formatSecretKeyFile,
  generateCurveKeyPair,
  isCurveKey,
  parseAllowList,
  parsePublicKeyFile,
  parseSecretKeyFile,
  z85Decode,
  z85Encode,
} from '../src/index.ts';

t.test('Z85 as in ZeroMQ RFC 32', (t) => {
  const hello = Buffer.from([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b]);
  t.equal(z85Encode(hello), 'HelloWorld', 'the RFC test vector');
  t.same(z85Decode('HelloWorld'), hello);
  t.equal(z85Decode('Hello'.repeat(1) + 'Worl'), null, 'not a multiple of 5');
  t.equal(z85Decode('Hell~'), null, 'a character outside the alphabet');
  t.equal(z85Decode('%%%%%'), null, 'a group over 2^32');
  t.throws(() => z85Encode(Buffer.alloc(3)), RangeError);
  const pair = zmq.curveKeyPair();
  t.ok(isCurveKey(pair.publicKey) && isCurveKey(pair.secretKey), 'zeromq keys are CURVE keys');
  t.notOk(isCurveKey(pair.publicKey.slice(1)), '39 characters are not');
  t.notOk(isCurveKey('%'.repeat(40)), 'nor 40 that do not decode');
  t.end();
});

t.test('public keys are derived as libzmq derives them; new keypairs work with zeromq', async (t) => {
  for (let i = 0; i < 20; i++) {
    const pair = zmq.curveKeyPair();
    t.equal(curvePublicKey(pair.secretKey), pair.publicKey, `keypair ${i} from zeromq`);
  }
  t.throws(() => curvePublicKey('short'), { code: 'ECURVEKEY' });
  const server = generateCurveKeyPair();
  const client = generateCurveKeyPair();
  t.equal(curvePublicKey(server.secretKey), server.publicKey);
  const router = new zmq.Router({ curveServer: true, curveSecretKey: server.secretKey, linger: 0 });
  await router.bind('tcp://127.0.0.1:*');
  const dealer = new zmq.Dealer({ curveServerKey: server.publicKey, curvePublicKey: client.publicKey, curveSecretKey: client.secretKey, linger: 0 });
  dealer.connect(router.lastEndpoint!);
  await dealer.send('over CURVE');
  const [, msg] = await router.receive();
  t.equal(msg!.toString(), 'over CURVE', 'a keypair from generateCurveKeyPair() completes a CURVE handshake');
  dealer.close();
  router.close();
});

t.test('secret key files: ours, CZMQ certificates, bare keys; mistakes are named', (t) => {
  const pair = generateCurveKeyPair();
  t.same(parseSecretKeyFile(formatSecretKeyFile(pair, 'w1')), pair, 'what keygen writes reads back');
  const czmq = [
    '#   ****  Generated on 2024-01-01 12:00:00 by CZMQ  ****',
    '#   ZeroMQ CURVE **Secret** Certificate',
    '#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.',
    '',
    'metadata',
    '    name = "w1"',
    'curve',
    `    public-key = "${pair.publicKey}"`,
    `    secret-key = "${pair.secretKey}"`,
    '',
  ].join('\n');
  t.same(parseSecretKeyFile(czmq), pair, 'a CZMQ secret certificate');
  t.same(parseSecretKeyFile(`${pair.secretKey}\n`), pair, 'a file with nothing but the secret key');
  t.same(parseSecretKeyFile(`secret-key = ${pair.secretKey}\r\n`), pair, 'no quotes, CRLF');
  const other = generateCurveKeyPair();
  t.throws(() => parseSecretKeyFile(`public-key = "${other.publicKey}"\nsecret-key = "${pair.secretKey}"\n`, 'w1.key'), { code: 'ECURVEKEY', message: /w1\.key: its public-key does not belong to its secret-key/ });
  t.throws(() => parseSecretKeyFile(formatPublicKeyFile(pair.publicKey, 'w1')), { message: /holds no CURVE secret key/ });
  t.throws(() => parseSecretKeyFile(`public-key = "${pair.publicKey}"\n`), { message: /holds a public key only/ });
  t.throws(() => parseSecretKeyFile('secret-key = "tooshort"\n', 'k'), { message: /k, line 1: secret-key is not 40 characters of Z85/ });
  t.end();
});

t.test('allow-lists: one key a line, labels, comments; a bad line is an error naming it', (t) => {
  const a = generateCurveKeyPair().publicKey;
  const b = generateCurveKeyPair().publicKey;
  // Z85 has '#', but no key starts with it: 84 × 85^4 is over 2^32. A '#' line is always a comment.
  t.notOk(isCurveKey(`#${a.slice(1)}`), 'no key starts with #');
  const text = [
    '# workers of the farm',
    '',
    `${a} host-a`,
    `   ${b}   host b, rack 2   `,
    `# ${generateCurveKeyPair().publicKey} retired`,
    `#${generateCurveKeyPair().publicKey}`,
    `public-key = "${a}"`,
  ].join('\n');
  t.same(parseAllowList(text), [
    { key: a, label: 'host-a' },
    { key: b, label: 'host b, rack 2' },
    { key: a, label: '' },
  ]);
  t.same(parseAllowList(''), [], 'an empty list admits nobody');
  t.throws(() => parseAllowList(`${a}\nnot-a-key host\n`, 'workers.allow'), { code: 'ECURVEKEY', message: /workers\.allow, line 2: not a CURVE public key/ });
  t.throws(() => parseAllowList(`${a.slice(0, 39)}\n`), { message: /line 1/ }, 'a key one character short');
  t.throws(() => parseAllowList(`secret-key = "${a}"\n`), { message: /a secret key does not belong/ });
  t.equal(parsePublicKeyFile(formatPublicKeyFile(b, 'host-b')), b, 'a .pub file');
  t.throws(() => parsePublicKeyFile(`${a}\n${b}\n`, 'x.pub'), { message: /x\.pub should hold one CURVE public key, not 2/ });
  t.end();
});
