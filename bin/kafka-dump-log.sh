#!/usr/bin/env bash
# Kafka's log dump tool, as Kafka's bin/kafka-dump-log.sh runs it:
#   bin/kafka-dump-log.sh --files F1[,F2...] [--deep-iteration] [--print-data-log]
#       [--cluster-metadata-decoder] [--skip-record-metadata] [--max-bytes N]
exec "$(dirname "${BASH_SOURCE[0]}")/kraft" dump-log "$@"
