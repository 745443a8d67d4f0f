// Package jsonkeys finds keys that occur more than once in one object of
// a JSON document. encoding/json keeps the last of them silently, and
// other decoders differ (the first, an error), so a log record or a
// response that repeats a key means different things to different readers.
package jsonkeys

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ErrSyntax wraps the error of a document that is not JSON.
var ErrSyntax = errors.New("jsonkeys: not a JSON document")

// Duplicates returns the keys that occur twice in one object of doc, in
// the order their repeats appear (nested objects are checked on their
// own: a key inside an object does not clash with the same key outside
// it).
func Duplicates(doc []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	var dups []string
	type frame struct {
		obj    bool
		keys   map[string]bool
		expect bool // the next string token is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			if len(stack) > 0 {
				return nil, fmt.Errorf("%w: ends inside a value", ErrSyntax)
			}
			return dups, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if k, ok := tok.(string); ok && top != nil && top.obj && top.expect {
			if top.keys[k] {
				dups = append(dups, k)
			}
			top.keys[k] = true
			top.expect = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{obj: true, keys: map[string]bool{}, expect: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 && stack[len(stack)-1].obj {
			stack[len(stack)-1].expect = true // a value ended
		}
	}
}

// Lines checks every line of out that starts with '{' (a JSON log record;
// other lines are skipped) and returns a description of each record that
// repeats a key or does not parse.
func Lines(out []byte) []string {
	var bad []string
	for _, line := range bytes.Split(out, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		dups, err := Duplicates(line)
		switch {
		case err != nil:
			bad = append(bad, fmt.Sprintf("%v: %s", err, line))
		case len(dups) > 0:
			bad = append(bad, fmt.Sprintf("repeats %q: %s", dups, line))
		}
	}
	return bad
}
