package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/lbset/caddy-balancer/balancer"
	"github.com/lbset/caddy-balancer/config"
)

// Drain to empty: POST /balancers/{name}/members/{member}/drain[?wait=30s]
// sets the member's N flag (httpd's drain: no new non-sticky request), if
// it is not set, and answers when the member has no request in flight, or
// when wait has passed (balancer.Member.WaitDrained). wait is a duration
// ("30s", "1m", or a number of seconds), 0 to 1h; default 0: answer at
// once. The request body, if any, is ignored. Answers:
//
//	200  drained: no request in flight; the member may be stopped
//	202  no wait was asked for and requests are still in flight
//	409  requests still in flight when wait passed, or N was cleared meanwhile
//	400  a bad wait or an unknown query parameter; 404 unknown balancer or member
//
// 200, 202 and 409 carry a Drain; 409's has an "error" saying why. A client
// that goes away stops the wait (the flag stays set).

// DrainNode is one Caddy node's part of a drain.
type DrainNode struct {
	// Node names the node: its fleet node ID, or the host name of the
	// machine Caddy runs on.
	Node string `json:"node"`
	// InFlight is the member's requests in flight on that node.
	InFlight int64 `json:"in_flight"`
	// Drained: on that node the member is draining with no request in flight.
	Drained bool `json:"drained"`
	// Draining is false on a node the drain has not reached yet (a fleet
	// node that has not applied the change).
	Draining bool `json:"draining"`
	// Stale: the node has not reported for a while (it is likely gone); it
	// does not hold the drain up. LastSeen is its last report.
	Stale    bool       `json:"stale,omitempty"`
	LastSeen *time.Time `json:"last_seen,omitempty"`
}

// peerPoll is how often a drain that waits for a fleet's other nodes reads
// their reports; peerRead bounds one read.
const (
	peerPoll = 100 * time.Millisecond
	peerRead = 2 * time.Second
)

// Drain is the answer of POST /balancers/{name}/members/{member}/drain.
type Drain struct {
	Balancer string `json:"balancer"`
	// Member is the member's URL (its name).
	Member string `json:"member"`
	// Drained: the member is draining (N) and has no request in flight on any
	// node, so no request is lost by stopping it.
	Drained bool `json:"drained"`
	// InFlight is the member's requests in flight, summed over Nodes.
	InFlight int64 `json:"in_flight"`
	// Waited is how long the answer waited, a duration such as "1.25s".
	Waited string `json:"waited"`
	// Nodes has a part per Caddy node; for now the node that answered.
	Nodes []DrainNode `json:"nodes"`
	// Error says why a 409 answer is not drained.
	Error string `json:"error,omitempty"`
}

// DrainWait reads the wait parameter of a drain: a duration or a number of
// seconds, checked with the engine's rule.
func DrainWait(v string) (time.Duration, error) {
	d, err := config.ParseSeconds(v)
	if err != nil {
		return 0, balancer.Invalid("wait", v)
	}
	if err := balancer.CheckDrainWait(d); err != nil {
		return 0, err
	}
	return d, nil
}

func (h Handler) drain(b *balancer.Balancer, m *balancer.Member, r *http.Request) (int, any, error) {
	// Reading the body to its end lets net/http notice a client that goes
	// away while the answer waits (the request's context is then canceled).
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, bodyLimit))
	var wait time.Duration
	for k, vs := range r.URL.Query() {
		if k != "wait" || len(vs) != 1 {
			return 0, nil, errorf(http.StatusBadRequest, "unknown query parameter %q (only wait=<duration>, once)", k)
		}
		d, err := DrainWait(vs[0])
		if err != nil {
			return 0, nil, errorf(http.StatusBadRequest, "%v", err)
		}
		wait = d
	}
	if !m.State().Status.Has(balancer.Drain) {
		e := balancer.Edit{Members: []balancer.MemberEdit{{Name: m.Name(), Set: balancer.Drain}}}
		if _, err := b.Apply(e, balancer.ReasonAPI); err != nil {
			return 0, nil, editError(err)
		}
		h.logger().Info("balancer API: member draining", zap.String("balancer", b.Name()), zap.String("member", m.Name()))
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	start := time.Now()
	inFlight, err := m.WaitDrained(ctx)
	self, peers, perr := h.waitPeers(ctx, r.Context(), b, m.Name(), err == nil)
	node := h.Node
	if self != "" {
		node = self
	}
	if node == "" {
		node = "local"
	}
	local := DrainNode{Node: node, InFlight: inFlight, Drained: err == nil, Draining: true}
	out := Drain{Balancer: b.Name(), Member: m.Name(), Nodes: append([]DrainNode{local}, peers...)}
	out.Drained = err == nil && perr == nil
	for _, n := range out.Nodes {
		out.InFlight += n.InFlight
		if !n.Stale && !n.Drained {
			out.Drained = false
		}
	}
	out.Waited = time.Since(start).Round(time.Millisecond).String()
	if err == nil && !out.Drained {
		err = context.DeadlineExceeded // a peer is not drained yet
	}
	switch {
	case err == nil:
		return http.StatusOK, out, nil
	case errors.Is(err, balancer.ErrNotDraining):
		out.Error = fmt.Sprintf("member %s is no longer draining: its N flag was cleared while waiting", m.Name())
		return http.StatusConflict, out, nil
	case r.Context().Err() != nil:
		h.logger().Debug("balancer API: drain wait ended by the client", zap.String("balancer", b.Name()), zap.String("member", m.Name()))
		return http.StatusConflict, out, nil // nobody reads it
	case wait == 0:
		return http.StatusAccepted, out, nil
	}
	out.Error = fmt.Sprintf("member %s still has %d requests in flight after %s", m.Name(), out.InFlight, wait)
	if perr != nil {
		out.Error = fmt.Sprintf("member %s: the fleet's other nodes could not be asked: %v", m.Name(), perr)
	} else if out.InFlight == 0 {
		out.Error = fmt.Sprintf("member %s: the drain has not reached every node after %s", m.Name(), wait)
	}
	return http.StatusConflict, out, nil
}

// waitPeers waits, while ctx lasts, until every other node of the fleet
// (those that reported recently) has the member draining with nothing in
// flight, and returns their part. With localDone false, or ctx over, it
// reads their state once (within the request's context reqCtx).
func (h Handler) waitPeers(ctx, reqCtx context.Context, b *balancer.Balancer, member string, localDone bool) (string, []DrainNode, error) {
	if h.Peers == nil {
		return "", nil, nil
	}
	for {
		readCtx, cancel := context.WithTimeout(reqCtx, peerRead)
		self, peers, err := h.Peers(readCtx, b, member)
		cancel()
		if err != nil || self == "" || !localDone {
			return self, peers, err
		}
		done := true
		for _, p := range peers {
			if !p.Stale && !p.Drained {
				done = false
			}
		}
		if done {
			return self, peers, nil
		}
		select {
		case <-ctx.Done():
			return self, peers, nil
		case <-time.After(peerPoll):
		}
	}
}
