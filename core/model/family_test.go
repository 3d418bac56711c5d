package model

import (
	"strings"
	"testing"
)

// TestFamiliesRegistered checks that every network family KeyArch can name
// has registered itself, with a config parser and a converter convert's
// --from reaches, and that an unknown family or kind is refused.
func TestFamiliesRegistered(t *testing.T) {
	froms := map[string]string{
		ArchDiffusersUNet2D: "diffusers", ArchScoreNet: "scoresde", ArchToy2D: "toy2d", ArchLucidUnet: "lucidrains",
	}
	if len(Families()) != len(froms) {
		t.Errorf("%d families registered, want %d", len(Families()), len(froms))
	}
	for arch, from := range froms {
		f, ok := families[arch]
		if !ok || f.Parse == nil || f.Convert == nil || f.From != from {
			t.Errorf("family %s: registered %v, want parser, converter and --from %s", arch, ok, from)
			continue
		}
		if c, err := Converter(from); err != nil || c != f {
			t.Errorf("Converter(%q) = %v, %v; want %s", from, c, err, arch)
		}
	}
	if _, err := Converter("caffe"); err == nil || !strings.Contains(err.Error(), "diffusers, lucidrains, scoresde, toy2d") {
		t.Errorf("Converter(caffe): %v", err)
	}
	if _, err := New("keras.Sequential", []byte("{}"), nil, nil); err == nil || !strings.Contains(err.Error(), "unknown network family") {
		t.Errorf("New with an unknown family: %v", err)
	}
	var zero Model
	if zero.InShape() != nil {
		t.Error("a Model New did not make has a shape")
	}
	if _, err := zero.Graph(1, 8, 8); err == nil {
		t.Error("a Model New did not make builds a graph")
	}
}
