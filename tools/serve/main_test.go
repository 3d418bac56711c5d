package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
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
		{"/weights/m.md", "text/markdown; charset=utf-8", 200},
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
	for _, p := range []string{"../../index.html", "../../web/embed-demo.html", "../../web/lab-demo.html"} {
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

// gzipped is body gzipped.
func gzipped(t *testing.T, body string) string {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(body))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// get sends a GET (or HEAD) with the headers given (name, value, ...) and
// returns the response and its body, undecoded.
func get(t *testing.T, srv *httptest.Server, method, target string, headers ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	// A Transport of its own, told not to ask for or decode gzip itself.
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestPrecompressed checks the .gz twins make dist writes: sent with
// Content-Encoding gzip, the original's type and the twin's length when the
// client takes gzip; the plain file otherwise, for ranges and when the twin
// is older than the file; Vary and distinct ETags on both.
func TestPrecompressed(t *testing.T) {
	// Large enough that its .gz is more than net/http buffers (a body of
	// unknown length would go out chunked).
	var w strings.Builder
	w.WriteString("\x00asm")
	for i := 0; w.Len() < 200000; i++ {
		w.WriteString(strconv.Itoa(i * i % 99991))
	}
	wasm := w.String()
	text := strings.Repeat("plain text here\n", 50)
	page := strings.Repeat("<p>index</p>\n", 200)
	card := strings.Repeat("# card\n\ntext\n", 100)
	dir := site(t, map[string]string{
		"web/diffuse.wasm":    wasm,
		"web/diffuse.wasm.gz": gzipped(t, wasm),
		"index.html":          page,
		"index.html.gz":       gzipped(t, page),
		"weights/m.md":        card,
		"weights/m.md.gz":     gzipped(t, card),
		"web/app.js":          "// no twin",
		"web/old.js":          "// newer than its twin",
		"web/old.js.gz":       gzipped(t, "// stale"),
		"web/x.unknownext":    text,
		"web/x.unknownext.gz": gzipped(t, text),
	})
	// Twins as make dist leaves them, not older than their files; one stale.
	past, later := time.Now().Add(-time.Hour), time.Now().Add(time.Minute)
	for _, f := range []string{"web/diffuse.wasm.gz", "index.html.gz", "weights/m.md.gz", "web/x.unknownext.gz"} {
		if err := os.Chtimes(filepath.Join(dir, filepath.FromSlash(f)), later, later); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(filepath.Join(dir, "web", "old.js.gz"), past, past); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Handler(dir))
	defer srv.Close()

	for _, c := range []struct {
		target, typ, body string
	}{
		{"/web/diffuse.wasm", "application/wasm", wasm},
		{"/", "text/html; charset=utf-8", page},
		{"/index.html?seed=3", "text/html; charset=utf-8", page},
		{"/weights/m.md", "text/markdown; charset=utf-8", card},
		{"/web/x.unknownext", "text/plain; charset=utf-8", text},
	} {
		for _, ae := range []string{"gzip, deflate, br, zstd", "gzip", "br;q=1.0, gzip;q=0.5", "*", "x-gzip"} {
			resp, body := get(t, srv, "GET", c.target, "Accept-Encoding", ae)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "gzip" {
				t.Errorf("%s, Accept-Encoding %q: status %d, Content-Encoding %q", c.target, ae, resp.StatusCode, resp.Header.Get("Content-Encoding"))
				continue
			}
			if resp.Header.Get("Content-Type") != c.typ || resp.Header.Get("Vary") != "Accept-Encoding" ||
				resp.Header.Get("Content-Length") != strconv.Itoa(len(body)) || len(body) >= len(c.body) {
				t.Errorf("%s: Content-Type %q, Vary %q, Content-Length %q for a %d-byte body of a %d-byte file",
					c.target, resp.Header.Get("Content-Type"), resp.Header.Get("Vary"), resp.Header.Get("Content-Length"), len(body), len(c.body))
			}
			zr, err := gzip.NewReader(strings.NewReader(body))
			if err != nil {
				t.Fatalf("%s: %v", c.target, err)
			}
			if plain, err := io.ReadAll(zr); err != nil || string(plain) != c.body {
				t.Errorf("%s: the gzipped body is not the file (%v)", c.target, err)
			}
		}
		for _, ae := range []string{"", "identity", "br, zstd", "gzip;q=0", "*, gzip;q=0", "deflate, x-gzip;q=0.000"} {
			h := []string{"Accept-Encoding", ae}
			if ae == "" {
				h = nil
			}
			resp, body := get(t, srv, "GET", c.target, h...)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "" || body != c.body ||
				resp.Header.Get("Content-Type") != c.typ || resp.Header.Get("Vary") != "Accept-Encoding" {
				t.Errorf("%s, Accept-Encoding %q: status %d, Content-Encoding %q, Content-Type %q, Vary %q, the file: %v",
					c.target, ae, resp.StatusCode, resp.Header.Get("Content-Encoding"), resp.Header.Get("Content-Type"), resp.Header.Get("Vary"), body == c.body)
			}
		}
	}

	// Two representations, two ETags; each revalidates to 304.
	gz, _ := get(t, srv, "GET", "/web/diffuse.wasm", "Accept-Encoding", "gzip")
	id, _ := get(t, srv, "GET", "/web/diffuse.wasm")
	if gz.Header.Get("ETag") == "" || gz.Header.Get("ETag") == id.Header.Get("ETag") {
		t.Errorf("ETags: gzip %q, identity %q", gz.Header.Get("ETag"), id.Header.Get("ETag"))
	}
	if r, _ := get(t, srv, "GET", "/web/diffuse.wasm", "Accept-Encoding", "gzip", "If-None-Match", gz.Header.Get("ETag")); r.StatusCode != 304 {
		t.Errorf("If-None-Match of the gzip ETag: status %d", r.StatusCode)
	}
	if r, _ := get(t, srv, "GET", "/web/diffuse.wasm", "If-None-Match", id.Header.Get("ETag")); r.StatusCode != 304 {
		t.Errorf("If-None-Match of the identity ETag: status %d", r.StatusCode)
	}
	if r, _ := get(t, srv, "GET", "/web/diffuse.wasm", "If-None-Match", gz.Header.Get("ETag")); r.StatusCode != 200 {
		t.Errorf("the gzip ETag revalidated the identity answer: status %d", r.StatusCode)
	}

	// HEAD: the headers of the GET.
	if r, body := get(t, srv, "HEAD", "/web/diffuse.wasm", "Accept-Encoding", "gzip"); r.Header.Get("Content-Encoding") != "gzip" ||
		r.Header.Get("Content-Length") != gz.Header.Get("Content-Length") || body != "" {
		t.Errorf("HEAD: Content-Encoding %q, Content-Length %q", r.Header.Get("Content-Encoding"), r.Header.Get("Content-Length"))
	}
	// A range is a range of the file itself.
	if r, body := get(t, srv, "GET", "/web/diffuse.wasm", "Accept-Encoding", "gzip", "Range", "bytes=0-3"); r.StatusCode != 206 ||
		r.Header.Get("Content-Encoding") != "" || body != wasm[:4] {
		t.Errorf("Range: status %d, Content-Encoding %q, body %q", r.StatusCode, r.Header.Get("Content-Encoding"), body)
	}
	// No twin: the file, and no Vary.
	if r, body := get(t, srv, "GET", "/web/app.js", "Accept-Encoding", "gzip"); r.Header.Get("Content-Encoding") != "" || body != "// no twin" || r.Header.Get("Vary") != "" {
		t.Errorf("app.js without a twin: Content-Encoding %q, Vary %q, body %q", r.Header.Get("Content-Encoding"), r.Header.Get("Vary"), body)
	}
	// A twin older than its file is stale: never sent.
	if r, body := get(t, srv, "GET", "/web/old.js", "Accept-Encoding", "gzip"); r.Header.Get("Content-Encoding") != "" || body != "// newer than its twin" {
		t.Errorf("stale twin: Content-Encoding %q, body %q", r.Header.Get("Content-Encoding"), body)
	}
}

func TestAcceptsGzip(t *testing.T) {
	for v, want := range map[string]bool{
		"":                             false,
		"gzip":                         true,
		"GZIP":                         true,
		"gzip, deflate, br, zstd":      true,
		"deflate, gzip;q=1.0, *;q=0.5": true,
		"gzip;q=0":                     false,
		"gzip; q=0.0":                  false,
		"gzip;q=0.001":                 true,
		"*":                            true,
		"*;q=0":                        false,
		"*, gzip;q=0":                  false,
		"gzip;q=0, *":                  false,
		"identity":                     false,
		"br":                           false,
		"x-gzip":                       true,
		"gzip;q=bogus":                 false,
	} {
		if got := acceptsGzip([]string{v}); got != want {
			t.Errorf("Accept-Encoding %q: gzip %v, want %v", v, got, want)
		}
	}
	if !acceptsGzip([]string{"br", "gzip"}) {
		t.Error("gzip in a second Accept-Encoding line not seen")
	}
}
