package manager

import (
	"fmt"
	"hash/fnv"
	"html"
	"runtime"
	"strings"
	"time"

	"github.com/lbset/caddy-balancer/balancer"
)

// The balancer-manager's HTML page, as httpd 2.4.71's balancer_display_page
// writes it: the same tables, column headers, links and form field names, so
// that scripts written against httpd (httpd-tests, Ansible's
// community.general.apache2_mod_proxy, curl/wget scrapers) read it unchanged.
// Every value is escaped.

// page is one rendering of the manager.
type page struct {
	bals    []*balancer.Balancer
	bsel    *balancer.Balancer
	wsel    *balancer.Member
	uri     string // the manager's path (decoded; escaped when written)
	host    string // the server name (Host without port)
	action  string // absolute URL of the manager
	version string // the "Server Version:" line
}

// ApacheCompatVersion is the httpd version whose manager this one mimics.
const ApacheCompatVersion = "2.4.71"

// ServerVersion is the "Server Version:" line for a server named product:
// it must match what scripts look for (Ansible: `Server Version:
// Apache/2\.4\.\d+`) and say what answers.
func ServerVersion(product string) string {
	return fmt.Sprintf("Apache/%s (compatible; %s)", ApacheCompatVersion, product)
}

// lbMethodOrder is the order of the lbmethod select (httpd lists its
// providers in registration order: bytraffic, heartbeat, byrequests, bybusyness).
var lbMethodOrder = []string{"bytraffic", "byrequests", "bybusyness"}

func esc(s string) string { return html.EscapeString(s) }

// escapeURI is ap_escape_uri (ap_os_escape_path, partial): every byte other
// than letters, digits and $-_.+!*'(),:;@&=/~ becomes %xx. The result is then
// HTML-escaped for use in an attribute.
func escapeURI(s string) string {
	const safe = "$-_.+!*'(),:;@&=/~"
	const hexdig = "0123456789abcdef"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strings.IndexByte(safe, c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexdig[c>>4])
		b.WriteByte(hexdig[c&15])
	}
	return esc(b.String())
}

// strfsize is apr_strfsize: a byte count in at most four characters, e.g.
// "  0 ", "600 ", "1.8K", " 47K".
func strfsize(size int64) string {
	const ord = "KMGTPE"
	if size < 0 {
		return "  - "
	}
	if size < 973 {
		return fmt.Sprintf("%3d ", size)
	}
	o := 0
	for {
		remain := size & 1023
		size >>= 10
		if size >= 973 {
			o++
			continue
		}
		if size < 9 || (size == 9 && remain < 973) {
			r := (remain*5 + 256) / 512
			if r >= 10 {
				size++
				r = 0
			}
			return fmt.Sprintf("%d.%d%c", size, r, ord[o])
		}
		if remain >= 512 {
			size++
		}
		return fmt.Sprintf("%3d%c", size, ord[o])
	}
}

// sname is the balancer's internal name shown in brackets (httpd: p<hash>_NAME).
func sname(name string) string {
	f := fnv.New32a()
	_, _ = f.Write([]byte(name))
	return fmt.Sprintf("p%08x_%s", f.Sum32(), name)
}

func onOff(b bool) string {
	if b {
		return "On"
	}
	return "Off"
}

// stickyDisplay is the StickySession cell: " (None) ", COOKIE or COOKIE|PARAM.
func stickyDisplay(v balancer.View) string {
	if v.StickySession == "" {
		return " (None) "
	}
	if v.StickySession != v.StickyPath {
		return esc(v.StickySession) + "|" + esc(v.StickyPath)
	}
	return esc(v.StickySession)
}

func hcMethodName(m string) string {
	if m == "" {
		return "NONE"
	}
	return strings.ToUpper(m)
}

