package server

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/roster-io/roster/apitype"

	"github.com/roster-io/roster/registry/regtype"
)

// Routing. A node answers for what it holds: its own members (a leave)
// and its own sessions (get, keep-alive, close, and a join into one).
// Behind a load balancer such a request often reaches another node. That
// node knows the owner: a member's from the replicated state
// (Registry.Owners), a session's from its id (Registry.SessionOwner), and
// the owner's HTTP address from its gossip metadata. It then
//
//   - forwards the request to the owner (Config.Forward, the default) when
//     there is exactly one, alive, with an HTTP address, and the request
//     was not itself forwarded: one hop, the body and the Authorization
//     header passed on, the request marked Roster-Forwarded-By (a marked
//     request is never forwarded again, so there are no loops) and the
//     answer marked Roster-Forwarded-To; an owner that cannot be reached
//     is answered 502 owner_unreachable;
//   - otherwise answers its own error (409 not_owner, 404
//     session_not_found) with "owners" in the error body: each owner's
//     name, HTTP address and state, so that a client can go there.
const (
	// HeaderForwardedBy marks a forwarded request with the name of the
	// node that forwarded it. A request carrying it is answered where it
	// lands (a client may set it to turn forwarding off for a request).
	HeaderForwardedBy = "Roster-Forwarded-By"
	// HeaderForwardedTo marks the answer to a forwarded request with the
	// name of the node that served it.
	HeaderForwardedTo = "Roster-Forwarded-To"
)

// CodeOwnerUnreachable answers a request forwarded to an owner that did
// not answer (connection refused, timeout, TLS failure).
const CodeOwnerUnreachable = "owner_unreachable" // 502

// errForwarded is returned by a handler that forwarded its request (the
// answer is written): op counts it as code "forwarded".
var errForwarded = errors.New("server: forwarded to the owner")

// ownerError is a not_owner or session_not_found error together with the
// owners this node knows of and why it did not forward.
type ownerError struct {
	err    error
	owners []apitype.Owner
	why    string
}

func (e *ownerError) Error() string {
	var b strings.Builder
	b.WriteString(e.err.Error())
	for i, o := range e.owners {
		if i == 0 {
			b.WriteString("; held by ")
		} else {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "node %q", o.Name)
		if o.HTTPAddr != "" {
			b.WriteString(" at " + o.HTTPAddr)
		}
		b.WriteString(" (" + o.State + ")")
	}
	if e.why != "" {
		b.WriteString("; not forwarded: " + e.why)
	}
	return b.String()
}

func (e *ownerError) Unwrap() error { return e.err }

func toOwners(ns []regtype.NodeInfo) []apitype.Owner {
	out := make([]apitype.Owner, len(ns))
	for i, n := range ns {
		out[i] = apitype.Owner{Name: n.Name, HTTPAddr: n.HTTPAddr, State: string(n.State)}
	}
	return out
}

// memberOwners returns the other nodes holding member (group, id).
func (s *Server) memberOwners(scope, group, id string) []regtype.NodeInfo {
	names, err := s.reg.Owners(scope, group, id)
	if err != nil || len(names) == 0 {
		return nil
	}
	var out []regtype.NodeInfo
	for _, n := range s.reg.Nodes() {
		for _, name := range names {
			if n.Name == name && !n.Self {
				out = append(out, n)
			}
		}
	}
	return out
}

// sessionOwners returns the other node that made session id, if its id
// names one.
func (s *Server) sessionOwners(id string) []regtype.NodeInfo {
	if n, ok := s.reg.SessionOwner(id); ok && !n.Self {
		return []regtype.NodeInfo{n}
	}
	return nil
}

// toOwner handles err, the error of a request about something this node
// does not hold, given the owners it knows of: it forwards the request
// when it can (returning errForwarded once the answer is written), and
// otherwise returns err naming the owners.
func (s *Server) toOwner(w http.ResponseWriter, r *http.Request, err error, owners []regtype.NodeInfo) error {
	if len(owners) == 0 {
		return err
	}
	oe := &ownerError{err: err, owners: toOwners(owners)}
	o := owners[0]
	switch by := r.Header.Get(HeaderForwardedBy); {
	case len(owners) > 1:
		oe.why = "more than one owner"
	case !s.cfg.Forward:
		oe.why = "forwarding is off"
	case by != "":
		oe.why = fmt.Sprintf("already forwarded once (by %q)", by)
	case o.State != regtype.PeerAlive:
		oe.why = "the owner is " + string(o.State)
	case o.HTTPAddr == "":
		oe.why = "the owner advertises no HTTP address"
	default:
		target, perr := url.Parse(o.HTTPAddr) // checked by registry.ValidHTTPAddr where it was advertised
		if perr != nil {
			oe.why = "the owner's HTTP address does not parse"
			return oe
		}
		s.forward(w, r, o, oe.owners, target)
		return errForwarded
	}
	return oe
}

// forward sends r to the owner o (owners: o as an error names it) at
// target and copies its answer back.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, o regtype.NodeInfo, owners []apitype.Owner, target *url.URL) {
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set(HeaderForwardedBy, s.reg.Name())
		},
		Transport: s.fwd,
		ModifyResponse: func(resp *http.Response) error {
			resp.Header.Set(HeaderForwardedTo, o.Name)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.log.Warn("forwarding to the owner failed", "owner", o.Name, "owner_http", o.HTTPAddr, "method", r.Method, "path", r.URL.Path, "err", err)
			msg := fmt.Sprintf("forwarding %s %s to its owner, node %q at %s, failed: %v", r.Method, r.URL.Path, o.Name, o.HTTPAddr, err)
			writeJSON(w, http.StatusBadGateway, apitype.Error{Error: apitype.ErrorBody{Code: CodeOwnerUnreachable, Message: msg, Owners: owners}})
		},
		ErrorLog: s.errLog,
	}
	p.ServeHTTP(w, r)
}

// newForwardTransport is the transport forwarded requests use unless
// Config.ForwardTransport is set: no proxy from the environment (the
// owner is a peer), bounded dialling and waiting, a few idle connections
// per owner; HTTPS is verified against the system's roots.
func newForwardTransport() *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 10 * time.Second,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       30 * time.Second,
	}
}
