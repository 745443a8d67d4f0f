package server

import (
	_ "embed"
	"net/http"
)

// openAPIDoc is the OpenAPI 3 document of the API (openapi.json, kept in
// the repository next to this file and served at /v1/openapi.json). The
// OpenAPI test fails when a route, query parameter or error code of the
// server is missing from it.
//
//go:embed openapi.json
var openAPIDoc []byte

// openAPI: GET /v1/openapi.json.
func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(openAPIDoc)
	return nil
}
