#!/bin/bash
# Entrypoint for docker-compose.yml: format KRaft storage once, with the admin SCRAM user.
set -euo pipefail
if [ ! -f /var/lib/kafka/data/meta.properties ]; then
    /etc/kafka/docker/configure                     # writes server.properties from KAFKA_*
    /opt/kafka/bin/kafka-storage.sh format --ignore-formatted \
        --config /opt/kafka/config/server.properties \
        --cluster-id "${CLUSTER_ID}" \
        --add-scram "SCRAM-SHA-512=[name=admin,password=${KAFKA_ADMIN_PASSWORD}]"
fi
exec /etc/kafka/docker/run
