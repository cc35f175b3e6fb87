#!/bin/sh
# Regenerates the JWT test data in this directory. TEST-ONLY keys: never use
# them anywhere else. Keys come from the openssl CLI; the *.jwt vectors are
# signed by node's built-in crypto module, an implementation independent of
# libjwt, to check interoperability (HMAC-SHA256, RSA PKCS#1 v1.5, ECDSA
# P-256 with the JOSE R||S "ieee-p1363" encoding).
set -eu
cd "$(dirname "$0")"

# 48 random bytes as base64 (64 chars) plus a trailing newline (stripped).
openssl rand -base64 48 | tr -d '\n' > hs256.secret && echo >> hs256.secret
printf 'only-twenty-bytes!!!\n' > hs256-short.secret
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rs256.key 2>/dev/null
openssl pkey -in rs256.key -pubout -out rs256.pub
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out rsa1024.key 2>/dev/null
openssl pkey -in rsa1024.key -pubout -out rsa1024.pub && rm rsa1024.key
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out es256.key
openssl pkey -in es256.key -pubout -out es256.pub

node - <<'JS'
const c = require('crypto'), fs = require('fs');
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
const secret = fs.readFileSync('hs256.secret', 'utf8').replace(/\n$/, '');
const claims = {sub: 'node-user', iat: 1700000000, exp: 4102444800, iss: 'feedpush-test', aud: 'feedpush'};
function mint(alg, body, signer) {
    const input = b64({alg: alg, typ: 'JWT'}) + '.' + b64(body);
    return input + '.' + signer(Buffer.from(input)).toString('base64url') + '\n';
}
const hs = (key) => (d) => c.createHmac('sha256', key).update(d).digest();
fs.writeFileSync('hs256.jwt', mint('HS256', claims, hs(secret)));
fs.writeFileSync('rs256.jwt', mint('RS256', claims, (d) =>
    c.sign('sha256', d, {key: fs.readFileSync('rs256.key'), padding: c.constants.RSA_PKCS1_PADDING})));
fs.writeFileSync('es256.jwt', mint('ES256', {...claims, role: 'service', sub: 'node-bridge'}, (d) =>
    c.sign('sha256', d, {key: fs.readFileSync('es256.key'), dsaEncoding: 'ieee-p1363'})));
/* Same ES256 claims but the signature in DER (what JOSE forbids). */
fs.writeFileSync('es256-der.jwt', mint('ES256', claims, (d) =>
    c.sign('sha256', d, {key: fs.readFileSync('es256.key'), dsaEncoding: 'der'})));
/* The classic confusion attack: HS256 keyed with the RS256 public key file. */
fs.writeFileSync('hs256-confusion.jwt', mint('HS256', claims, hs(fs.readFileSync('rs256.pub'))));
JS
