package main

import (
	"net/http"
	"net/http/httptest"
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
