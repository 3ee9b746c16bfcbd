package httpdadapter

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// hdtAdaptFiles writes files into a temporary directory and adapts main.
func hdtAdaptFiles(t *testing.T, files map[string]string, main string) ([]byte, []caddyconfig.Warning, string, error) {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mainPath := filepath.Join(dir, main)
	body, err := os.ReadFile(mainPath)
	if err != nil {
		t.Fatal(err)
	}
	out, warns, err := Adapter{}.Adapt(body, map[string]any{"filename": mainPath})
	return out, warns, dir, err
}

// hdtFormatWarnings writes warnings as "file:line: Directive: message" with
// the file relative to dir.
func hdtFormatWarnings(warns []caddyconfig.Warning, dir string) []string {
	var out []string
	for _, w := range warns {
		f := w.File
		if rel, err := filepath.Rel(dir, f); err == nil && !strings.HasPrefix(rel, "..") {
			f = rel
		}
		out = append(out, fmt.Sprintf("%s:%d: %s: %s", f, w.Line, w.Directive, w.Message))
	}
	return out
}

func TestHttpdLogicalLines(t *testing.T) {
	text := "# comment\n" +
		"  Listen 80   \n" +
		"\n" +
		"ProxyPass /a \\\n" +
		"    http://b/   \\\n" +
		"  retry=5\n" +
		"   # indented comment \\\n" +
		"continued comment\n" +
		"Last\r\n"
	got := hdLogicalLines(text)
	want := []hdLine{
		{text: "Listen 80", line: 2},
		{text: "ProxyPass /a     http://b/     retry=5", line: 4},
		{text: "Last", line: 9},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestHttpdWords(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{`a b  c`, []string{"a", "b", "c"}},
		{`"a b" 'c d' e`, []string{"a b", "c d", "e"}},
		{`"say \"hi\"" 'it\'s' "back\\slash"`, []string{`say "hi"`, `it's`, `back\slash`}},
		{`"ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/" env=X`, []string{"ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/", "env=X"}},
		{`unquoted\\x a"b c"`, []string{`unquoted\x`, `a"b`, `c"`}},
		{`"unterminated`, []string{"unterminated"}},
	} {
		if got := hdWords(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("hdWords(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestHttpdIfVersion(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"2.4"}, true},
		{[]string{">=", "2.4.10"}, true},
		{[]string{"<", "2.4"}, false},
		{[]string{"!=", "2.2"}, true},
		{[]string{"~", `^2\.4`}, true},
		{[]string{"/^2\\.2/"}, false},
	} {
		got, err := hdIfVersion(tc.args)
		if err != nil || got != tc.want {
			t.Errorf("IfVersion %q = %v, %v; want %v", tc.args, got, err, tc.want)
		}
	}
}

// The reader: Include order and nesting, conditionals, Define, file:line
// of every directive.
func TestHttpdReader(t *testing.T) {
	files := map[string]string{
		"main.conf": `Define SITE example
ServerRoot "sub"
Include conf.d/*.conf
<IfModule mod_ssl.c>
    SSLEngine on
</IfModule>
LoadModule ssl_module modules/mod_ssl.so
<IfModule ssl_module>
    SSLProtocol all
</IfModule>
<IfModule !ssl_module>
    Never here
</IfModule>
<IfDefine !SITE>
    Define SITE other
    Include does-not-exist.conf
</IfDefine>
Site ${SITE}
`,
		"sub/conf.d/b.conf":  "B1\n<Location /x>\n  Include inc/inner.conf\n</Location>\n",
		"sub/conf.d/a.conf":  "A1 \\\n  continued\n",
		"sub/inc/inner.conf": "Inner 1\n",
	}
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, name)
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var warns []caddyconfig.Warning
	r := newHdReader(dir, &warns)
	dirs, err := r.readFile(filepath.Join(dir, "main.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var walk func([]*hdDirective, string)
	walk = func(ds []*hdDirective, indent string) {
		for _, d := range ds {
			rel, _ := filepath.Rel(dir, d.File)
			got = append(got, fmt.Sprintf("%s%s:%d %s %q", indent, rel, d.Line, d.display(), d.Args))
			walk(d.Body, indent+"  ")
		}
	}
	walk(dirs, "")
	want := []string{
		`main.conf:1 Define ["SITE" "example"]`,
		`main.conf:2 ServerRoot ["sub"]`,
		`sub/conf.d/a.conf:1 A1 ["continued"]`,
		`sub/conf.d/b.conf:1 B1 []`,
		`sub/conf.d/b.conf:2 <Location> ["/x"]`,
		`  sub/inc/inner.conf:1 Inner ["1"]`,
		`main.conf:7 LoadModule ["ssl_module" "modules/mod_ssl.so"]`,
		`main.conf:9 SSLProtocol ["all"]`,
		`main.conf:18 Site ["example"]`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("directives:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Before the LoadModule line the configuration has none, so <IfModule
	// mod_ssl.c> was uncertain: a warning says so.
	var ws []string
	for _, w := range warns {
		rel, _ := filepath.Rel(dir, w.File)
		ws = append(ws, fmt.Sprintf("%s:%d: %s: %s", rel, w.Line, w.Directive, w.Message))
	}
	if len(ws) < 1 || !strings.HasPrefix(ws[len(ws)-1], "main.conf:4: <IfModule>: module mod_ssl.c is neither loaded") {
		t.Errorf("warnings: %q", ws)
	}
}

// Golden files: testdata/golden/NAME.conf adapts to NAME.json (written
// by hand), without warnings unless NAME.warnings lists them.
func TestHttpdGolden(t *testing.T) {
	confs, err := filepath.Glob(filepath.Join("testdata", "golden", "*.conf"))
	if err != nil || len(confs) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, conf := range confs {
		name := strings.TrimSuffix(filepath.Base(conf), ".conf")
		t.Run(name, func(t *testing.T) {
			abs, _ := filepath.Abs(conf)
			body, err := os.ReadFile(abs)
			if err != nil {
				t.Fatal(err)
			}
			out, warns, err := Adapter{}.Adapt(body, map[string]any{"filename": abs})
			if err != nil {
				t.Fatalf("adapt: %v", err)
			}
			wantJSON, err := os.ReadFile(strings.TrimSuffix(conf, ".conf") + ".json")
			if err != nil {
				t.Fatal(err)
			}
			var got, want any
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(wantJSON, &want); err != nil {
				t.Fatalf("%s.json: %v", name, err)
			}
			if !reflect.DeepEqual(got, want) {
				g, _ := json.MarshalIndent(got, "", "  ")
				w, _ := json.MarshalIndent(want, "", "  ")
				t.Errorf("adapted JSON differs\n--- got\n%s\n--- want\n%s", g, w)
			}
			gotW := hdtFormatWarnings(warns, filepath.Dir(abs))
			var wantW []string
			if b, err := os.ReadFile(strings.TrimSuffix(conf, ".conf") + ".warnings"); err == nil {
				for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
					if l != "" {
						wantW = append(wantW, l)
					}
				}
			}
			if strings.Join(gotW, "\n") != strings.Join(wantW, "\n") {
				t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(gotW, "\n"), strings.Join(wantW, "\n"))
			}
			// The result must be a configuration Caddy accepts.
			hdtValidate(t, out)
		})
	}
}

// hdtValidate provisions an adapted configuration without starting it.
func hdtValidate(t *testing.T, out []byte) {
	t.Helper()
	var cfg caddy.Config
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("decode: %v", err)
	}
	cfg.Admin = &caddy.AdminConfig{Disabled: true}
	if err := caddy.Validate(&cfg); err != nil {
		t.Errorf("caddy.Validate: %v\n%s", err, out)
	}
}

// Warnings name the file, line and directive of what is not translated.
func TestHttpdWarnings(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string // substrings, in order, of the formatted warnings
	}{
		{
			name: "not translated",
			files: map[string]string{"httpd.conf": `Listen 80
ServerAdmin admin@example.com
DocumentRoot /var/www/html
ErrorLog /var/log/apache2/error.log
<Directory /var/www>
    Options None
    Require all denied
</Directory>
ProxyPass / http://127.0.0.1:9000/
Redirect permanent /old https://example.com/new
ErrorDocument 503 /maintenance.html
TraceEnable On
SetEnv proxy-nokeepalive 1
SetEnv FOO bar
SSLProxyVerify none
Frobnicate yes
ErrorLog /var/log/apache2/other.log
`},
			want: []string{
				"httpd.conf:10: Redirect: not translated: httpd answers these requests with a redirect itself",
				"httpd.conf:11: ErrorDocument: not translated: httpd answers this error with its own document",
				"httpd.conf:13: SetEnv: not translated: the variable proxy-nokeepalive changes how mod_proxy talks to the members",
				"httpd.conf:15: SSLProxyVerify: not translated: it sets how httpd checks https members",
				"httpd.conf:16: Frobnicate: not translated: not a reverse-proxy directive this adapter knows",
				"httpd.conf:0: : not translated (no effect on proxying): ErrorLog ×2, ServerAdmin ×1, DocumentRoot ×1, <Directory> ×1, TraceEnable ×1, SetEnv ×1",
			},
		},
		{
			name: "included file and pool keys",
			files: map[string]string{
				"httpd.conf": "Listen 80\nInclude sites/*.conf\n",
				"sites/app.conf": `<Proxy balancer://app>
    BalancerMember http://10.0.0.1:8080 max=20 ttl=60 route=a
    BalancerMember http://10.0.0.1:8080 route=dup
</Proxy>
ProxyPass /app/ balancer://app/ nocanon
`,
			},
			want: []string{
				"sites/app.conf:2: BalancerMember: member http://10.0.0.1:8080: max=20 is not translated",
				"sites/app.conf:2: BalancerMember: member http://10.0.0.1:8080: ttl=60 is not translated",
				"sites/app.conf:3: BalancerMember: http://10.0.0.1:8080 is already a member of balancer://app (",
				"sites/app.conf:5: ProxyPass: nocanon",
			},
		},
		{
			name: "conditionals, variables, headers",
			files: map[string]string{"httpd.conf": `Listen 80
<IfModule mod_rewrite.c>
    RewriteEngine On
</IfModule>
ProxyPass /x${UNSET_VARIABLE_FOR_TEST} http://10.0.0.1/
Header set X-Time "%t"
Header always set X-Frame-Options DENY
Header add Set-Cookie "BALANCEID=balancer.%{BALANCER_WORKER_ROUTE}e; path=/" env=BALANCER_ROUTE_CHANGED
<Proxy balancer://c>
    BalancerMember http://10.0.0.2
</Proxy>
ProxyPass / balancer://c/ stickysession=BALANCEID
`},
			want: []string{
				"httpd.conf:2: <IfModule>: module mod_rewrite.c is neither loaded by a LoadModule line nor one this adapter translates; assumed absent, so the 1 lines of this block are skipped",
				"httpd.conf:5: ProxyPass: config variable ${UNSET_VARIABLE_FOR_TEST} is not defined",
				"httpd.conf:5: ProxyPass: the URL ends in '/' but the path \"/x${UNSET_VARIABLE_FOR_TEST}\" does not: httpd sends a double slash",
				"httpd.conf:6: Header: not translated: format %t cannot be translated",
				"httpd.conf:7: Header: always: applied to proxied responses only",
				"httpd.conf:8: Header: the cookie value is written BALANCEID=.<route> (without \"balancer\")",
			},
		},
		{
			name: "access and manager",
			files: map[string]string{"httpd.conf": `Listen 80
<Proxy balancer://c>
    BalancerMember http://10.0.0.2
</Proxy>
<Proxy balancer://unused>
    BalancerMember http://10.0.0.3
</Proxy>
ProxyPass / balancer://c/
<Location /balancer-manager>
    SetHandler balancer-manager
    Require host admin.example.com
</Location>
`},
			want: []string{
				"httpd.conf:5: <Proxy>: balancer://unused is not used by any ProxyPass",
				"httpd.conf:10: SetHandler: ProxyPass at ",
				"httpd.conf:11: Require: host name \"admin.example.com\" cannot be translated",
			},
		},
		{
			name: "ProxyPassReverse rule list",
			files: map[string]string{"httpd.conf": `Listen 80
<Proxy balancer://c>
    BalancerMember http://10.0.0.2
</Proxy>
<Proxy balancer://unused>
    BalancerMember http://10.0.0.3
</Proxy>
ProxyPass /static/ http://static.internal/
ProxyPass / balancer://c/
ProxyPassReverse / balancer://c/
ProxyPassReverse /u balancer://unused/
ProxyPassReverse /n balancer://nosuch/
ProxyPassReverse /s http://static.internal/
`},
			want: []string{
				"httpd.conf:5: <Proxy>: balancer://unused is not used by any ProxyPass",
				"httpd.conf:10: ProxyPassReverse: the rule for balancer://c is not applied to the responses of ProxyPass /static/ (",
				"httpd.conf:11: ProxyPassReverse: balancer://unused is not used by any ProxyPass, so Caddy does not create it",
				"httpd.conf:12: ProxyPassReverse: balancer://nosuch is not defined here",
			},
		},
		{
			name: "balancer names cut per request",
			files: map[string]string{"httpd.conf": `Listen 80
<Proxy balancer://mycluster>
    BalancerMember http://10.0.0.2
</Proxy>
ProxyPassMatch ^/all(/.*)$ balancer://mycluster$1
ProxyPassMatch ^/app/(.*)$ balancer://mycluster$1
ProxyPassMatch ^/s(/.*)$ balancer://mycluster$1 stickysession=JSESSIONID
ProxyPassMatch ^/n/(.*)$ balancer://nothere$1
ProxyPass / balancer://mycluster
`},
			want: []string{
				"httpd.conf:6: ProxyPassMatch: the balancer name is cut from balancer://mycluster$1 after the references are filled in",
				"httpd.conf:7: ProxyPassMatch: stickysession=JSESSIONID: in httpd these parameters go to a balancer named balancer://mycluster$1",
				"httpd.conf:8: ProxyPassMatch: the balancer name is cut from balancer://nothere$1",
				"httpd.conf:8: ProxyPassMatch: no balancer's name starts with \"nothere\": httpd answers 500",
				"httpd.conf:9: ProxyPass: the URL has no '/' after the balancer name and the path \"/\" ends in '/': httpd appends the rest of the request path to the name, so only / itself reaches balancer://mycluster",
			},
		},
		{
			name:  "balancer without members",
			files: map[string]string{"httpd.conf": "Listen 80\nProxyPass / balancer://nothing/\n"},
			want:  []string{"httpd.conf:2: ProxyPass: balancer://nothing has no members (no BalancerMember names it): every request it gets is answered 503, as in httpd"},
		},
		{
			name:  "no Listen and no virtual host",
			files: map[string]string{"httpd.conf": "ProxyPass / http://10.0.0.9/\n"},
			want:  []string{"httpd.conf:0: : the configuration has no Listen directive; listening on port 80, httpd's default"},
		},
		{
			name:  "no Listen",
			files: map[string]string{"site.conf": "<VirtualHost *:8081>\nProxyPass / http://10.0.0.9/\n</VirtualHost>\n"},
			want:  []string{"site.conf:1: <VirtualHost>: the configuration has no Listen directive; listening on the port(s) of the <VirtualHost> addresses: 8081"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			main := "httpd.conf"
			if _, ok := tc.files[main]; !ok {
				main = "site.conf"
			}
			out, warns, dir, err := hdtAdaptFiles(t, tc.files, main)
			if err != nil {
				t.Fatalf("adapt: %v", err)
			}
			got := hdtFormatWarnings(warns, dir)
			i := 0
			for _, w := range got {
				if i < len(tc.want) && strings.Contains(w, tc.want[i]) {
					i++
				}
			}
			if i < len(tc.want) {
				t.Errorf("missing warning %q (in order) among:\n%s", tc.want[i], strings.Join(got, "\n"))
			}
			hdtValidate(t, out)
		})
	}
}

// What changes how requests are proxied and cannot be translated is an
// error naming file, line and directive.
func TestHttpdErrors(t *testing.T) {
	for _, tc := range []struct {
		conf string
		want string
	}{
		{"Listen 80\nRewriteEngine On\nRewriteRule ^/app/(.*) http://10.0.0.1/$1 [P,L]\n", "httpd.conf:3: RewriteRule: RewriteRule with the [P] flag"},
		{"Listen 80\nProxyRemote * http://proxy.example.com:3128\n", "httpd.conf:2: ProxyRemote: forwarding to another proxy"},
		{"Listen 80\n<Proxy balancer://hb>\n  BalancerMember http://10.0.0.1\n  ProxySet lbmethod=heartbeat\n</Proxy>\n", "httpd.conf:4: ProxySet: lbmethod=heartbeat cannot be translated"},
		{"Listen 80\n<Proxy balancer://x>\n  BalancerMember http://10.0.0.1 hcmethod=GET hcexpr=missing\n</Proxy>\n", "httpd.conf:3: BalancerMember: hcexpr=missing: unknown health check condition expr"},
		{"Listen 80\n<Proxy balancer://x>\n  BalancerMember http://10.0.0.1 loadfactor=0\n</Proxy>\n", "httpd.conf:3: BalancerMember: loadfactor must be a number from 1 to 100, not 0"},
		{"Listen 80\n<Proxy balancer://x>\n  BalancerMember http://10.0.0.1 status=X\n</Proxy>\n", "httpd.conf:3: BalancerMember: status=X"},
		{"Listen 80\n<Proxy balancer://x>\n  BalancerMember http://10.0.0.1 frobnicate=1\n</Proxy>\n", `httpd.conf:3: BalancerMember: unknown Worker parameter "frobnicate"`},
		{"Listen 80\n<Proxy balancer://x>\n  BalancerMember ajp://10.0.0.1:8009\n</Proxy>\n", "httpd.conf:3: BalancerMember: member ajp://10.0.0.1:8009: the ajp scheme cannot be translated"},
		{"Listen 80\nProxyRequests On\n", "httpd.conf:2: ProxyRequests: forward proxying"},
		{"Listen 80\n<Proxy balancer://x>\n  BalancerMember 127.0.0.1:9001\n</Proxy>\n", `httpd.conf:3: BalancerMember: invalid member URL "127.0.0.1:9001": it has no scheme; write http://127.0.0.1:9001 (or https://)`},
		{"Listen 80\nProxyPass / http://127.0.0.1:9001/ timeout=abc\n", `httpd.conf:2: ProxyPass: timeout must be a positive duration (a number of seconds or a duration such as 1500ms), not "abc"`},
		{"Listen 80\n<Proxy balancer://x>\n  BalancerMember http://10.0.0.1 timeout=abc\n</Proxy>\n", `httpd.conf:3: BalancerMember: timeout must be a positive duration (a number of seconds or a duration such as 1500ms), not "abc"`},
		{"Listen 80\n<Proxy balancer://x>\n  BalancerMember http://10.0.0.1\n  ProxySet timeout=abc\n</Proxy>\n", `httpd.conf:4: ProxySet: timeout must be a positive duration (a number of seconds or a duration such as 1500ms), not "abc"`},
		{"Listen 80\n<Proxy balancer://x>\n  BalancerMember http://10.0.0.1\n", "httpd.conf:2: <Proxy>: <Proxy> was not closed"},
		{"Listen 80\n</Location>\n", "httpd.conf:2: </Location>: closing tag without a matching <Location>"},
		{"Listen 80\nInclude nothing-here.conf\n", "httpd.conf:2: Include: could not open configuration file"},
		{"Listen 80\nInclude conf.d/*.conf\n", `httpd.conf:2: Include: no matches for the wildcard "conf.d/*.conf"`},
		{"Listen 80\nProxySet balancer://nope lbmethod=bytraffic\n", "httpd.conf:2: ProxySet: ProxySet can not find 'balancer://nope' Balancer"},
		{"Listen 80\n<Proxy balancer://x>\n  BalancerMember http://10.0.0.1\n</Proxy>\nProxyPass / balancer://x/ loadfactor=2\n", `httpd.conf:5: ProxyPass: unknown Balancer parameter "loadfactor"`},
		{"Listen 80\nProxyPass / fcgi://127.0.0.1:9000/\n", "httpd.conf:2: ProxyPass: the fcgi scheme cannot be translated"},
		{"Listen 80\n<Location /admin>\n  <If \"%{REMOTE_ADDR} == '10.0.0.1'\">\n    Require all granted\n  </If>\n</Location>\n", "httpd.conf:3: <If>: access control inside <If> cannot be translated"},
		{"Listen 80\n<Location /app>\n  SetHandler \"proxy:balancer://x\"\n</Location>\n", "httpd.conf:3: SetHandler: proxying with SetHandler"},
		{"Listen 80\nBalancerMember http://10.0.0.1\n", "httpd.conf:2: BalancerMember: BalancerMember must define balancer name"},
		{"Listen 80\n<Location /x>\n  Require ip 10.0.0.300\n</Location>\n", "httpd.conf:3: Require: invalid address"},
		{"Listen 80\nIncludeOptional missing.conf\nProxyPass /x/ ftp://10.0.0.1/\n", "httpd.conf:3: ProxyPass: the ftp scheme cannot be translated"},
		{"Listen 80\n<Proxy balancer://x>\n  BalancerMember http://10.0.0.1\n  ProxySet stickysessionsep=ab\n</Proxy>\n", "httpd.conf:4: ProxySet: stickysessionsep must be a single character or Off"},
	} {
		_, _, _, err := hdtAdaptFiles(t, map[string]string{"httpd.conf": tc.conf}, "httpd.conf")
		if err == nil {
			t.Errorf("%q: no error, want %q", tc.conf, tc.want)
			continue
		}
		msg := err.Error()
		if i := strings.Index(msg, "httpd.conf:"); i >= 0 {
			msg = msg[i:]
		}
		if !strings.HasPrefix(msg, tc.want) {
			t.Errorf("%q:\n got error %q\nwant prefix %q", tc.conf, msg, tc.want)
		}
	}
}

// Access rules: Require (with RequireAll/Any/None), Order/Allow/Deny and
// <Proxy> sections become matchers that Caddy provisions.
func TestHttpdAccessMatchers(t *testing.T) {
	out, warns, dir, err := hdtAdaptFiles(t, map[string]string{"httpd.conf": `Listen 80
<Proxy balancer://c>
    BalancerMember http://10.0.0.2
    Require ip 10.0.0.0/8
</Proxy>
ProxyPass / balancer://c/
<Location /a>
    <RequireAll>
        Require ip 192.0.2.0/24 2001:db8::/32
        Require not ip 192.0.2.7
    </RequireAll>
</Location>
<Location /b>
    Order Deny,Allow
    Deny from all
    Allow from 127.0.0.1 10.1
</Location>
<Location /c>
    Require method GET HEAD
    Require local
</Location>
`}, "httpd.conf")
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) > 0 {
		t.Errorf("warnings: %q", hdtFormatWarnings(warns, dir))
	}
	s := string(out)
	for _, want := range []string{
		`"expression":"(remote_ip('192.0.2.0/24', '2001:db8::/32') \u0026\u0026 !(remote_ip('192.0.2.7')))"`,
		`{"remote_ip":{"ranges":["127.0.0.1","10.1.0.0/16"]}}`,
		`{"remote_ip":{"ranges":["127.0.0.0/8","::1"]}},{"method":["GET","HEAD"]}`,
		`{"remote_ip":{"ranges":["10.0.0.0/8"]}}`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %s in\n%s", want, s)
		}
	}
	hdtValidate(t, out)
}

