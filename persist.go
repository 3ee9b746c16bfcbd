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
// only if the balancer's configured parameters are unchanged
// (balancer.Restore).

// persistFile is the stored document: the fields of balancer.Snapshot, with
// the format's version and the time of the save.
type persistFile struct {
	// Version is the format's version, 2. Version 1 (before forcerecovery
	// could change at run time) is read too.
	Version int `json:"version"`
	// Saved is when the state was written.
	Saved time.Time `json:"saved"`
	balancer.Snapshot
}

const persistVersion = 2

func persistKey(name string) string { return "balancer/" + name + ".json" }

// kvStorage is the part of certmagic.Storage (ctx.Storage()) used here.
type kvStorage interface {
	Store(ctx context.Context, key string, value []byte) error
	Load(ctx context.Context, key string) ([]byte, error)
}

// persister writes one balancer's state after every run-time change.
type persister struct {
	// mu is held from the snapshot to the end of its write, so that
	// concurrent changes are stored in the order their snapshots were taken:
	// the state stored last is never older than the last change.
	mu      sync.Mutex
	on      bool
	storage kvStorage
	logger  *zap.Logger
}

// setPersist sets up persistence from a committed definition and, on the
// balancer's first commit with persist on, restores the saved state. Caller
// holds e.mu.
func (e *registryEntry) setPersist(app *App, def *definition, first bool) {
	p := &e.persist
	p.mu.Lock()
	p.on, p.storage, p.logger = def.persist && def.storage != nil, def.storage, app.logger
	if def.persist && def.storage == nil {
		app.logger.Error("balancer persist: no storage available", zap.String("balancer", e.name))
	}
	p.mu.Unlock()
	d := e.bal.Durability()
	d.Persist = p.on
	e.bal.SetDurability(d)
	if first && p.on {
		e.restore()
	}
	e.bal.SetOnEdit(func(b *balancer.Balancer, _ balancer.Edit, _ string) { e.save() })
}

// save writes the balancer's state, if persist is on. Errors are logged,
// never returned: the change itself stands.
func (e *registryEntry) save() {
	p := &e.persist
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.on {
		return
	}
	snap := e.bal.Snapshot()
	doc := persistFile{Version: persistVersion, Saved: time.Now().UTC(), Snapshot: snap}
	data, err := json.MarshalIndent(doc, "", "\t")
	if err != nil {
		p.logger.Error("balancer persist: encoding state", zap.String("balancer", snap.Name), zap.Error(err))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// certmagic's file storage writes through a temporary file and a rename,
	// so a reader never sees half a file.
	if err := p.storage.Store(ctx, persistKey(snap.Name), data); err != nil {
		p.logger.Error("balancer persist: writing state", zap.String("balancer", snap.Name),
			zap.String("key", persistKey(snap.Name)), zap.Error(err))
	}
}

// restore reads the saved state and applies it (balancer.Restore checks it
// as it checks a run-time change). Caller holds e.mu.
func (e *registryEntry) restore() {
	p := &e.persist
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := persistKey(e.name)
	data, err := p.storage.Load(ctx, key)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		p.logger.Error("balancer persist: reading saved state", zap.String("balancer", e.name),
			zap.String("key", key), zap.Error(err))
		return
	}
	var doc persistFile
	err = json.Unmarshal(data, &doc)
	switch {
	case err != nil:
	case (doc.Version != 1 && doc.Version != persistVersion) || doc.Name != e.name:
		err = fmt.Errorf("version %d for balancer %q, want version %d for %q", doc.Version, doc.Name, persistVersion, e.name)
	case doc.Version == 1:
		// Version 1 had no forcerecovery: it could not change at run time.
		fr := e.bal.Config().ForceRecovery
		doc.Configured.ForceRecovery, doc.Params.ForceRecovery = fr, fr
	}
	if err != nil {
		p.logger.Error("balancer persist: saved state is unusable, ignored", zap.String("balancer", e.name),
			zap.String("key", key), zap.Error(err))
		return
	}
	rep := e.bal.Restore(doc.Snapshot)
	p.logger.Info("balancer persist: restored saved state", zap.String("balancer", e.name),
		zap.Time("saved", doc.Saved), zap.Bool("parameters", rep.Params),
		zap.Strings("members", rep.Restored), zap.Strings("added", rep.Added),
		zap.Strings("skipped", rep.Skipped))
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
