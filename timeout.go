package caddybalancer

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"
)

// headerTimer cancels an attempt whose member has not sent its response
// headers within the member's timeout (httpd's worker `timeout`).
type headerTimer struct {
	t      *time.Timer
	fired  atomic.Bool
	cancel context.CancelFunc
}

// stop reports whether the timer was stopped before it fired.
func (h *headerTimer) stop() bool {
	h.t.Stop()
	return !h.fired.Load()
}

func withMemberTimeout(req *http.Request, d time.Duration, st *requestState) (*http.Request, *headerTimer) {
	if d <= 0 {
		return req, nil
	}
	ctx, cancel := context.WithCancel(req.Context())
	ht := &headerTimer{cancel: cancel}
	ht.t = time.AfterFunc(d, func() {
		ht.fired.Store(true)
		cancel()
	})
	return req.WithContext(ctx), ht
}