func TestHttpdIPRange(t *testing.T) {
	for in, want := range map[string]string{
		"10":                      "10.0.0.0/8",
		"10.1":                    "10.1.0.0/16",
		"192.168.1":               "192.168.1.0/24",
		"192.168.1.5":             "192.168.1.5",
		"10.0.0.0/255.255.0.0":    "10.0.0.0/16",
		"10.0.0.0/12":             "10.0.0.0/12",
		"2001:db8::a00:20ff:fea7": "2001:db8::a00:20ff:fea7",
		"2001:db8::/32":           "2001:db8::/32",
	} {
		got, err := hdIPRange(in)
		if err != nil || got != want {
			t.Errorf("hdIPRange(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"example.com", "10.300", "10.0.0.0/300"} {
		if _, err := hdIPRange(bad); err == nil {
			t.Errorf("hdIPRange(%q): no error", bad)
		}
	}
}

// Balancers are per virtual host in httpd and global by name in Caddy: a
// vhost that only refers to a main-server balancer shares it, one that
// defines its own under a taken name gets another name (with a warning).
func TestHttpdBalancerScopes(t *testing.T) {
	out, warns, dir, err := hdtAdaptFiles(t, map[string]string{"httpd.conf": `Listen 80
<Proxy balancer://app>
    BalancerMember http://10.0.0.1
</Proxy>
ProxyPass /main/ balancer://app/
<VirtualHost *:80>
    ServerName a.example
    ProxyPass / balancer://app/ stickysession=JSESSIONID
</VirtualHost>
<VirtualHost *:80>
    ServerName b.example
    <Proxy balancer://app>
        BalancerMember http://10.0.0.2
    </Proxy>
    ProxyPass / balancer://app/
</VirtualHost>
<VirtualHost *:80>
    ServerName c.example
    BalancerInherit Off
    ProxyPassInherit Off
    ProxyPass /c/ http://10.0.0.3/
</VirtualHost>
`}, "httpd.conf")
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{
		`"name":"app.b.example"`,
		`"name":"app.b.example","members":[{"url":"http://10.0.0.2"}]`,
		`"name":"app","stickysession":"JSESSIONID","members":[{"url":"http://10.0.0.1"}]`,
		`{"handler":"static_response","status_code":500}`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %s in\n%s", want, s)
		}
	}
	ws := strings.Join(hdtFormatWarnings(warns, dir), "\n")
	for _, want := range []string{
		"httpd.conf:8: ProxyPass: balancer://app: in Caddy the parameters set in this virtual host apply to the main server's balancer",
		`httpd.conf:12: <Proxy>: balancer://app is also defined at`,
		"httpd.conf:5: ProxyPass: balancer://app is not visible in this virtual host",
	} {
		if !strings.Contains(ws, want) {
			t.Errorf("missing warning %q in\n%s", want, ws)
		}
	}
	hdtValidate(t, out)
}

// SSLEngine with a certificate and key becomes a TLS server.
func TestHttpdTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	hdtSelfSigned(t, certFile, keyFile, "secure.example")
	out, warns, wdir, err := hdtAdaptFiles(t, map[string]string{"httpd.conf": fmt.Sprintf(`Listen 443
<VirtualHost *:443>
    ServerName secure.example
    SSLEngine on
    SSLCertificateFile %q
    SSLCertificateKeyFile %q
    SSLProtocol all -SSLv3
    ProxyPass / http://10.0.0.1:8080/
</VirtualHost>
`, certFile, keyFile)}, "httpd.conf")
	if err != nil {
		t.Fatal(err)
	}
	ws := hdtFormatWarnings(warns, wdir)
	if len(ws) != 1 || !strings.Contains(ws[0], "httpd.conf:0: : not translated (no effect on proxying): SSLProtocol ×1") {
		t.Errorf("warnings: %q", ws)
	}
	s := string(out)
	for _, want := range []string{
		`"tls_connection_policies":[{"certificate_selection":{"any_tag":["httpd_vhost1"]},"match":{"sni":["secure.example"]}},{"certificate_selection":{"any_tag":["httpd_vhost1"]}}]`,
		`"load_files":[{"certificate":` + fmt.Sprintf("%q", certFile) + `,"key":` + fmt.Sprintf("%q", keyFile) + `,"tags":["httpd_vhost1"]}]`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %s in\n%s", want, s)
		}
	}
	hdtValidate(t, out)

	_, _, _, err = hdtAdaptFiles(t, map[string]string{"httpd.conf": "Listen 443\n<VirtualHost *:443>\nSSLEngine on\nProxyPass / http://10.0.0.1/\n</VirtualHost>\n"}, "httpd.conf")
	if err == nil || !strings.Contains(err.Error(), "httpd.conf:3: SSLEngine: SSLEngine on needs SSLCertificateFile") {
		t.Errorf("SSLEngine without certificate: %v", err)
	}
}

