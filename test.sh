#!/usr/bin/env bash
# The test command from the README: every package, with the race detector.
# Longer runs sit behind flags, e.g.:
#   go test ./crdt -rapid.checks=50000     (more property-test cases)
#   go test ./crdt -run '^$' -fuzz '^FuzzDecodeDelta$' -fuzztime 1m
set -euo pipefail
cd "$(dirname "$0")"
go vet ./...
go test -race -count=1 ./... "$@"
