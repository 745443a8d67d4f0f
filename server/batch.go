package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/roster-io/roster/apitype"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/roster-io/roster/registry/regtype"
)

// batch: POST /v1/scopes/{scope}/batch {"ops":[...]}: joins and leaves in
// one request, each answered in results (in the order of ops), durable
// and session members persisted with one fsync (Registry.Apply). The
// request as a whole fails (and changes nothing) only when it cannot be
// read: bad JSON, an unknown op, more than Config.MaxBatchOps ops, a body
// over Config.MaxBatchBytes, an unknown scope. At most
// Config.MaxBatchesInFlight batches are read and applied at a time; the
// others wait, their bodies unread.
func (s *Server) batch(w http.ResponseWriter, r *http.Request) error {
	select {
	case s.batchSlots <- struct{}{}:
		defer func() { <-s.batchSlots }()
	case <-r.Context().Done():
		return r.Context().Err()
	case <-s.stopping:
		return errorf(http.StatusServiceUnavailable, CodeUnavailable, "shutting down")
	}
	req, err := s.decodeBatch(w, r)
	if err != nil {
		return err
	}
	scope := r.PathValue("scope")
	ops := make([]regtype.Op, len(req.Ops))
	for i, o := range req.Ops {
		ops[i] = regtype.Op{Group: o.Group, ID: o.ID}
		switch o.Op {
		case "join":
			ops[i].Meta = o.Meta
			if o.Session != "" {
				ops[i].Lifetime.Session = o.Session
			} else {
				ops[i].Lifetime.Durable = true
			}
		case "leave":
			if o.Meta != nil || o.Session != "" {
				return errorf(http.StatusBadRequest, CodeInvalidBatch, "ops[%d]: a leave takes no meta or session", i)
			}
			ops[i].Leave = true
		default:
			return errorf(http.StatusBadRequest, CodeInvalidBatch, "ops[%d]: op %q: want join or leave", i, o.Op)
		}
	}
	errs, err := s.reg.Apply(r.Context(), scope, ops)
	if err != nil {
		return err
	}
	out := apitype.BatchResponse{Results: make([]apitype.BatchResult, len(ops))}
	members := make([]apitype.Member, 0, len(ops))
	name, inc := s.reg.Name(), s.reg.Incarnation()
	counts := map[[2]string]float64{}
	var logged bool
	for i, op := range ops {
		kind := "batch_join"
		if op.Leave {
			kind = "batch_leave"
		}
		if err := errs[i]; err != nil {
			ae := classify(err)
			out.Results[i] = apitype.BatchResult{Status: ae.status, Error: &apitype.ErrorBody{Code: ae.code, Message: ae.msg}}
			counts[[2]string{kind, ae.code}]++
			if (ae.code == CodeInternal || ae.code == CodeStorageFailed) && !logged {
				logged = true // once per batch: the ops of a round fail together
				s.log.Error("batch op failed", "scope", scope, "op", i, "err", err)
			}
			continue
		}
		counts[[2]string{kind, "ok"}]++
		if op.Leave {
			out.Results[i] = apitype.BatchResult{Status: http.StatusNoContent}
			continue
		}
		m := toMember(regtype.Member{Group: op.Group, ID: op.ID, Meta: op.Meta, Owner: name, Incarnation: inc, Confirmed: true})
		m.Durable, m.Session = op.Lifetime.Durable, op.Lifetime.Session
		members = append(members, m)
		out.Results[i] = apitype.BatchResult{Status: http.StatusOK, Member: &members[len(members)-1]}
	}
	for k, n := range counts {
		s.metrics.ops.WithLabelValues(k[0], k[1]).Add(n)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// decodeBatch reads a batch body of at most Config.MaxBatchBytes. The JSON
// is as strict as decodeBody's, at every depth (duplicate keys, names in
// another case, unknown fields, invalid UTF-8, lone surrogates and
// trailing data are refused), and decoded by the encoding/json/v2 code,
// several times faster than decodeBody's two passes (a batch of 10,000
// ops is about a megabyte), one op at a time: a batch of more than
// Config.MaxBatchOps ops is refused at the first op too many, before it
// costs more memory.
func (s *Server) decodeBatch(w http.ResponseWriter, r *http.Request) (apitype.BatchRequest, error) {
	var req apitype.BatchRequest
	body, err := readBody(w, r, s.cfg.MaxBatchBytes)
	if err != nil {
		return req, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return req, errorf(http.StatusBadRequest, CodeInvalidBatch, `empty body: want {"ops":[...]}`)
	}
	ops, err := s.parseBatch(body)
	if err != nil {
		return req, err
	}
	if len(ops) == 0 {
		return req, errorf(http.StatusBadRequest, CodeInvalidBatch, "no ops")
	}
	req.Ops = ops
	return req, nil
}

// parseBatch parses {"ops":[...]} an op at a time.
func (s *Server) parseBatch(body []byte) ([]apitype.BatchOp, error) {
	malformed := func(err error) error {
		var se *jsonv2.SemanticError
		if errors.As(err, &se) && isMetaPointer(string(se.JSONPointer)) {
			return errorf(http.StatusBadRequest, CodeInvalidMeta, "meta must be an object of string values: %v", err)
		}
		return errorf(http.StatusBadRequest, CodeBadJSON, "malformed JSON body: %v", err)
	}
	// jsontext rejects duplicate names and invalid UTF-8 by default.
	dec := jsontext.NewDecoder(bytes.NewReader(body), jsonv2.RejectUnknownMembers(true))
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, malformed(err)
	}
	if tok.Kind() != '{' {
		return nil, malformed(errors.New(`want an object {"ops":[...]}`))
	}
	var ops []apitype.BatchOp
	for dec.PeekKind() == '"' {
		name, err := dec.ReadToken()
		if err != nil {
			return nil, malformed(err)
		}
		if name.String() != "ops" {
			return nil, malformed(fmt.Errorf("unknown field %q", name.String()))
		}
		switch dec.PeekKind() {
		case 'n':
			_, _ = dec.ReadToken()
			continue
		case '[':
			_, _ = dec.ReadToken()
		default:
			if _, err := dec.ReadToken(); err != nil {
				return nil, malformed(err)
			}
			return nil, malformed(errors.New("ops must be an array"))
		}
		for k := dec.PeekKind(); k != ']'; k = dec.PeekKind() {
			if k == 0 { // an error: ReadToken reports it
				_, err := dec.ReadToken()
				return nil, malformed(err)
			}
			if len(ops) == s.cfg.MaxBatchOps {
				return nil, errorf(http.StatusRequestEntityTooLarge, CodeBatchTooLarge, "more than %d ops (Config.MaxBatchOps): split the batch", s.cfg.MaxBatchOps)
			}
			var op apitype.BatchOp
			if err := jsonv2.UnmarshalDecode(dec, &op); err != nil {
				return nil, malformed(err)
			}
			ops = append(ops, op)
		}
		if _, err := dec.ReadToken(); err != nil { // ]
			return nil, malformed(err)
		}
	}
	if _, err := dec.ReadToken(); err != nil { // }
		return nil, malformed(err)
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		if err == nil {
			err = errors.New("trailing data after the object")
		}
		return nil, malformed(err)
	}
	return ops, nil
}

// isMetaPointer reports whether a JSON pointer is inside an op's meta
// (/ops/N/meta...).
func isMetaPointer(p string) bool {
	rest, ok := strings.CutPrefix(p, "/ops/")
	if !ok {
		return false
	}
	_, rest, _ = strings.Cut(rest, "/")
	return rest == "meta" || strings.HasPrefix(rest, "meta/")
}
