package caddybalancer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// The README is what a newcomer copies first. These tests hold it to what
// Caddy does: every ```caddyfile block adapts without a warning and is
// formatted as `caddy fmt` formats it, every ```json block is a
// configuration Caddy accepts, and the demo prints what the README shows.
// Grammar that is not configuration (placeholders such as <name>) goes in a
// ```text block, which is not checked.

// readmeBlock is one fenced block of README.md.
type readmeBlock struct {
	lang string
	line int // the line of the opening fence
	body string
}

func readmeBlocks(t *testing.T) []readmeBlock {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []readmeBlock
	var cur *readmeBlock
	for i, line := range strings.Split(string(b), "\n") {
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &readmeBlock{lang: strings.TrimSpace(strings.TrimPrefix(line, "```")), line: i + 1}
		case cur != nil && strings.TrimSpace(line) == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.body += line + "\n"
		}
	}
	if cur != nil {
		t.Fatalf("README.md:%d: the block is not closed", cur.line)
	}
	return out
}

// TestReadmeCaddyfiles adapts each ```caddyfile block. A block that is a
// fragment of a site (its first word is a directive: Caddy refuses it as a
// site address) is adapted inside `example.com { ... }`; its formatting is
// checked as written.
func TestReadmeCaddyfiles(t *testing.T) {
	n := 0
	for _, blk := range readmeBlocks(t) {
		if blk.lang != "caddyfile" {
			continue
		}
		n++
		where := fmt.Sprintf("README.md:%d", blk.line)
		if formatted := string(caddyfile.Format([]byte(blk.body))); formatted != blk.body {
			t.Errorf("%s: not formatted as `caddy fmt` formats it; it would be:\n%s", where, formatted)
		}
		ad := caddyconfig.GetAdapter("caddyfile")
		_, warns, err := ad.Adapt([]byte(blk.body), map[string]any{"filename": where})
		if err != nil && strings.Contains(err.Error(), "directives must appear in a site block") {
			var site strings.Builder
			site.WriteString("example.com {\n")
			for _, l := range strings.Split(strings.TrimSuffix(blk.body, "\n"), "\n") {
				site.WriteString("\t" + l + "\n")
			}
			site.WriteString("}\n")
			_, warns, err = ad.Adapt(caddyfile.Format([]byte(site.String())), map[string]any{"filename": where + " (in a site)"})
		}
		if err != nil {
			t.Errorf("%s: does not adapt: %v\n%s", where, err, blk.body)
			continue
		}
		for _, w := range warns {
			t.Errorf("%s: adapting warns: %s", where, w)
		}
	}
	if n == 0 {
		t.Fatal("README.md has no ```caddyfile block")
	}
}

// TestReadmeJSON checks each ```json block: a whole configuration (it has
// "apps") or one handler (it has "handler", put into a route), decoded as
// Caddy decodes its configuration and provisioned by caddy.Validate.
func TestReadmeJSON(t *testing.T) {
	n := 0
	for _, blk := range readmeBlocks(t) {
		if blk.lang != "json" {
			continue
		}
		n++
		where := fmt.Sprintf("README.md:%d", blk.line)
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(blk.body), &obj); err != nil {
			t.Errorf("%s: not a JSON object: %v", where, err)
			continue
		}
		cfgJSON := []byte(blk.body)
		switch {
		case obj["apps"] != nil:
		case obj["handler"] != nil:
			cfgJSON = []byte(fmt.Sprintf(`{"apps": {"http": {"servers": {"readme": {"listen": ["127.0.0.1:0"], "routes": [{"handle": [%s]}]}}}}}`, blk.body))
		default:
			t.Errorf("%s: a ```json block must be a whole configuration (\"apps\") or a handler (\"handler\")", where)
			continue
		}
		var cfg caddy.Config
		dec := json.NewDecoder(bytes.NewReader(cfgJSON))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		cfg.Admin = &caddy.AdminConfig{Disabled: true}
		if err := caddy.Validate(&cfg); err != nil {
			t.Errorf("%s: Caddy refuses it: %v", where, err)
		}
	}
	if n == 0 {
		t.Fatal("README.md has no ```json block")
	}
}

// TestReadmeDemo runs testdata/demo.caddyfile (on free ports instead of
// 8080, 9001-9005 and 9009, without the admin endpoint) and the README's
// loop `for i in $(seq 8); do curl -s localhost:8080/; done`: what the loop
// prints must be the block the README shows after it.
func TestReadmeDemo(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	const loop = "for i in $(seq 8); do curl -s localhost:8080/; done"
	_, after, ok := strings.Cut(string(readme), loop)
	if !ok {
		t.Fatalf("README.md does not show the loop %q", loop)
	}
	blocks := regexp.MustCompile("(?s)```[a-z]*\n(.*?)```").FindStringSubmatch(after)
	if blocks == nil {
		t.Fatal("README.md shows no block after the demo loop")
	}
	want := blocks[1]

	demo, err := os.ReadFile("testdata/demo.caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	src := strings.Replace(string(demo), "admin localhost:2019", "admin off", 1)
	port := freePort(t)
	src = strings.ReplaceAll(src, "8080", strconv.Itoa(port))
	for _, p := range []string{"9001", "9002", "9003", "9004", "9005", "9009"} {
		src = strings.ReplaceAll(src, "127.0.0.1:"+p, fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	}
	loadCaddyfile(t, src)
	var got strings.Builder
	for i := 0; i < 8; i++ {
		// curl -s prints the body as it comes, nothing added.
		resp, err := client.Get("http://" + net.JoinHostPort("localhost", strconv.Itoa(port)) + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got.Write(body)
	}
	if got.String() != want {
		t.Errorf("the demo loop prints\n%s\nthe README shows\n%s", got.String(), want)
	}
}
