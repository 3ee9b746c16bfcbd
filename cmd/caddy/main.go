// Command caddy is Caddy with its standard modules and caddy-balancer, so that
// `go run ./cmd/caddy run --config ...` works without xcaddy.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/lbset/caddy-balancer"
)

func main() {
	caddycmd.Main()
}
