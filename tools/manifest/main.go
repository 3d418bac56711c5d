// Command manifest finishes a built site folder (dist/): it describes every
// model under SITE/weights in SITE/weights/manifest.json (file, size,
// SHA-256, model card and the images the card shows, what the page needs to
// know before downloading), writes SITE/sw.js, the service worker, from its
// template with the site's own files (see siteFiles: an allow-list, so what
// tests and benchmarks leave in dist/ is never downloaded by visitors), their
// SHA-256 and a version derived from them, and writes FILE.gz beside each
// compressible file for servers that send precompressed files (-gzip=false
// leaves them out and removes old ones).
//
//	go run ./tools/manifest -site dist [-default NAME] [-sw web/sw.js] [-dev-models FIXTURES_DIR] [-gzip=false]
//
// -dev-models first writes small random-weight development models (built
// from the diffusers fixtures) into SITE/weights, for when no trained model
// is shipped and for the browser tests.
//
// Everything it writes is derived, so it lives in dist/ only; the output is
// deterministic (no timestamps), so an unchanged build keeps its version and
// visitors' caches stay valid.
package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/diffuse-web/diffuse/core/engine"
)

//go:embed devmodels
var devFiles embed.FS

// Entry is one model in manifest.json. Paths are relative to the manifest.
type Entry struct {
	Name    string   `json:"name"`
	File    string   `json:"file"`
	SHA256  string   `json:"sha256"`
	Size    int64    `json:"size"`
	Card    string   `json:"card,omitempty"`
	Images  []string `json:"images,omitempty"` // files beside the card that it shows
	Title   string   `json:"title"`
	Summary string   `json:"summary,omitempty"`
	// Hint is the card's "Sampler hint:" line, shown under the page's
	// sampler picker (which samplers suit this model, and why).
	Hint string `json:"hint,omitempty"`
	// Description is the card's "Description:" line: what the model is and
	// does, in one line, shown under the page's model picker (where the
	// summary, a card's first paragraph, may be a command or a caveat).
	Description string     `json:"description,omitempty"`
	Shape       []int      `json:"shape"`
	Conditional bool       `json:"conditional"`
	Classes     int        `json:"classes,omitempty"`
	NullClass   int        `json:"nullClass"`
	Guidance    bool       `json:"guidance"`
	Schedule    string     `json:"schedule"`
	Range       [2]float64 `json:"range"`
	Dev         bool       `json:"dev,omitempty"`
}

// Manifest is weights/manifest.json.
type Manifest struct {
	Default string  `json:"default"`
	Models  []Entry `json:"models"`
}

func main() {
	site := flag.String("site", "dist", "built site folder")
	def := flag.String("default", "", "name of the default model (default: the first non-development model by name, else the first)")
	swTemplate := flag.String("sw", "web/sw.js", "service worker template")
	devModels := flag.String("dev-models", "", "fixtures folder: also build the random-weight development models from it")
	swOnly := flag.Bool("sw-only", false, "keep SITE/weights/manifest.json as it is and only rewrite the service worker (and the .gz files)")
	gz := flag.Bool("gzip", true, "write FILE.gz beside each compressible file of the site (and remove stale ones)")
	flag.Parse()
	var err error
	if *swOnly {
		err = rewriteServiceWorker(*site, *swTemplate)
	} else {
		err = run(*site, *def, *swTemplate, *devModels)
	}
	if err == nil {
		err = compress(*site, *gz)
	}
	if err != nil {
		log.Fatalf("manifest: %v", err)
	}
}

// compress brings the site's .gz files up to date (or removes them all when
// on is false): those of its own files, sw.js and the listed weights.
func compress(site string, on bool) error {
	var files []string
	if on {
		m, err := readManifest(site)
		if err != nil {
			return err
		}
		shell, lazy, err := siteFiles(site, m)
		if err != nil {
			return err
		}
		files = append(append(shell, lazy...), "sw.js")
		for _, e := range m.Models {
			files = append(files, "weights/"+e.File)
		}
	}
	plain, packed, err := compressSite(site, files)
	if err != nil {
		return err
	}
	if on {
		fmt.Fprintf(os.Stderr, "manifest: gzip: %.2f MB of files have %.2f MB .gz twins\n", float64(plain)/1e6, float64(packed)/1e6)
	}
	return nil
}

