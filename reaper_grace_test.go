package dynamostore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/dynamostore/dynamostore/internal/dbtest"
)

func TestReaperGraceOption(t *testing.T) {
	var cfg settings
	if err := WithReaperGrace(-time.Second)(&cfg); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("WithReaperGrace(-1s) = %v, want ErrInvalidOption", err)
	}
	now := time.Unix(1_000_000, 0)
	if got := cfg.reap.cutoff(now); !got.Equal(now.Add(-5 * time.Minute)) {
		t.Fatalf("default cutoff %v before now, want 5m", now.Sub(got))
	}
	if err := WithReaperGrace(0)(&cfg); err != nil {
		t.Fatalf("WithReaperGrace(0) = %v", err)
	}
	if got := cfg.reap.cutoff(now); !got.Equal(now) {
		t.Fatalf("cutoff with no grace %v before now, want 0", now.Sub(got))
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
		{"none", WithReaperGrace(0), 0},
		{"half an hour", WithReaperGrace(30 * time.Minute), 30 * time.Minute},
	}
	paths := []string{"Reap", "Reap without lease", "Reap in batches", "Reap in segments", "reaper goroutine", "custom backend", "DeleteExpired"}
	for _, g := range graces {
		for _, path := range paths {
			if path == "DeleteExpired" && g.opt != nil {
				continue // DynamoDBBackend.DeleteExpired has the default grace
			}
			t.Run(g.name+"/"+path, func(t *testing.T) {
				clock := newFakeClock()
				clock.Advance(time.Minute) // a minute ahead of the fleet
				now := clock.Now()
				opts := []Option{WithKeyPairs(testHashKey), WithCleanupInterval(0), WithClock(clock.Now)}
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
					opts = append(opts, WithClient(client))
					if path == "DeleteExpired" {
						b, err := NewDynamoDBBackend(client, table, true)
						if err != nil {
							t.Fatal(err)
						}
						reap = func(*Store) (ReapStats, error) { return b.DeleteExpired(context.Background(), now) }
					}
				}
				switch path {
				case "Reap without lease":
					opts = append(opts, WithReaperLease(false))
				case "Reap in batches":
					opts = append(opts, WithReaperBatchDelete(true))
				case "Reap in segments":
					opts = append(opts, WithReaperSegments(3))
				case "reaper goroutine":
					tick := make(chan time.Time)
					passes := newPassCounter()
					opts = append(opts, WithCleanupInterval(time.Minute), WithReapHook(passes.hook),
						withReapSeam(func(r *reapSettings) { r.tick = tick }))
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
