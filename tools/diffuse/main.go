// Command diffuse is the native command-line tool: convert checkpoints, run one
// denoiser pass, sample images, estimate likelihoods.
//
// Each subcommand lives in its own file and registers itself in init.
package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/diffuse-web/diffuse/core/engine"
	"github.com/diffuse-web/diffuse/core/limits"
	"github.com/diffuse-web/diffuse/core/sampler"
)

// command is one subcommand: run parses its own flags from args.
type command struct {
	name    string
	summary string
	run     func(args []string) error
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

func usage() {
	fmt.Fprintln(os.Stderr, "usage: diffuse COMMAND [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-11s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(os.Stderr, "\nRun 'diffuse COMMAND --help' for the flags of one command.")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	c, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "diffuse: unknown command %q (run 'diffuse --help')\n", os.Args[1])
		os.Exit(2)
	}
	defer func() {
		// A bug must still end in one line, not a stack trace (DIFFUSE_DEBUG=1 shows it).
		if r := recover(); r != nil {
			if os.Getenv("DIFFUSE_DEBUG") != "" {
				panic(r)
			}
			fmt.Fprintf(os.Stderr, "diffuse %s: internal error: %v (please report it; DIFFUSE_DEBUG=1 shows where)\n", c.name, r)
			os.Exit(3)
		}
	}()
	if err := c.run(os.Args[2:]); err != nil {
		if err == flag.ErrHelp {
			return
		}
		fmt.Fprintf(os.Stderr, "diffuse %s: %v\n", c.name, err)
		os.Exit(1)
	}
}

// newFlags makes a FlagSet whose errors come back to run instead of exiting,
// so every command reports errors the same way.
func newFlags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Func("mem-budget", "memory the model's weights, activations and sampler state may use, e.g. 2GiB or 512MiB (default 8GiB)", func(s string) error {
		n, err := parseBytes(s)
		if err != nil {
			return err
		}
		limits.SetBudget(n)
		return nil
	})
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: diffuse %s\n\nflags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs parses flags that may come before, between or after positional
// arguments (as in 'convert --from diffusers DIR -o OUT'), returning the
// positional ones. The standard flag package stops at the first positional.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// parseBytes reads a byte count with an optional unit: 1.5GiB, 512MiB, 2GB,
// 100000 (bytes).
func parseBytes(s string) (int64, error) {
	t := strings.TrimSpace(strings.ToUpper(s))
	mult := 1.0
	for _, u := range []struct {
		suffix string
		m      float64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"TIB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.m
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || !(v > 0) || v*mult > math.MaxInt64/2 {
		return 0, fmt.Errorf("%q is not a positive size such as 2GiB or 512MiB", s)
	}
	return int64(v * mult), nil
}

// asFlag names a sampler option's bound by the flag that sets it
// (end_time → --end-time), so the error points at what the user typed.
func asFlag(err error) error {
	var (
		le *limits.Error
		oe *sampler.OptionError
		re *engine.RequestError
	)
	switch {
	case errors.As(err, &le):
		return &limits.Error{Field: flagName(le.Field), Value: le.Value, Limit: le.Limit}
	case errors.As(err, &oe):
		return fmt.Errorf("%s: %s", flagName(oe.Field), oe.Msg)
	case errors.As(err, &re):
		return fmt.Errorf("%s: %s", flagName(re.Field), re.Msg)
	}
	return err
}

// flagName is the flag of an option named as core/sampler's Param
// (snake case) or core/engine's Request field (camel case) names it.
func flagName(field string) string {
	var b strings.Builder
	for _, r := range field {
		switch {
		case r == '_':
			b.WriteByte('-')
		case unicode.IsUpper(r):
			b.WriteByte('-')
			b.WriteRune(unicode.ToLower(r))
		default:
			b.WriteRune(r)
		}
	}
	return "--" + b.String()
}