func (p *page) html() string {
	var b strings.Builder
	b.WriteString("<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\" \"http://www.w3.org/TR/html4/strict.dtd\">\n")
	b.WriteString("<html><head><title>Balancer Manager</title>\n")
	b.WriteString("<style type='text/css'>\n" +
		"table {\n border-width: 1px;\n border-spacing: 3px;\n border-style: solid;\n border-color: gray;\n" +
		" border-collapse: collapse;\n background-color: white;\n text-align: center;\n}\n" +
		"th {\n border-width: 1px;\n padding: 2px;\n border-style: dotted;\n border-color: gray;\n" +
		" background-color: lightgray;\n text-align: center;\n}\n" +
		"td {\n border-width: 1px;\n padding: 2px;\n border-style: dotted;\n border-color: gray;\n" +
		" background-color: white;\n text-align: center;\n}\n" +
		"</style>\n</head>\n")
	b.WriteString("<body><h1>Load Balancer Manager for " + esc(p.host) + "</h1>\n\n")
	b.WriteString("<dl><dt>Server Version: " + esc(p.version) + "</dt>\n")
	b.WriteString("<dt>Server Built: " + esc(runtime.Version()) + "</dt>\n")
	persisted := len(p.bals) > 0
	views := make([]balancer.View, len(p.bals))
	for i, bal := range p.bals {
		views[i] = bal.View()
		if !views[i].Durability.Persist {
			persisted = false
		}
	}
	b.WriteString("<dt>Balancer changes will " + notIf(!persisted) + "be persisted on restart.</dt>")
	// Not in httpd's page: where changes are not kept as configured (a
	// failing storage, a fleet store out of reach). Only then.
	for _, v := range views {
		for _, w := range v.Durability.Warnings() {
			b.WriteString("<dt>balancer://" + esc(v.Name) + ": " + esc(w) + "</dt>")
		}
	}
	b.WriteString("<dt>Balancers are NOT inherited from main server.</dt>")
	b.WriteString("<dt>ProxyPass settings are NOT inherited from main server.</dt>")
	b.WriteString("</dl>\n")

	var bselView balancer.View
	for i, v := range views {
		if p.bals[i] == p.bsel {
			bselView = v
		}
		name := escapeURI(v.Name)
		b.WriteString("<hr />\n<h3>LoadBalancer Status for ")
		b.WriteString("<a href=\"" + escapeURI(p.uri) + "?b=" + name + "&amp;nonce=" + esc(v.Nonce) + "\">")
		b.WriteString(esc("balancer://"+v.Name) + "</a> [" + esc(sname(v.Name)) + "]</h3>\n")
		b.WriteString("\n\n<table><tr>" +
			"<th>MaxMembers</th><th>StickySession</th><th>DisableFailover</th><th>Timeout</th><th>FailoverAttempts</th><th>Method</th>" +
			"<th>Path</th><th>Active</th></tr>\n<tr>")
		fmt.Fprintf(&b, "<td>%d [%d Used]</td>\n", v.MaxMembers, len(v.Members))
		b.WriteString("<td>" + stickyDisplay(v))
		fmt.Fprintf(&b, "</td><td>%s</td>\n", onOff(v.NoFailover))
		fmt.Fprintf(&b, "<td>%d</td>", int64(v.Timeout/time.Second))
		fmt.Fprintf(&b, "<td>%d</td>\n", v.MaxAttempts)
		fmt.Fprintf(&b, "<td>%s</td>\n", esc(v.LBMethod))
		b.WriteString("<td>/</td>\n")
		b.WriteString("<td>Yes</td>\n")
		b.WriteString("</tr>\n</table>\n<br />")
		b.WriteString("\n\n<table><tr>" +
			"<th>Worker URL</th>" +
			"<th>Route</th><th>RouteRedir</th>" +
			"<th>Factor</th><th>Set</th><th>Status</th>" +
			"<th>Elected</th><th>Busy</th><th>Load</th><th>To</th><th>From</th>" +
			"<th>HC Method</th><th>HC Interval</th><th>Passes</th><th>Fails</th><th>HC uri</th><th>HC Expr</th>" +
			"</tr>\n")
		for _, m := range v.Members {
			hc := m.HC.WithDefaults()
			b.WriteString("<tr>\n<td><a href=\"" + escapeURI(p.uri) + "?b=" + name + "&amp;w=" + escapeURI(m.Name) +
				"&amp;nonce=" + esc(v.Nonce) + "\">")
			b.WriteString(esc(m.Name) + "</a></td>")
			b.WriteString("<td>" + esc(m.Route))
			b.WriteString("</td><td>" + esc(m.Redirect))
			fmt.Fprintf(&b, "</td><td>%.2f</td>", float64(m.LoadFactor)/100)
			fmt.Fprintf(&b, "<td>%d</td><td>", m.LBSet)
			b.WriteString(m.Status.String())
			b.WriteString("</td>")
			fmt.Fprintf(&b, "<td>%d</td>", m.Elected)
			fmt.Fprintf(&b, "<td>%d</td>", m.Busy)
			fmt.Fprintf(&b, "<td>%d</td><td>", m.LBStatus)
			b.WriteString(strfsize(m.Transfer))
			b.WriteString("</td><td>")
			b.WriteString(strfsize(m.Read))
			fmt.Fprintf(&b, "</td><td>%s</td>", hcMethodName(hc.Method))
			fmt.Fprintf(&b, "<td>%dms</td>", hc.Interval.Milliseconds())
			fmt.Fprintf(&b, "<td>%d (%d)</td>", hc.Passes, m.PCount)
			fmt.Fprintf(&b, "<td>%d (%d)</td>", hc.Fails, m.FCount)
			fmt.Fprintf(&b, "<td>%s</td>", esc(hc.URI))
			fmt.Fprintf(&b, "<td>%s", esc(hc.Expr))
			b.WriteString("</td></tr>\n")
		}
		b.WriteString("</table>\n")
	}
	b.WriteString("<hr />\n")

	switch {
	case p.bsel != nil && p.wsel != nil:
		p.workerForm(&b, bselView)
	case p.bsel != nil:
		p.balancerForm(&b, bselView)
	}
	b.WriteString("</body></html>\n")
	return b.String()
}

