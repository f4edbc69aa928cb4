package dynamostore

import (
	"context"
	"sync"
	"testing"
	"time"
)

// mapBackend is an in-memory Backend: the kind of custom storage WithBackend
// accepts.
type mapBackend struct {
	mu   sync.Mutex
	recs map[string]Record
}

func newMapBackend() *mapBackend { return &mapBackend{recs: map[string]Record{}} }

func (m *mapBackend) Get(_ context.Context, key string, now time.Time) (Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[key]
	if !ok || expired(now, r.Expires) {
		return Record{}, ErrNotFound
	}
	return r, nil
}

func (m *mapBackend) Create(_ context.Context, rec Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.recs[rec.Key]; ok {
		return ErrExists
	}
	m.recs[rec.Key] = rec
	return nil
}

func (m *mapBackend) Update(_ context.Context, rec Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.recs[rec.Key]
	if !ok || expired(rec.Modified, old.Expires) {
		return ErrNotFound
	}
	m.recs[rec.Key] = rec
	return nil
}

func (m *mapBackend) DeleteOwner(context.Context, string) (int, error) { return 0, ErrUnsupported }

func (m *mapBackend) Touch(_ context.Context, key string, expires, modified time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[key]
	if !ok || expired(modified, r.Expires) {
		return ErrNotFound
	}
	r.Expires, r.Modified = expires, modified
	m.recs[key] = r
	return nil
}

func (m *mapBackend) Delete(_ context.Context, key string, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[key]
	delete(m.recs, key)
	if !ok || expired(now, r.Expires) {
		return ErrNotFound
	}
	return nil
}

func (m *mapBackend) Reap(_ context.Context, opts ReaperOptions) (ReapStats, error) {
	now := opts.cutoff(opts.now())
	m.mu.Lock()
	defer m.mu.Unlock()
	var st ReapStats
	for k, r := range m.recs {
		st.Scanned++
		if expired(now, r.Expires) {
			delete(m.recs, k)
			st.Deleted++
		}
	}
	return st, nil
}

func TestCustomBackend(t *testing.T) {
	b := newMapBackend()
	clock := newFakeClock()
	s, err := NewStore(context.Background(), "", WithBackend(b), WithKeyPairs(testHashKey), withCleanupInterval(0), withClock(clock.Now), WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, sess := saveNew(t, s, "s", map[any]any{"user": "ada"})
	if _, ok := b.recs[storageKey(sess.ID)]; !ok {
		t.Fatal("custom backend not written")
	}
	again, err := s.Get(request(c), "s")
	if err != nil || again.Values["user"] != "ada" {
		t.Fatalf("load through custom backend: %v %v", again.Values, err)
	}
	clock.Advance(2*time.Minute + defaultReaperGrace)
	st, err := s.Reap(context.Background())
	if err != nil || st.Deleted != 1 || len(b.recs) != 0 {
		t.Fatalf("Reap = %+v, %v", st, err)
	}
}
