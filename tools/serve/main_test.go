package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestServesWithTypesAndPolicy(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"index.html":            "<!doctype html>",
		"sw.js":                 "//",
		"web/diffuse.wasm":      "\x00asm",
		"web/app.js":            "//",
		"web/style.css":         "",
		"weights/manifest.json": "{}",
		"weights/m.md":          "# m",
		"weights/m.safetensors": "xx",
		".secret":               "no",
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(Handler(dir))
	defer srv.Close()
	cases := []struct {
		path, typ string
		code      int
	}{
		{"/", "text/html; charset=utf-8", 200},
		{"/index.html?model=x&seed=3", "text/html; charset=utf-8", 200},
		{"/web/diffuse.wasm", "application/wasm", 200},
		{"/web/app.js", "text/javascript; charset=utf-8", 200},
		{"/web/style.css", "text/css; charset=utf-8", 200},
		{"/weights/manifest.json", "application/json", 200},
		{"/weights/m.md", "text/plain; charset=utf-8", 200},
		{"/weights/m.safetensors?sha256=ab", "application/octet-stream", 200},
		{"/.secret", "", 404},
		{"/web/../.secret", "", 404},
		{"/nope.js", "", 404},
	}
	for _, c := range cases {
		resp, err := http.Get(srv.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.code {
			t.Errorf("%s: status %d, want %d", c.path, resp.StatusCode, c.code)
			continue
		}
		if c.code == 200 && resp.Header.Get("Content-Type") != c.typ {
			t.Errorf("%s: Content-Type %q, want %q", c.path, resp.Header.Get("Content-Type"), c.typ)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self' 'wasm-unsafe-eval'") || !strings.Contains(csp, "connect-src 'self'") {
			t.Errorf("%s: CSP %q", c.path, csp)
		}
		if resp.Header.Get("Cross-Origin-Opener-Policy") != "same-origin" || resp.Header.Get("Cross-Origin-Embedder-Policy") != "require-corp" {
			t.Errorf("%s: not cross-origin isolated (COOP %q, COEP %q)", c.path,
				resp.Header.Get("Cross-Origin-Opener-Policy"), resp.Header.Get("Cross-Origin-Embedder-Policy"))
		}
		if resp.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("%s: Cache-Control %q", c.path, resp.Header.Get("Cache-Control"))
		}
	}
}

// TestPagesCarryThePolicy checks that the pages' meta tags state the same
// policy as the server header, for static hosts that cannot set headers.
func TestPagesCarryThePolicy(t *testing.T) {
	for _, p := range []string{"../../index.html", "../../web/embed-demo.html"} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `<meta http-equiv="Content-Security-Policy" content="`+CSP+`">`) {
			t.Errorf("%s: its CSP meta tag differs from serve.CSP", p)
		}
		if strings.Contains(string(b), "<script>") || strings.Contains(string(b), "style=") {
			t.Errorf("%s: inline script or style", p)
		}
	}
}

// site writes the files (name → body; a name ending in "/" is a folder)
// under a new temporary folder.
func site(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// rawGet sends "GET target" as it is, with no client cleaning or
// redirect following, and returns the response.
func rawGet(t *testing.T, srv *httptest.Server, target string) *http.Response {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: site.example\r\nConnection: close\r\n\r\n", target); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	resp.Body.Close()
	return resp
}

// sameOrigin reports whether a Location value stays on the origin that
// sent it: a path with one leading slash, no scheme, no host.
func sameOrigin(loc string) bool {
	if !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, "/\\") ||
		strings.ContainsAny(loc, "\\\r\n") {
		return false
	}
	base, _ := url.Parse("https://site.example/a/b")
	u, err := base.Parse(loc)
	return err == nil && u.Scheme == "https" && u.Host == "site.example"
}