func notIf(b bool) string {
	if b {
		return "NOT "
	}
	return ""
}

// radio is httpd's create_radio: an On/Off pair of radio buttons.
func radio(b *strings.Builder, name string, on bool) {
	checked := func(c bool) string {
		if c {
			return " checked"
		}
		return ""
	}
	b.WriteString("<td><label for='" + name + "1'>On</label> <input name='" + name + "' id='" + name +
		"1' value='1' type=radio" + checked(on) + ">")
	b.WriteString(" <br/> <label for='" + name + "0'>Off</label> <input name='" + name + "' id='" + name +
		"0' value='0' type=radio" + checked(!on) + "></td>\n")
}

func (p *page) workerForm(b *strings.Builder, v balancer.View) {
	var m *balancer.MemberView
	for i := range v.Members {
		if v.Members[i].Name == p.wsel.Name() {
			m = &v.Members[i]
		}
	}
	if m == nil {
		return // removed meanwhile
	}
	hc := m.HC.WithDefaults()
	b.WriteString("<h3>Edit worker settings for " + esc(m.Name) + "</h3>\n")
	b.WriteString("<form method='POST' enctype='application/x-www-form-urlencoded' action=\"" + escapeURI(p.action) + "\">\n")
	b.WriteString("<table><tr><td>Load factor:</td><td><input name='w_lf' id='w_lf' type=text ")
	fmt.Fprintf(b, "value='%.2f'></td></tr>\n", float64(m.LoadFactor)/100)
	b.WriteString("<tr><td>LB Set:</td><td><input name='w_ls' id='w_ls' type=text ")
	fmt.Fprintf(b, "value='%d'></td></tr>\n", m.LBSet)
	b.WriteString("<tr><td>Route:</td><td><input name='w_wr' id='w_wr' type=text ")
	b.WriteString("value=\"" + esc(m.Route) + "\"></td></tr>\n")
	b.WriteString("<tr><td>Route Redirect:</td><td><input name='w_rr' id='w_rr' type=text ")
	b.WriteString("value=\"" + esc(m.Redirect) + "\"></td></tr>\n")
	b.WriteString("<tr><td>Status:</td>")
	b.WriteString("<td><table><tr>" +
		"<th>Ignore Errors</th>" +
		"<th>Draining Mode</th>" +
		"<th>Disabled</th>" +
		"<th>Hot Standby</th>" +
		"<th>Hot Spare</th>" +
		"<th>HC Fail</th>" +
		"<th>Stopped</th></tr>\n<tr>")
	radio(b, "w_status_I", m.Status.Has(balancer.IgnoreErrors))
	radio(b, "w_status_N", m.Status.Has(balancer.Drain))
	radio(b, "w_status_D", m.Status.Has(balancer.Disabled))
	radio(b, "w_status_H", m.Status.Has(balancer.HotStandby))
	radio(b, "w_status_R", m.Status.Has(balancer.HotSpare))
	radio(b, "w_status_C", m.Status.Has(balancer.HCFail))
	radio(b, "w_status_S", m.Status.Has(balancer.Stopped))
	b.WriteString("</tr></table></td></tr>\n")

	b.WriteString("<tr><td colspan='2'>\n<table align='center'><tr><th>Health Check param</th><th>Value</th></tr>\n")
	b.WriteString("<tr><td>Method</td><td><select name='w_hm'>\n")
	for _, name := range append([]string{"NONE"}, balancer.HCMethods...) {
		sel := ""
		if hcMethodName(hc.Method) == name {
			sel = "selected"
		}
		fmt.Fprintf(b, "<option value='%s' %s >%s</option>\n", name, sel, name)
	}
	b.WriteString("</select>\n</td></tr>\n")
	b.WriteString("<tr><td>Expr</td><td><select name='w_he'>\n")
	exprs := []string{""}
	seen := map[string]bool{"": true}
	for _, x := range v.Members {
		for _, e := range []string{x.HC.Expr, x.Config.HealthCheck.Expr} {
			if !seen[e] {
				seen[e] = true
				exprs = append(exprs, e)
			}
		}
	}
	if len(exprs) == 1 {
		exprs = nil // as httpd without any ProxyHCExpr: an empty select
	}
	for _, e := range exprs {
		sel := ""
		if e == hc.Expr {
			sel = "selected"
		}
		fmt.Fprintf(b, "<option value='%s' %s >%s</option>\n", esc(e), sel, esc(e))
	}
	b.WriteString("</select>\n</td></tr>\n")
	fmt.Fprintf(b, "<tr><td>Interval (ms)</td><td><input name='w_hi' id='w_hi' type='text' value='%d'></td></tr>\n", hc.Interval.Milliseconds())
	fmt.Fprintf(b, "<tr><td>Passes trigger</td><td><input name='w_hp' id='w_hp' type='text' value='%d'></td></tr>\n", hc.Passes)
	fmt.Fprintf(b, "<tr><td>Fails trigger)</td><td><input name='w_hf' id='w_hf' type='text' value='%d'></td></tr>\n", hc.Fails)
	fmt.Fprintf(b, "<tr><td>HC uri</td><td><input name='w_hu' id='w_hu' type='text' value=\"%s\"></td></tr>\n", esc(hc.URI))
	b.WriteString("</table>\n</td></tr>\n")

	b.WriteString("<tr><td colspan='2'><input type=submit value='Submit'></td></tr>\n")
	b.WriteString("</table>\n<input type=hidden name='w' id='w' ")
	b.WriteString("value=\"" + escapeURI(m.Name) + "\">\n")
	b.WriteString("<input type=hidden name='b' id='b' ")
	b.WriteString("value=\"" + esc(v.Name) + "\">\n")
	b.WriteString("<input type=hidden name='nonce' id='nonce' value='" + esc(v.Nonce) + "'>\n")
	b.WriteString("</form>\n")
	b.WriteString("<hr />\n")
}