func readManifest(site string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(site, "weights", "manifest.json"))
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

func run(site, def, swTemplate, devModels string) error {
	wdir := filepath.Join(site, "weights")
	if err := os.MkdirAll(wdir, 0o755); err != nil {
		return err
	}
	if devModels != "" {
		if err := writeDevModels(devModels, wdir); err != nil {
			return fmt.Errorf("development models: %w", err)
		}
	}
	m, err := describe(wdir, def)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(wdir, "manifest.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "manifest: %d models, default %q\n", len(m.Models), m.Default)
	if swTemplate != "" {
		return writeServiceWorker(site, swTemplate, m)
	}
	return nil
}

// rewriteServiceWorker writes SITE/sw.js from the manifest already there.
func rewriteServiceWorker(site, swTemplate string) error {
	m, err := readManifest(site)
	if err != nil {
		return err
	}
	return writeServiceWorker(site, swTemplate, m)
}

func describe(wdir, def string) (*Manifest, error) {
	files, err := filepath.Glob(filepath.Join(wdir, "*.safetensors"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	m := &Manifest{Models: []Entry{}}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		l, err := engine.Load(data, "", -1)
		if err != nil {
			// A model this build cannot run is left out, loudly, rather than
			// breaking the whole site.
			fmt.Fprintf(os.Stderr, "manifest: WARNING: leaving out %s: %v\n", f, err)
			continue
		}
		name := strings.TrimSuffix(filepath.Base(f), ".safetensors")
		e := Entry{
			Name: name, File: filepath.Base(f), SHA256: l.Info.SHA256, Size: int64(len(data)),
			Title: name, Shape: l.Info.Shape, Conditional: l.Info.Conditional, Classes: l.Info.Classes,
			NullClass: l.Info.NullClass, Guidance: l.Info.Guidance, Schedule: l.Info.Schedule, Range: l.Info.Range,
			Dev: strings.HasPrefix(name, "dev-"),
		}
		card := filepath.Join(wdir, name+".md")
		if _, err := os.Stat(card); err == nil {
			e.Card = name + ".md"
			b, err := os.ReadFile(card) // read once: title, summary, hint and images come from it
			if err != nil {
				return nil, err
			}
			text := string(b)
			e.Title, e.Summary = cardText(text)
			e.Hint = cardLine(text, hintPrefix)
			e.Description = cardLine(text, descriptionPrefix)
			if e.Title == "" {
				e.Title = name
			}
			var missing []string
			e.Images, missing = cardImages(wdir, text)
			for _, f := range missing {
				fmt.Fprintf(os.Stderr, "manifest: WARNING: %s shows %s, which is not in %s (make dist copies weights/*.png)\n", e.Card, f, wdir)
			}
		}
		m.Models = append(m.Models, e)
	}
	switch {
	case def != "":
		found := false
		for _, e := range m.Models {
			found = found || e.Name == def
		}
		if !found {
			return nil, fmt.Errorf("-default %q: no such model in %s", def, wdir)
		}
		m.Default = def
	case len(m.Models) > 0:
		// Only development models: the small, fast one.
		m.Default = m.Models[0].Name
		for _, e := range m.Models {
			if e.Name == "dev-tiny" {
				m.Default = e.Name
			}
		}
		for _, e := range m.Models {
			if !e.Dev {
				m.Default = e.Name
				break
			}
		}
	}
	return m, nil
}

// cardText reads a model card's title (its first "# " heading) and summary
// (the first paragraph after it, in one line) from its text.
func cardText(text string) (title, summary string) {
	sc := bufio.NewScanner(strings.NewReader(text))
	var para []string
	inFence := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
		}
		if inFence && len(para) == 0 { // a code block's lines are not a summary
			continue
		}
		switch {
		case title == "" && strings.HasPrefix(line, "# "):
			title = strings.TrimSpace(line[2:])
		case title == "":
		case strings.HasPrefix(line, hintPrefix), strings.HasPrefix(line, descriptionPrefix): // shown on their own (cardLine)
		case line == "":
			if len(para) > 0 {
				return title, clean(strings.Join(para, " "))
			}
		case strings.HasPrefix(line, "#") || strings.HasPrefix(line, "|") || strings.HasPrefix(line, "```") || strings.HasPrefix(line, "- "):
			if len(para) > 0 {
				return title, clean(strings.Join(para, " "))
			}
		default:
			para = append(para, line)
		}
	}
	return title, clean(strings.Join(para, " "))
}

