package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestMain lets a test re-run this binary as the diffuse command itself
// (DIFFUSE_RUN_MAIN=1), to check exit codes and what reaches stderr.
func TestMain(m *testing.M) {
	if os.Getenv("DIFFUSE_RUN_MAIN") == "1" {
		os.Args = append([]string{"diffuse"}, strings.Fields(os.Getenv("DIFFUSE_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runMain(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	if runtime.GOOS == "js" {
		t.Skip("no subprocesses under js/wasm")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DIFFUSE_RUN_MAIN=1", "DIFFUSE_ARGS="+strings.Join(args, " "))
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func TestCLIErrorsAreOneLine(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	for _, args := range [][]string{
		{"frobnicate"},
		{"convert", "--from", "diffusers", missing, "-o", filepath.Join(t.TempDir(), "o.safetensors")},
		{"convert", "--from", "caffe", missing, "-o", "x"},
		{"eval", "--weights", missing, "--x", "x.npy", "--t", "t.npy", "-o", "y.npy"},
		{"convert", "--dtype", "f8", missing, "-o", "x"},
	} {
		_, stderr, code := runMain(t, args...)
		if code == 0 {
			t.Errorf("%v: exit code 0", args)
		}
		if lines := strings.Count(strings.TrimSpace(stderr), "\n") + 1; lines != 1 || !strings.HasPrefix(stderr, "diffuse") {
			t.Errorf("%v: want one line starting with 'diffuse', got %q", args, stderr)
		}
	}
}

func TestCLIHelpDocumentsEveryFlag(t *testing.T) {
	for _, c := range []struct {
		cmd   string
		flags []string
	}{
		{"convert", []string{"-from", "-o", "-dtype", "-scheduler", "-null-class", "-sigma", "-size"}},
		{"eval", []string{"-weights", "-x", "-t", "-class", "-o"}},
	} {
		_, stderr, code := runMain(t, c.cmd, "--help")
		if code != 0 {
			t.Errorf("%s --help: exit code %d", c.cmd, code)
		}
		for _, f := range c.flags {
			if !strings.Contains(stderr, "  "+f+" ") && !strings.Contains(stderr, "  "+f+"\n") {
				t.Errorf("%s --help does not document %s:\n%s", c.cmd, f, stderr)
			}
		}
	}
	_, stderr, _ := runMain(t, "--help")
	for _, cmd := range []string{"convert", "eval"} {
		if !strings.Contains(stderr, cmd) {
			t.Errorf("diffuse --help does not list %s", cmd)
		}
	}
}
