#!/bin/sh
# Writes the DEMO-ONLY certificates envoy/mtls.yaml names (envoy/demo-certs/): a CA, a server
# certificate for localhost / 127.0.0.1 and one client certificate, all P-256, valid ten years.
# The CA's key is thrown away: nothing else can be issued under this CA from the repository.
# Re-run to replace them (tokens bound to the old client certificate then stop matching).
set -eu
dir="$(cd "$(dirname "$0")/.." && pwd)/envoy/demo-certs"
mkdir -p "$dir"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

key "$tmp/ca.key"
openssl req -x509 -new -key "$tmp/ca.key" -sha256 -days 3650 -subj "/CN=jwt-guard demo CA" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign" \
  -out "$dir/ca.crt"

issue() { # name subject extensions
  key "$dir/$1.key"
  openssl req -new -key "$dir/$1.key" -subj "$2" -out "$tmp/$1.csr"
  printf '%s\n' "$3" > "$tmp/$1.ext"
  openssl x509 -req -in "$tmp/$1.csr" -CA "$dir/ca.crt" -CAkey "$tmp/ca.key" -CAcreateserial \
    -CAserial "$tmp/ca.srl" -sha256 -days 3650 -extfile "$tmp/$1.ext" -out "$dir/$1.crt"
}
issue server "/CN=localhost" "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
issue client "/CN=demo-client" "extendedKeyUsage=clientAuth"
chmod 644 "$dir"/*.key
# The thumbprint a token bound to the client certificate carries in cnf.x5t#S256 (RFC 8705).
openssl x509 -in "$dir/client.crt" -outform DER | openssl dgst -sha256 -binary | openssl base64 -A \
  | tr '+/' '-_' | tr -d '=' > "$dir/client.x5t-s256"
echo >> "$dir/client.x5t-s256"
ls "$dir"
