package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/roster-io/roster/gossip"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/roster-io/roster/registry"
	"github.com/roster-io/roster/server"
	"github.com/stretchr/testify/require"
)

// loadOpenAPI parses and validates the embedded document.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(server.OpenAPIDocument)
	require.NoError(t, err)
	require.NoError(t, doc.Validate(context.Background()), "not a valid OpenAPI 3 document")
	return doc
}

// operation returns the document's operation for method on path, and the
// parameters that apply to it (the path item's and the operation's).
func operation(doc *openapi3.T, method, path string) (*openapi3.Operation, openapi3.Parameters) {
	item := doc.Paths.Value(path)
	if item == nil {
		return nil, nil
	}
	op := item.GetOperation(method)
	if op == nil {
		return nil, nil
	}
	return op, append(slices.Clone(item.Parameters), op.Parameters...)
}

func paramNames(ps openapi3.Parameters, in string) []string {
	out := []string{}
	for _, p := range ps {
		if p.Value.In == in {
			out = append(out, p.Value.Name)
		}
	}
	slices.Sort(out)
	return out
}

var pathParam = regexp.MustCompile(`\{([^}]+)\}`)

// TestOpenAPICoversRoutes: every route of the server's table is in the
// document, with its path parameters and the query parameters its
// handler reads (found in the handler's code, through the functions it
// calls), and the document has nothing the server does not serve.
func TestOpenAPICoversRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	nd := startCluster(t, 1, nil)[0]
	routes := nd.srv.Routes()
	src := parseServer(t)
	served := map[string]bool{}
	var declared []string
	for _, r := range routes {
		name := r.Method + " " + r.Pattern
		served[name] = true
		declared = append(declared, r.Query...)
		op, params := operation(doc, r.Method, r.Pattern)
		require.NotNil(t, op, "%s is served but not in openapi.json", name)
		var inPattern []string
		for _, m := range pathParam.FindAllStringSubmatch(r.Pattern, -1) {
			inPattern = append(inPattern, m[1])
		}
		slices.Sort(inPattern)
		require.Equal(t, orNone(inPattern), paramNames(params, "path"), "%s: path parameters", name)
		query := slices.Sorted(slices.Values(r.Query))
		require.Equal(t, orNone(query), paramNames(params, "query"), "%s: query parameters in the route table and in openapi.json", name)
		if r.Op != "" {
			handler, ok := src.handlers[r.Op]
			require.True(t, ok, "%s: no api(...) call for op %q in apiRoutes", name, r.Op)
			require.Equal(t, orNone(query), src.reads(handler), "%s: query parameters %s reads (queryParam, boolParam) and those of its route", name, handler)
		}
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			require.True(t, served[method+" "+path], "openapi.json documents %s %s, which the server does not serve", method, path)
		}
	}
	// Query parameters read anywhere are some route's.
	for _, q := range src.allReads {
		require.Contains(t, declared, q, "query parameter %q is read but no route declares it", q)
	}
	require.Empty(t, src.problems)
}

// undocumented are the codes no client ever receives.
var undocumented = map[string]string{
	server.CodeCanceled: "status 499 is for logs and metrics only: the client has gone",
}

// dynamic are the codes answered with a status the code computes: net/http
// decides the status of its own error answers (conn.go), 400 unless it is
// one with a code of its own.
var dynamic = map[string]int{server.CodeBadRequest: http.StatusBadRequest}

