package main

import (
	"bytes"
	"log/slog"

	"github.com/roster-io/roster/registry"
)

// The placeholder secrets of deploy/kubernetes/roster.yaml: public, so a
// node running with either says so loudly.
const (
	exampleAPIToken  = "EXAMPLE-ONLY-roster-api-token"
	exampleGossipKey = "EXAMPLE-ONLY-roster-gossip-key!!" // the key's bytes (the manifest has them in base64)
)

// warnExampleSecrets logs a warning for each example secret in use.
func warnExampleSecrets(logger *slog.Logger, token string, cfg registry.Config) {
	if token == exampleAPIToken {
		logger.Warn("the API token is the public example from deploy/kubernetes/roster.yaml: anyone can use the API; replace the Secret")
	}
	for _, k := range cfg.GossipKeys {
		if bytes.Equal(k, []byte(exampleGossipKey)) {
			logger.Warn("a gossip key is the public example from deploy/kubernetes/roster.yaml: anyone can forge members; replace the Secret")
			return
		}
	}
}
