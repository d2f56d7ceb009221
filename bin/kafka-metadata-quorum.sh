#!/usr/bin/env bash
# Kafka's metadata quorum tool, as Kafka's bin/kafka-metadata-quorum.sh runs it:
#   bin/kafka-metadata-quorum.sh --bootstrap-controller localhost:9093 [--command-config FILE]
#       describe --status | --replication [--human-readable]
#     | add-controller [--dry-run]        (--command-config: the new controller's server.properties)
#     | remove-controller --controller-id N --controller-directory-id UUID [--dry-run]
# (and kraft's own: ... watch [--interval-ms MS] [--count N])
exec "$(dirname "${BASH_SOURCE[0]}")/kraft" quorum "$@"
