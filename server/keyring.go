package server

import (
	"encoding/base64"
	"errors"
	"net/http"

	"github.com/roster-io/roster/registry/regtype"
)

// Keyring error codes.
const (
	CodeInvalidKey  = "invalid_key"  // 400: not base64 of 16, 24 or 32 bytes, or no key given
	CodeUnknownKey  = "unknown_key"  // 404: not installed (or an ambiguous fingerprint)
	CodePrimaryKey  = "primary_key"  // 409: the primary key cannot be removed
	CodeNoKeyring   = "no_keyring"   // 409: gossip has no rotatable keyring
	CodeNeedsToken  = "token_needed" // 403: keyring changes need the API token configured
	keyringMaxBytes = 4 << 10
)

// keyringJSON is the answer of GET and POST /v1/keyring: fingerprints
// (first 8 hex digits of each key's SHA-256) only, never key material.
type keyringJSON struct {
	Keys []keyJSON `json:"keys"`
}

type keyJSON struct {
	Fingerprint string `json:"fingerprint"`
	Primary     bool   `json:"primary"`
}

// keyringRequest is the body of POST /v1/keyring: op is install, use or
// remove; the key is given as base64 (install needs it) or, for use and
// remove, by its fingerprint.
type keyringRequest struct {
	Op          string `json:"op"`
	Key         string `json:"key,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
}

// keyring serves /v1/keyring: GET lists this node's gossip keys, POST
// installs, uses (makes primary) or removes one on this node only (see
// registry.GossipKeys for the rotation procedure). Changes are refused
// unless the server has an API token: whoever can change the keyring can
// let anyone into the cluster's gossip.
func (s *Server) keyring(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost:
		if s.cfg.Token == "" {
			return errorf(http.StatusForbidden, CodeNeedsToken, "changing the gossip keyring needs the API token to be configured (roster serve --api-token-file)")
		}
		var req keyringRequest
		r.Body = http.MaxBytesReader(w, r.Body, keyringMaxBytes)
		if err := s.decodeBody(w, r, &req); err != nil {
			return err
		}
		var key []byte
		if req.Key != "" {
			var err error
			if key, err = base64.StdEncoding.DecodeString(req.Key); err != nil {
				return errorf(http.StatusBadRequest, CodeInvalidKey, "key is not base64")
			}
		}
		var err error
		switch req.Op {
		case "install":
			if len(key) == 0 {
				return errorf(http.StatusBadRequest, CodeInvalidKey, "install needs a key")
			}
			err = s.reg.InstallGossipKey(key)
		case "use":
			err = s.reg.UseGossipKey(key, req.Fingerprint)
		case "remove":
			err = s.reg.RemoveGossipKey(key, req.Fingerprint)
		default:
			return errorf(http.StatusBadRequest, CodeBadJSON, "op %q: want install, use or remove", req.Op)
		}
		if err != nil {
			return keyringError(err)
		}
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		return errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "%s not allowed on /v1/keyring; allowed: GET, HEAD, POST", r.Method)
	}
	keys, err := s.reg.GossipKeys()
	if err != nil {
		return keyringError(err)
	}
	out := keyringJSON{Keys: make([]keyJSON, len(keys))}
	for i, k := range keys {
		out.Keys[i] = keyJSON{Fingerprint: k.Fingerprint, Primary: k.Primary}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// keyringError maps the gossip keyring errors; the messages name keys by
// fingerprint only.
func keyringError(err error) error {
	switch {
	case errors.Is(err, regtype.ErrNoKeyring):
		return errorf(http.StatusConflict, CodeNoKeyring, "%v", err)
	case errors.Is(err, regtype.ErrInvalidKey):
		return errorf(http.StatusBadRequest, CodeInvalidKey, "%v", err)
	case errors.Is(err, regtype.ErrUnknownKey):
		return errorf(http.StatusNotFound, CodeUnknownKey, "%v", err)
	case errors.Is(err, regtype.ErrPrimaryKey):
		return errorf(http.StatusConflict, CodePrimaryKey, "%v", err)
	}
	return err
}
