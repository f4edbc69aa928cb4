package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
)

// yesFlag registers --yes, which a destructive command needs to run
// without asking.
func yesFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("yes", false, "do not ask for confirmation; needed when standard input is not a terminal")
}

// errDeclined is the answer "no" to a confirmation.
var errDeclined = errors.New("not confirmed: nothing deleted")

// confirm asks question on the terminal and returns nil when the answer is
// yes, errDeclined otherwise. With yes (--yes) it asks nothing. When
// standard input is not a terminal, nobody can answer: it returns a usage
// error saying to pass --yes. The question goes to standard error, so that
// it shows even when standard output is redirected.
func (e *env) confirm(ctx context.Context, cmd string, yes bool, question string) error {
	if yes {
		return nil
	}
	if !e.stdinTerminal {
		return usagef("standard input is not a terminal, so %s cannot ask for confirmation: pass --yes to %s without asking", cmd, cmd)
	}
	fmt.Fprintf(e.stderr, "%s [y/N] ", question)
	answer := make(chan string, 1)
	go func() {
		// A read error counts as no answer, hence no.
		line, _ := readLine(e.stdin)
		answer <- line
	}()
	select {
	case <-ctx.Done():
		// Interrupted or timed out at the prompt: end its line.
		fmt.Fprintln(e.stderr)
		return ctx.Err()
	case a := <-answer:
		switch strings.ToLower(a) {
		case "y", "yes":
			return nil
		}
		return errDeclined
	}
}
