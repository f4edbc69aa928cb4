package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"
	"github.com/dynamostore/dynamostore/internal/tableschema"
)

// progress follows a reaper pass through the DynamoDB calls it makes, seen
// from inside the SDK client, counts what it did and shows how far it got:
// a bar redrawn in place on a terminal, plain lines otherwise.
type progress struct {
	w      io.Writer     // where to show progress; nil: nowhere, only count
	tty    bool          // w is a terminal: draw a bar
	every  time.Duration // least time between two updates; 0 = every call
	total  int64         // approximate number of items in the table; 0 = unknown
	dryRun bool          // nothing is deleted: show no deletions

	mu      sync.Mutex
	scanned int64 // items the Scan examined
	expired int64 // of which expired (matched the filter)
	deleted int64 // items deleted
	last    time.Time
	shown   bool // something was written to w
	drawn   bool // a bar is on the terminal's current line
	done    bool // the pass is over: show 100%
}

// isTerminal reports whether v, a reader or writer, is a terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// option adds the counting middleware to a DynamoDB client.
func (p *progress) option(o *dynamodb.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("dynamostoreProgress", p.observe), middleware.After)
	})
}

// observe counts what one successful call did.
func (p *progress) observe(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	out, md, err := next.HandleInitialize(ctx, in)
	if err != nil {
		return out, md, err
	}
	switch res := out.Result.(type) {
	case *dynamodb.ScanOutput:
		p.add(int64(res.ScannedCount), int64(res.Count), 0)
	case *dynamodb.DeleteItemOutput:
		if del, ok := in.Parameters.(*dynamodb.DeleteItemInput); ok && !isLease(del.Key) {
			p.add(0, 0, 1)
		}
	case *dynamodb.BatchWriteItemOutput:
		if bw, ok := in.Parameters.(*dynamodb.BatchWriteItemInput); ok {
			n := 0
			for _, reqs := range bw.RequestItems {
				n += len(reqs)
			}
			for _, reqs := range res.UnprocessedItems {
				n -= len(reqs)
			}
			p.add(0, 0, int64(n))
		}
	}
	return out, md, err
}

func isLease(key map[string]types.AttributeValue) bool {
	s, ok := key[tableschema.KeyAttr].(*types.AttributeValueMemberS)
	return ok && s.Value == tableschema.LeaseKey
}

func (p *progress) add(scanned, expired, deleted int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.scanned += scanned
	p.expired += expired
	p.deleted += deleted
	if p.w == nil {
		return
	}
	if now := time.Now(); p.every == 0 || now.Sub(p.last) >= p.every {
		p.last = now
		p.draw()
	}
}

// counts returns what the pass did so far.
func (p *progress) counts() (scanned, expired, deleted int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.scanned, p.expired, p.deleted
}

// barWidth is the number of cells of the terminal bar.
const barWidth = 30

// estimate returns the percentage done and the number of items the pass
// examines, as far as they are known: the table's approximate item count,
// but never less than what was scanned already, since the count is
// DynamoDB's estimate (updated about every six hours) and the lease row
// the pass writes is in no count. Until the pass ends the percentage stops
// at 99; then it is 100 and the number exact. The caller holds p.mu.
func (p *progress) estimate() (pct, items int64, exact bool) {
	if p.done {
		return 100, p.scanned, true
	}
	items = max(p.total, p.scanned)
	if items == 0 {
		return 0, 0, false
	}
	return min(p.scanned*100/items, 99), items, false
}

// draw writes the current state. The caller holds p.mu.
func (p *progress) draw() {
	var b strings.Builder
	if p.tty {
		b.WriteString("\r")
	} else {
		b.WriteString("progress: ")
	}
	if p.total > 0 || p.done {
		pct, items, exact := p.estimate()
		if p.tty {
			filled := int(pct) * barWidth / 100
			fmt.Fprintf(&b, "[%s%s] ", strings.Repeat("#", filled), strings.Repeat("-", barWidth-filled))
		}
		approx := "~"
		if exact {
			approx = ""
		}
		fmt.Fprintf(&b, "%3d%%  scanned %d of %s%d", pct, p.scanned, approx, items)
	} else {
		fmt.Fprintf(&b, "scanned %d", p.scanned)
	}
	fmt.Fprintf(&b, ", expired %d", p.expired)
	if !p.dryRun {
		fmt.Fprintf(&b, ", deleted %d", p.deleted)
	}
	if p.tty {
		b.WriteString("\x1b[K") // erase what a longer earlier line left
		p.drawn = true
	} else {
		b.WriteString("\n")
	}
	p.shown = true
	_, _ = io.WriteString(p.w, b.String())
}

// finish ends the progress display when the pass is over. After a pass
// that succeeded, it shows the final state at 100%; after one that
// failed, it leaves the last state as it was. On a terminal it then ends
// the bar's line, so that what follows starts on a clean one. When nothing
// was shown (a pass the lease skipped scans nothing), it shows nothing.
func (p *progress) finish(ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.w == nil || !p.shown {
		return
	}
	if ok {
		p.done = true
		p.draw()
	}
	if p.drawn {
		_, _ = io.WriteString(p.w, "\n")
		p.drawn = false
	}
}
