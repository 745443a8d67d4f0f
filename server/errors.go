package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/roster-io/roster/apitype"

	"github.com/roster-io/roster/registry/regtype"
)

// Error codes of the API, with the status each is answered with.
const (
	CodeInvalidName      = "invalid_name"      // 400
	CodeInvalidMeta      = "invalid_meta"      // 400
	CodeInvalidTTL       = "invalid_ttl"       // 400
	CodeInvalidQuery     = "invalid_query"     // 400
	CodeBadJSON          = "bad_json"          // 400
	CodeBadRequest       = "bad_request"       // 400: a request net/http could not parse
	CodeInvalidBatch     = "invalid_batch"     // 400: a batch without ops, or with an op that is neither join nor leave
	CodeRequestTimeout   = "request_timeout"   // 408: the body did not arrive within ReadTimeout
	CodeUnauthorized     = "unauthorized"      // 401
	CodeNotFound         = "not_found"         // 404: no such endpoint
	CodeUnknownScope     = "unknown_scope"     // 404
	CodeNotMember        = "not_member"        // 404
	CodeSessionNotFound  = "session_not_found" // 404
	CodeMethodNotAllowed = "method_not_allowed"
	CodeNotOwner         = "not_owner"         // 409
	CodeBodyTooLarge     = "body_too_large"    // 413
	CodeBatchTooLarge    = "batch_too_large"   // 413: more ops than Config.MaxBatchOps
	CodeHeadersTooLarge  = "headers_too_large" // 431
	CodeTooManySessions  = "too_many_sessions" // 429: regtype.Limits.MaxSessions
	CodeTooManyMembers   = "too_many_members"  // 429: regtype.Limits.MaxMembers
	CodeTooManyGroups    = "too_many_groups"   // 429: regtype.Limits.MaxGroups
	CodeTooManyWatchers  = "too_many_watchers" // 429: regtype.Limits.MaxWatchers
	CodeNotImplemented   = "not_implemented"   // 501: e.g. an unsupported transfer encoding
	CodeInternal         = "internal"          // 500
	CodeUnavailable      = "unavailable"       // 503: shutting down or closed
	CodeNotReady         = "not_ready"         // 503: /readyz
	CodeStorageFailed    = "storage_failed"    // 503, or 507 when the disk is full
	CodeTimeout          = "timeout"           // 504
	CodeCanceled         = "canceled"          // 499-like; the client went away
)

