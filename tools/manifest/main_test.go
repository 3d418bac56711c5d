package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	fixturesdir "github.com/diffuse-web/diffuse/core/fixtures"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCardText(t *testing.T) {
	title, summary := cardText("# MNIST digits — class-conditional\n\nA **small** UNet\ntrained on `MNIST`.\n\n## Data\nmore\n")
	if title != "MNIST digits — class-conditional" || summary != "A small UNet trained on MNIST." {
		t.Fatalf("got %q, %q", title, summary)
	}
}

// TestSiteWithDevModels builds the development models, the manifest and the
// service worker into a temporary site, as `make dist` does.
func TestSiteWithDevModels(t *testing.T) {
	fixtures := fixturesdir.Dir()
	if _, err := os.Stat(filepath.Join(fixtures, "diffusers", "mnist_cond")); err != nil {
		t.Skipf("fixtures not found at %s (set FIXTURES_DIR)", fixtures)
	}
	site := t.TempDir()
	os.MkdirAll(filepath.Join(site, "web"), 0o755)
	os.WriteFile(filepath.Join(site, "index.html"), []byte("<!doctype html>"), 0o644)
	os.WriteFile(filepath.Join(site, "web", "app.js"), []byte("//"), 0o644)
	os.MkdirAll(filepath.Join(site, "screenshots"), 0o755)
	os.WriteFile(filepath.Join(site, "screenshots", "x.png"), []byte("png"), 0o644)
	tpl := filepath.Join(t.TempDir(), "sw.js")
	os.WriteFile(tpl, []byte("// head\nconst BUILD = { version: 'dev' };\nconst X = 1;\n"), 0o644)
	if err := run(site, "", tpl, fixtures); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(site, "weights", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Default != "dev-tiny" || len(m.Models) != len(devModelList) {
		t.Fatalf("default %q, %d models", m.Default, len(m.Models))
	}
	for _, e := range m.Models {
		data, err := os.ReadFile(filepath.Join(site, "weights", e.File))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if e.SHA256 != hex.EncodeToString(sum[:]) || e.Size != int64(len(data)) || e.Card != e.Name+".md" || !e.Dev {
			t.Errorf("entry %+v", e)
		}
	}
	sw, _ := os.ReadFile(filepath.Join(site, "sw.js"))
	s := string(sw)
	if !strings.Contains(s, `"index.html"`) || !strings.Contains(s, `"web/app.js"`) || !strings.Contains(s, `"weights/manifest.json"`) ||
		strings.Contains(s, "screenshots") || strings.Contains(s, `"weights/dev-tiny.safetensors"`) ||
		!strings.Contains(s, `dev-tiny.safetensors?sha256=`) || !strings.HasSuffix(s, "const X = 1;\n") {
		t.Errorf("service worker:\n%s", s)
	}
	// Deterministic: the same inputs give the same version.
	if err := run(site, "", tpl, ""); err != nil {
		t.Fatal(err)
	}
	sw2, _ := os.ReadFile(filepath.Join(site, "sw.js"))
	if string(sw2) != s {
		t.Error("a rebuild of the same site changed the service worker")
	}
	if err := run(site, "nope", tpl, ""); err == nil {
		t.Error("-default naming no model was accepted")
	}
}

// A card's Description line is the page's one line under the model picker,
// and never part of the summary (as for mnist's card, whose first paragraph
// would otherwise be its training commands).
func TestCardDescription(t *testing.T) {
	card := "# mnist.safetensors — x\n\nDescription: Draws **handwritten digits**, one class at a time.\n\n| a | b |\n\n## Commands\n\n```sh\nbash train.sh --steps 9\n```\n"
	if d := cardLine(card, descriptionPrefix); d != "Draws handwritten digits, one class at a time." {
		t.Errorf("description %q", d)
	}
	if _, summary := cardText(card); strings.Contains(summary, "Draws") {
		t.Errorf("summary %q: the description line belongs to the description only", summary)
	}
	if d := cardLine("# m\n\nText.\n", descriptionPrefix); d != "" {
		t.Errorf("description %q from a card without one", d)
	}
}

func TestCardHint(t *testing.T) {
	card := "# m\n\nSome text.\n\nSampler hint: use **ddim**, or `clipDenoised`.\n"
	if h := cardLine(card, hintPrefix); h != "use ddim, or clipDenoised." {
		t.Errorf("hint %q", h)
	}
	if _, summary := cardText(card); summary != "Some text." {
		t.Errorf("summary %q: the hint line belongs to the hint only", summary)
	}
	if h := cardLine("# m\n\nNo hint.\n", hintPrefix); h != "" {
		t.Errorf("hint %q from a card without one", h)
	}
}

func TestCardSummarySkipsCode(t *testing.T) {
	if _, summary := cardText("# m\n\n| a | b |\n|---|---|\n\n## Commands\n\n```sh\nmake it\n```\n\nThe real summary.\n"); summary != "The real summary." {
		t.Errorf("summary %q", summary)
	}
}
