package graph

import (
	"fmt"
	"sort"
	"strings"
)

// UnusedWeightError reports checkpoint weights the configured network does not
// use: a sign the config does not describe the checkpoint.
type UnusedWeightError struct{ Names []string }

func (e *UnusedWeightError) Error() string {
	more := ""
	if len(e.Names) > 3 {
		more = fmt.Sprintf(" and %d more", len(e.Names)-3)
	}
	return fmt.Sprintf("checkpoint has weights the config's network does not use: %s%s",
		strings.Join(e.Names[:min(3, len(e.Names))], ", "), more)
}

// CheckAllUsed returns an UnusedWeightError naming the parameters no node reads.
func CheckAllUsed(g *Graph) error {
	used := map[string]bool{}
	for _, n := range g.Nodes {
		used[n.Weight], used[n.Bias] = true, true
	}
	var unused []string
	for name := range g.Params {
		if !used[name] {
			unused = append(unused, name)
		}
	}
	if len(unused) > 0 {
		sort.Strings(unused)
		return &UnusedWeightError{unused}
	}
	return nil
}
