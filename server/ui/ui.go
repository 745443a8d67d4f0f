// Package ui is roster's dashboard, served by every node at /ui: the
// cluster's nodes (state, incarnation, scopes, addresses, and how far each
// is from agreeing with this node), a scope's groups with their member
// counts and a prefix filter, a group's members with metadata and owner,
// and the live event stream of the scope.
//
// The page is plain HTML, CSS and JavaScript embedded in the binary
// (go:embed): no build step, nothing fetched from elsewhere, so it works
// offline. It reads everything from the node's JSON API (/v1): member
// lists a page at a time into a virtualised list (only the rows in view
// are in the DOM, so a 100,000-member group stays light), groups a page at
// a time, and the watch stream (snapshot=false) through fetch.
//
// Behind --api-token, the page and its assets are served without the
// token: they hold no data. The page asks for the token, keeps it in the
// tab's sessionStorage, and sends it as a bearer token with every /v1
// request, the event stream included (read with fetch, since EventSource
// cannot send headers); without it, it shows nothing but the form.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// Prefix is the path the dashboard is served under.
const Prefix = "/ui"

// contentSecurityPolicy lets the page load only its own assets and talk
// only to its own node.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
}

type file struct {
	body        []byte
	contentType string
	etag        string
}

// Handler serves the dashboard: the page at /ui and /ui/, its assets at
// /ui/<name> (GET and HEAD). Any other path under /ui goes to notFound.
func Handler(notFound http.Handler) http.Handler {
	files := map[string]file{}
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			return fmt.Errorf("ui: asset %s has no known content type", p)
		}
		files[strings.TrimPrefix(p, "assets/")] = file{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil || files["index.html"].body == nil {
		// The assets are compiled in: this is a broken build.
		panic(fmt.Sprintf("ui: embedded assets unreadable (%v)", err))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, Prefix), "/")
		if name == "" {
			name = "index.html"
		}
		f, ok := files[name]
		if !ok {
			notFound.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.contentType)
		h.Set("ETag", f.etag)
		// Revalidated each time (cheap with the ETag): a new binary's
		// page is never mixed with an old one's script.
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
	})
}