// TestOpenAPICoversErrorCodes: every error code of the server (each Code
// constant of the package) is documented under each status the server
// answers it with (found in the code: errorf, apiError, writeJSON and
// switch cases pairing an http.Status constant with a code), and every
// error response of every operation is the document's response for its
// status.
func TestOpenAPICoversErrorCodes(t *testing.T) {
	doc := loadOpenAPI(t)
	src := parseServer(t)
	require.Empty(t, src.problems)
	documented := map[int][]string{} // status: codes
	for name, resp := range doc.Components.Responses {
		status, err := strconv.Atoi(strings.TrimPrefix(name, "Error"))
		require.NoError(t, err, "response %s: want ErrorNNN", name)
		codes := resp.Value.Content.Get("application/json").Schema.Value.Properties["error"].Value.Properties["code"].Value.Enum
		for _, c := range codes {
			documented[status] = append(documented[status], c.(string))
		}
	}
	require.NotEmpty(t, src.codes)
	all := map[string]bool{}
	for name, code := range src.codes {
		all[code] = true
		if why, ok := undocumented[code]; ok {
			t.Logf("%s (%q) not documented: %s", name, code, why)
			continue
		}
		statuses := src.pairs[code]
		if s, ok := dynamic[code]; ok {
			statuses = append(statuses, s)
		}
		require.NotEmpty(t, statuses, "%s (%q): the test finds no status it is answered with; pair it with an http.Status constant (errorf) or list it in dynamic", name, code)
		for _, s := range statuses {
			require.Contains(t, documented[s], code, "%s (%q) is answered with status %d but openapi.json's Error%d does not list it", name, code, s, s)
		}
	}
	for s, codes := range documented {
		for _, c := range codes {
			require.True(t, all[c], "openapi.json's Error%d lists %q, which is no code of the server", s, c)
		}
	}
	// A batch op's error carries any code.
	var batchCodes []string
	for _, c := range doc.Components.Schemas["ErrorBody"].Value.Properties["code"].Value.Enum {
		batchCodes = append(batchCodes, c.(string))
	}
	var want []string
	for c := range all {
		if _, ok := undocumented[c]; !ok {
			want = append(want, c)
		}
	}
	require.ElementsMatch(t, want, batchCodes, "ErrorBody's codes")
	// Operations answer errors with the shared responses.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status, resp := range op.Responses.Map() {
				if n, _ := strconv.Atoi(status); n >= 400 {
					require.Equal(t, "#/components/responses/Error"+status, resp.Ref, "%s %s: response %s", method, path, status)
				}
			}
		}
	}
}

