// Command serve is a small static file server for the built site (dist/):
// correct MIME types (application/wasm above all), the same Content Security
// Policy the pages carry in their meta tag (a header also covers the Web
// Worker, which meta tags cannot), revalidation on every request so a
// rebuilt file is never served stale, and cross-origin isolation (COOP and
// COEP), which the SIMD backend's helper threads need for SharedArrayBuffer
// (the site loads nothing from other origins, so COEP blocks nothing).
// The header policy also says who may frame the pages (frame-ancestors,
// which a meta tag cannot carry): this origin only, unless -frame-ancestors
// names more. A folder asked for without its trailing slash is redirected
// to the cleaned path with one, always a path on this origin.
//
// Precompressed files: where FILE.gz lies beside FILE (make dist writes
// them; tools/manifest) and is not older than it, a request whose
// Accept-Encoding allows gzip gets its bytes with Content-Encoding: gzip,
// FILE's Content-Type and the .gz file's Content-Length; a request for a
// range, or from a client that does not take gzip, gets FILE itself. Both
// answers say Vary: Accept-Encoding and carry an ETag of their own, so
// caches keep them apart.
//
//	go run ./tools/serve [-dir dist] [-addr localhost:8080] [-frame-ancestors "'self' https://blog.example"]
//
// With -addr host:0 it picks a free port; the first line it prints is the
// URL either way (the browser tests read it).
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
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

// DefaultFrameAncestors is who may frame the pages when -frame-ancestors
// is not given: pages of this origin only.
const DefaultFrameAncestors = "'self'"

// HeaderCSP is the policy the server sends: CSP, which the pages also carry
// in their meta tag, plus frame-ancestors, which browsers ignore in a meta
// tag. ancestors must have passed CheckFrameAncestors.
func HeaderCSP(ancestors string) string {
	return CSP + "; frame-ancestors " + ancestors
}

// CheckFrameAncestors checks a frame-ancestors source list given on the
// command line and returns it with its blanks normalised. It refuses ";",
// "," and control characters (line breaks included), which would end the
// directive and add others, start a second policy or break the header line,
// and accepts only 'self', 'none' (alone), * and scheme or host sources such
// as https: or https://blog.example:8443.
func CheckFrameAncestors(v string) (string, error) {
	if i := strings.IndexFunc(v, func(c rune) bool { return c == ';' || c == ',' || c < ' ' && c != '\t' || c == 0x7f }); i >= 0 {
		return "", fmt.Errorf("frame-ancestors: %q: no ';', ',', line breaks or control characters (one directive's sources only)", v)
	}
	srcs := strings.Fields(v)
	if len(srcs) == 0 {
		return "", fmt.Errorf("frame-ancestors: empty source list (use 'none' to forbid all framing)")
	}
	for _, s := range srcs {
		switch {
		case s == "'self'" || s == "*":
		case s == "'none'":
			if len(srcs) > 1 {
				return "", fmt.Errorf("frame-ancestors: 'none' must stand alone")
			}
		case s[0] == '\'':
			return "", fmt.Errorf("frame-ancestors: %q: only 'self' and 'none' are allowed in quotes", s)
		default:
			for _, c := range s {
				ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
					strings.ContainsRune("-.:/*[]%_~", c)
				if !ok {
					return "", fmt.Errorf("frame-ancestors: %q: character %q is not allowed in a source", s, c)
				}
			}
		}
	}
	return strings.Join(srcs, " "), nil
}

// frameAncestorsFlag is the -frame-ancestors flag: flag parsing refuses a
// value CheckFrameAncestors refuses.
type frameAncestorsFlag struct{ v string }

func (f *frameAncestorsFlag) String() string {
	if f == nil {
		return ""
	}
	return f.v
}

func (f *frameAncestorsFlag) Set(v string) error {
	s, err := CheckFrameAncestors(v)
	if err != nil {
		return err
	}
	f.v = s
	return nil
}

// options are the command-line settings.
type options struct {
	dir, addr      string
	quiet          bool
	frameAncestors frameAncestorsFlag
}

// defineFlags registers the command's flags on fs.
func defineFlags(fs *flag.FlagSet) *options {
	o := &options{frameAncestors: frameAncestorsFlag{DefaultFrameAncestors}}
	fs.StringVar(&o.dir, "dir", "dist", "folder to serve")
	fs.StringVar(&o.addr, "addr", "localhost:8080", "listen address (port 0 picks a free one)")
	fs.BoolVar(&o.quiet, "quiet", false, "do not log requests")
	fs.Var(&o.frameAncestors, "frame-ancestors",
		"the `sources` that may show the pages in a frame (CSP frame-ancestors), e.g. \"'self' https://blog.example\"")
	return o
}

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
	".md":          "text/markdown; charset=utf-8", // model cards
	".txt":         "text/plain; charset=utf-8",
	".safetensors": "application/octet-stream",
	".npy":         "application/octet-stream",
}

func main() {
	o := defineFlags(flag.CommandLine)
	flag.Parse()
	if st, err := os.Stat(o.dir); err != nil || !st.IsDir() {
		log.Fatalf("serve: %s is not a folder (run 'make dist' first)", o.dir)
	}
	for ext, t := range types {
		_ = mime.AddExtensionType(ext, t)
	}
	h, err := HandlerFramedBy(o.dir, o.frameAncestors.String())
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("http://%s/\n", ln.Addr())
	if !o.quiet {
		h = logged(h)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.Serve(ln))
}

// Handler serves the files under dir; only pages of this origin may frame
// them.
func Handler(dir string) http.Handler {
	return handler(dir, HeaderCSP(DefaultFrameAncestors))
}

