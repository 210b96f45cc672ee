package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestEveryCommandHasHelp walks the whole command tree: every command a
// user can type has a one-line Short, a Long description, and examples that
// invoke that very command.
func TestEveryCommandHasHelp(t *testing.T) {
	var walk func(c *cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if !sub.IsAvailableCommand() {
				continue // cobra's own help and completion
			}
			walk(sub)
		}
		n++
		path := c.CommandPath()
		if strings.TrimSpace(c.Short) == "" {
			t.Errorf("%s: no Short", path)
		}
		if len(strings.TrimSpace(c.Long)) < len(c.Short) {
			t.Errorf("%s: Long is missing or shorter than Short", path)
		}
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%s: no Example", path)
			return
		}
		if !strings.Contains(c.Example, path) {
			t.Errorf("%s: no example runs %q:\n%s", path, path, c.Example)
		}
		var out bytes.Buffer
		root := newRootCmd()
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append(strings.Fields(path)[1:], "--help"))
		if err := root.Execute(); err != nil {
			t.Errorf("%s --help: %v", path, err)
		}
		if !strings.Contains(out.String(), "Examples:") || !strings.Contains(out.String(), "Usage:") {
			t.Errorf("%s --help shows no usage or examples:\n%s", path, out.String())
		}
	}
	walk(newRootCmd())
	// root, guard, webhook, rules (+build, test), record, status, report
	// (+would-block), baseline (+list, show, accept).
	if n < 14 {
		t.Errorf("walked %d commands, want at least 14", n)
	}
}

// TestUnknownFlagIsClear checks that a mistyped flag names itself and points
// at --help, for a top-level command and a nested one.
func TestUnknownFlagIsClear(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		cmd, bad string
	}{
		{[]string{"guard", "--mdoe", "audit"}, "vigil guard", "--mdoe"},
		{[]string{"rules", "build", "--outptu", "x.wasm", "dir"}, "vigil rules build", "--outptu"},
		{[]string{"baseline", "list", "--jsn"}, "vigil baseline list", "--jsn"},
		{[]string{"report", "would-block", "--sincee", "7d"}, "vigil report would-block", "--sincee"},
	} {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(tc.args)
		err := root.Execute()
		if err == nil {
			t.Errorf("%v: accepted", tc.args)
			continue
		}
		want := tc.cmd + ": unknown flag: " + tc.bad + " (see '" + tc.cmd + " --help')"
		if err.Error() != want {
			t.Errorf("%v:\ngot  %q\nwant %q", tc.args, err, want)
		}
	}
}