// TestOpenAPIConformance: real answers of every route, successes and
// errors, match the document (status documented for the operation, body
// and headers valid against its schemas), as served at /v1/openapi.json.
func TestOpenAPIConformance(t *testing.T) {
	key, other := newKey(t), newKey(t)
	nd := startClusterWith(t, 1, func(c *registry.Config) {
		c.GossipKeys = [][]byte{key}
	}, func(c *server.Config) { c.Token = "tok" })[0]
	auth := "Authorization: Bearer tok"
	r := nd.call(t, "GET", "/v1/openapi.json", nil)
	require.Equal(t, http.StatusUnauthorized, r.status, "behind the token like all of /v1")
	r = nd.call(t, "GET", "/v1/openapi.json", nil, auth)
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, string(server.OpenAPIDocument), r.raw, "served as embedded")
	onDisk, err := os.ReadFile("openapi.json")
	require.NoError(t, err)
	require.Equal(t, onDisk, server.OpenAPIDocument)
	doc := loadOpenAPI(t)
	router, err := legacy.NewRouter(doc)
	require.NoError(t, err)

	sess := nd.call(t, "POST", "/v1/sessions", `{"ttl":"1h"}`, auth).body["id"].(string)
	closeMe := nd.call(t, "POST", "/v1/sessions", `{"ttl":"1h"}`, auth).body["id"].(string)
	m := "/v1/scopes/default/groups/room/members/"
	var tooMany strings.Builder
	tooMany.WriteString(`{"ops":[`)
	for i := range server.DefaultConfig().MaxBatchOps + 1 {
		if i > 0 {
			tooMany.WriteByte(',')
		}
		fmt.Fprintf(&tooMany, `{"op":"leave","group":"g","id":"m%d"}`, i)
	}
	tooMany.WriteString(`]}`)
	cases := []struct {
		method, path, body string
		status             int
		noAuth             bool
	}{
		{"PUT", m + "a", `{"meta":{"addr":"10.0.0.1:1"}}`, 200, false},
		{"PUT", m + "b", `{"session":"` + sess + `"}`, 200, false},
		{"PUT", m + "c", ``, 200, false},
		{"PUT", m + "c", `{"meta":{"k":"v"}}`, 200, false}, // an update: created false
		{"PUT", "/v1/scopes/default/groups/room2/members/a", ``, 200, false},
		{"PUT", m + "x", `{"meta":{"k":1}}`, 400, false},
		{"PUT", m + "x", `{"meta":`, 400, false},
		{"PUT", m + "x", `{"session":"nope"}`, 404, false},
		{"PUT", "/v1/scopes/nope/groups/room/members/x", ``, 404, false},
		{"PUT", "/v1/scopes/default/groups/%01/members/x", ``, 400, false},
		{"PUT", m + "x", `{"meta":{"k":"` + strings.Repeat("v", 70<<10) + `"}}`, 413, false},
		{"PUT", m + "x", ``, 401, true},
		{"DELETE", m + "c", ``, 204, false},
		{"DELETE", m + "nobody", ``, 404, false},
		{"GET", "/v1/scopes/default/groups/room/members", ``, 200, false},
		{"GET", "/v1/scopes/default/groups/room/members?local=true", ``, 200, false},
		{"GET", "/v1/scopes/default/groups/room/members?local=maybe", ``, 400, false},
		{"GET", "/v1/scopes/default/groups/room/members?limit=2&offset=1", ``, 200, false},
		{"GET", "/v1/scopes/default/groups/room/members?local=true&limit=1", ``, 200, false},
		{"GET", "/v1/scopes/default/groups/room/members?limit=1001", ``, 400, false},
		{"GET", "/v1/scopes/default/groups/room/members?offset=1", ``, 400, false},
		{"GET", "/v1/scopes/default/groups", ``, 200, false},
		{"GET", "/v1/scopes/default/groups?prefix=ro&counts=true&limit=1", ``, 200, false},
		{"GET", "/v1/scopes/default/groups?counts=true&limit=1&after=room", ``, 200, false},
		{"GET", "/v1/scopes/default/groups?counts=maybe", ``, 400, false},
		{"GET", "/v1/scopes/default/groups?after=room", ``, 400, false},
		{"GET", "/v1/scopes/nope/groups", ``, 404, false},
		{"GET", "/v1/scopes/default/watch?group=room", ``, 200, false},
		{"GET", "/v1/scopes/default/watch?snapshot=false", ``, 200, false},
		{"GET", "/v1/scopes/default/watch?snapshot=maybe", ``, 400, false},
		{"GET", "/v1/scopes/default/watch?group=a&prefix=b", ``, 400, false},
		{"GET", "/v1/scopes/nope/watch", ``, 404, false},
		{"POST", "/v1/scopes/default/batch", `{"ops":[{"op":"join","group":"room","id":"d","meta":{"k":"v"}},{"op":"join","group":"room","id":"e","session":"` + sess + `"},` +
			`{"op":"leave","group":"room","id":"d"},{"op":"leave","group":"room","id":"nobody"},{"op":"join","group":"room","id":"f","session":"nope"}]}`, 200, false},
		{"POST", "/v1/scopes/default/batch", `{"ops":[]}`, 400, false},
		{"POST", "/v1/scopes/default/batch", tooMany.String(), 413, false},
		{"POST", "/v1/scopes/nope/batch", `{"ops":[{"op":"leave","group":"g","id":"x"}]}`, 404, false},
		{"POST", "/v1/sessions", `{"ttl":"15s"}`, 201, false},
		{"POST", "/v1/sessions", `{"ttl":30}`, 201, false},
		{"POST", "/v1/sessions", `{"ttl":"soon"}`, 400, false},
		{"GET", "/v1/sessions", ``, 200, false},
		{"GET", "/v1/sessions?limit=1", ``, 200, false},
		{"GET", "/v1/sessions?limit=0", ``, 400, false},
		{"GET", "/v1/sessions/" + sess, ``, 200, false},
		{"GET", "/v1/sessions/nope", ``, 404, false},
		{"PUT", "/v1/sessions/" + sess, ``, 200, false},
		{"PUT", "/v1/sessions/nope", ``, 404, false},
		{"DELETE", "/v1/sessions/" + closeMe, ``, 204, false},
		{"DELETE", "/v1/sessions/nope", ``, 404, false},
		{"GET", "/v1/nodes", ``, 200, false},
		{"GET", "/v1/nodes", ``, 401, true},
		{"GET", "/v1/keyring", ``, 200, false},
		{"POST", "/v1/keyring", `{"op":"install","key":"` + base64.StdEncoding.EncodeToString(other) + `"}`, 200, false},
		{"POST", "/v1/keyring", `{"op":"install","key":"!"}`, 400, false},
		{"POST", "/v1/keyring", `{"op":"use","fingerprint":"00000000"}`, 404, false},
		{"POST", "/v1/keyring", `{"op":"remove","fingerprint":"` + gossip.Fingerprint(key) + `"}`, 409, false},
		{"GET", "/v1/openapi.json", ``, 200, false},
		{"GET", "/healthz", ``, 200, true},
		{"GET", "/readyz", ``, 200, true},
		{"GET", "/metrics", ``, 200, false},
		{"GET", "/metrics", ``, 401, true},
	}
	// The optional fields of some answers, which they must hold for the
	// document to be checked against them (by case name).
	holds := map[string][]string{
		"PUT " + m + "a 200": {"created"},
		"PUT " + m + "b 200": {"created", "session"},
		"PUT " + m + "c 200": {"created"},
		"GET /v1/scopes/default/groups/room/members?limit=2&offset=1 200":   {"total"},
		"GET /v1/scopes/default/groups/room/members?local=true&limit=1 200": {"total"},
		"GET /v1/scopes/default/groups?prefix=ro&counts=true&limit=1 200":   {"counts", "total", "next"},
		"GET /v1/scopes/default/groups?counts=true&limit=1&after=room 200":  {"counts", "total"},
	}
	names := map[string]bool{}
	for _, tc := range cases {
		names[tc.method+" "+tc.path+" "+strconv.Itoa(tc.status)] = true
	}
	for name := range holds {
		require.True(t, names[name], "holds names no case: %s", name)
	}
	covered := map[string]bool{}
	for _, tc := range cases {
		name := tc.method + " " + tc.path + " " + strconv.Itoa(tc.status)
		t.Run(name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, nd.url+tc.path, strings.NewReader(tc.body))
			require.NoError(t, err)
			if !tc.noAuth {
				req.Header.Set("Authorization", "Bearer tok")
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			resp, err := nd.hc.Do(req.WithContext(ctx))
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, tc.status, resp.StatusCode)
			stream := resp.Header.Get("Content-Type") == "text/event-stream"
			var body []byte
			if !stream { // a watch never ends: its headers are checked
				body, err = io.ReadAll(resp.Body)
				require.NoError(t, err)
			}
			route := conforms(t, router, req, resp, body, stream)
			if keys := holds[name]; keys != nil {
				var got map[string]any
				require.NoError(t, json.Unmarshal(body, &got))
				for _, k := range keys {
					require.Contains(t, got, k, "answer %s", body)
				}
			}
			if resp.StatusCode < 300 {
				covered[route.Method+" "+route.Path] = true
			}
		})
	}
	for _, r := range nd.srv.Routes() {
		require.True(t, covered[r.Method+" "+r.Pattern], "%s %s: no successful answer checked against openapi.json; add a case", r.Method, r.Pattern)
	}

	// A watch's events: their data as WatchSnapshot and WatchChange say.
	w := nd.watch(t, "/v1/scopes/default/watch", auth)
	snap := w.next(t)
	require.Equal(t, "snapshot", snap.event)
	require.NotEmpty(t, snap.data["members"])
	require.NoError(t, doc.Components.Schemas["WatchSnapshot"].Value.VisitJSON(snap.data), "%v", snap.data)
	require.Equal(t, http.StatusOK, nd.call(t, "PUT", m+"watched", `{"meta":{"k":"v"}}`, auth).status)
	change := w.next(t)
	require.Equal(t, "join watched joined", change.summary())
	require.NoError(t, doc.Components.Schemas["WatchChange"].Value.VisitJSON(change.data), "%v", change.data)

	// Answers outside the operations, on a served listener: other methods
	// (405), other paths (404), net/http's own (400, 501; not 431, after
	// which net/http lingers half a second on the connection, past the
	// test: TestEveryErrorIsJSON checks it); each as its ErrorNNN says.
	_, addr := serve(t, nd, func(c *server.Config) { c.Token = "tok" })
	for _, tc := range []struct {
		request string
		status  int
	}{
		{"POST /v1/nodes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\nContent-Length: 0\r\n\r\n", 405},
		{"PATCH /v1/scopes/default/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\nContent-Length: 0\r\n\r\n", 405},
		{"GET /v2/nothing HTTP/1.1\r\nHost: x\r\n\r\n", 404},
		{"GET /v1/scopes/default/groups/a/../b/members HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\n\r\n", 404},
		{"GARBAGE\r\n\r\n", 400},
		{"PUT " + m + "x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		{"POST /v1/keyring HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 403}, // on a server without a token
	} {
		addr := addr
		if tc.status == 403 {
			_, addr = serve(t, nd, nil)
		}
		resp, body := rawResponse(t, addr, tc.request)
		line, _, _ := strings.Cut(tc.request, "\r\n")
		require.Equal(t, tc.status, resp.StatusCode, "%s: %v", line, body)
		schema := doc.Components.Responses[fmt.Sprintf("Error%d", tc.status)].Value.Content.Get("application/json").Schema.Value
		var v any = body
		require.NoError(t, schema.VisitJSON(v), "%s: %v", line, body)
	}
}

