package engine

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/diffuse-web/diffuse/core/model"
)

// Every refusal of a visitor's files is an *ImportError (a user error: the
// page shows it) of one line, saying what is wrong.
func TestImportRefusals(t *testing.T) {
	toy, err := os.ReadFile("../toy2d/testdata/toy.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	hostile, err := os.ReadFile("../scoresde/testdata/hostile.pth")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		files model.Files
		o     ImportOptions
		want  string
	}{
		{"nothing", model.Files{}, ImportOptions{}, "no files"},
		{"truncated safetensors", model.Files{"m.safetensors": toy[:len(toy)/2]}, ImportOptions{}, "m.safetensors"},
		{"short file", model.Files{"m.safetensors": []byte("abc")}, ImportOptions{}, "need at least 8"},
		{"bin alone", model.Files{"d/diffusion_pytorch_model.bin": []byte("x")}, ImportOptions{}, "whole diffusers folder"},
		{"pickle of unknown kind", model.Files{"model-3.pt": []byte("x")}, ImportOptions{}, "lucidrains"},
		{"two files", model.Files{"a.pt": nil, "b.pt": nil}, ImportOptions{}, "2 files"},
		{"hostile pickle", model.Files{"ckpt.pth": hostile}, ImportOptions{From: "scoresde", Size: 28, Sigma: 25}, "ckpt.pth"},
		{"lucid without size", model.Files{"model-1.pt": hostile}, ImportOptions{From: "lucidrains"}, "image size is required"},
		{"scoresde without sigma", model.Files{"ckpt.pth": hostile}, ImportOptions{From: "scoresde", Size: 28}, "σ"},
		{"unknown kind", model.Files{"x.pt": hostile}, ImportOptions{From: "onnx"}, "supported kinds"},
		{"not a model", model.Files{"cat.png": []byte("\x89PNG")}, ImportOptions{}, "not a model file"},
		{"broken config", model.Files{"d/config.json": []byte("{"), "d/diffusion_pytorch_model.safetensors": toy}, ImportOptions{}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, _, err := Import(c.files, c.o)
			var ie *ImportError
			if !errors.As(err, &ie) || !IsUserError(err) {
				t.Fatalf("got %v (%T), want an *ImportError", err, err)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, c.want) {
				t.Fatalf("message %q: want one line containing %q", msg, c.want)
			}
		})
	}
}
