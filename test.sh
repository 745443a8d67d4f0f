#!/usr/bin/env bash
# The test command from the README: every package, with the race detector.
# Longer runs sit behind flags, e.g.:
#   go test ./crdt -rapid.checks=50000     (more property-test cases)
#   go test ./crdt -run '^$' -fuzz '^FuzzDecodeDelta$' -fuzztime 1m
set -euo pipefail
cd "$(dirname "$0")"
go vet ./...
# -p 1: one package at a time. Several packages start real nodes on
# 127.0.0.1 (the loopback cluster, roster serve end to end, the bench's
# quick run); run together, a node retrying a peer whose port another
# package's node has since been given joins that other cluster.
go test -race -count=1 -p 1 ./... "$@"
