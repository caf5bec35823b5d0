#!/usr/bin/env bash
# Create one SCRAM user per node, the topics, and the ACLs of DESIGN §3:
#   each node READs only its own inbox topics (prefix xchg.<id>.), WRITEs the other nodes'
#   inbox topics, READs and WRITEs xchg.control, and uses its own consumer group xnode-<id>.
# Usage: ./setup-principals.sh NODE_ID [NODE_ID...]
# Environment: KAFKA_BOOTSTRAP (default kafka:9092 inside compose), KAFKA_ADMIN_PASSWORD,
#   PREFIX (xchg), PARTITIONS (3), REPLICATION (1; use 3 on a real cluster),
#   KAFKA_BIN (how to run Kafka's tools; default: docker compose exec -T kafka /opt/kafka/bin).
# Prints each new node's password once; store it as that node's [kafka] sasl_password_file.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 NODE_ID [NODE_ID...]" >&2; exit 2; }
PREFIX=${PREFIX:-xchg}; PARTITIONS=${PARTITIONS:-3}; REPLICATION=${REPLICATION:-1}
BOOTSTRAP=${KAFKA_BOOTSTRAP:-kafka:9092}
KAFKA_BIN=${KAFKA_BIN:-"docker compose exec -T kafka /opt/kafka/bin"}
: "${KAFKA_ADMIN_PASSWORD:?set KAFKA_ADMIN_PASSWORD}"
KINDS="alert mla repatriation referral statistics receipt"

admin_config=$(mktemp); trap 'rm -f "$admin_config"' EXIT
cat > "$admin_config" <<CONF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$KAFKA_ADMIN_PASSWORD";
ssl.truststore.type=PEM
ssl.truststore.location=/etc/kafka/secrets/ca.pem
CONF
# the tools run inside the container: hand them the file on standard input
run() { $KAFKA_BIN/"$1" --bootstrap-server "$BOOTSTRAP" --command-config /dev/stdin "${@:2}" < "$admin_config"; }

for id in "$@"; do
    [[ $id =~ ^[a-z]{2}-[a-z0-9][a-z0-9-]{1,40}$ ]] || { echo "bad node id: $id" >&2; exit 2; }
done
run kafka-topics.sh --create --if-not-exists --topic "$PREFIX.control" \
    --partitions "$PARTITIONS" --replication-factor "$REPLICATION"
for id in "$@"; do
    password=$(openssl rand -base64 33)
    run kafka-configs.sh --alter --entity-type users --entity-name "$id" \
        --add-config "SCRAM-SHA-512=[iterations=8192,password=$password]"
    echo "node $id: password $password"
    for kind in $KINDS; do
        run kafka-topics.sh --create --if-not-exists --topic "$PREFIX.$id.$kind" \
            --partitions "$PARTITIONS" --replication-factor "$REPLICATION"
    done
    run kafka-acls.sh --add --allow-principal "User:$id" --operation Read --operation Describe \
        --topic "$PREFIX.$id." --resource-pattern-type prefixed
    run kafka-acls.sh --add --allow-principal "User:$id" --operation Read --operation Write \
        --operation Describe --topic "$PREFIX.control"
    run kafka-acls.sh --add --allow-principal "User:$id" --operation Read \
        --group "xnode-$id"
    for other in "$@"; do
        [ "$other" = "$id" ] && continue
        run kafka-acls.sh --add --allow-principal "User:$id" --operation Write \
            --operation Describe --topic "$PREFIX.$other." --resource-pattern-type prefixed
    done
done
echo "Done. Nodes added later need this script run again with the full list of node ids."
