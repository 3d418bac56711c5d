package graph

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"testing"
)

// TestKindsListsEveryConstant reads this package's source for constants of
// type Kind and checks that Kinds lists each exactly once, so a new op
// cannot be declared without entering the table every backend is tested on.
func TestKindsListsEveryConstant(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	declared := 0
	listed := map[Kind]int{}
	for _, k := range Kinds() {
		listed[k]++
	}
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, s := range gd.Specs {
				vs := s.(*ast.ValueSpec)
				id, ok := vs.Type.(*ast.Ident)
				if !ok || id.Name != "Kind" {
					continue
				}
				for i := range vs.Names {
					lit := vs.Values[i].(*ast.BasicLit).Value
					k := Kind(lit[1 : len(lit)-1])
					declared++
					if listed[k] != 1 {
						t.Errorf("%s (%q) is listed %d times in Kinds", vs.Names[i].Name, k, listed[k])
					}
				}
			}
		}
	}
	if declared != len(Kinds()) {
		t.Errorf("%d Kind constants declared, Kinds lists %d", declared, len(Kinds()))
	}
}

// TestInfo checks that Info knows every listed kind and no other (graphtest
// checks each entry's inputs and parameters against the builders' nodes).
func TestInfo(t *testing.T) {
	for _, k := range Kinds() {
		if i, ok := Info(k); !ok || i.Kind != k {
			t.Errorf("Info(%q) = %v, %v", k, i, ok)
		}
	}
	if _, ok := Info("no_such_op"); ok {
		t.Error("Info knows an undeclared kind")
	}
}
