// Command serve is a small static file server for the built site (dist/):
// correct MIME types (application/wasm above all), the same Content Security
// Policy the pages carry in their meta tag (a header also covers the Web
// Worker, which meta tags cannot), revalidation on every request so a
// rebuilt file is never served stale, and cross-origin isolation (COOP and
// COEP), which the SIMD backend's helper threads need for SharedArrayBuffer
// (the site loads nothing from other origins, so COEP blocks nothing).
//
//	go run ./tools/serve [-dir dist] [-addr localhost:8080]
//
// With -addr host:0 it picks a free port; the first line it prints is the
// URL either way (the browser tests read it).
package main

import (
	"flag"
	"fmt"
	"log"
	"mime"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// CSP is the policy for every response. It matches the meta tag in
// index.html and web/embed-demo.html: scripts from this origin only, plus
// WebAssembly compilation; no inline script or style; no request leaves
// the origin.
const CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; " +
	"img-src 'self' data: blob:; connect-src 'self'; worker-src 'self'; manifest-src 'self'; " +
	"object-src 'none'; base-uri 'self'; form-action 'self'"

var types = map[string]string{
	".html":        "text/html; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".mjs":         "text/javascript; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".json":        "application/json",
	".webmanifest": "application/manifest+json",
	".wasm":        "application/wasm",
	".svg":         "image/svg+xml",
	".png":         "image/png",
	".ico":         "image/x-icon",
	".md":          "text/plain; charset=utf-8", // model cards: shown, not downloaded
	".txt":         "text/plain; charset=utf-8",
	".safetensors": "application/octet-stream",
	".npy":         "application/octet-stream",
}

func main() {
	dir := flag.String("dir", "dist", "folder to serve")
	addr := flag.String("addr", "localhost:8080", "listen address (port 0 picks a free one)")
	quiet := flag.Bool("quiet", false, "do not log requests")
	flag.Parse()
	if st, err := os.Stat(*dir); err != nil || !st.IsDir() {
		log.Fatalf("serve: %s is not a folder (run 'make dist' first)", *dir)
	}
	for ext, t := range types {
		_ = mime.AddExtensionType(ext, t)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("http://%s/\n", ln.Addr())
	h := Handler(*dir)
	if !*quiet {
		h = logged(h)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.Serve(ln))
}

// Handler serves the files under dir.
func Handler(dir string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", CSP)
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Cross-Origin-Embedder-Policy", "require-corp")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-cache")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			hd.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		p := path.Clean("/" + r.URL.Path)
		if strings.Contains(p, "/.") { // no dotfiles
			http.NotFound(w, r)
			return
		}
		name := filepath.Join(dir, filepath.FromSlash(p))
		st, err := os.Stat(name)
		if err == nil && st.IsDir() {
			if !strings.HasSuffix(r.URL.Path, "/") {
				http.Redirect(w, r, r.URL.Path+"/", http.StatusMovedPermanently)
				return
			}
			name = filepath.Join(name, "index.html")
			st, err = os.Stat(name)
		}
		if err != nil || st.IsDir() {
			http.NotFound(w, r)
			return
		}
		f, err := os.Open(name)
		if err != nil {
			http.Error(w, "cannot read file", http.StatusInternalServerError)
			return
		}
		defer f.Close()
		if t, ok := types[strings.ToLower(filepath.Ext(name))]; ok {
			hd.Set("Content-Type", t)
		}
		if filepath.Base(name) == "sw.js" {
			hd.Set("Service-Worker-Allowed", "/")
		}
		http.ServeContent(w, r, name, st.ModTime(), f)
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(c int) { s.code = c; s.ResponseWriter.WriteHeader(c) }

func logged(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{w, 200}
		h.ServeHTTP(sw, r)
		log.Printf("%d %s %s", sw.code, r.Method, r.URL.RequestURI())
	})
}
