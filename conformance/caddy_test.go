//go:build linux

package conformance

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/lbset/caddy-balancer"
)

// caddyConfig renders the Caddy JSON config of the scenario: one server on
// 127.0.0.1:port whose route /NAME, /NAME/* strips /NAME and runs the
// balancer handler (the counterpart of httpd's ProxyPass /NAME
// balancer://NAME). Logs go to a file
// in dir, storage too; nothing is autosaved. The admin endpoint, which serves
// our balancer-manager, listens on 127.0.0.1:adminPort: a new port for every
// load, because Caddy shuts the previous admin server down in the background.
func caddyConfig(sc *Scenario, members map[string]*memberSocket, dir string, port, adminPort int) ([]byte, error) {
	cfg := map[string]any{
		"admin": map[string]any{
			"listen": fmt.Sprintf("127.0.0.1:%d", adminPort),
			"config": map[string]any{"persist": false},
		},
		"storage": map[string]any{"module": "file_system", "root": filepath.Join(dir, "storage")},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{
			"level":  "INFO",
			"writer": map[string]any{"output": "file", "filename": filepath.Join(dir, "caddy.log"), "roll": false},
		}}},
		"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"conformance": map[string]any{
			"listen":          []string{fmt.Sprintf("127.0.0.1:%d", port)},
			"automatic_https": map[string]any{"disable": true},
			"routes": []any{map[string]any{
				"match": []any{map[string]any{"path": []string{"/" + sc.Name, "/" + sc.Name + "/*"}}},
				"handle": []any{
					// ProxyPass /NAME balancer://NAME maps /NAME/x to the
					// member's /x: strip the prefix, so that members see the
					// same request line from both servers.
					map[string]any{"handler": "rewrite", "strip_path_prefix": "/" + sc.Name},
					balancerHandler(sc, members),
				},
			}},
		}}}},
	}
	return json.MarshalIndent(cfg, "", "  ")
}

// handlerJSON is the balancer handler's config alone, for reports.
func handlerJSON(sc *Scenario, members map[string]*memberSocket) ([]byte, error) {
	return json.Marshal(balancerHandler(sc, members))
}

// balancerHandler is the scenario's balancer as a Caddy handler config.
func balancerHandler(sc *Scenario, members map[string]*memberSocket) map[string]any {
	h := map[string]any{"handler": "balancer", "name": sc.Name}
	bl := sc.Balancer
	if bl.LBMethod != "" {
		h["lbmethod"] = bl.LBMethod
	}
	if bl.StickySession != "" {
		h["stickysession"] = bl.StickySession
	}
	if bl.StickySessionSep != "" {
		h["stickysessionsep"] = bl.StickySessionSep
	}
	if bl.SColonPathDelim {
		h["scolonpathdelim"] = true
	}
	if bl.NoFailover {
		h["nofailover"] = true
	}
	if bl.MaxAttempts != nil {
		h["maxattempts"] = *bl.MaxAttempts
	}
	if bl.ForceRecovery != nil {
		h["forcerecovery"] = *bl.ForceRecovery
	}
	if bl.Timeout != 0 {
		h["timeout"] = (time.Duration(bl.Timeout) * time.Second).String()
	}
	if len(bl.FailOnStatus) > 0 {
		h["failonstatus"] = bl.FailOnStatus
	}
	if bl.Growth != 0 {
		h["growth"] = bl.Growth
	}
	var ms []map[string]any
	for _, m := range sc.Members {
		if m.Added {
			continue
		}
		mj := map[string]any{"url": members[m.Name].URL()}
		if m.LoadFactor != 0 {
			mj["loadfactor"] = m.LoadFactor
		}
		if m.LBSet != 0 {
			mj["lbset"] = m.LBSet
		}
		if m.Route != "" {
			mj["route"] = m.Route
		}
		if m.Redirect != "" {
			mj["redirect"] = m.Redirect
		}
		if m.Status != "" {
			mj["status"] = m.Status
		}
		if m.Retry != nil {
			mj["retry"] = m.Retry.String()
		}
		ms = append(ms, mj)
	}
	h["members"] = ms
	return h
}

// caddyRun is one in-process Caddy config.
type caddyRun struct {
	dir       string
	port      int
	adminPort int
	cfg       []byte
	handler   []byte // the balancer handler's JSON, for reports
}

// startCaddy loads the scenario's config into this process's Caddy.
func startCaddy(sc *Scenario, members map[string]*memberSocket, dir string) (*caddyRun, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	adminPort, err := freePort()
	for err == nil && adminPort == port {
		adminPort, err = freePort()
	}
	if err != nil {
		return nil, err
	}
	cfg, err := caddyConfig(sc, members, dir, port, adminPort)
	if err != nil {
		return nil, err
	}
	handler, err := handlerJSON(sc, members)
	if err != nil {
		return nil, err
	}
	c := &caddyRun{dir: dir, port: port, adminPort: adminPort, cfg: cfg, handler: handler}
	if err := caddy.Load(cfg, true); err != nil {
		return nil, fmt.Errorf("caddy.Load: %w\n%s", err, cfg)
	}
	return c, nil
}

func (c *caddyRun) base() string { return fmt.Sprintf("http://127.0.0.1:%d", c.port) }

// managerBase is the admin endpoint, where our balancer-manager is; the
// client's Host header (127.0.0.1:adminPort) is one the admin accepts.
func (c *caddyRun) managerBase() string { return fmt.Sprintf("http://127.0.0.1:%d", c.adminPort) }

func (c *caddyRun) stop() { _ = caddy.Stop() }

func (c *caddyRun) log() string { return readFile(filepath.Join(c.dir, "caddy.log")) }
