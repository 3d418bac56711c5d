package sampler

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/diffuse-web/diffuse/core/limits"
)

// TestOptionsCheckUsesTheParams: every registry parameter is bounded by its
// own declaration: a value just outside its range is refused naming it, its
// ends and zero (the default) pass.
func TestOptionsCheckUsesTheParams(t *testing.T) {
	for _, p := range allParams {
		if p.Kind == KindChoice {
			continue
		}
		for _, v := range []float64{p.Min, p.Max, 0} {
			o := &Options{}
			o.Set(p.Name, v)
			if err := o.Check(); err != nil {
				t.Errorf("%s = %g: %v", p.Name, v, err)
			}
		}
		bad := []float64{p.Max + 1, math.Inf(1)}
		if p.Min > 0 && p.Kind == KindFloat {
			bad = append(bad, p.Min/2)
		} else { // (an int's 0 is its default)
			bad = append(bad, -1)
		}
		for _, v := range bad {
			o := &Options{}
			if !o.Set(p.Name, v) {
				t.Fatalf("Options has no %s", p.Name)
			}
			var le *limits.Error
			if err := o.Check(); !errors.As(err, &le) || le.Field != p.Name {
				t.Errorf("%s = %g: got %v, want an error naming it", p.Name, v, err)
			}
		}
	}
	var oe *OptionError
	if err := (&Options{Sigmas: "sideways"}).Check(); !errors.As(err, &oe) || oe.Field != "sigmas" {
		t.Errorf("sigmas sideways: %v", err)
	}
	for _, c := range pSigmas.Choices {
		if err := (&Options{Sigmas: c}).Check(); err != nil {
			t.Errorf("sigmas %q: %v", c, err)
		}
	}
	// Every parameter a sampler lists is declared once, in allParams.
	for _, i := range List() {
		for _, p := range i.Params {
			d, ok := ParamByName(p.Name)
			if !ok || d.Label != p.Label || d.Min != p.Min || d.Max != p.Max || d.Kind != p.Kind {
				t.Errorf("%s.%s is not the declared parameter (%+v vs %+v)", i.Name, p.Name, p, d)
			}
		}
	}
}

func TestLabels(t *testing.T) {
	uncond := &Model{NullClass: -1, Classes: Unconditional}
	cond := &Model{NullClass: 10, Classes: 10}
	noNull := &Model{NullClass: -1, Classes: 10}
	unsaid := &Model{NullClass: -1}
	bad := []struct {
		m     *Model
		o     Options
		field string
	}{
		{uncond, Options{Class: []int{1}}, "class"},
		{uncond, Options{Guidance: 3}, "guidance"},
		{cond, Options{Class: []int{11}}, "class"},
		{cond, Options{Class: []int{-1}}, "class"},
		{cond, Options{Guidance: 3}, "guidance"},
		{cond, Options{Class: []int{1}, Guidance: math.NaN()}, "guidance"},
		{cond, Options{Class: []int{1, 2}}, "class"}, // two labels for a batch of 3
		{noNull, Options{}, "class"},
		{noNull, Options{Class: []int{-1}}, "class"},
		{noNull, Options{Class: []int{1}, Guidance: 2}, "guidance"},
	}
	for _, c := range bad {
		var oe *OptionError
		if _, _, err := c.m.Labels(&c.o, 3); !errors.As(err, &oe) || oe.Field != c.field {
			t.Errorf("%+v %+v: got %v, want an error on %s", *c.m, c.o, err, c.field)
		}
	}
	good := []struct {
		m      *Model
		o      Options
		cls    []int
		guided bool
	}{
		{uncond, Options{Guidance: 1}, nil, false},
		{cond, Options{}, []int{10, 10, 10}, false},
		{cond, Options{Class: []int{10}}, []int{10, 10, 10}, false}, // the null class asked for by name
		{cond, Options{Class: []int{4}, Guidance: 2}, []int{4, 4, 4}, true},
		{cond, Options{Class: []int{1, 2, 3}, Guidance: 0}, []int{1, 2, 3}, false},
		{unsaid, Options{Class: []int{99}}, []int{99, 99, 99}, false}, // not said: not checked
	}
	for _, c := range good {
		cls, guided, err := c.m.Labels(&c.o, 3)
		if err != nil || !slices.Equal(cls, c.cls) || guided != c.guided {
			t.Errorf("%+v %+v: got %v %v %v, want %v %v", *c.m, c.o, cls, guided, err, c.cls, c.guided)
		}
	}
}