// hdtSelfSigned writes a self-signed certificate for name.
func hdtSelfSigned(t *testing.T, certFile, keyFile, name string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// The tutorials' catch-all ProxyPassMatch adapts without a warning: $1
// starts with '/', so the balancer is always balancer://mycluster.
func TestHttpdPassMatchCatchAll(t *testing.T) {
	out, warns, dir, err := hdtAdaptFiles(t, map[string]string{"httpd.conf": `Listen 80
<Proxy balancer://mycluster>
    BalancerMember http://192.168.1.101:8080 route=node1
    BalancerMember http://192.168.1.102:8080 route=node2
    ProxySet stickysession=BALANCEID
</Proxy>
ProxyPassMatch ^(/.*)$ balancer://mycluster$1
`}, "httpd.conf")
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	if len(warns) > 0 {
		t.Errorf("warnings: %q", hdtFormatWarnings(warns, dir))
	}
	hdtValidate(t, out)
}

// hdtCopyTree copies the directory src to dst, symbolic links as links (the
// relative links of Debian's *-enabled directories keep working).
func hdtCopyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		switch {
		case d.Type()&os.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, 0o644)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

// hdtLineOf returns the number of the first line of file that starts with
// prefix (after white space), or fails.
func hdtLineOf(t *testing.T, file, prefix string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), prefix) {
			return i + 1
		}
	}
	t.Fatalf("%s has no line starting with %q", file, prefix)
	return 0
}

