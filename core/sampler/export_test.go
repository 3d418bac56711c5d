package sampler

// The Spaces of this package's tests, for its external tests (space_ext_test.go),
// which run core/sampler/spacetest's checks: that package imports this one.

func NewHostSpace(cfg SpaceConfig) Space { return newHostSpace(cfg) }

func NewF32Space(cfg SpaceConfig) Space {
	return &f32Space{host: newHostSpace(cfg), ops: map[string]int{}}
}
