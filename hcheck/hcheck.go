// Package hcheck runs mod_proxy_hcheck's health checks of balancer members:
// a loop that asks the engine which members are due (balancer.HCDue) and a
// probe that sends exactly httpd's check (hc_check_tcp, hc_check_http in
// mod_proxy_hcheck.c), then hands the outcome to the engine's state machine
// (Member.HCResult). docs/behaviour.md §8 describes the checks.
package hcheck

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/lbset/caddy-balancer/balancer"
)

// Health-check (mod_proxy_hcheck) runtime constants.
const (
	// Tick is how often the checker looks for due members (httpd's
	// watchdog slice, AP_WD_TM_SLICE).
	Tick = 100 * time.Millisecond
	// DefaultTimeout bounds a check of a member without its own timeout.
	DefaultTimeout = 5 * time.Second
	// Parallel is how many checks of one balancer run at once
	// (ProxyHCTPsize's default).
	Parallel = 16
	// MaxBody is how much of a GET check's body is kept for hcexpr; the
	// rest is read and discarded.
	MaxBody = 1 << 20
)

// Checker runs the health checks of one balancer: every Tick it asks the
// engine which members are due (so members added or changed at run time are
// picked up) and probes each in its own goroutine.
type Checker struct {
	b      *balancer.Balancer
	logger func() *zap.Logger
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	sem    chan struct{}

	mu    sync.Mutex
	exprs map[string]balancer.HCExpr
	bad   map[string]bool // conditions already reported as invalid
}

// Start starts checking b's members. logger returns the logger to use at the
// time of a message (the balancer outlives config loads and their loggers).
func Start(b *balancer.Balancer, logger func() *zap.Logger) *Checker {
	ctx, cancel := context.WithCancel(context.Background())
	c := &Checker{
		b: b, logger: logger, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		sem: make(chan struct{}, Parallel), exprs: map[string]balancer.HCExpr{}, bad: map[string]bool{},
	}
	go c.run()
	return c
}

// Done is closed when the checker's loop has ended.
func (c *Checker) Done() <-chan struct{} { return c.done }

// Stop ends the checker and waits for its loop (not for probes in flight:
// they are cancelled and end on their own).
func (c *Checker) Stop() {
	c.cancel()
	<-c.done
}

func (c *Checker) run() {
	defer close(c.done)
	t := time.NewTicker(Tick)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		for _, task := range c.b.HCDue(time.Now()) {
			go c.check(task)
		}
	}
}

// check runs one probe and records its outcome.
func (c *Checker) check(task balancer.HCTask) {
	select {
	case c.sem <- struct{}{}:
	case <-c.ctx.Done():
		task.Member.HCCancel()
		return
	}
	defer func() { <-c.sem }()
	pass, why := c.probe(task)
	if c.ctx.Err() != nil {
		task.Member.HCCancel()
		return
	}
	if !pass {
		if log := c.logger(); log.Core().Enabled(zap.DebugLevel) {
			log.Debug("health check failed",
				zap.String("balancer", c.b.Name()), zap.String("member", task.Member.Name()),
				zap.String("method", task.Check.Method), zap.String("reason", why))
		}
	}
	task.Member.HCResult(pass, time.Now())
}

// expr returns the parsed condition, cached; nil and an error if invalid.
func (c *Checker) expr(src string) (balancer.HCExpr, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.exprs[src]; ok {
		return e, nil
	}
	e, err := balancer.ParseHCExpr(src)
	if err != nil {
		if !c.bad[src] {
			c.bad[src] = true
			c.logger().Error("invalid hcexpr; checks using it fail",
				zap.String("balancer", c.b.Name()), zap.Error(err))
		}
		return nil, err
	}
	c.exprs[src] = e
	return e, nil
}

// probe is hc_check_tcp / hc_check_http (docs/behaviour.md §8.3): TCP connects only;
// OPTIONS sends `OPTIONS * HTTP/1.x`, HEAD and GET `<METHOD> <target>
// HTTP/1.x` (1.1 for the *11 methods) with exactly one header, `Host:
// host:port`, over a connection used once; GET reads the whole body. The
// check passes on a 200…399 status, or when hcexpr is set, when it holds.
// Any connect, TLS, write, read or parse error fails it. It reports why it
// failed.
func (c *Checker) probe(task balancer.HCTask) (bool, string) {
	var expr balancer.HCExpr
	if task.Check.Expr != "" && task.Check.Method != "TCP" {
		var err error
		if expr, err = c.expr(task.Check.Expr); err != nil {
			return false, err.Error()
		}
	}
	return Probe(c.ctx, task, expr)
}

// Probe runs one check of task's member with condition expr (nil: a
// 200…399 status passes) and reports whether it passed and, if not, why.
func Probe(ctx context.Context, task balancer.HCTask, expr balancer.HCExpr) (bool, string) {
	timeout := task.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", task.Dial)
	if err != nil {
		return false, err.Error()
	}
	defer conn.Close()
	if task.Check.Method == "TCP" {
		return true, ""
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	if task.Scheme == "https" {
		cfg := &tls.Config{
			// httpd's SSLProxyVerify defaults to none: the check does not
			// verify the member's certificate.
			InsecureSkipVerify: true, //nolint:gosec
			NextProtos:         []string{"http/1.1"},
		}
		if net.ParseIP(task.Hostname) == nil {
			cfg.ServerName = task.Hostname
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return false, "TLS: " + err.Error()
		}
		conn = tc
	}
	method, version := task.Check.Method, "1.0"
	if m, ok := strings.CutSuffix(method, "11"); ok {
		method, version = m, "1.1"
	}
	target := task.Target
	if method == "OPTIONS" {
		target = "*"
	}
	req := method + " " + target + " HTTP/" + version + "\r\nHost: " +
		net.JoinHostPort(task.Hostname, task.Port) + "\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		return false, err.Error()
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 1 {
		return false, "status line is not HTTP/1.x: " + resp.Proto
	}
	var body []byte
	if method == "GET" {
		body, err = io.ReadAll(io.LimitReader(resp.Body, MaxBody))
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
		}
		if err != nil {
			return false, "reading body: " + err.Error()
		}
	}
	if expr != nil {
		ok, err := expr.Eval(&balancer.HCResponse{Status: resp.StatusCode, Header: resp.Header, Body: string(body)})
		switch {
		case err != nil:
			return false, "hcexpr: " + err.Error()
		case !ok:
			return false, fmt.Sprintf("hcexpr is false (status %d)", resp.StatusCode)
		}
		return true, ""
	}
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return false, fmt.Sprintf("status %d", resp.StatusCode)
	}
	return true, ""
}
