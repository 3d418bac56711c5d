package graph

import "github.com/diffuse-web/diffuse/core/limits"

// Memory is what running a graph once needs, in bytes of float32.
type Memory struct {
	Weights int64 // every parameter the graph holds
	// Activations is the peak of the live values when each value is freed
	// after its last use (as core/cpu does; the other backends plan buffers
	// at least as tightly), plus attention's heads×N×N scores, which a
	// backend may store whole.
	Activations int64
}

// Memory estimates the graph's memory from its shapes alone: nothing is
// allocated, so it can be checked against a budget before a backend runs
// the graph. Sums saturate rather than wrap.
func (g *Graph) Memory() Memory {
	var m Memory
	for _, p := range g.Params {
		m.Weights = limits.Add(m.Weights, limits.Mul(int64(len(p.Data)), 4))
	}
	size := func(v Value) int64 {
		n := int64(1)
		for _, d := range g.Shapes[v] {
			n = limits.Mul(n, int64(d))
		}
		return limits.Mul(n, 4)
	}
	lastUse := make([]int, len(g.Shapes))
	for i, n := range g.Nodes {
		for _, in := range n.In {
			lastUse[in] = i
		}
	}
	lastUse[g.Output] = len(g.Nodes)
	isInput := map[Value]bool{}
	for _, v := range g.Inputs {
		isInput[v] = true
	}
	var live, peak int64
	for i, n := range g.Nodes {
		live = limits.Add(live, size(n.Out))
		now := limits.Add(live, attentionScores(g, &n))
		if now > peak {
			peak = now
		}
		for j, in := range n.In {
			if lastUse[in] == i && !isInput[in] && !seen(n.In[:j], in) {
				live -= size(in)
			}
		}
	}
	m.Activations = peak
	return m
}

// attentionScores is the bytes of the heads×N×(N+M) score matrices of an
// attention node (0 for other ops).
func attentionScores(g *Graph, n *Node) int64 {
	var b, heads, q, k int64
	switch n.Op {
	case OpAttention: // q [B,N,C]
		s := g.Shapes[n.In[0]]
		b, heads, q, k = int64(s[0]), int64(n.Ints[0]), int64(s[1]), int64(s[1])
	case OpAttentionMemKV: // qkv [B,3C,H,W]
		s := g.Shapes[n.In[0]]
		b, heads, q = int64(s[0]), int64(n.Ints[0]), int64(s[2])*int64(s[3])
		k = q + int64(MemTokens(g, n))
	default:
		return 0
	}
	return limits.Mul(limits.Mul(b*heads, limits.Mul(q, k)), 4)
}

func seen(vs []Value, v Value) bool {
	for _, u := range vs {
		if u == v {
			return true
		}
	}
	return false
}
