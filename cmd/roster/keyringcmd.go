package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
)

const keyringUsage = `usage: roster keyring list
       roster keyring install --key-file FILE|-    (every key in FILE; - reads stdin)
       roster keyring use     --key-file FILE|- | FINGERPRINT
       roster keyring remove  --key-file FILE|- | FINGERPRINT
Each acts on one node (--addr): rotate a cluster's key by installing the new
key on every node, then using it on every node, then removing the old one
from every node. Keys are read from a file or stdin, never from the command
line; answers name keys by fingerprint only.`

// keyringKey is one key of the node's gossip keyring as the API lists it.
type keyringKey struct {
	Fingerprint string `json:"fingerprint"`
	Primary     bool   `json:"primary"`
}

// runKeyring runs roster keyring list|install|use|remove.
func runKeyring(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	switch {
	case len(args) > 0 && isHelp(args[0]):
		fmt.Fprintln(stdout, keyringUsage)
		return nil
	case len(args) == 0 || strings.HasPrefix(args[0], "-"):
		return usageErr("%s", keyringUsage)
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "list", "install", "use", "remove":
	default:
		return unknownSub("keyring", sub)
	}
	var o clientOptions
	fs := newFlagSet("keyring "+sub, "keyring "+sub+" [flags]", stdout)
	o.register(fs, false)
	var keyFile string
	if sub != "list" {
		fs.StringVar(&keyFile, "key-file", "", "`file` of base64 keys, one per line (- for stdin)")
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	var reqs []map[string]string
	switch {
	case sub == "list":
		if len(pos) != 0 {
			return usageErr("%s", keyringUsage)
		}
	case keyFile != "":
		if len(pos) != 0 {
			return usageErr("give --key-file or a fingerprint, not both")
		}
		keys, err := readKeys(keyFile, stdin)
		if err != nil {
			return err
		}
		if sub != "install" && len(keys) != 1 {
			return usageErr("%s takes one key; %s holds %d", sub, keyFile, len(keys))
		}
		for _, k := range keys {
			reqs = append(reqs, map[string]string{"op": sub, "key": base64.StdEncoding.EncodeToString(k)})
		}
	case sub != "install" && len(pos) == 1:
		reqs = append(reqs, map[string]string{"op": sub, "fingerprint": pos[0]})
	default:
		return usageErr("%s", keyringUsage)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	base, err := o.baseURL()
	if err != nil {
		return err
	}
	hc, err := o.httpClient() // one for every key (it reads the TLS files)
	if err != nil {
		return err
	}
	defer hc.CloseIdleConnections()
	var keys []keyringKey
	if len(reqs) == 0 {
		if keys, err = keyringCall(ctx, hc, base, o.token, http.MethodGet, nil); err != nil {
			return err
		}
	}
	for _, r := range reqs {
		if keys, err = keyringCall(ctx, hc, base, o.token, http.MethodPost, r); err != nil {
			return err
		}
	}
	return printer{w: stdout, json: o.json}.print(map[string]any{"keys": orEmpty(keys)}, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FINGERPRINT\tPRIMARY")
		for _, k := range keys {
			fmt.Fprintf(tw, "%s\t%v\n", k.Fingerprint, k.Primary)
		}
		tw.Flush()
	})
}

// readKeys reads base64 keys, one per line, from a file or stdin ("-").
func readKeys(file string, stdin io.Reader) ([][]byte, error) {
	var b []byte
	var err error
	if file == "-" {
		b, err = io.ReadAll(io.LimitReader(stdin, 1<<20))
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, fmt.Errorf("--key-file: %w", err)
	}
	return parseKeys("--key-file "+file, string(b))
}

// keyringCall sends one request to /v1/keyring and returns the keyring
// the node answers with.
func keyringCall(ctx context.Context, hc *http.Client, base, token, method string, body any) ([]keyringKey, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+"/v1/keyring", rd)
	if err != nil {
		return nil, usageErr("--addr: %v", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Code != "" {
			return nil, fmt.Errorf("%s (HTTP %d): %s", e.Error.Code, resp.StatusCode, e.Error.Message)
		}
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	var out struct {
		Keys []keyringKey `json:"keys"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("keyring answer: %w", err)
	}
	return out.Keys, nil
}