// apiError is an error with its HTTP status and code.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// classify maps any error (registry sentinels first) to status and code.
func classify(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var oe *ownerError
	if errors.As(err, &oe) {
		c := *classify(oe.err)
		c.msg = oe.Error()
		return &c
	}
	var mbe *http.MaxBytesError
	st := func(status int, code string) *apiError { return &apiError{status, code, err.Error()} }
	switch {
	case errors.As(err, &mbe):
		return &apiError{http.StatusRequestEntityTooLarge, CodeBodyTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit)}
	case errors.Is(err, regtype.ErrInvalidName):
		return st(http.StatusBadRequest, CodeInvalidName)
	case errors.Is(err, regtype.ErrInvalidMeta):
		return st(http.StatusBadRequest, CodeInvalidMeta)
	case errors.Is(err, regtype.ErrInvalidPage):
		return st(http.StatusBadRequest, CodeInvalidQuery)
	case errors.Is(err, regtype.ErrInvalidTTL):
		return st(http.StatusBadRequest, CodeInvalidTTL)
	case errors.Is(err, regtype.ErrUnknownScope):
		return st(http.StatusNotFound, CodeUnknownScope)
	case errors.Is(err, regtype.ErrNotMember):
		return st(http.StatusNotFound, CodeNotMember)
	case errors.Is(err, regtype.ErrNoSession):
		return st(http.StatusNotFound, CodeSessionNotFound)
	case errors.Is(err, regtype.ErrNotOwner):
		return st(http.StatusConflict, CodeNotOwner)
	case errors.Is(err, regtype.ErrTooManySessions):
		return st(http.StatusTooManyRequests, CodeTooManySessions)
	case errors.Is(err, regtype.ErrTooManyMembers):
		return st(http.StatusTooManyRequests, CodeTooManyMembers)
	case errors.Is(err, regtype.ErrTooManyGroups):
		return st(http.StatusTooManyRequests, CodeTooManyGroups)
	case errors.Is(err, regtype.ErrTooManyWatchers):
		return st(http.StatusTooManyRequests, CodeTooManyWatchers)
	// Storage errors name files of the data directory: the answer says
	// only what failed (writeError logs the detail).
	case errors.Is(err, regtype.ErrStorage) && errors.Is(err, syscall.ENOSPC):
		return &apiError{http.StatusInsufficientStorage, CodeStorageFailed, "storage failed: the disk is full"}
	case errors.Is(err, regtype.ErrStorage):
		return &apiError{http.StatusServiceUnavailable, CodeStorageFailed, "storage failed; details are in the node's log"}
	case errors.Is(err, regtype.ErrClosed):
		return st(http.StatusServiceUnavailable, CodeUnavailable)
	case errors.Is(err, context.DeadlineExceeded):
		return st(http.StatusGatewayTimeout, CodeTimeout)
	case errors.Is(err, context.Canceled):
		// The client is gone; the status is for logs and metrics only.
		return st(499, CodeCanceled)
	case isTimeout(err): // a read deadline (ReadTimeout) passed
		return &apiError{http.StatusRequestTimeout, CodeRequestTimeout, "the request was not received in time"}
	}
	return &apiError{http.StatusInternalServerError, CodeInternal, "internal error"}
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"encoding the response failed"}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// writeError answers with an error body and returns its code.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) string {
	ae := classify(err)
	switch ae.code {
	case CodeInternal, CodeStorageFailed:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if ae.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="roster"`)
	}
	body := apitype.ErrorBody{Code: ae.code, Message: ae.msg}
	if oe := (*ownerError)(nil); errors.As(err, &oe) {
		body.Owners = oe.owners // who holds what the request is about
	}
	writeJSON(w, ae.status, apitype.Error{Error: body})
	return ae.code
}

// isTimeout reports a network timeout (a read deadline passed).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// readBody reads r's body, of at most limit bytes (413 past it, as
// writeError answers an *http.MaxBytesError; a timeout is passed on as
// well; any other failure is 400 bad_json).
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	var buf bytes.Buffer
	if n := r.ContentLength; n > 0 && n <= limit {
		buf.Grow(int(n) + 1)
	}
	if _, err := buf.ReadFrom(r.Body); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) || isTimeout(err) {
			return nil, err
		}
		return nil, errorf(http.StatusBadRequest, CodeBadJSON, "reading the body failed")
	}
	return buf.Bytes(), nil
}

// decodeBody reads a JSON body of at most the configured size into v, a
// pointer to a struct. An empty body leaves v unchanged. The JSON must be
// strict: valid UTF-8 (no lone surrogate escapes either), no duplicate
// keys in any object, field names exactly as documented (encoding/json
// would match them regardless of case), no unknown fields, no trailing
// data.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := readBody(w, r, s.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	// Readable again, for a request forwarded to its owner (forward.go).
	r.Body = io.NopCloser(bytes.NewReader(body))
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if err := strictJSON(body, jsonFields(v)); err != nil {
		return errorf(http.StatusBadRequest, CodeBadJSON, "malformed JSON body: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) && (ute.Field == "meta" || strings.HasPrefix(ute.Field, "meta.")) {
			return errorf(http.StatusBadRequest, CodeInvalidMeta, "meta must be an object of string values: %v", err)
		}
		return errorf(http.StatusBadRequest, CodeBadJSON, "malformed JSON body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errorf(http.StatusBadRequest, CodeBadJSON, "malformed JSON body: trailing data after the object")
	}
	return nil
}

// jsonFields lists the JSON names of the fields of the struct v points to.
func jsonFields(v any) map[string]bool {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	out := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || !f.IsExported():
		case name == "":
			out[f.Name] = true
		default:
			out[name] = true
		}
	}
	return out
}

// strictJSON checks what encoding/json lets through: body must be valid
// UTF-8 without lone surrogate escapes (which it would replace with
// U+FFFD), have no object with a key twice (it would keep the last), and,
// when fields is not nil, a top-level object whose keys are all in fields
// exactly (it would match them regardless of case).
func strictJSON(body []byte, fields map[string]bool) error {
	if !utf8.Valid(body) {
		return errors.New("not valid UTF-8")
	}
	type frame struct {
		object, wantKey bool
		keys            map[string]bool
	}
	var stack []frame
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].wantKey && tok != json.Delim('}') {
			key := tok.(string) // the decoder allows only strings here
			top := &stack[n-1]
			if top.keys[key] {
				return fmt.Errorf("duplicate key %q", key)
			}
			if n == 1 && fields != nil && !fields[key] {
				return fmt.Errorf("unknown field %q", key)
			}
			top.keys[key], top.wantKey = true, false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, frame{object: true, wantKey: true, keys: map[string]bool{}})
			continue
		case json.Delim('['):
			stack = append(stack, frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value (or a closed container) ends: an object wants a key.
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		}
	}
	return checkSurrogates(body)
}

// checkSurrogates rejects \u escapes of UTF-16 surrogates that do not form
// a pair. body is valid JSON.
func checkSurrogates(body []byte) error {
	inString := false
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case !inString:
			inString = c == '"'
		case c == '"':
			inString = false
		case c == '\\':
			i++
			if body[i] != 'u' {
				continue
			}
			r := hex4(body[i+1 : i+5])
			i += 4
			switch {
			case r >= 0xD800 && r < 0xDC00:
				if i+6 < len(body) && body[i+1] == '\\' && body[i+2] == 'u' {
					if lo := hex4(body[i+3 : i+7]); lo >= 0xDC00 && lo < 0xE000 {
						i += 6
						continue
					}
				}
				return fmt.Errorf("lone UTF-16 surrogate \\u%04X", r)
			case r >= 0xDC00 && r < 0xE000:
				return fmt.Errorf("lone UTF-16 surrogate \\u%04X", r)
			}
		}
	}
	return nil
}

func hex4(b []byte) rune {
	v, _ := strconv.ParseUint(string(b), 16, 32)
	return rune(v)
}
