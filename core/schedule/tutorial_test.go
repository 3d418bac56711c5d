package schedule

import (
	"errors"
	"math"
	"testing"
)

// The score-SDE tutorial's VE SDE dx = σ^t dw has marginal std
// sqrt((σ^(2t) - 1) / (2 ln σ)); the network takes t itself.
func TestTutorialVE(t *testing.T) {
	s, err := Parse([]byte(`{"sde": "ve_tutorial", "sigma": 25, "prediction_type": "score", "sampling_eps": 1e-3}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Kind != VE {
		t.Fatalf("kind %v, want VE", s.Kind)
	}
	for _, tt := range []float64{1e-3, 0.37, 1} {
		want := math.Sqrt((math.Pow(25, 2*tt) - 1) / (2 * math.Log(25)))
		if got := s.LevelAt(tt); math.Abs(got-want) > 1e-12*want {
			t.Errorf("LevelAt(%g) = %g, want %g", tt, got, want)
		}
		if back := s.TimeAt(s.LevelAt(tt)); math.Abs(back-tt) > 1e-12 {
			t.Errorf("TimeAt(LevelAt(%g)) = %g", tt, back)
		}
		if nt := s.NetTime(s.PointAt(tt)); math.Abs(float64(nt)-tt) > 1e-6 {
			t.Errorf("network time at t=%g is %g, want t", tt, nt)
		}
	}
	if s.EndTime() != 1e-3 {
		t.Errorf("end time %g, want sampling_eps 1e-3", s.EndTime())
	}
	_, err = Parse([]byte(`{"sde": "ve_tutorial", "sigma": 1, "prediction_type": "score"}`))
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "sigma" {
		t.Errorf("sigma 1: got %v, want a FieldError naming sigma", err)
	}
}
