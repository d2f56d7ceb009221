#!/usr/bin/env bash
# Starts a kraft node, as Kafka's raft/bin/test-kraft-server-start.sh does:
#   bin/test-kraft-server-start.sh --config config/kraft.properties [--replica-directory-id ID]
#                                  [--throughput N] [--record-size N] [--override key=value]...
exec "$(dirname "${BASH_SOURCE[0]}")/kraft" server "$@"
