#!/usr/bin/env bash
# A private CA and a broker certificate (PEM) for docker-compose.yml, with openssl only.
# Usage: ./make-certs.sh kafka.example.org [more DNS names...]
# Output in ./secrets: ca.pem (give to every node: [kafka] ssl_cafile), ca.key (keep offline),
# broker.pem (private key + certificate chain, read by the broker).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 HOSTNAME [HOSTNAME...]" >&2; exit 2; }
cd "$(dirname "$0")"
mkdir -p secrets && chmod 700 secrets
umask 077
if [ ! -f secrets/ca.key ]; then
    openssl req -x509 -newkey rsa:4096 -sha256 -days 3650 -nodes \
        -keyout secrets/ca.key -out secrets/ca.pem -subj "/CN=xnode regional Kafka CA"
fi
san="DNS:kafka"
for name in "$@"; do san="$san,DNS:$name"; done
openssl req -newkey rsa:3072 -sha256 -nodes -keyout secrets/broker.key \
    -out secrets/broker.csr -subj "/CN=$1"
openssl x509 -req -in secrets/broker.csr -CA secrets/ca.pem -CAkey secrets/ca.key \
    -CAcreateserial -days 825 -sha256 -out secrets/broker.crt \
    -extfile <(printf "subjectAltName=%s\nextendedKeyUsage=serverAuth\n" "$san")
cat secrets/broker.key secrets/broker.crt secrets/ca.pem > secrets/broker.pem
rm secrets/broker.csr
chmod 644 secrets/ca.pem && chmod 640 secrets/broker.pem
# the apache/kafka image runs as appuser (uid 1000): let it read the mounted secrets
if [ "$(id -u)" -eq 0 ]; then chown 1000:1000 secrets secrets/broker.pem secrets/ca.pem; fi
echo "CA: secrets/ca.pem  broker: secrets/broker.pem (SAN $san)"
