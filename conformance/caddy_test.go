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
	"github.com/lbset/caddy-balancer/config"
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

// balancerHandler is the scenario's balancer as a Caddy handler config,
// written through the plugin's own configuration types (package config), as
// the httpd adapter writes it.
func balancerHandler(sc *Scenario, members map[string]*memberSocket) config.Handler {
	bl := sc.Balancer
	h := config.Handler{Balancer: config.Balancer{
		Name: sc.Name, LBMethod: bl.LBMethod, StickySession: bl.StickySession, StickySessionSep: bl.StickySessionSep,
		SColonPathDelim: bl.SColonPathDelim, NoFailover: bl.NoFailover, MaxAttempts: bl.MaxAttempts,
		ForceRecovery: bl.ForceRecovery, Timeout: caddy.Duration(time.Duration(bl.Timeout) * time.Second),
		FailOnStatus: bl.FailOnStatus, Growth: bl.Growth,
	}}
	for _, m := range sc.Members {
		if m.Added {
			continue
		}
		cm := config.Member{URL: members[m.Name].URL(), LoadFactor: m.LoadFactor, LBSet: m.LBSet, Route: m.Route,
			Redirect: m.Redirect, Status: m.Status}
		if m.Retry != nil {
			r := caddy.Duration(*m.Retry)
			cm.Retry = &r
		}
		h.Members = append(h.Members, cm)
	}
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
