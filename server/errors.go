package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"

	"github.com/roster-io/roster/registry"
)

// Error codes of the API, with the status each is answered with.
const (
	CodeInvalidName      = "invalid_name"      // 400
	CodeInvalidMeta      = "invalid_meta"      // 400
	CodeInvalidTTL       = "invalid_ttl"       // 400
	CodeInvalidQuery     = "invalid_query"     // 400
	CodeBadJSON          = "bad_json"          // 400
	CodeUnauthorized     = "unauthorized"      // 401
	CodeNotFound         = "not_found"         // 404: no such endpoint
	CodeUnknownScope     = "unknown_scope"     // 404
	CodeNotMember        = "not_member"        // 404
	CodeSessionNotFound  = "session_not_found" // 404
	CodeMethodNotAllowed = "method_not_allowed"
	CodeNotOwner         = "not_owner"      // 409
	CodeBodyTooLarge     = "body_too_large" // 413
	CodeInternal         = "internal"       // 500
	CodeUnavailable      = "unavailable"    // 503: shutting down or closed
	CodeNotReady         = "not_ready"      // 503: /readyz
	CodeStorageFailed    = "storage_failed" // 503, or 507 when the disk is full
	CodeTimeout          = "timeout"        // 504
	CodeCanceled         = "canceled"       // 499-like; the client went away
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
	var mbe *http.MaxBytesError
	st := func(status int, code string) *apiError { return &apiError{status, code, err.Error()} }
	switch {
	case errors.As(err, &mbe):
		return &apiError{http.StatusRequestEntityTooLarge, CodeBodyTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit)}
	case errors.Is(err, registry.ErrInvalidName):
		return st(http.StatusBadRequest, CodeInvalidName)
	case errors.Is(err, registry.ErrInvalidMeta):
		return st(http.StatusBadRequest, CodeInvalidMeta)
	case errors.Is(err, registry.ErrInvalidTTL):
		return st(http.StatusBadRequest, CodeInvalidTTL)
	case errors.Is(err, registry.ErrUnknownScope):
		return st(http.StatusNotFound, CodeUnknownScope)
	case errors.Is(err, registry.ErrNotMember):
		return st(http.StatusNotFound, CodeNotMember)
	case errors.Is(err, registry.ErrNoSession):
		return st(http.StatusNotFound, CodeSessionNotFound)
	case errors.Is(err, registry.ErrNotOwner):
		return st(http.StatusConflict, CodeNotOwner)
	case errors.Is(err, registry.ErrStorage) && errors.Is(err, syscall.ENOSPC):
		return st(http.StatusInsufficientStorage, CodeStorageFailed)
	case errors.Is(err, registry.ErrStorage):
		return st(http.StatusServiceUnavailable, CodeStorageFailed)
	case errors.Is(err, registry.ErrClosed):
		return st(http.StatusServiceUnavailable, CodeUnavailable)
	case errors.Is(err, context.DeadlineExceeded):
		return st(http.StatusGatewayTimeout, CodeTimeout)
	case errors.Is(err, context.Canceled):
		// The client is gone; the status is for logs and metrics only.
		return st(499, CodeCanceled)
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
	if ae.code == CodeInternal {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if ae.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="roster"`)
	}
	writeJSON(w, ae.status, errorJSON{Error: errorBody{Code: ae.code, Message: ae.msg}})
	return ae.code
}

// decodeBody reads a JSON body of at most the configured size into v. An
// empty body leaves v unchanged. Unknown fields and trailing data are
// rejected.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		var ute *json.UnmarshalTypeError
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case errors.As(err, &mbe):
			return err
		case errors.As(err, &ute) && (ute.Field == "meta" || strings.HasPrefix(ute.Field, "meta.")):
			return errorf(http.StatusBadRequest, CodeInvalidMeta, "meta must be an object of string values: %v", err)
		}
		return errorf(http.StatusBadRequest, CodeBadJSON, "malformed JSON body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return errorf(http.StatusBadRequest, CodeBadJSON, "malformed JSON body: trailing data after the object")
	}
	return nil
}
