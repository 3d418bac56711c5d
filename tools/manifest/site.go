package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// The site's own files, the ones the service worker knows, are chosen by
// an allow-list, never by walking the whole folder: dist/ also holds what
// tests and benchmarks leave there (dist/bench-smoke with its 6 MB wasm,
// dist/bench, dist/screenshots), which no visitor must download.
//
//   - shell (precached at install, so the app works offline): index.html,
//     every file directly in web/ (the app, the embed demo and the files
//     they load) and weights/manifest.json;
//   - on demand (cached by the service worker when first fetched): each
//     listed model's card and the images the card shows;
//   - weights: by URL with their hash, from the manifest (not here).
//
// Compressed twins (*.gz), source maps and dotfiles are never listed.

// siteFiles returns the shell and on-demand files of a site, as slash
// paths relative to it, sorted.
func siteFiles(site string, m *Manifest) (shell, lazy []string, err error) {
	if isFile(filepath.Join(site, "index.html")) {
		shell = append(shell, "index.html")
	}
	ents, err := os.ReadDir(filepath.Join(site, "web"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(n, ".") || strings.HasSuffix(n, ".map") || strings.HasSuffix(n, ".gz") || strings.HasSuffix(n, ".br") {
			continue
		}
		shell = append(shell, "web/"+n)
	}
	if isFile(filepath.Join(site, "weights", "manifest.json")) {
		shell = append(shell, "weights/manifest.json")
	}
	seen := map[string]bool{}
	for _, e := range m.Models {
		if e.Card == "" {
			continue
		}
		for _, f := range append([]string{e.Card}, e.Images...) {
			if p := "weights/" + f; !seen[p] {
				seen[p] = true
				lazy = append(lazy, p)
			}
		}
	}
	sort.Strings(shell)
	sort.Strings(lazy)
	return shell, lazy, nil
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// cardImage matches a markdown image, ![alt](src "title"), and an HTML
// <img src="...">.
var cardImage = regexp.MustCompile(`!\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)|<img\s[^>]*\bsrc\s*=\s*["']([^"']+)["']`)

// cardImages lists the images a card in wdir (its text) shows that are
// files beside it (links to other sites and paths outside wdir are not the
// site's), in the order they first appear, and those of them that are missing.
func cardImages(wdir, text string) (images, missing []string) {
	var out []string
	seen := map[string]bool{}
	for _, sm := range cardImage.FindAllStringSubmatch(text, -1) {
		src := sm[1] + sm[2]
		if i := strings.IndexAny(src, "?#"); i >= 0 {
			src = src[:i]
		}
		if src == "" || strings.Contains(src, ":") || strings.HasPrefix(src, "/") || strings.Contains(src, "\\") {
			continue // another site, a data: URL, or a path from the root
		}
		clean := path.Clean(src)
		if clean == ".." || strings.HasPrefix(clean, "../") || strings.Contains(clean, "/") || strings.HasPrefix(clean, ".") {
			continue // outside weights/: not something this build ships
		}
		if seen[clean] {
			continue
		}
		seen[clean] = true
		if !isFile(filepath.Join(wdir, clean)) {
			missing = append(missing, clean)
			continue
		}
		out = append(out, clean)
	}
	return out, missing
}

// Precompression: beside each compressible file of the site, FILE.gz holds
// the same bytes gzipped at the best level, for servers that send it to
// clients accepting gzip (tools/serve; nginx gzip_static; see README). The
// gzip header's comment carries the SHA-256 of the original, so an
// unchanged file is not compressed again and a changed one always is.

// compressible are the kinds worth gzipping; PNG is compressed already.
var compressible = map[string]bool{
	".wasm": true, ".js": true, ".mjs": true, ".css": true, ".html": true, ".json": true, ".md": true,
	".svg": true, ".webmanifest": true, ".txt": true, ".safetensors": true,
}

// minSaving: a .gz is kept only when it is at most this fraction of the
// original (fp16 weights compress to about 0.9; random development
// weights hardly at all, and are left alone).
const minSaving = 0.95

// compressSite writes or refreshes FILE.gz for each compressible file in
// files (slash paths under site) and removes the .gz files of index.html's,
// web/'s and weights/'s that no longer belong to a file worth compressing.
// It returns the bytes before and after for the files it keeps compressed.
func compressSite(site string, files []string) (plain, packed int64, err error) {
	want := map[string]bool{}
	for _, f := range files {
		if !compressible[strings.ToLower(path.Ext(f))] {
			continue
		}
		p := filepath.Join(site, filepath.FromSlash(f))
		n, z, ok, err := compressFile(p)
		if err != nil {
			return 0, 0, fmt.Errorf("compress %s: %w", f, err)
		}
		if ok {
			want[p+".gz"] = true
			plain += n
			packed += z
		}
	}
	for _, dir := range []string{site, filepath.Join(site, "web"), filepath.Join(site, "weights")} {
		gzs, err := filepath.Glob(filepath.Join(dir, "*.gz"))
		if err != nil {
			return 0, 0, err
		}
		for _, g := range gzs {
			if !want[g] {
				if err := os.Remove(g); err != nil {
					return 0, 0, err
				}
			}
		}
	}
	return plain, packed, nil
}

// compressFile brings p.gz up to date with p. ok is false (and p.gz gone)
// when gzip saves too little to be worth it.
func compressFile(p string) (size, gzSize int64, ok bool, err error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, 0, false, err
	}
	sum := sha256.Sum256(b)
	tag := "sha256=" + hex.EncodeToString(sum[:])
	gz := p + ".gz"
	st, stErr := os.Stat(p)
	if stErr != nil {
		return 0, 0, false, stErr
	}
	if zs, zerr := os.Stat(gz); zerr == nil && zs.Mode().IsRegular() && gzipComment(gz) == tag {
		// Up to date. A server may compare times (tools/serve sends the .gz
		// only when it is not older than the file), so keep it no older.
		if zs.ModTime().Before(st.ModTime()) {
			if err := os.Chtimes(gz, st.ModTime(), st.ModTime()); err != nil {
				return 0, 0, false, err
			}
		}
		return int64(len(b)), zs.Size(), true, nil
	}
	var out bytes.Buffer
	w, err := gzip.NewWriterLevel(&out, gzip.BestCompression)
	if err != nil {
		return 0, 0, false, err
	}
	// No name and no time in the header: the same file gives the same bytes.
	w.Comment = tag
	if _, err := w.Write(b); err != nil {
		return 0, 0, false, err
	}
	if err := w.Close(); err != nil {
		return 0, 0, false, err
	}
	if float64(out.Len()) > minSaving*float64(len(b)) {
		if err := os.Remove(gz); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return 0, 0, false, err
		}
		return int64(len(b)), 0, false, nil
	}
	tmp := filepath.Join(filepath.Dir(gz), "."+filepath.Base(gz)+".tmp") // a dotfile: never listed or served
	if err := os.WriteFile(tmp, out.Bytes(), 0o644); err != nil {
		return 0, 0, false, err
	}
	if err := os.Rename(tmp, gz); err != nil {
		os.Remove(tmp)
		return 0, 0, false, err
	}
	return int64(len(b)), int64(out.Len()), true, nil
}

// gzipComment is the comment in a gzip file's header, "" when it has none
// or is no gzip file.
func gzipComment(p string) string {
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	r, err := gzip.NewReader(io.LimitReader(f, 1<<16))
	if err != nil {
		return ""
	}
	return r.Comment
}
