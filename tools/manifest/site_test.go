package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// write puts files (slash path → body) under dir.
func write(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// leftovers are what tests and benchmarks leave in dist/: never the site's.
var leftovers = map[string]string{
	"bench-smoke/bench.wasm":  "\x00asm" + strings.Repeat("bench", 1000),
	"bench-smoke/serve":       "ELF",
	"bench/site/index.html":   "<!doctype html>",
	"screenshots/app.png":     "png",
	"stray.txt":               "x",
	"web/sub/nested.js":       "//",
	"web/.hidden.js":          "//",
	"web/app.js.map":          "{}",
	"weights/other.md":        "# not a listed model's card",
	"weights/unused.png":      "png",
	"weights/m.safetensors":   "weights",
	"weights/.m.md.gz.tmp":    "partial",
	"web/app.js.gz":           "twin",
	"web/diffuse.wasm.br":     "twin",
	"weights/manifest.json~":  "backup",
	"weights/m-samples.png.x": "x",
}

func TestSiteFilesAreAnAllowList(t *testing.T) {
	site := t.TempDir()
	write(t, site, map[string]string{
		"index.html":            "<!doctype html>",
		"web/app.js":            "//",
		"web/diffuse.wasm":      "\x00asm",
		"web/embed-demo.html":   "<!doctype html>",
		"weights/manifest.json": "{}",
		"weights/m.md":          "# m\n\n![grid](m-samples.png)\n",
		"weights/m-samples.png": "png",
		"weights/n.md":          "# n\n",
	})
	write(t, site, leftovers)
	m := &Manifest{Models: []Entry{
		{Name: "m", File: "m.safetensors", Card: "m.md", Images: []string{"m-samples.png"}},
		{Name: "n", File: "n.safetensors", Card: "n.md"},
		{Name: "o", File: "o.safetensors"},
	}}
	shell, lazy, err := siteFiles(site, m)
	if err != nil {
		t.Fatal(err)
	}
	wantShell := []string{"index.html", "web/app.js", "web/diffuse.wasm", "web/embed-demo.html", "weights/manifest.json"}
	wantLazy := []string{"weights/m-samples.png", "weights/m.md", "weights/n.md"}
	if !reflect.DeepEqual(shell, wantShell) || !reflect.DeepEqual(lazy, wantLazy) {
		t.Errorf("shell %q\nwant  %q\nlazy  %q\nwant  %q", shell, wantShell, lazy, wantLazy)
	}
}

func TestCardImages(t *testing.T) {
	wdir := t.TempDir()
	write(t, wdir, map[string]string{
		"c.md": "# c\n\n![grid](c-samples.png)\n\n![other](<d.png> \"title\") and <img alt=\"x\" src=\"e.png\">\n" +
			"![remote](https://example.com/x.png) ![data](data:image/png;base64,AA) ![up](../up.png) ![root](/root.png)\n" +
			"![again](c-samples.png?v=2) ![lost](lost.png) [a link, not an image](f.png)\n" +
			"```\n--out-png weights/c-samples.png\n```\n",
		"c-samples.png": "png",
		"d.png":         "png",
		"e.png":         "png",
		"f.png":         "png",
	})
	b, err := os.ReadFile(filepath.Join(wdir, "c.md"))
	if err != nil {
		t.Fatal(err)
	}
	images, missing := cardImages(wdir, string(b))
	if want := []string{"c-samples.png", "d.png", "e.png"}; !reflect.DeepEqual(images, want) {
		t.Errorf("images %q, want %q", images, want)
	}
	if want := []string{"lost.png"}; !reflect.DeepEqual(missing, want) {
		t.Errorf("missing %q, want %q", missing, want)
	}
}

// TestShippedCardsImages checks that every card in weights/ shows only
// images that are in weights/ (make dist copies them beside the cards).
func TestShippedCardsImages(t *testing.T) {
	cards, _ := filepath.Glob("../../weights/*.md")
	for _, c := range cards {
		b, err := os.ReadFile(c)
		if err != nil {
			t.Fatal(err)
		}
		images, missing := cardImages(filepath.Dir(c), string(b))
		if len(missing) > 0 {
			t.Errorf("%s shows %q, not in weights/", c, missing)
		}
		if len(images) == 0 {
			t.Logf("%s shows no image", c)
		}
	}
}

// gunzip returns a gzip file's content and header comment.
func gunzip(t *testing.T, p string) (string, string) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), r.Comment
}

