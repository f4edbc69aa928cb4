package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// BenchmarkPairedConcurrency times a load with an unchanged Save against a
// raw GetItem of the same item with 1, 4, 16 and 64 requests in flight:
// each of that many goroutines has a session of its own and alternates raw
// and store calls, in turn first. It reports the median of each side and
// ratio, the store's over the raw calls', so that a cost that grows with
// concurrency (a lock, a pool too small) shows as a ratio that grows.
func BenchmarkPairedConcurrency(b *testing.B) {
	t := dynamoTarget(b)
	values := referenceValues()
	for _, inFlight := range []int{1, 4, 16, 64} {
		b.Run(fmt.Sprintf("inflight=%d", inFlight), func(b *testing.B) {
			s := newTestStore(b, t.table, t.client, t.clock)
			type worker struct {
				key        string
				cookie     *http.Cookie
				raw, store []time.Duration
			}
			workers := make([]*worker, inFlight)
			for i := range workers {
				id, c := create(b, s, values)
				workers[i] = &worker{key: storageKey(id), cookie: c}
			}
			rounds := max(1, b.N/inFlight)
			errs := make(chan error, inFlight)
			var wg sync.WaitGroup
			b.ResetTimer()
			for _, w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					raw := func() error {
						began := time.Now()
						out, err := t.client.GetItem(context.Background(), &dynamodb.GetItemInput{
							TableName: aws.String(t.table), Key: keyOf(w.key), ConsistentRead: aws.Bool(true),
						})
						w.raw = append(w.raw, time.Since(began))
						if err == nil && out.Item == nil {
							err = errors.New("raw GetItem found no item")
						}
						return err
					}
					store := func() error {
						began := time.Now()
						err := loadUnchanged(s, w.cookie)
						w.store = append(w.store, time.Since(began))
						return err
					}
					for i := range rounds {
						first, second := raw, store
						if i%2 == 1 {
							first, second = store, raw
						}
						if err := first(); err != nil {
							errs <- err
							return
						}
						if err := second(); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			var raw, store []time.Duration
			for _, w := range workers {
				raw, store = append(raw, w.raw...), append(store, w.store...)
			}
			r, st := median(raw), median(store)
			b.ReportMetric(float64(r)/1e3, "raw-µs")
			b.ReportMetric(float64(st)/1e3, "store-µs")
			b.ReportMetric(float64(st)/float64(r), "ratio")
		})
	}
}

// loadUnchanged loads the session of cookie through s and saves it
// unchanged, as a request that only reads its session does.
func loadUnchanged(s *Store, cookie *http.Cookie) error {
	r := request(cookie)
	sess, err := s.Get(r, benchCookie)
	if err != nil {
		return err
	}
	if sess.IsNew {
		return errors.New("the session did not load")
	}
	return sess.Save(r, httptest.NewRecorder())
}