func (p *page) balancerForm(b *strings.Builder, v balancer.View) {
	b.WriteString("<h3>Edit balancer settings for " + esc("balancer://"+v.Name) + "</h3>\n")
	b.WriteString("<form method='POST' enctype='application/x-www-form-urlencoded' action=\"" + escapeURI(p.action) + "\">\n")
	b.WriteString("<table>\n")
	b.WriteString("<tr><td>LBmethod:</td>")
	b.WriteString("<td>\n<select name='b_lbm' id='b_lbm'>")
	for _, name := range lbMethodOrder {
		b.WriteString("<option value='" + name + "'")
		if name == v.LBMethod {
			b.WriteString(" selected ")
		}
		b.WriteString(">" + name + "\n")
	}
	b.WriteString("</select>\n</td></tr>\n")
	b.WriteString("<tr><td>Timeout:</td><td><input name='b_tmo' id='b_tmo' type=text ")
	fmt.Fprintf(b, "value='%d'></td></tr>\n", int64(v.Timeout/time.Second))
	b.WriteString("<tr><td>Failover Attempts:</td><td><input name='b_max' id='b_max' type=text ")
	fmt.Fprintf(b, "value='%d'></td></tr>\n", v.MaxAttempts)
	b.WriteString("<tr><td>Disable Failover:</td>")
	radio(b, "b_sforce", v.NoFailover)
	b.WriteString("</tr>\n")
	b.WriteString("<tr><td>Sticky Session:</td><td><input name='b_ss' id='b_ss' size=64 type=text ")
	if v.StickySession != v.StickyPath {
		b.WriteString("value =\"" + esc(v.StickySession) + "|" + esc(v.StickyPath))
	} else {
		b.WriteString("value =\"" + esc(v.StickySession))
	}
	b.WriteString("\">&nbsp;&nbsp;&nbsp;&nbsp;(Use '-' to delete)</td></tr>\n")
	if v.FreeSlots() > 0 {
		b.WriteString("<tr><td>Add New Worker:</td><td><input name='b_nwrkr' id='b_nwrkr' size=32 type=text>" +
			"&nbsp;&nbsp;&nbsp;&nbsp;Are you sure? <input name='b_wyes' id='b_wyes' type=checkbox value='1'>" +
			"</td></tr>")
	}
	b.WriteString("<tr><td colspan=2><input type=submit value='Submit'></td></tr>\n")
	b.WriteString("</table>\n<input type=hidden name='b' id='b' ")
	b.WriteString("value=\"" + esc(v.Name) + "\">\n")
	b.WriteString("<input type=hidden name='nonce' id='nonce' value='" + esc(v.Nonce) + "'>\n")
	b.WriteString("</form>\n")
	b.WriteString("<hr />\n")
}
