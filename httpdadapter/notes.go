package httpdadapter

import (
	"fmt"
	"sort"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// What the adapter leaves out, and how it says so. A directive that changes
// how requests are proxied or answered and is not translated gets its own
// warning with file and line. One that has no effect on proxied requests
// (httpd's own files, logs, MIME types and languages, processes, client TLS
// tuning) is counted into one summary warning: a stock Debian apache2.conf
// holds some 250 of them, which would bury the few that matter.

// hdQuiet are the directives left out without effect on proxied requests.
var hdQuiet = map[string]bool{}

func init() {
	for _, names := range []string{
		// logging
		"errorlog customlog transferlog loglevel logformat errorlogformat globallog bufferedlogs hostnamelookups",
		// processes
		"pidfile user group defaultruntimedir mutex serverlimit threadsperchild maxrequestworkers startservers " +
			"minsparethreads maxsparethreads threadlimit maxconnectionsperchild maxclients minspareservers " +
			"maxspareservers maxrequestsperchild asyncrequestworkerfactor coredumpdirectory scoreboardfile listenbacklog",
		// client connections
		"keepalive maxkeepaliverequests keepalivetimeout requestreadtimeout protocols h2direct",
		// the server's self-description
		"servertokens serversignature serveradmin usecanonicalname enablesendfile enablemmap extendedstatus",
		// httpd's own files (requests ProxyPass takes never reach them)
		"accessfilename documentroot alias aliasmatch scriptalias scriptaliasmatch directoryindex options " +
			"allowoverride addtype removetype adddefaultcharset addhandler removehandler addoutputfilter " +
			"addoutputfilterbytype typesconfig indexoptions indexorderdefault adddescription addicon addiconbytype " +
			"addiconbyencoding defaulticon readmename headername indexignore addlanguage addcharset addencoding " +
			"languagepriority forcelanguagepriority setoutputfilter setinputfilter deflatecompressionlevel " +
			"expiresactive expiresbytype expiresdefault mimemagicfile",
		// environment variables for httpd's own handlers (hdProxyEnv makes
		// those that set proxy-* variables loud)
		"setenv unsetenv passenv setenvif setenvifnocase browsermatch browsermatchnocase",
		// client-side TLS tuning
		"sslrandomseed sslsessioncache sslsessioncachetimeout sslpassphrasedialog sslciphersuite sslprotocol " +
			"sslhonorcipherorder sslcompression sslsessiontickets sslstaplingcache sslusestapling " +
			"sslcertificatechainfile ssloptions sslopensslconfcmd sslstrictsnivhostcheck",
		// mod_rewrite's helpers: every RewriteRule is reported by itself
		"rewriteengine rewritecond rewritebase rewriteoptions rewritemap",
		// authentication providers: what decides is Require, reported by itself
		"authtype authname authuserfile authgroupfile authbasicprovider authbasicauthoritative",
		// mod_proxy tuning and display
		"proxystatus proxyiobuffersize proxyreceivebuffersize proxyhctpsize",
		// value-dependent ones, loud when hdLoudWhen says so
		"traceenable proxyvia proxyerroroverride",
	} {
		for _, n := range strings.Fields(names) {
			hdQuiet[n] = true
		}
	}
}

// hdLoud are directives that change how requests are proxied or answered and
// are not translated, with the reason.
var hdLoud = map[string]string{
	"redirect":          "httpd answers these requests with a redirect itself (mod_alias); use Caddy's redir",
	"redirectmatch":     "httpd answers these requests with a redirect itself (mod_alias); use Caddy's redir",
	"redirectpermanent": "httpd answers these requests with a redirect itself (mod_alias); use Caddy's redir",
	"redirecttemp":      "httpd answers these requests with a redirect itself (mod_alias); use Caddy's redir",
	"errordocument": "httpd answers this error with its own document, also the 503 of a balancer without a usable member; " +
		"use Caddy's handle_errors",
	"limitrequestbody":      "httpd refuses requests over this limit, proxied ones too; use Caddy's request_body max_size",
	"limitrequestfields":    "httpd refuses requests over this limit, proxied ones too; Caddy's limits are its server's",
	"limitrequestline":      "httpd refuses requests over this limit, proxied ones too; Caddy's limits are its server's",
	"limitrequestfieldsize": "httpd refuses requests over this limit, proxied ones too; Caddy's limits are its server's",
	"sslverifyclient":       "client certificates decide who gets in; configure Caddy's tls client_auth",
	"sslverifydepth":        "client certificates decide who gets in; configure Caddy's tls client_auth",
	"sslcacertificatefile":  "client certificates decide who gets in; configure Caddy's tls client_auth",
	"sslcacertificatepath":  "client certificates decide who gets in; configure Caddy's tls client_auth",
}

func init() {
	for _, n := range strings.Fields("sslproxyverify sslproxycheckpeername sslproxycheckpeercn sslproxycheckpeerexpire " +
		"sslproxycacertificatefile sslproxycacertificatepath sslproxymachinecertificatefile sslproxyprotocol sslproxyciphersuite") {
		hdLoud[n] = "it sets how httpd checks https members; set the balancer's transport http tls options " +
			"(tls_trust_pool, tls_insecure_skip_verify, tls_client_auth, ...)"
	}
	for _, n := range strings.Fields("proxymaxforwards proxybadheader proxypassinterpolateenv proxysourceaddress " +
		"proxyfcgibackendtype proxyfcgisetenvif proxyhtmlenable proxyhtmlurlmap proxydomain proxyblock noproxy " +
		"proxy100continue proxyasyncdelay proxywebsocketfallbacktoproxyhttp proxywebsocketidletimeout") {
		hdLoud[n] = "this mod_proxy setting has no Caddy equivalent here"
	}
}

// hdLoudWhen returns why a value-dependent directive changes how requests
// are proxied or answered, or "" when its value changes nothing.
func hdLoudWhen(d *hdDirective) string {
	arg := ""
	if len(d.Args) > 0 {
		arg = strings.ToLower(d.Args[0])
	}
	switch d.lname() {
	case "traceenable":
		if arg == "off" {
			return "with TraceEnable Off httpd answers TRACE with 405, proxied requests too; Caddy passes TRACE to the members " +
				"(add a route that answers method TRACE with 405)"
		}
	case "proxyvia":
		if arg != "off" {
			return "httpd adds (or with Block removes) Via headers; Caddy does not (use header_up and header_down)"
		}
	case "proxyerroroverride":
		if arg == "on" {
			return "httpd replaces the members' error answers with its own ErrorDocument; use handle_response in the balancer"
		}
	case "setenv", "unsetenv", "setenvif", "setenvifnocase", "browsermatch", "browsermatchnocase":
		if v := hdProxyEnv(d); v != "" {
			return fmt.Sprintf("the variable %s changes how mod_proxy talks to the members; it has no Caddy equivalent here", v)
		}
	}
	return ""
}

// hdProxyEnv returns the first proxy-* environment variable (proxy-nokeepalive,
// proxy-sendchunked, ...) a SetEnv, UnsetEnv, SetEnvIf or BrowserMatch
// sets, or "".
func hdProxyEnv(d *hdDirective) string {
	var vars []string
	switch d.lname() {
	case "setenv", "unsetenv":
		vars = d.Args
	case "setenvif", "setenvifnocase":
		if len(d.Args) > 2 {
			vars = d.Args[2:]
		}
	default: // BrowserMatch regex var...
		if len(d.Args) > 1 {
			vars = d.Args[1:]
		}
	}
	for _, v := range vars {
		name, _, _ := strings.Cut(strings.TrimPrefix(v, "!"), "=")
		if strings.HasPrefix(strings.ToLower(name), "proxy-") {
			return name
		}
	}
	return ""
}

// warnNotTranslated reports a directive that is left out: loud ones with
// their own warning, quiet ones in the summary.
func (c *hdConfig) warnNotTranslated(d *hdDirective) {
	ln := d.lname()
	if why, ok := hdLoud[ln]; ok {
		c.warn(posOf(d), "not translated: %s", why)
		return
	}
	if hdQuiet[ln] {
		if why := hdLoudWhen(d); why != "" {
			c.warn(posOf(d), "not translated: %s", why)
			return
		}
		c.summarize(d)
		return
	}
	c.warn(posOf(d), "not translated: not a reverse-proxy directive this adapter knows")
}

// warnSkippedSection reports a section that is left out with everything in it.
func (c *hdConfig) warnSkippedSection(d *hdDirective, why string) {
	c.warn(posOf(d), "not translated (%d directives inside): %s", hdCount(d.Body), why)
}

// summarize counts a directive (or section) for the summary warning.
func (c *hdConfig) summarize(d *hdDirective) {
	if c.quiet == nil {
		c.quiet = map[string]int{}
	}
	name := d.display()
	if _, ok := c.quiet[name]; !ok {
		c.quietOrder = append(c.quietOrder, name)
	}
	c.quiet[name]++
}

// summary is the one warning for what was left out without effect on
// proxying: each directive with its count, most frequent first. It applies
// to the whole configuration: it names the main file and no line.
func (c *hdConfig) summary() (caddyconfig.Warning, bool) {
	if len(c.quietOrder) == 0 {
		return caddyconfig.Warning{}, false
	}
	names := append([]string(nil), c.quietOrder...)
	sort.SliceStable(names, func(i, j int) bool { return c.quiet[names[i]] > c.quiet[names[j]] })
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s ×%d", n, c.quiet[n])
	}
	return caddyconfig.Warning{
		File:    c.mainFile,
		Message: "not translated (no effect on proxying): " + strings.Join(parts, ", "),
	}, true
}
