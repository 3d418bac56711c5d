package schedule

import (
	"errors"
	"math"
	"testing"
)

// TestFlowAndConsistencyConfigs: the diffusers class names select the
// schedule family their configs leave implicit, with the classes' __init__
// defaults, and the settings that would change the grid or the sampler
// are refused by name.
func TestFlowAndConsistencyConfigs(t *testing.T) {
	s, err := Parse([]byte(`{"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0,
		"use_dynamic_shifting": false, "base_shift": 0.5, "max_shift": 1.15, "shift_terminal": null}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Kind != Flow || s.Config.PredictionType != "flow_prediction" || s.Config.FlowShift() != 3 {
		t.Errorf("FlowMatch config: kind %v, prediction %q, shift %v", s.Kind, s.Config.PredictionType, s.Config.FlowShift())
	}
	// x_t = (1-t)x0 + tε: α = 1-t, σ = t, level t/(1-t); the net time t·N.
	p := s.PointAt(0.25)
	if p.Alpha != 0.75 || p.Sigma != 0.25 || math.Abs(p.Level-1.0/3) > 1e-15 || s.NetTime(p) != 250 {
		t.Errorf("flow point at t = 0.25: %+v, net time %v", p, s.NetTime(p))
	}
	if q := s.PointAtLevel(p.Level, s.TimeAt(p.Level)); math.Abs(q.Alpha-0.75) > 1e-15 || math.Abs(q.Sigma-0.25) > 1e-15 || math.Abs(q.T-0.25) > 1e-15 {
		t.Errorf("PointAtLevel(TimeAt) round trip: %+v", q)
	}
	if got := ShiftTime(3, 0.5); got != 0.75 {
		t.Errorf("shift 3 of t = 0.5: %v, want 3·0.5/(1+2·0.5) = 0.75", got)
	}
	g, err := s.FlowGrid(4, "")
	if err != nil || g.Steps[0].From.T != 1 || !g.Steps[3].To.Clean() || g.InitSigma != 1 {
		t.Errorf("flow grid: %+v, %v", g, err)
	}
	// the level-stepping samplers' grid starts where the level is finite
	e, err := s.EulerGrid(4, "")
	if err != nil || e.Steps[0].From.T != FlowStartTime || math.IsInf(e.Steps[0].From.Level, 0) {
		t.Errorf("Euler grid on a flow schedule starts at %+v, %v", e.Steps[0].From, err)
	}

	c, err := Parse([]byte(`{"_class_name": "CMStochasticIterativeScheduler"}`))
	if err != nil {
		t.Fatal(err)
	}
	cc := c.Config
	if c.Kind != VE || cc.PredictionType != "consistency" || cc.NumTrainTimesteps != 40 || *cc.SigmaMin != 0.002 || *cc.SigmaMax != 80 ||
		cc.SigmaData != 0.5 || cc.Rho != 7 || cc.SNoise != 1 || !*cc.ClipDenoised || c.TimeInput() != "edm" {
		t.Errorf("CM defaults: %+v", cc)
	}
	if got, want := c.NetTime(c.PointAtLevel(80, 1)), float32(1000*0.25*math.Log(80)); got != want {
		t.Errorf("net time at σ 80: %v, want %v", got, want)
	}

	for _, tc := range []struct{ cfg, field string }{
		{`{"_class_name": "FlowMatchEulerDiscreteScheduler", "use_dynamic_shifting": true}`, "use_dynamic_shifting"},
		{`{"_class_name": "FlowMatchEulerDiscreteScheduler", "stochastic_sampling": true}`, "stochastic_sampling"},
		{`{"_class_name": "FlowMatchEulerDiscreteScheduler", "invert_sigmas": true}`, "invert_sigmas"},
		{`{"_class_name": "FlowMatchEulerDiscreteScheduler", "shift_terminal": 0.1}`, "shift_terminal"},
		{`{"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": -1}`, "shift"},
		{`{"_class_name": "FlowMatchEulerDiscreteScheduler", "prediction_type": "epsilon"}`, "prediction_type"},
		{`{"prediction_type": "flow_prediction"}`, "prediction_type"},
		{`{"prediction_type": "consistency"}`, "prediction_type"},
		{`{"_class_name": "CMStochasticIterativeScheduler", "sigma_data": 0}`, "sigma_data"},
	} {
		_, err := Parse([]byte(tc.cfg))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: error %v, want one naming %s", tc.cfg, err, tc.field)
		}
	}
}