// The lines of a card the page shows on their own: hintPrefix's under the
// sampler picker, descriptionPrefix's under the model picker.
const (
	hintPrefix        = "Sampler hint:"
	descriptionPrefix = "Description:"
)

// cardLine is the text of the card's line that starts with prefix, if any.
func cardLine(text, prefix string) string {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), prefix); ok {
			return clean(strings.TrimSpace(rest))
		}
	}
	return ""
}

// clean drops markdown emphasis and code marks from a one-line summary.
func clean(s string) string {
	s = strings.NewReplacer("**", "", "`", "").Replace(s)
	if r := []rune(s); len(r) > 300 {
		s = string(r[:299]) + "…"
	}
	return s
}

// writeServiceWorker fills the template's build line with the site's own
// files (shell: precached; lazy: cached when first fetched) and their
// SHA-256, the weights URLs and a version hashed from all of them.
func writeServiceWorker(site, template string, m *Manifest) error {
	tpl, err := os.ReadFile(template)
	if err != nil {
		return err
	}
	shell, lazy, err := siteFiles(site, m)
	if err != nil {
		return err
	}
	h := sha256.New()
	// The worker's own code is part of the build: a new template is a new
	// version, with a cache of its own.
	fmt.Fprintf(h, "sw.js %x\n", sha256.Sum256(tpl))
	files := map[string]string{}
	for _, rel := range append(append([]string{}, shell...), lazy...) {
		b, err := os.ReadFile(filepath.Join(site, filepath.FromSlash(rel)))
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		files[rel] = hex.EncodeToString(sum[:])
		fmt.Fprintf(h, "%s %x\n", rel, sum)
	}
	type weight struct {
		URL     string `json:"url"`
		Default bool   `json:"default"`
	}
	weights := []weight{}
	for _, e := range m.Models {
		w := weight{URL: "weights/" + e.File + "?sha256=" + e.SHA256, Default: e.Name == m.Default}
		fmt.Fprintf(h, "%s\n", w.URL)
		weights = append(weights, w)
	}
	version := hex.EncodeToString(h.Sum(nil))[:16]
	if lazy == nil {
		lazy = []string{}
	}
	build, err := json.Marshal(struct {
		Version string            `json:"version"`
		Shell   []string          `json:"shell"`
		Lazy    []string          `json:"lazy"`
		SHA256  map[string]string `json:"sha256"`
		Weights []weight          `json:"weights"`
	}{version, shell, lazy, files, weights})
	if err != nil {
		return err
	}
	const marker = "const BUILD = "
	var out bytes.Buffer
	replaced := false
	for _, line := range strings.SplitAfter(string(tpl), "\n") {
		if !replaced && strings.HasPrefix(line, marker) {
			fmt.Fprintf(&out, "%s%s;\n", marker, build)
			replaced = true
			continue
		}
		out.WriteString(line)
	}
	if !replaced {
		return errors.New(template + ": no line starting with '" + marker + "' to fill in")
	}
	fmt.Fprintf(os.Stderr, "manifest: service worker version %s, %d shell files, %d on demand\n", version, len(shell), len(lazy))
	return os.WriteFile(filepath.Join(site, "sw.js"), out.Bytes(), 0o644)
}
