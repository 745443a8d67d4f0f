package server

// Route is an entry of the API's route table (apiRoutes), for the tests.
type Route struct {
	Method, Pattern, Op string
	Query               []string
	NoHead              bool
}

// Routes returns the server's route table.
func (s *Server) Routes() []Route {
	var out []Route
	for _, r := range s.apiRoutes() {
		out = append(out, Route{Method: r.method, Pattern: r.pattern, Op: r.op, Query: r.query, NoHead: r.noHead})
	}
	return out
}

// OpenAPIDocument is the embedded document.
var OpenAPIDocument = openAPIDoc
