#!/usr/bin/env bash
# Generates a throw-away CA and certificates for local TLS (tests, configs/secure-pair.yaml):
#   scripts/gen-certs.sh DIR
# writes DIR/ca.pem (+ ca.key), DIR/broker.pem + broker.key (for localhost and 127.0.0.1)
# and DIR/client.pem + client.key (CN=kmirror, for mTLS). EC P-256 keys, valid 30 days.
# Never use these outside a test: the keys are unprotected.
set -euo pipefail
dir=${1:?usage: scripts/gen-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
umask 077
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key ca.key
openssl req -x509 -new -key ca.key -out ca.pem -days 30 -subj "/CN=kmirror throw-away CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
sign() { # name subject extensions
    key "$1.key"
    openssl req -new -key "$1.key" -out "$1.csr" -subj "$2"
    printf '%s\n' "$3" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$1.pem" \
        -days 30 -extfile "$1.ext" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
sign broker "/CN=localhost" "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth
keyUsage=critical,digitalSignature"
sign client "/CN=kmirror" "extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature"
chmod 644 ca.pem broker.pem client.pem
echo "certificates in $dir: ca.pem, broker.pem/broker.key, client.pem/client.key"
