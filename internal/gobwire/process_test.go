package gobwire

import (
	"bufio"
	"bytes"
	"encoding/gob"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// historyEnv, when set, makes the test binary a child process that first
// gives encoding/gob the history it names, then prints the encoding of
// every case (see child).
const historyEnv = "DYNAMOSTORE_GOB_HISTORY"

func TestMain(m *testing.M) {
	if history := os.Getenv(historyEnv); history != "" {
		os.Exit(child(history)) // a child process of TestEncodingIsTheSameInEveryProcess
	}
	os.Exit(m.Run())
}

// histories are what a process may have encoded before a session:
// encoding/gob numbers types in the order a process first sends them, so
// each history gives the session's types other IDs.
var histories = map[string]func(){
	"none": func() {},
	"structs first": func() {
		for _, v := range []any{point{}, map[string]int{}, []string{}, struct{ A, B int }{}} {
			_ = gob.NewEncoder(&bytes.Buffer{}).Encode(v)
		}
	},
	"composites in reverse": func() {
		for _, v := range []any{time.Time{}, []any{}, map[string]any{}, map[int]string{}, map[any]any{}} {
			_ = gob.NewEncoder(&bytes.Buffer{}).Encode(map[any]any{"v": v})
		}
	},
}

// processCases are the sessions compared across processes.
func processCases() map[string]map[any]any {
	cases := map[string]map[any]any{}
	for name, v := range fastCases {
		cases["fast "+name] = v
	}
	for name, v := range slowCases {
		if name != "nan keys" {
			cases["slow "+name] = v
		}
	}
	return cases
}

// child gives encoding/gob the history named, then prints one line per
// case: its name, a tab, and its encoding in hex.
func child(history string) int {
	h, ok := histories[history]
	if !ok {
		fmt.Fprintln(os.Stderr, "unknown history", history)
		return 2
	}
	h()
	out := bufio.NewWriter(os.Stdout)
	for name, values := range processCases() {
		data, err := encode(values)
		if err != nil {
			fmt.Fprintln(os.Stderr, name, err)
			return 1
		}
		fmt.Fprintf(out, "%s\t%x\n", name, data)
	}
	if err := out.Flush(); err != nil {
		return 1
	}
	return 0
}

// TestEncodingIsTheSameInEveryProcess encodes every case in processes
// with different gob histories and checks that they all write the same
// bytes as this process, which encoded much else before, and that the
// values match what they wrote.
func TestEncodingIsTheSameInEveryProcess(t *testing.T) {
	want := map[string]string{}
	for name, values := range processCases() {
		data, err := encode(values)
		if err != nil {
			t.Fatal(name, err)
		}
		want[name] = hex.EncodeToString(data)
	}
	for _, history := range slices.Sorted(maps.Keys(histories)) {
		t.Run(history, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), historyEnv+"="+history)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("child process: %v: %s", err, stderr.Bytes())
			}
			seen := 0
			for line := range strings.Lines(string(out)) {
				name, enc, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "\t")
				seen++
				if enc != want[name] {
					t.Errorf("%s: the child process wrote other bytes than this one", name)
				}
				// What the other process wrote matches the values here.
				values, fast := fastCases[strings.TrimPrefix(name, "fast ")]
				data, _ := hex.DecodeString(enc)
				if fast && strings.HasPrefix(name, "fast ") && !hasFloatKey(values) && !Matches(values, data) {
					t.Errorf("%s: the values do not match what the child process wrote", name)
				}
			}
			if seen != len(want) {
				t.Errorf("child process printed %d cases, want %d", seen, len(want))
			}
		})
	}
}
