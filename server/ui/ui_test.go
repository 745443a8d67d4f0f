package ui

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func get(t *testing.T, h http.Handler, method, path string, headers ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for _, kv := range headers {
		k, v, _ := strings.Cut(kv, ": ")
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestHandler: the page at /ui and /ui/, its assets with their types,
// revalidation by ETag, the security headers, and anything else handed to
// notFound.
func TestHandler(t *testing.T) {
	h := Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "custom 404 for "+r.URL.Path, http.StatusTeapot)
	}))
	for _, p := range []string{"/ui", "/ui/", "/ui/index.html"} {
		rec := get(t, h, "GET", p)
		require.Equal(t, http.StatusOK, rec.Code, p)
		require.Equal(t, "text/html; charset=utf-8", rec.Header().Get("Content-Type"))
		require.Contains(t, rec.Body.String(), `<script src="/ui/app.js"`)
		require.Contains(t, rec.Header().Get("Content-Security-Policy"), "connect-src 'self'")
		require.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))
	}
	js := get(t, h, "GET", "/ui/app.js")
	require.Equal(t, http.StatusOK, js.Code)
	require.Equal(t, "text/javascript; charset=utf-8", js.Header().Get("Content-Type"))
	require.Contains(t, js.Body.String(), "snapshot=false")
	require.Equal(t, "text/css; charset=utf-8", get(t, h, "GET", "/ui/style.css").Header().Get("Content-Type"))

	etag := js.Header().Get("ETag")
	require.NotEmpty(t, etag)
	require.Equal(t, http.StatusNotModified, get(t, h, "GET", "/ui/app.js", "If-None-Match: "+etag).Code)
	require.NotEqual(t, etag, get(t, h, "GET", "/ui/style.css").Header().Get("ETag"))
	head := get(t, h, "HEAD", "/ui/")
	require.Equal(t, http.StatusOK, head.Code)
	require.Empty(t, head.Body.String())

	for _, p := range []string{"/ui/nope.js", "/ui/assets/app.js", "/ui/index.html/x"} {
		rec := get(t, h, "GET", p)
		require.Equal(t, http.StatusTeapot, rec.Code, p)
		require.Contains(t, rec.Body.String(), "custom 404 for "+p)
	}
}

// TestAssetsSelfContained: every file the page refers to is embedded, and
// no asset refers to another host (no CDN: the page works offline).
func TestAssetsSelfContained(t *testing.T) {
	h := Handler(http.NotFoundHandler())
	index := get(t, h, "GET", "/ui/").Body.String()
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(index, -1)
	require.NotEmpty(t, refs)
	for _, m := range refs {
		ref := m[1]
		if ref == "data:," {
			continue
		}
		require.True(t, strings.HasPrefix(ref, "/ui/"), "index.html refers to %q", ref)
		require.Equal(t, http.StatusOK, get(t, h, "GET", ref).Code, ref)
	}
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(p)
		require.NoError(t, err)
		require.NotRegexp(t, `(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/`, string(b), "%s refers to another host", p)
		require.NotContains(t, string(b), "@import", p)
		return nil
	})
	require.NoError(t, err)
}
