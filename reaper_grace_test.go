package dynamostore

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/dynamostore/dynamostore/internal/dbtest"
)

func TestReaperGraceCutoff(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	for _, tc := range []struct {
		grace, want time.Duration
	}{
		{0, 5 * time.Minute}, // the default
		{-time.Nanosecond, 0},
		{-time.Hour, 0},
		{time.Second, time.Second},
		{30 * time.Minute, 30 * time.Minute},
	} {
		o := ReaperOptions{Grace: tc.grace}
		if got := now.Sub(o.cutoff(now)); got != tc.want {
			t.Errorf("Grace %v: cutoff %v before now, want %v", tc.grace, got, tc.want)
		}
	}
}

// graceAges are how long before the reaping Store's now the rows of
// TestReapGrace expired; a negative age is a row that is still live.
var graceAges = []time.Duration{time.Minute, 5*time.Minute - time.Second, 5*time.Minute + time.Second, time.Hour, -time.Hour}

// TestReapGrace: a Store whose clock runs a minute ahead of the others'
// reaps, through every path a pass can take. It deletes only the rows that
// expired more than the grace before its own now: a row that expired a
// minute ago by its clock, which the rest of the fleet still serves, is
// kept under the default grace.
func TestReapGrace(t *testing.T) {
	graces := []struct {
		name  string
		opt   Option
		grace time.Duration
	}{
		{"default", nil, 5 * time.Minute}, // as documented
		{"none", withReaperGrace(0), 0},
		{"half an hour", withReaperGrace(30 * time.Minute), 30 * time.Minute},
	}
	paths := []string{"Reap", "Reap without lease", "Reap in batches", "Reap in segments", "reaper goroutine", "custom backend", "backend Reap"}
	for _, g := range graces {
		for _, path := range paths {
			t.Run(g.name+"/"+path, func(t *testing.T) {
				clock := newFakeClock()
				clock.Advance(time.Minute) // a minute ahead of the fleet
				now := clock.Now()
				opts := []Option{WithKeyPairs(testHashKey), withCleanupInterval(0), withClock(clock.Now)}
				if g.opt != nil {
					opts = append(opts, g.opt)
				}
				keys := map[time.Duration]string{}
				table := "sessions" // unused by a custom backend
				var present func(key string) bool
				var reap func(s *Store) (ReapStats, error)

				if path == "custom backend" {
					b := newMapBackend()
					for _, age := range graceAges {
						keys[age] = randomKey()
						b.recs[keys[age]] = Record{Key: keys[age], Expires: now.Add(-age), Modified: now.Add(-age - time.Hour)}
					}
					present = func(key string) bool {
						b.mu.Lock()
						defer b.mu.Unlock()
						_, ok := b.recs[key]
						return ok
					}
					opts = append(opts, WithBackend(b))
				} else {
					client := dbtest.Client(t)
					table = dbtest.NewTable(t, client)
					for _, age := range graceAges {
						keys[age] = seedRows(t, client, table, 1, now.Add(-age), 0)[0]
					}
					present = func(key string) bool {
						out, err := client.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(table), Key: keyOf(key), ConsistentRead: aws.Bool(true)})
						if err != nil {
							t.Fatal(err)
						}
						return out.Item != nil
					}
					opts = append(opts, withAPI(client))
					if path == "backend Reap" {
						// A job without a Store: the backend alone, with
						// the same reaper options.
						b, err := newDynamoBackend(client, table, true)
						if err != nil {
							t.Fatal(err)
						}
						var cfg settings
						if g.opt != nil {
							if err := g.opt(&cfg); err != nil {
								t.Fatal(err)
							}
						}
						ro := cfg.reap
						ro.seams = &reapSeams{now: clock.Now}
						reap = func(*Store) (ReapStats, error) { return b.Reap(context.Background(), ro) }
					}
				}
				switch path {
				case "Reap without lease":
					opts = append(opts, withReaperLease(false))
				case "Reap in batches":
					opts = append(opts, withReaperBatchDelete(true))
				case "Reap in segments":
					opts = append(opts, withReaperSegments(3))
				case "reaper goroutine":
					tick := make(chan time.Time)
					passes := newPassCounter()
					opts = append(opts, withCleanupInterval(time.Minute), withReapHook(passes.hook),
						withReapSeam(func(r *reapSeams) { r.tick = tick }))
					reap = func(*Store) (ReapStats, error) {
						tick <- now
						stats, errs := passes.wait(t, 1)
						return stats[0], errs[0]
					}
				}
				if reap == nil {
					reap = func(s *Store) (ReapStats, error) { return s.Reap(context.Background()) }
				}
				s, err := NewStore(context.Background(), table, opts...)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()

				st, err := reap(s)
				if err != nil {
					t.Fatalf("pass: %+v, %v", st, err)
				}
				wantDeleted := 0
				for _, age := range graceAges {
					deleted := age > g.grace
					if deleted {
						wantDeleted++
					}
					if present(keys[age]) == deleted {
						t.Errorf("row expired %v before the reaper's now: deleted %v, want %v (grace %v)", age, !deleted, deleted, g.grace)
					}
				}
				if st.Deleted != wantDeleted {
					t.Errorf("pass deleted %d rows, want %d", st.Deleted, wantDeleted)
				}
			})
		}
	}
}