// TestRedirectsStayOnTheOrigin checks the trailing-slash redirect: it goes
// to the cleaned path, never to a scheme-relative URL built from the raw
// one ("//evil.example%2F.." used to answer Location: //evil.example/../).
func TestRedirectsStayOnTheOrigin(t *testing.T) {
	dir := site(t, map[string]string{
		"index.html":              "root",
		"web/index.html":          "web",
		"evil.example/index.html": "folder named like a host",
		`\evil.example/`:          "", // a folder whose name starts with a backslash
	})
	srv := httptest.NewServer(Handler(dir))
	defer srv.Close()
	cases := []struct {
		target string
		code   int
		loc    string // "" for no Location
	}{
		{"//evil.example%2F..", 301, "/"},
		{"//evil.example/..", 301, "/"},
		{"//evil.example%2f..%2f", 200, ""},
		{"//evil.example", 301, "/evil.example/"},
		{"/%2F%2Fevil.example", 301, "/evil.example/"},
		{"/%2F%2Fevil.example/", 200, ""},
		{"///evil.example", 301, "/evil.example/"},
		{`/\evil.example`, 404, ""},
		{"/%5Cevil.example", 404, ""},
		{`/\/evil.example`, 404, ""},
		{"/web", 301, "/web/"},
		{"/web/.", 301, "/web/"},
		{"/web?model=x&seed=3", 301, "/web/?model=x&seed=3"},
		{"/web/", 200, ""},
	}
	for _, c := range cases {
		resp := rawGet(t, srv, c.target)
		loc := resp.Header.Get("Location")
		if loc != "" && !sameOrigin(loc) {
			t.Errorf("GET %s: Location %q leaves the origin", c.target, loc)
			continue
		}
		if resp.StatusCode != c.code || loc != c.loc {
			t.Errorf("GET %s: %d Location %q, want %d %q", c.target, resp.StatusCode, loc, c.code, c.loc)
		}
		if resp.StatusCode == 301 && resp.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s: redirect without the policy headers", c.target)
		}
	}
}

func TestDirRedirect(t *testing.T) {
	for p, want := range map[string]string{
		"/":              "/",
		"/web":           "/web/",
		"/a b":           "/a%20b/",
		`/\evil.example`: "/%5Cevil.example/",
		"/?x":            "/%3Fx/",
		"evil.example":   "",
	} {
		if got := dirRedirect(p); got != want || got != "" && !sameOrigin(got) {
			t.Errorf("dirRedirect(%q) = %q, want %q", p, got, want)
		}
	}
}

func TestHeadersAndFrameAncestors(t *testing.T) {
	dir := site(t, map[string]string{"index.html": "root", "web/index.html": "web"})
	check := func(name string, h http.Handler, ancestors string) {
		t.Helper()
		srv := httptest.NewServer(h)
		defer srv.Close()
		for _, target := range []string{"/", "/web", "/nope"} {
			resp := rawGet(t, srv, target)
			want := map[string]string{
				"Content-Security-Policy":      CSP + "; frame-ancestors " + ancestors,
				"Cross-Origin-Opener-Policy":   "same-origin",
				"Cross-Origin-Embedder-Policy": "require-corp",
				"X-Content-Type-Options":       "nosniff",
				"Referrer-Policy":              "no-referrer",
				"Cache-Control":                "no-cache",
			}
			for k, v := range want {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s: GET %s: %s %q, want %q", name, target, k, got, v)
				}
			}
		}
	}
	check("Handler", Handler(dir), "'self'")

	parse := func(args ...string) (*options, error) {
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		o := defineFlags(fs)
		return o, fs.Parse(append([]string{"-dir", dir}, args...))
	}
	for args, ancestors := range map[string]string{
		"":                                    "'self'",
		"'self' https://blog.example":         "'self' https://blog.example",
		"  'self'\thttps://blog.example:8443": "'self' https://blog.example:8443",
		"'none'":                              "'none'",
		"https: *.blog.example":               "https: *.blog.example",
	} {
		var flags []string
		if args != "" {
			flags = []string{"-frame-ancestors", args}
		}
		o, err := parse(flags...)
		if err != nil {
			t.Errorf("-frame-ancestors %q refused: %v", args, err)
			continue
		}
		h, err := HandlerFramedBy(o.dir, o.frameAncestors.String())
		if err != nil {
			t.Errorf("-frame-ancestors %q: %v", args, err)
			continue
		}
		check("-frame-ancestors "+args, h, ancestors)
	}
}

func TestBadFrameAncestorsRefused(t *testing.T) {
	for _, v := range []string{
		"",
		"   ",
		"'self'; script-src *",
		"'self';",
		"'self', default-src *",
		"'self'\r\nSet-Cookie: a=b",
		"'self'\nhttps://blog.example",
		"'self'\x00",
		"'unsafe-inline'",
		"'nonce-abc'",
		"'none' 'self'",
		"https://blog.example/<script>",
		`"self"`,
	} {
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		defineFlags(fs)
		if err := fs.Parse([]string{"-frame-ancestors", v}); err == nil {
			t.Errorf("-frame-ancestors %q accepted", v)
		}
		if _, err := HandlerFramedBy(t.TempDir(), v); err == nil {
			t.Errorf("HandlerFramedBy(%q) accepted", v)
		}
	}
}