// conforms checks the answer resp (its body read, unless it is a
// stream) to req against the document: its status is one the operation
// documents, its headers and body are valid against their schemas. It
// returns the operation's route.
func conforms(t *testing.T, router routers.Router, req *http.Request, resp *http.Response, body []byte, stream bool) *routers.Route {
	t.Helper()
	route, params, err := router.FindRoute(req)
	require.NoError(t, err)
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, ExcludeResponseBody: stream, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(body)),
		Options: in.Options,
	})
	require.NoError(t, err, "%s %s: answer %d %s", req.Method, req.URL.Path, resp.StatusCode, body)
	return route
}

// TestOpenAPIConformanceRouted: the answers of nodes that route requests
// to their owners match the document too: /v1/nodes with every node's
// http_addr and each peer's divergence, forwarded answers (success and
// error) with Roster-Forwarded-To, errors naming the owners (404
// session_not_found, 409 not_owner) and 502 owner_unreachable.
func TestOpenAPIConformanceRouted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there: n2 advertises an address that does not answer
	nodes := startRouted(t, 3, func(i int, c *registry.Config) {
		if i == 2 {
			c.HTTPAddr = dead
		}
	}, nil)
	n0, n1, n2 := nodes[0], nodes[1], nodes[2]
	router, err := legacy.NewRouter(loadOpenAPI(t))
	require.NoError(t, err)
	// do sends a request to nd, checks the answer against the document
	// and returns it with its decoded body.
	do := func(nd *node, method, path, body string, status int, headers ...string) (http.Header, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(method, nd.url+path, strings.NewReader(body))
		require.NoError(t, err)
		for _, h := range headers {
			k, v, _ := strings.Cut(h, ": ")
			req.Header.Set(k, v)
		}
		resp, err := nd.hc.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, status, resp.StatusCode, "%s %s: %s", method, path, raw)
		conforms(t, router, req, resp, raw, false)
		var out map[string]any
		if len(raw) > 0 {
			require.NoError(t, json.Unmarshal(raw, &out))
		}
		return resp.Header, out
	}
	errOwners := func(body map[string]any) []string {
		return owners(response{body: body})
	}

	// Every node's http_addr; every peer's divergence, once digests came.
	require.Eventually(t, func() bool {
		var got struct{ Nodes []struct{ Divergence []any } }
		r := n0.call(t, "GET", "/v1/nodes", nil)
		if json.Unmarshal([]byte(r.raw), &got) != nil {
			return false
		}
		with := 0
		for _, n := range got.Nodes {
			if len(n.Divergence) > 0 {
				with++
			}
		}
		return with == 2
	}, wait, 20*time.Millisecond, "both peers of n0 carry their divergence")
	_, body := do(n0, "GET", "/v1/nodes", "", 200)
	addrs, divs := map[string]any{}, map[string]int{}
	for _, x := range body["nodes"].([]any) {
		n := x.(map[string]any)
		addrs[n["name"].(string)] = n["http_addr"]
		d, _ := n["divergence"].([]any)
		divs[n["name"].(string)] = len(d)
	}
	require.Equal(t, map[string]any{"n0": n0.url, "n1": n1.url, "n2": dead}, addrs)
	require.Equal(t, map[string]int{"n0": 0, "n1": 2, "n2": 2}, divs, "per scope for each peer, none for self")

	// Forwarded to the owner: the owner's answers, marked.
	_, body = do(n0, "POST", "/v1/sessions", `{"ttl":"1m"}`, 201)
	sid := body["id"].(string)
	h, _ := do(n1, "PUT", "/v1/sessions/"+sid, "", 200)
	require.Equal(t, "n0", h.Get(server.HeaderForwardedTo))
	h, _ = do(n1, "GET", "/v1/sessions/"+sid, "", 200)
	require.Equal(t, "n0", h.Get(server.HeaderForwardedTo))
	const m = "/v1/scopes/default/groups/room/members/"
	h, body = do(n1, "PUT", m+"s", `{"session":"`+sid+`"}`, 200)
	require.Equal(t, "n0", h.Get(server.HeaderForwardedTo))
	require.Equal(t, true, body["created"])
	require.Equal(t, "n0", body["owner"])

	// Not forwarded (marked by a client): the errors name the owner.
	do(n0, "PUT", m+"mine", "", 200)
	require.Eventually(t, func() bool {
		os, err := n1.reg.Owners("default", "room", "mine")
		return err == nil && len(os) == 1
	}, wait, 5*time.Millisecond, "n1 knows n0 holds mine")
	h, body = do(n1, "DELETE", m+"mine", "", 409, server.HeaderForwardedBy+": client")
	require.Empty(t, h.Get(server.HeaderForwardedTo))
	require.Equal(t, []string{"n0@" + n0.url + "(alive)"}, errOwners(body))
	h, body = do(n1, "GET", "/v1/sessions/"+sid, "", 404, server.HeaderForwardedBy+": client")
	require.Empty(t, h.Get(server.HeaderForwardedTo))
	require.Equal(t, []string{"n0@" + n0.url + "(alive)"}, errOwners(body))
	h, _ = do(n1, "DELETE", m+"mine", "", 204)
	require.Equal(t, "n0", h.Get(server.HeaderForwardedTo))

	// An owner that does not answer: 502, naming it.
	do(n2, "PUT", m+"far", "", 200)
	require.Eventually(t, func() bool {
		os, err := n1.reg.Owners("default", "room", "far")
		return err == nil && len(os) == 1
	}, wait, 5*time.Millisecond, "n1 knows n2 holds far")
	h, body = do(n1, "DELETE", m+"far", "", 502)
	require.Empty(t, h.Get(server.HeaderForwardedTo))
	require.Equal(t, []string{"n2@" + dead + "(alive)"}, errOwners(body))

	// A forwarded error: the owner's own, marked.
	h, _ = do(n1, "DELETE", "/v1/sessions/"+sid, "", 204)
	require.Equal(t, "n0", h.Get(server.HeaderForwardedTo))
	h, body = do(n1, "PUT", "/v1/sessions/"+sid, "", 404)
	require.Equal(t, "n0", h.Get(server.HeaderForwardedTo))
	require.Empty(t, errOwners(body), "n0 does not point at itself")
}

