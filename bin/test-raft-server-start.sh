#!/usr/bin/env bash
# Starts a kraft node under the name the older seed README uses (Kafka's raft module before the
# KRaft renaming). The config file is the first argument or follows --config:
#   bin/test-raft-server-start.sh config/raft.properties [--throughput N] [--record-size N] ...
#   bin/test-raft-server-start.sh --config config/raft-quorum-1.properties ...
# Every other flag is bin/test-kraft-server-start.sh's.
exec "$(dirname "${BASH_SOURCE[0]}")/kraft" server "$@"
