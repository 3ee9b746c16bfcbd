package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"path"
	"strings"
	"sync"
	"time"
)

// Storage is the part of Caddy's storage (certmagic.Storage) the fallback
// uses.
type Storage interface {
	Store(ctx context.Context, key string, value []byte) error
	Load(ctx context.Context, key string) ([]byte, error)
	List(ctx context.Context, prefix string, recursive bool) ([]string, error)
}

// storageStore shares records through Caddy's storage, for fleets without
// Redis: each node writes the records it knows (its merged view of the
// fleet's state) to its own file, balancer/fleet/<prefix>/<node>.json, and
// reads the other nodes' files every poll interval. No file is written by
// two nodes, so no lock is needed (Caddy storage modules' locks vary in
// quality); the newest record of each field wins on every node alike.
type storageStore struct {
	st       Storage
	dir      string
	node     string
	interval time.Duration

	mu    sync.Mutex
	known map[Key]Record // this node's merged view, written to its file
}

func newStorageStore(st Storage, c *StorageConfig, prefix, node string) *storageStore {
	interval := time.Duration(c.PollInterval)
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	return &storageStore{
		st: st, dir: path.Join("balancer", "fleet", prefix), node: node, interval: interval,
		known: map[Key]Record{},
	}
}

func (s *storageStore) Name() string { return "storage" }

func (s *storageStore) file(node string) string { return path.Join(s.dir, node+".json") }

// merge keeps the newer of each record. Caller holds mu.
func (s *storageStore) mergeLocked(rs []Record) {
	for _, r := range rs {
		if cur, ok := s.known[r.Key()]; !ok || r.Newer(cur) {
			s.known[r.Key()] = r
		}
	}
}

func (s *storageStore) Write(ctx context.Context, rs []Record) error {
	s.mu.Lock()
	s.mergeLocked(rs)
	all := make([]Record, 0, len(s.known))
	for _, r := range s.known {
		all = append(all, r)
	}
	s.mu.Unlock()
	sortRecords(all)
	data, err := json.Marshal(all)
	if err != nil {
		return err
	}
	return s.st.Store(ctx, s.file(s.node), data)
}

// readFile reads one node's file; records that do not parse are skipped.
func (s *storageStore) readFile(ctx context.Context, key string) ([]Record, error) {
	data, err := s.st.Load(ctx, key)
	if err != nil {
		return nil, err
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	out := make([]Record, 0, len(raw))
	for _, js := range raw {
		var r Record
		if json.Unmarshal(js, &r) == nil && r.Balancer != "" && r.Field != "" && r.Node != "" {
			out = append(out, r)
		}
	}
	return out, nil
}

// nodeFiles lists the fleet's node files.
func (s *storageStore) nodeFiles(ctx context.Context) ([]string, error) {
	keys, err := s.st.List(ctx, s.dir, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	var out []string
	for _, k := range keys {
		if strings.HasSuffix(k, ".json") {
			out = append(out, k)
		}
	}
	return out, err
}

func (s *storageStore) Read(ctx context.Context, balancers []string) ([]Record, error) {
	files, err := s.nodeFiles(ctx)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, b := range balancers {
		want[b] = true
	}
	var out []Record
	for _, f := range files {
		rs, err := s.readFile(ctx, f)
		if err != nil {
			continue // a damaged or vanished file: the others still count
		}
		s.mu.Lock()
		s.mergeLocked(rs)
		s.mu.Unlock()
		for _, r := range rs {
			if want[r.Balancer] {
				out = append(out, r)
			}
		}
	}
	return out, nil
}

func (s *storageStore) Watch(ctx context.Context, changed func([]Record), resync func(), state func(error)) {
	resync()
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rs, err := s.poll(ctx)
		if ctx.Err() != nil {
			return
		}
		state(err)
		if len(rs) > 0 {
			changed(rs)
		}
	}
}

// poll reads the other nodes' files and returns the records newer than
// this node knew. Every file is read each time: a modification time can be
// coarser than two writes (a few milliseconds on Linux), and the files are
// small.
func (s *storageStore) poll(ctx context.Context) ([]Record, error) {
	files, err := s.nodeFiles(ctx)
	if err != nil {
		return nil, err
	}
	var out []Record
	for _, f := range files {
		if f == s.file(s.node) {
			continue
		}
		rs, err := s.readFile(ctx, f)
		if err != nil {
			continue
		}
		s.mu.Lock()
		for _, r := range rs {
			if cur, ok := s.known[r.Key()]; !ok || r.Newer(cur) {
				s.known[r.Key()] = r
				out = append(out, r)
			}
		}
		s.mu.Unlock()
	}
	return out, nil
}

func (s *storageStore) reportFile(node string) string {
	return path.Join(s.dir, "nodes", node+".json")
}

func (s *storageStore) Report(ctx context.Context, r NodeReport) error {
	js, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.st.Store(ctx, s.reportFile(r.Node), js)
}

func (s *storageStore) Reports(ctx context.Context) ([]NodeReport, error) {
	keys, err := s.st.List(ctx, path.Join(s.dir, "nodes"), false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []NodeReport
	for _, k := range keys {
		data, err := s.st.Load(ctx, k)
		if err != nil {
			continue
		}
		var r NodeReport
		if json.Unmarshal(data, &r) == nil && k == s.reportFile(r.Node) {
			out = append(out, r)
		}
	}
	return out, nil
}

func (s *storageStore) Close() error { return nil }