func orNone(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// serverSource is what the test reads in the package's code.
type serverSource struct {
	codes    map[string]string // Code constant name: value
	pairs    map[string][]int  // code value: statuses it is answered with
	handlers map[string]string // op name in apiRoutes: handler method
	funcs    map[string]*ast.FuncDecl
	allReads []string // query parameters read anywhere
	problems []string
}

// parseServer reads the package's non-test files.
func parseServer(t *testing.T) *serverSource {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	src := &serverSource{codes: map[string]string{}, pairs: map[string][]int{}, handlers: map[string]string{}, funcs: map[string]*ast.FuncDecl{}}
	var parsed []*ast.File
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		require.NoError(t, err)
		parsed = append(parsed, f)
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.GenDecl:
				for _, s := range d.Specs {
					vs, ok := s.(*ast.ValueSpec)
					if !ok || d.Tok != token.CONST {
						continue
					}
					for i, n := range vs.Names {
						if strings.HasPrefix(n.Name, "Code") && i < len(vs.Values) {
							if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
								src.codes[n.Name], _ = strconv.Unquote(lit.Value)
							}
						}
					}
				}
			case *ast.FuncDecl:
				src.funcs[d.Name.Name] = d
			}
		}
	}
	for _, f := range parsed {
		src.inspect(f)
	}
	for code, ss := range src.pairs {
		slices.Sort(ss)
		src.pairs[code] = slices.Compact(ss)
	}
	return src
}