// A stock Debian /etc/apache2 with the proxy modules enabled (as a2enmod
// does) and one balancer site: the warnings a user reads are the directives
// that change how requests are answered, each with file and line, and one
// summary line for the ~250 that have no effect on proxying. envvars is read
// as apache2ctl does, so ${APACHE_LOG_DIR} and friends are defined.
func TestHttpdDebianApache2Conf(t *testing.T) {
	const etc = "/etc/apache2"
	if _, err := os.Stat(filepath.Join(etc, "apache2.conf")); err != nil {
		t.Skipf("needs Debian's apache2 package (%s/apache2.conf): %v", etc, err)
	}
	dir := filepath.Join(t.TempDir(), "apache2")
	hdtCopyTree(t, etc, dir)
	for _, m := range []string{"proxy.load", "proxy.conf", "proxy_http.load", "proxy_balancer.load", "proxy_balancer.conf",
		"lbmethod_byrequests.load", "slotmem_shm.load", "headers.load", "rewrite.load"} {
		if _, err := os.Stat(filepath.Join(dir, "mods-available", m)); err != nil {
			continue
		}
		link := filepath.Join(dir, "mods-enabled", m)
		_ = os.Remove(link)
		if err := os.Symlink(filepath.Join("..", "mods-available", m), link); err != nil {
			t.Fatal(err)
		}
	}
	site := `<VirtualHost *:80>
	ServerName www.example.com
	ServerAdmin webmaster@localhost
	DocumentRoot /var/www/html
	ErrorLog ${APACHE_LOG_DIR}/error.log
	CustomLog ${APACHE_LOG_DIR}/access.log combined

	<Proxy balancer://mycluster>
		BalancerMember http://127.0.0.1:8080 route=node1
		BalancerMember http://127.0.0.1:8081 route=node2
		ProxySet stickysession=ROUTEID
	</Proxy>
	ProxyPass /balancer-manager !
	ProxyPass / balancer://mycluster/
	ProxyPassReverse / balancer://mycluster/

	RewriteEngine On
	RewriteRule ^/old/(.*)$ /new/$1 [R=301,L]
	Header always set Strict-Transport-Security "max-age=63072000"
</VirtualHost>
`
	if err := os.WriteFile(filepath.Join(dir, "sites-enabled", "010-balancer.conf"), []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	main := filepath.Join(dir, "apache2.conf")
	body, err := os.ReadFile(main)
	if err != nil {
		t.Fatal(err)
	}
	out, warns, err := Adapter{}.Adapt(body, map[string]any{"filename": main})
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	got := hdtFormatWarnings(warns, dir)
	want := []string{
		fmt.Sprintf("conf-enabled/security.conf:%d: TraceEnable: not translated: with TraceEnable Off httpd answers TRACE with 405",
			hdtLineOf(t, filepath.Join(dir, "conf-enabled", "security.conf"), "TraceEnable Off")),
		"sites-enabled/010-balancer.conf:18: RewriteRule: not translated: mod_rewrite",
		"sites-enabled/010-balancer.conf:19: Header: always: applied to proxied responses only",
		"apache2.conf:0: : not translated (no effect on proxying): AddLanguage ×",
	}
	if len(got) != len(want) {
		t.Fatalf("%d warnings, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("warning %d:\n got %s\nwant %s...", i+1, got[i], want[i])
		}
	}
	summary := got[len(got)-1]
	for _, d := range []string{"AddCharset ×", "AddIcon ×", "BrowserMatch ×", "LogFormat ×", "<Directory> ×", "DocumentRoot ×2", "ErrorLog ×3"} {
		if !strings.Contains(summary, d) {
			t.Errorf("the summary does not count %q: %s", d, summary)
		}
	}
	if strings.Contains(strings.Join(got, "\n"), "${APACHE_") {
		t.Errorf("envvars was not read:\n%s", strings.Join(got, "\n"))
	}
	if !strings.Contains(string(out), `"url":"http://127.0.0.1:8081"`) {
		t.Errorf("the balancer is not in the adapted config:\n%s", out)
	}
	hdtValidate(t, out)
}

// envvars is read as apache2ctl sources it: exported variables reach httpd,
// the multi-instance suffix follows APACHE_CONFDIR, unset removes.
func TestHttpdEnvvars(t *testing.T) {
	text, err := os.ReadFile("/etc/apache2/envvars")
	if err != nil {
		t.Skipf("needs Debian's apache2 package (/etc/apache2/envvars): %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "envvars"), text, 0o644); err != nil {
		t.Fatal(err)
	}
	read := func() *hdEnvvars {
		var warns []caddyconfig.Warning
		r := newHdReader(dir, &warns)
		ev := r.debianEnvvars(filepath.Join(dir, "apache2.conf"))
		if ev == nil {
			t.Fatal("envvars beside apache2.conf was not read")
		}
		if len(warns) > 0 {
			t.Errorf("warnings: %v", warns)
		}
		return ev
	}
	t.Setenv("HOME", "/root")
	ev := read()
	for name, want := range map[string]string{
		"APACHE_LOG_DIR": "/var/log/apache2", "APACHE_RUN_USER": "www-data", "APACHE_PID_FILE": "/var/run/apache2/apache2.pid",
	} {
		if v, ok := ev.lookup(name); !ok || v != want {
			t.Errorf("${%s} = %q, %v; want %q", name, v, ok, want)
		}
	}
	if v, ok := ev.lookup("HOME"); ok {
		t.Errorf("${HOME} = %q after envvars' unset HOME", v)
	}
	if v, ok := ev.lookup("SUFFIX"); ok {
		t.Errorf("${SUFFIX} = %q: envvars does not export it", v)
	}
	// A second instance, /etc/apache2-foo: its own log directory.
	t.Setenv("APACHE_CONFDIR", "/etc/apache2-foo")
	if v, _ := read().lookup("APACHE_LOG_DIR"); v != "/var/log/apache2-foo" {
		t.Errorf("with APACHE_CONFDIR=/etc/apache2-foo: ${APACHE_LOG_DIR} = %q", v)
	}
	// Only a configuration named apache2.conf reads envvars.
	var warns []caddyconfig.Warning
	if newHdReader(dir, &warns).debianEnvvars(filepath.Join(dir, "httpd.conf")) != nil {
		t.Error("envvars read for httpd.conf")
	}
}
