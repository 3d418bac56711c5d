// Command flops prints the operation count of one network evaluation of
// each model file (tools/bench/flops), at the given batch sizes:
//
//	go run ./tools/bench/cmd/flops [-json] [-batch 1,16] weights/*.safetensors
//
// The bench harness (tools/bench/run.mjs) computes the same figures inside
// its wasm; this command is for reading them without a browser.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/diffuse-web/diffuse/core/model"
	"github.com/diffuse-web/diffuse/tools/bench/flops"
)

type row struct {
	Model  string      `json:"model"`
	Shape  []int       `json:"shape"`
	Batch  int         `json:"batch"`
	Params int64       `json:"params"`
	Count  flops.Count `json:"flops"`
}

func main() {
	asJSON := flag.Bool("json", false, "print JSON")
	batches := flag.String("batch", "1,16", "comma-separated batch sizes")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: flops [-json] [-batch 1,16] model.safetensors...")
		os.Exit(2)
	}
	var rows []row
	for _, path := range flag.Args() {
		m, err := model.Load(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			os.Exit(1)
		}
		s := m.InShape()
		for _, f := range strings.Split(*batches, ",") {
			b, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || b < 1 {
				fmt.Fprintf(os.Stderr, "bad batch %q\n", f)
				os.Exit(2)
			}
			g, err := m.Graph(b, s[1], s[2])
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
				os.Exit(1)
			}
			c := flops.Of(g)
			name := strings.TrimSuffix(filepath.Base(path), ".safetensors")
			rows = append(rows, row{Model: name, Shape: s, Batch: b, Params: c.Params, Count: c})
		}
	}
	if *asJSON {
		e := json.NewEncoder(os.Stdout)
		e.SetIndent("", "  ")
		_ = e.Encode(rows)
		return
	}
	fmt.Printf("%-16s %-10s %5s %10s %12s %12s  %s\n", "model", "shape", "batch", "params", "GEMM GFLOP", "other GFLOP", "largest ops")
	for _, r := range rows {
		var top []string
		for i, k := range r.Count.Kinds() {
			if i == 3 {
				break
			}
			top = append(top, fmt.Sprintf("%s %.0f%%", k, 100*r.Count.ByOp[k]/r.Count.Total()))
		}
		fmt.Printf("%-16s %-10s %5d %10d %12.4f %12.4f  %s\n", r.Model, fmt.Sprint(r.Shape), r.Batch, r.Params,
			r.Count.GEMM/1e9, r.Count.Other/1e9, strings.Join(top, ", "))
	}
}