// statusNames maps the names of net/http's status constants to their
// values (StatusRequestEntityTooLarge: 413), from their texts.
var statusNames = func() map[string]int {
	out := map[string]int{}
	for s := 100; s < 600; s++ {
		if text := http.StatusText(s); text != "" {
			out["Status"+strings.Map(func(r rune) rune {
				if unicode.IsLetter(r) {
					return r
				}
				return -1
			}, text)] = s
		}
	}
	return out
}()

// status reads a status expression: http.StatusX or an integer literal.
func (src *serverSource) status(e ast.Expr) (int, bool) {
	switch x := e.(type) {
	case *ast.SelectorExpr:
		if pkg, ok := x.X.(*ast.Ident); ok && pkg.Name == "http" && strings.HasPrefix(x.Sel.Name, "Status") {
			s, ok := statusNames[x.Sel.Name]
			if !ok {
				src.problems = append(src.problems, "unknown status constant http."+x.Sel.Name)
			}
			return s, ok
		}
	case *ast.BasicLit:
		if n, err := strconv.Atoi(x.Value); err == nil && x.Kind == token.INT && n >= 100 && n < 600 {
			return n, true
		}
	case *ast.KeyValueExpr:
		return src.status(x.Value)
	}
	return 0, false
}

// codesIn lists the Code constants used in nodes.
func (src *serverSource) codesIn(nodes ...ast.Node) []string {
	var out []string
	for _, n := range nodes {
		ast.Inspect(n, func(n ast.Node) bool {
			if id, ok := n.(*ast.Ident); ok {
				if v, ok := src.codes[id.Name]; ok {
					out = append(out, v)
				}
			}
			return true
		})
	}
	return out
}

