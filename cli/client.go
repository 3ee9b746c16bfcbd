package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/spf13/cobra"

	"github.com/lbset/caddy-balancer/api"
)

// client talks to the JSON API on Caddy's admin endpoint, as caddycmd's
// AdminAPIRequest does (the same origin, TCP or unix socket), but hands back
// the API's answers, error bodies included.
type client struct {
	origin string
	http   *http.Client
	json   bool
	cmd    *cobra.Command
	addr   string
}

// requestTimeout bounds every call but a drain's wait.
const requestTimeout = 30 * time.Second

func newClient(adminAddr string) (*client, error) {
	na, err := caddy.ParseNetworkAddress(adminAddr)
	if err != nil || na.PortRangeSize() > 1 {
		return nil, fmt.Errorf("invalid admin address %q", adminAddr)
	}
	origin := "http://" + na.JoinHostPort(0)
	if na.IsUnixNetwork() || na.IsFdNetwork() {
		origin = "http://127.0.0.1"
	}
	dialAddr := na.JoinHostPort(0)
	if na.IsUnixNetwork() {
		dialAddr, _, _ = strings.Cut(na.Host, "|") // socket permission bits
	}
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, na.Network, dialAddr)
	}
	return &client{
		origin: origin,
		addr:   adminAddr,
		http:   &http.Client{Transport: &http.Transport{DialContext: dial}},
	}, nil
}

// do sends a request with a JSON body (nil: none) and decodes the answer
// into out (nil: ignored). An answer of 400 or more is an error with the
// API's message.
func (c *client) do(method, path string, body, out any) error {
	_, err := c.call(method, path, body, out, 0)
	return err
}

// call is do with the status returned, and longer patience: wait is added
// to the timeout. The answer is decoded into out whatever its status.
func (c *client) call(method, path string, body, out any, wait time.Duration) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout+wait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.origin+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Origin", c.origin)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("cannot reach Caddy's admin endpoint at %s (is Caddy running? --address names another): %v", c.addr, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("reading the answer: %v", err)
	}
	if out != nil && len(raw) > 0 {
		if jerr := json.Unmarshal(raw, out); jerr != nil && resp.StatusCode < 400 {
			return resp.StatusCode, fmt.Errorf("the answer is not what the balancer API sends (is %s this Caddy's admin endpoint, built with caddy-balancer?): %v", c.addr, jerr)
		}
	}
	if resp.StatusCode >= 400 {
		var e api.Error
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return resp.StatusCode, fmt.Errorf("%s", e.Error)
		}
		msg := strings.TrimSpace(string(raw))
		if resp.StatusCode == http.StatusNotFound && !strings.Contains(msg, "{") {
			msg += " (is Caddy built with caddy-balancer?)"
		}
		return resp.StatusCode, fmt.Errorf("HTTP %d: %s", resp.StatusCode, msg)
	}
	return resp.StatusCode, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeBalancer prints a balancer: a line of its parameters, then its
// members as a table.
func writeBalancer(w io.Writer, b api.Balancer) {
	params := []string{b.LBMethod}
	if b.StickySession != "" {
		params = append(params, "stickysession "+b.StickySession)
	}
	if b.SlowStart != "" && b.SlowStart != "0s" {
		params = append(params, "slowstart "+b.SlowStart)
	}
	if b.Growth > 0 {
		params = append(params, fmt.Sprintf("%d free slots", b.FreeSlots))
	}
	fmt.Fprintf(w, "balancer://%s (%s)\n", b.Name, strings.Join(params, ", "))
	writeMembers(w, b.Members)
}

// writeMembers prints members with the balancer-manager's columns; Factor
// shows the loadfactor in force first while a member ramps up.
func writeMembers(w io.Writer, ms []api.Member) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tROUTE\tREDIR\tFACTOR\tSET\tSTATUS\tELECTED\tBUSY\tLOAD\tTO\tFROM")
	for _, m := range ms {
		factor := num(m.LoadFactor)
		if m.EffectiveLoadFactor != m.LoadFactor {
			factor = num(m.EffectiveLoadFactor) + " of " + factor
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%d\t%d\t%d\t%s\t%s\n", m.Name, dash(m.Route), dash(m.Redirect),
			factor, m.LBSet, strings.TrimSpace(m.Status), m.Elected, m.Busy, m.LBStatus, size(m.Transferred), size(m.Read))
	}
	tw.Flush()
}

func num(f float64) string { return fmt.Sprintf("%g", f) }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// size prints a byte count as the balancer-manager does (apr_strfsize).
func size(n int64) string {
	const units = "KMGTPE"
	if n < 973 {
		return fmt.Sprintf("%d", n)
	}
	f := float64(n)
	for i := 0; i < len(units); i++ {
		f /= 1024
		if f < 973 || i == len(units)-1 {
			if f < 9.95 {
				return fmt.Sprintf("%.1f%c", f, units[i])
			}
			return fmt.Sprintf("%.0f%c", f, units[i])
		}
	}
	return fmt.Sprintf("%d", n)
}
