package torchpt

import (
	"os"
	"path/filepath"
	"testing"
)

func BenchmarkOpenLucid(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(fixturesDir(), "lucidrains", "lucid_small", "model-1.pt"))
	if err != nil {
		b.Skip(err)
	}
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		c, err := Open(data, nil)
		if err != nil {
			b.Fatal(err)
		}
		m, names, _ := StateDict(c.Root, "")
		for _, n := range names {
			if _, err := m[n].Float32(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