// HandlerFramedBy serves the files under dir and lets the frame-ancestors
// sources frame them (see CheckFrameAncestors).
func HandlerFramedBy(dir, frameAncestors string) (http.Handler, error) {
	fa, err := CheckFrameAncestors(frameAncestors)
	if err != nil {
		return nil, err
	}
	return handler(dir, HeaderCSP(fa)), nil
}

// dirRedirect is where a request for the folder at p, a path.Clean'ed path
// asked for without its trailing slash, is sent: p with a slash added,
// escaped. It is a path on this origin or "" when p cannot give one: never
// "//host" or "/\\host", which browsers read as another origin.
func dirRedirect(p string) string {
	if !strings.HasPrefix(p, "/") {
		return ""
	}
	if p != "/" {
		p += "/"
	}
	loc := (&url.URL{Path: p}).EscapedPath()
	if !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, "/\\") {
		return ""
	}
	return loc
}

func handler(dir, csp string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
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
		// No dotfiles; no backslashes or control characters, which no file of
		// the site has and which some systems or browsers read as separators.
		if strings.Contains(p, "/.") || strings.ContainsFunc(p, func(c rune) bool { return c == '\\' || c < ' ' || c == 0x7f }) {
			http.NotFound(w, r)
			return
		}
		name := filepath.Join(dir, filepath.FromSlash(p))
		st, err := os.Stat(name)
		if err == nil && st.IsDir() {
			if !strings.HasSuffix(r.URL.Path, "/") {
				// To the cleaned path, never the raw one: "//evil.example%2F.."
				// would otherwise go to "//evil.example/../", another site.
				loc := dirRedirect(p)
				if loc == "" {
					http.NotFound(w, r)
					return
				}
				if r.URL.RawQuery != "" {
					loc += "?" + r.URL.RawQuery
				}
				hd.Set("Location", loc)
				w.WriteHeader(http.StatusMovedPermanently)
				return
			}
			name = filepath.Join(name, "index.html")
			st, err = os.Stat(name)
		}
		if err != nil || st.IsDir() {
			http.NotFound(w, r)
			return
		}
		if t, ok := types[strings.ToLower(filepath.Ext(name))]; ok {
			hd.Set("Content-Type", t)
		}
		if filepath.Base(name) == "sw.js" {
			hd.Set("Service-Worker-Allowed", "/")
		}
		enc := ""
		if zst, err := os.Stat(name + ".gz"); err == nil && zst.Mode().IsRegular() && !zst.ModTime().Before(st.ModTime()) {
			hd.Add("Vary", "Accept-Encoding")
			if r.Header.Get("Range") == "" && acceptsGzip(r.Header.Values("Accept-Encoding")) {
				if _, ok := hd["Content-Type"]; !ok {
					// The original's type, sniffed from it, not from the .gz.
					hd.Set("Content-Type", sniff(name))
				}
				name, st, enc = name+".gz", zst, "gzip"
			}
		}
		f, err := os.Open(name)
		if err != nil {
			http.Error(w, "cannot read file", http.StatusInternalServerError)
			return
		}
		defer f.Close()
		hd.Set("ETag", etag(st, enc))
		if enc != "" {
			hd.Set("Content-Encoding", enc)
			// http.ServeContent leaves Content-Length out when a
			// Content-Encoding is set (and would then send a large file
			// chunked); the .gz file's size is the length of what goes out.
			w = &encodedWriter{w, st.Size()}
		}
		http.ServeContent(w, r, name, st.ModTime(), f)
	})
}

// acceptsGzip reports whether Accept-Encoding values allow gzip: gzip
// (or x-gzip, or *) listed with a q-value above 0, and not refused by a
// more specific entry ("*, gzip;q=0" refuses it).
func acceptsGzip(values []string) bool {
	named, star := -1.0, -1.0
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			q := 1.0
			for _, p := range strings.Split(params, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
					f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
					if err != nil || f < 0 {
						f = 0
					}
					q = f
				}
			}
			switch c := strings.ToLower(strings.TrimSpace(coding)); c {
			case "gzip", "x-gzip":
				named = max(named, q)
			case "*":
				star = max(star, q)
			}
		}
	}
	if named >= 0 {
		return named > 0
	}
	return star > 0
}

// etag names one representation of a file: its size and time, and the
// content coding when it is a precompressed twin.
func etag(st os.FileInfo, enc string) string {
	t := fmt.Sprintf(`"%x-%x`, st.ModTime().UnixNano(), st.Size())
	if enc != "" {
		t += "-" + enc
	}
	return t + `"`
}

// sniff is the Content-Type of a file with none in types, as
// http.ServeContent would find it: by extension, else from its first 512
// bytes.
func sniff(name string) string {
	if t := mime.TypeByExtension(filepath.Ext(name)); t != "" {
		return t
	}
	f, err := os.Open(name)
	if err != nil {
		return "application/octet-stream"
	}
	defer f.Close()
	var buf [512]byte
	n, _ := io.ReadFull(f, buf[:])
	return http.DetectContentType(buf[:n])
}

// encodedWriter sends a precompressed file's headers: its Content-Length
// on a full answer, and no byte ranges of it (a range request gets the
// plain file).
type encodedWriter struct {
	http.ResponseWriter
	size int64
}

func (e *encodedWriter) WriteHeader(code int) {
	if code == http.StatusOK {
		e.Header().Set("Content-Length", strconv.FormatInt(e.size, 10))
		e.Header().Set("Accept-Ranges", "none")
	}
	e.ResponseWriter.WriteHeader(code)
}

func (e *encodedWriter) Write(b []byte) (int, error) { return e.ResponseWriter.Write(b) }

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