func (src *serverSource) pair(status int, codes []string) {
	for _, c := range codes {
		src.pairs[c] = append(src.pairs[c], status)
	}
}

// inspect collects status and code pairs, the op handlers of apiRoutes
// and the query parameters read.
func (src *serverSource) inspect(f *ast.File) {
	var fn string // the enclosing function
	ast.Inspect(f, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.FuncDecl:
			fn = x.Name.Name
		case *ast.CallExpr:
			src.pairArgs(x.Args)
			name := calleeName(x)
			switch {
			case fn == "apiRoutes" && name == "api" && len(x.Args) >= 4:
				op, ok1 := stringLit(x.Args[2])
				h, ok2 := x.Args[3].(*ast.SelectorExpr)
				if ok1 && ok2 {
					src.handlers[op] = h.Sel.Name
				}
			case name == "Query" && fn != "queryParam":
				src.problems = append(src.problems, fn+" reads the query itself: use queryParam")
			case (name == "queryParam" || name == "boolParam" || name == "intParam") && len(x.Args) >= 2:
				if q, ok := stringLit(x.Args[1]); ok {
					src.allReads = append(src.allReads, q)
				} else if fn != "boolParam" && fn != "intParam" {
					src.problems = append(src.problems, fn+" reads a query parameter whose name is not a literal")
				}
			}
		case *ast.CompositeLit:
			src.pairArgs(x.Elts)
		case *ast.CaseClause:
			for _, e := range x.List {
				if s, ok := src.status(e); ok {
					for _, st := range x.Body {
						if as, ok := st.(*ast.AssignStmt); ok {
							src.pair(s, src.codesIn(as))
						}
					}
				}
			}
		}
		return true
	})
}

// pairArgs pairs the first status among args with the codes in args.
func (src *serverSource) pairArgs(args []ast.Expr) {
	for _, a := range args {
		if s, ok := src.status(a); ok {
			nodes := make([]ast.Node, len(args))
			for i, a := range args {
				nodes[i] = a
			}
			src.pair(s, src.codesIn(nodes...))
			return
		}
	}
}

// reads returns the query parameters function name reads, directly or
// through the package's functions it calls.
func (src *serverSource) reads(name string) []string {
	seen := map[string]bool{}
	out := []string{}
	var visit func(string)
	visit = func(name string) {
		fd := src.funcs[name]
		if fd == nil || seen[name] {
			return
		}
		seen[name] = true
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			callee := calleeName(call)
			if (callee == "queryParam" || callee == "boolParam" || callee == "intParam") && len(call.Args) >= 2 {
				if q, ok := stringLit(call.Args[1]); ok && !slices.Contains(out, q) {
					out = append(out, q)
				}
			}
			visit(callee)
			return true
		})
	}
	visit(name)
	slices.Sort(out)
	return out
}

func calleeName(c *ast.CallExpr) string {
	switch f := c.Fun.(type) {
	case *ast.Ident:
		return f.Name
	case *ast.SelectorExpr:
		return f.Sel.Name
	}
	return ""
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}
