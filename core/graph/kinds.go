package graph

// KindInfo is what a backend or a test table needs to know about an op kind
// without reading its builder: how many values it reads and which parameter
// fields its nodes may name. The meaning of Ints, F and G is documented on
// the kind's constant.
type KindInfo struct {
	Kind   Kind
	Inputs int  // values read (In); 0 for OpInput
	Weight bool // a node may name a Weight parameter
	Bias   bool // a node may name a Bias parameter
}

// kinds is every op kind, in the order of its constant's declaration. A
// kind missing here fails TestKindsListsEveryConstant; a kind here without a
// case in graphtest's table fails every backend's table test.
var kinds = []KindInfo{
	{OpInput, 0, false, false},
	{OpConv2D, 1, true, true},
	{OpConvTranspose2D, 1, true, true},
	{OpGroupNorm, 1, true, true},
	{OpLinear, 1, true, true},
	{OpSiLU, 1, false, false},
	{OpGELU, 1, false, false},
	{OpAdd, 2, false, false},
	{OpAddChannel, 2, false, false},
	{OpScaleShift, 2, false, false},
	{OpAffine, 1, false, false},
	{OpConcat, 2, false, false},
	{OpReshape, 1, false, false},
	{OpUpsampleNearest2x, 1, false, false},
	{OpToTokens, 1, false, false},
	{OpFromTokens, 1, false, false},
	{OpAttention, 3, false, false},
	{OpTimestepEmbed, 1, false, false},
	{OpFourierEmbed, 1, true, false},
	{OpDivBatch, 2, false, false},
	{OpVEMarginalStd, 1, false, false},
	{OpEmbedding, 1, true, false},
	// lucidrains' ops (lucid.go)
	{OpRMSNormChannel, 1, true, false},
	{OpPixelUnshuffle, 1, false, false},
	{OpSliceChannels, 1, false, false},
	{OpLinearAttention, 1, true, false},
	{OpAttentionMemKV, 1, true, false},
}

// Kinds lists every op kind a graph may hold. Every backend must run each
// (core/graph/graphtest has a case per kind).
func Kinds() []Kind {
	out := make([]Kind, len(kinds))
	for i, k := range kinds {
		out[i] = k.Kind
	}
	return out
}

// Info returns the metadata of kind k, and false for an unknown kind.
func Info(k Kind) (KindInfo, bool) {
	for _, i := range kinds {
		if i.Kind == k {
			return i, true
		}
	}
	return KindInfo{}, false
}