func TestCompressSite(t *testing.T) {
	site := t.TempDir()
	noise := make([]byte, 4096)
	rand.New(rand.NewSource(1)).Read(noise)
	js := strings.Repeat("export const x = 1;\n", 200)
	wasm := "\x00asm" + strings.Repeat("\x01\x02\x03 code ", 3000)
	write(t, site, map[string]string{
		"index.html":                 strings.Repeat("<p>hi</p>\n", 100),
		"web/app.js":                 js,
		"web/diffuse.wasm":           wasm,
		"web/icon.png":               strings.Repeat("png", 1000),
		"weights/m.safetensors":      strings.Repeat("\x00\x3c\x12\x3c", 2000),
		"weights/dev.safetensors":    string(noise),
		"weights/dev.safetensors.gz": "an old twin of a file that no longer compresses",
		"web/gone.js.gz":             "the twin of a file that is gone",
		"bench-smoke/bench.wasm":     wasm,
	})
	files := []string{"index.html", "web/app.js", "web/diffuse.wasm", "web/icon.png", "weights/m.safetensors", "weights/dev.safetensors"}
	plain, packed, err := compressSite(site, files)
	if err != nil {
		t.Fatal(err)
	}
	if packed <= 0 || packed >= plain {
		t.Errorf("%d bytes packed into %d", plain, packed)
	}
	for _, f := range []string{"index.html", "web/app.js", "web/diffuse.wasm", "weights/m.safetensors"} {
		p := filepath.Join(site, filepath.FromSlash(f))
		orig, _ := os.ReadFile(p)
		got, comment := gunzip(t, p+".gz")
		sum := sha256.Sum256(orig)
		if got != string(orig) || comment != "sha256="+hex.EncodeToString(sum[:]) {
			t.Errorf("%s.gz: %d bytes for %d, comment %q", f, len(got), len(orig), comment)
		}
	}
	for _, f := range []string{"web/icon.png.gz", "weights/dev.safetensors.gz", "web/gone.js.gz", "bench-smoke/bench.wasm.gz"} {
		if _, err := os.Stat(filepath.Join(site, filepath.FromSlash(f))); err == nil {
			t.Errorf("%s exists", f)
		}
	}

	// Unchanged files are not compressed again; the output is deterministic.
	gzPath := filepath.Join(site, "web", "diffuse.wasm.gz")
	before, _ := os.ReadFile(gzPath)
	st0, _ := os.Stat(gzPath)
	old := st0.ModTime().Add(-time.Hour)
	os.Chtimes(gzPath, old, old) // as a copy made in another order might leave it
	if _, _, err := compressSite(site, files); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(gzPath)
	st1, _ := os.Stat(gzPath)
	stOrig, _ := os.Stat(filepath.Join(site, "web", "diffuse.wasm"))
	if !bytes.Equal(before, after) {
		t.Error("a second run changed an unchanged file's .gz")
	}
	if st1.ModTime().Before(stOrig.ModTime()) {
		t.Error("an up-to-date .gz was left older than its file (tools/serve would not send it)")
	}
	os.Remove(gzPath)
	if _, _, err := compressSite(site, files); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(gzPath); !bytes.Equal(before, again) {
		t.Error("compressing the same file twice gave different bytes")
	}

	// A changed file gets a new .gz.
	write(t, site, map[string]string{"web/app.js": js + "// build B\n"})
	if _, _, err := compressSite(site, files); err != nil {
		t.Fatal(err)
	}
	if got, _ := gunzip(t, filepath.Join(site, "web", "app.js.gz")); got != js+"// build B\n" {
		t.Error("app.js.gz was not refreshed after app.js changed")
	}

	// Off: every twin of the site's goes.
	if _, _, err := compressSite(site, nil); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{site, filepath.Join(site, "web"), filepath.Join(site, "weights")} {
		if gz, _ := filepath.Glob(filepath.Join(dir, "*.gz")); len(gz) > 0 {
			t.Errorf("left after -gzip=false: %q", gz)
		}
	}
}

// TestServiceWorkerBuild checks the service worker's file lists: the site's
// own files with their hashes, whatever else lies in the folder; leftovers
// change neither the lists nor the version.
func TestServiceWorkerBuild(t *testing.T) {
	site := t.TempDir()
	write(t, site, map[string]string{
		"index.html":            "<!doctype html>",
		"web/app.js":            "//",
		"weights/manifest.json": "{}",
		"weights/m.md":          "# m\n\n![grid](m-samples.png)\n",
		"weights/m-samples.png": "png",
	})
	tpl := filepath.Join(t.TempDir(), "sw.js")
	write(t, filepath.Dir(tpl), map[string]string{"sw.js": "// head\nconst BUILD = { version: 'dev' };\nconst X = 1;\n"})
	m := &Manifest{Default: "m", Models: []Entry{{Name: "m", File: "m.safetensors", SHA256: "ab", Card: "m.md", Images: []string{"m-samples.png"}}}}
	build := func() (string, map[string]any) {
		t.Helper()
		if err := writeServiceWorker(site, tpl, m); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(site, "sw.js"))
		line := strings.Split(string(b), "\n")[1]
		var v map[string]any
		if err := json.Unmarshal([]byte(strings.TrimSuffix(strings.TrimPrefix(line, "const BUILD = "), ";")), &v); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		return string(b), v
	}
	s1, v := build()
	want := map[string]any{
		"shell":   []any{"index.html", "web/app.js", "weights/manifest.json"},
		"lazy":    []any{"weights/m-samples.png", "weights/m.md"},
		"weights": []any{map[string]any{"url": "weights/m.safetensors?sha256=ab", "default": true}},
	}
	for k, w := range want {
		if !reflect.DeepEqual(v[k], w) {
			t.Errorf("BUILD.%s = %v, want %v", k, v[k], w)
		}
	}
	sums := v["sha256"].(map[string]any)
	for _, f := range []string{"index.html", "web/app.js", "weights/manifest.json", "weights/m-samples.png", "weights/m.md"} {
		b, _ := os.ReadFile(filepath.Join(site, filepath.FromSlash(f)))
		sum := sha256.Sum256(b)
		if sums[f] != hex.EncodeToString(sum[:]) {
			t.Errorf("sha256 of %s: %v", f, sums[f])
		}
	}
	if len(sums) != 5 {
		t.Errorf("sha256 of %d files: %v", len(sums), sums)
	}
	write(t, site, leftovers)
	if s2, _ := build(); s2 != s1 {
		t.Errorf("leftovers in the folder changed the service worker:\n%s\n%s", s1, s2)
	}
	write(t, site, map[string]string{"web/app.js": "// build B"})
	_, v2 := build()
	if v2["version"] == v["version"] {
		t.Error("a changed shell file kept the version")
	}
	write(t, filepath.Dir(tpl), map[string]string{"sw.js": "// head 2\nconst BUILD = { version: 'dev' };\nconst X = 1;\n"})
	if _, v3 := build(); v3["version"] == v2["version"] {
		t.Error("a changed service worker template kept the version")
	}
}
