package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lbset/caddy-balancer/balancer"
)

// TestDrainClientGone: a client that goes away while its drain waits ends
// the wait; the member stays draining. The API is served on a real socket,
// as on Caddy's admin endpoint, and the client sends a body, which the
// handler must read for net/http to notice the client leaving.
func TestDrainClientGone(t *testing.T) {
	const member = "http://127.0.0.1:1"
	b, err := balancer.New(balancer.Config{Name: "gone", Members: []balancer.MemberConfig{{URL: member}}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.Pick(context.Background(), nil) // one request in flight
	if err != nil {
		t.Fatal(err)
	}
	defer p.Member.Release()
	h := Handler{Balancers: func() []*balancer.Balancer { return []*balancer.Balancer{b} }}
	returned := make(chan int, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		returned <- rec.Code
	}))
	t.Cleanup(func() {
		if t.Failed() {
			srv.Config.Close() // does not wait for a handler still waiting
			return
		}
		srv.Close()
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		srv.URL+"/balancers/gone/members/"+url.PathEscape(member)+"/drain?wait=1h", strings.NewReader(`{"note":"deploy 42"}`))
	if err != nil {
		t.Fatal(err)
	}
	clientDone := make(chan error, 1)
	go func() {
		resp, err := srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		clientDone <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !p.Member.State().Status.Has(balancer.Drain) {
		if time.Now().After(deadline) {
			t.Fatal("the drain request did not set N")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case code := <-returned:
		t.Fatalf("the drain answered %d with a request in flight and an hour to wait", code)
	default:
	}
	cancel()
	if err := <-clientDone; err == nil {
		t.Fatal("the client's request was not canceled")
	}
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("the drain still waits 5s after its client went away")
	}
	if !p.Member.State().Status.Has(balancer.Drain) {
		t.Fatal("the member is no longer draining")
	}
}
