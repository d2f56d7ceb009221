#!/usr/bin/env bash
# Kafka's verifiable producer, as Kafka's bin/kafka-verifiable-producer.sh runs it:
#   bin/kafka-verifiable-producer.sh --bootstrap-server localhost:9092 --topic __cluster_metadata
#       [--max-messages N] [--throughput N] [--acks 0|1|-1] [--producer.config FILE]
#       [--message-create-time MS] [--value-prefix N] [--repeating-keys N]
exec "$(dirname "${BASH_SOURCE[0]}")/kraft" verifiable-producer "$@"
