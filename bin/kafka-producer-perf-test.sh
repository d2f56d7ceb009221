#!/usr/bin/env bash
# Kafka's producer performance test, as Kafka's bin/kafka-producer-perf-test.sh runs it:
#   bin/kafka-producer-perf-test.sh --topic __cluster_metadata --num-records N --throughput T
#       (--record-size N | --payload-file F [--payload-delimiter D] | --payload-monotonic)
#       (--producer-props k=v... | --producer.config FILE)
exec "$(dirname "${BASH_SOURCE[0]}")/kraft" producer-perf-test "$@"
