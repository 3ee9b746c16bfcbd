package caddybalancer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/lbset/caddy-balancer/balancer"
)

// Persistence, httpd's BalancerPersist: with `persist on`, run-time changes
// made through the manager or the JSON API are written to Caddy's storage
// (ctx.Storage(), the file system under Caddy's data directory by default)
// under balancer/<name>.json, and restored when the balancer is created again
// (a restart). A reload keeps the live balancer (registry.go), so nothing is
// read then. Where a member's configuration changed since the save, the
// configuration wins for that member; the balancer parameters are restored
// only if the balancer's configured parameters are unchanged.

// persistFile is the stored document.
type persistFile struct {
	Version int       `json:"version"`
	Saved   time.Time `json:"saved"`
	balancer.Snapshot
}

const persistVersion = 1

func persistKey(name string) string { return "balancer/" + name + ".json" }

// kvStorage is the part of certmagic.Storage (ctx.Storage()) used here.
type kvStorage interface {
	Store(ctx context.Context, key string, value []byte) error
	Load(ctx context.Context, key string) ([]byte, error)
}

// persistTarget is where one balancer is persisted.
type persistTarget struct {
	storage kvStorage
	logger  *zap.Logger
	mu      sync.Mutex // one write at a time, in order
}

var (
	// persistTargets maps a balancer name to its *persistTarget, for
	// balancers with persist on.
	persistTargets sync.Map
	// liveParams maps a *balancer.Balancer to its balancer.Snapshot taken
	// after the last run-time change, to keep changed balancer parameters
	// across a reload.
	liveParams sync.Map
	// balancerOrigins maps a *balancer.Balancer to the *balancerOrigin of the
	// config load that created it: a saved state is restored only by the load
	// that created the balancer (a restart), never onto a live one (a reload).
	balancerOrigins sync.Map
)

type balancerOrigin struct {
	load     <-chan struct{}
	mu       sync.Mutex
	restored bool
}

// setupPersistence is called by Provision for every balancer block once the
// balancer is acquired. A defining block with persist on registers the
// balancer for persistence and, if this config load created the balancer,
// restores its saved state; persist off unregisters it.
func (h *Handler) setupPersistence(ctx caddy.Context) {
	if h.bal == nil {
		return
	}
	v, _ := balancerOrigins.LoadOrStore(h.bal, &balancerOrigin{load: ctx.Done()})
	origin := v.(*balancerOrigin)
	if !h.defines() {
		return
	}
	// A reload reconfigured a live balancer, which resets its balancer
	// parameters to the configuration: put back those changed at run time,
	// as long as their configuration is unchanged.
	if origin.load != ctx.Done() {
		if snap, ok := liveParams.Load(h.bal); ok {
			h.bal.RestoreParams(snap.(balancer.Snapshot))
		}
	}
	name := h.bal.Name()
	if !h.Persist {
		persistTargets.Delete(name)
		return
	}
	logger := h.logger
	if logger == nil {
		logger = zap.NewNop()
	}
	st := contextStorage(ctx)
	if st == nil {
		logger.Error("balancer persist: no storage available", zap.String("balancer", name))
		return
	}
	t := &persistTarget{storage: st, logger: logger}
	persistTargets.Store(name, t)
	origin.mu.Lock()
	defer origin.mu.Unlock()
	if origin.load != ctx.Done() || origin.restored {
		return
	}
	origin.restored = true
	t.restore(h.bal)
}

// persistEnabled reports whether the balancer of that name has persist on.
func persistEnabled(name string) bool {
	_, ok := persistTargets.Load(name)
	return ok
}

// persistOrder maps a *balancer.Balancer to the *sync.Mutex held from its
// snapshot to the end of its write, so that concurrent changes are stored in
// the order their snapshots were taken: the state stored last is never older
// than the last change.
var persistOrder sync.Map

// persistBalancer is called after every run-time change of a balancer: it
// keeps the new state for reloads and, with persist on, writes it to storage.
// Errors are logged, never returned: the change itself stands.
func persistBalancer(b *balancer.Balancer) {
	l, _ := persistOrder.LoadOrStore(b, new(sync.Mutex))
	mu := l.(*sync.Mutex)
	mu.Lock()
	defer mu.Unlock()
	snap := b.Snapshot()
	liveParams.Store(b, snap)
	v, ok := persistTargets.Load(b.Name())
	if !ok {
		return
	}
	v.(*persistTarget).save(snap)
}

func (t *persistTarget) save(snap balancer.Snapshot) {
	t.mu.Lock()
	defer t.mu.Unlock()
	doc := persistFile{Version: persistVersion, Saved: time.Now().UTC(), Snapshot: snap}
	data, err := json.MarshalIndent(doc, "", "\t")
	if err != nil {
		t.logger.Error("balancer persist: encoding state", zap.String("balancer", snap.Name), zap.Error(err))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// certmagic's file storage writes through a temporary file and a rename,
	// so a reader never sees half a file.
	if err := t.storage.Store(ctx, persistKey(snap.Name), data); err != nil {
		t.logger.Error("balancer persist: writing state", zap.String("balancer", snap.Name),
			zap.String("key", persistKey(snap.Name)), zap.Error(err))
	}
}

func (t *persistTarget) restore(b *balancer.Balancer) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := persistKey(b.Name())
	data, err := t.storage.Load(ctx, key)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		t.logger.Error("balancer persist: reading saved state", zap.String("balancer", b.Name()),
			zap.String("key", key), zap.Error(err))
		return
	}
	var doc persistFile
	if err := json.Unmarshal(data, &doc); err != nil || doc.Version != persistVersion || doc.Name != b.Name() {
		if err == nil {
			err = fmt.Errorf("version %d for balancer %q, want version %d for %q", doc.Version, doc.Name, persistVersion, b.Name())
		}
		t.logger.Error("balancer persist: saved state is unusable, ignored", zap.String("balancer", b.Name()),
			zap.String("key", key), zap.Error(err))
		return
	}
	rep := b.Restore(doc.Snapshot)
	t.logger.Info("balancer persist: restored saved state", zap.String("balancer", b.Name()),
		zap.Time("saved", doc.Saved), zap.Bool("parameters", rep.Params),
		zap.Strings("members", rep.Restored), zap.Strings("added", rep.Added),
		zap.Strings("config_changed_or_gone", rep.Skipped))
}

// contextStorage is ctx.Storage(), nil where the context has no config
// (ctx.Storage panics then, e.g. in unit tests).
func contextStorage(ctx caddy.Context) (st kvStorage) {
	defer func() {
		if recover() != nil {
			st = nil
		}
	}()
	cs := ctx.Storage()
	if cs == nil {
		return nil
	}
	return cs
}
