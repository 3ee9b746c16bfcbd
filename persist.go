package caddybalancer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
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

// listStorage is the part of certmagic.Storage that finds and removes the
// temporary files a killed write left behind.
type listStorage interface {
	List(ctx context.Context, prefix string, recursive bool) ([]string, error)
	Stat(ctx context.Context, key string) (certmagic.KeyInfo, error)
	Delete(ctx context.Context, key string) error
}

// PersistFailedEvent is the Caddy event emitted when writing a balancer's
// state fails (data: balancer, key, error); the change stands, in memory
// only. The JSON API's answers and the manager page say so too, and the
// metric caddy_balancer_persist_failures_total counts the failures.
const PersistFailedEvent = "balancer_persist_failed"

// persister writes one balancer's state after every run-time change.
type persister struct {
	// mu is held from the snapshot to the end of its write, so that
	// concurrent changes are stored in the order their snapshots were taken:
	// the state stored last is never older than the last change.
	mu      sync.Mutex
	on      bool
	storage kvStorage
	logger  *zap.Logger
	emit    func(event string, data map[string]any)
}

// setPersist sets up persistence from a committed definition and, on the
// balancer's first commit with persist on, restores the saved state. Caller
// holds e.mu.
func (e *registryEntry) setPersist(app *App, def *definition, first bool) {
	p := &e.persist
	p.mu.Lock()
	p.on, p.storage, p.logger, p.emit = def.persist && def.storage != nil, def.storage, app.logger, app.emit
	if def.persist && def.storage == nil {
		app.logger.Error("balancer persist: no storage available", zap.String("balancer", e.name))
	}
	on := p.on
	p.mu.Unlock()
	e.bal.UpdateDurability(func(d *balancer.Durability) {
		d.Persist = on
		if !on {
			d.PersistError, d.PersistErrorTime = "", time.Time{}
		}
	})
	if first && on {
		removeOrphans(p.storage, p.logger)
		e.restore()
	}
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
	key := persistKey(snap.Name)
	err = p.storage.Store(ctx, key, data)
	e.bal.UpdateDurability(func(d *balancer.Durability) {
		if err != nil {
			d.PersistError, d.PersistErrorTime = err.Error(), time.Now()
			d.PersistFailures++
		} else {
			d.PersistError, d.PersistErrorTime = "", time.Time{}
		}
	})
	if err != nil {
		p.logger.Error("balancer persist: writing state failed; the change is in force but not persisted",
			zap.String("balancer", snap.Name), zap.String("key", key), zap.Error(err))
		if p.emit != nil {
			p.emit(PersistFailedEvent, map[string]any{"balancer": snap.Name, "key": key, "error": err.Error()})
		}
	}
}

// orphanAge is how old a temporary file must be to count as left behind by
// a killed write (a write takes milliseconds; another node sharing the
// storage may be writing right now).
const orphanAge = time.Minute

// removeOrphans removes the temporary files that writes killed halfway left
// under balancer/ (certmagic's file storage writes a file named with digits
// only, then renames it): they are not state files and would pile up.
func removeOrphans(st kvStorage, logger *zap.Logger) {
	ls, ok := st.(listStorage)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	keys, err := ls.List(ctx, "balancer", false)
	if err != nil {
		return
	}
	for _, k := range keys {
		base := path.Base(k)
		if strings.Trim(base, "0123456789") != "" {
			continue
		}
		info, err := ls.Stat(ctx, k)
		if err != nil || !info.IsTerminal || time.Since(info.Modified) < orphanAge {
			continue
		}
		if err := ls.Delete(ctx, k); err == nil {
			logger.Info("balancer persist: removed a temporary file left by an interrupted write", zap.String("key", k))
		}
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
