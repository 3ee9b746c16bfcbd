package manager

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// threadsPerChild is what httpd shows as a member's smax and max without
// pool settings (the MPM's ThreadsPerChild, 25 by default).
const threadsPerChild = 25

// xml renders httpd 2.4.71's balancer-manager XML (`?xml=1`), elements in
// httpd's order. Route, redirect and stickysession are escaped; unlike httpd,
// names are escaped too.
func (p *page) xml() string {
	var b strings.Builder
	b.WriteString("<?xml version='1.0' encoding='UTF-8' ?>\n")
	b.WriteString("<httpd:manager xmlns:httpd='http://httpd.apache.org'>\n")
	b.WriteString("  <httpd:balancers>\n")
	for _, bal := range p.bals {
		v := bal.View()
		b.WriteString("    <httpd:balancer>\n")
		b.WriteString("      <httpd:name>" + esc("balancer://"+v.Name) + "</httpd:name>\n")
		b.WriteString("      <httpd:nonce>" + esc(v.Nonce) + "</httpd:nonce>\n")
		if v.StickySession != "" {
			b.WriteString("      <httpd:stickysession>" + esc(v.StickySession) + "</httpd:stickysession>\n")
			fmt.Fprintf(&b, "      <httpd:nofailover>%s</httpd:nofailover>\n", onOff(v.NoFailover))
		}
		// As in httpd 2.4.x, no newline after the timeout.
		fmt.Fprintf(&b, "      <httpd:timeout>%d</httpd:timeout>", int64(v.Timeout/time.Second))
		if v.MaxAttemptsSet {
			fmt.Fprintf(&b, "      <httpd:maxattempts>%d</httpd:maxattempts>\n", v.MaxAttempts)
		}
		b.WriteString("      <httpd:lbmethod>" + esc(v.LBMethod) + "</httpd:lbmethod>\n")
		if v.StickySession != "" {
			fmt.Fprintf(&b, "      <httpd:scolonpathdelim>%s</httpd:scolonpathdelim>\n", onOff(v.SColonPathDelim))
		}
		b.WriteString("      <httpd:workers>\n")
		for _, m := range v.Members {
			lf := float64(m.LoadFactor) / 100
			b.WriteString("        <httpd:worker>\n")
			b.WriteString("          <httpd:name>" + esc(m.Name) + "</httpd:name>\n")
			b.WriteString("          <httpd:scheme>" + esc(m.Scheme) + "</httpd:scheme>\n")
			b.WriteString("          <httpd:hostname>" + esc(m.Hostname) + "</httpd:hostname>\n")
			fmt.Fprintf(&b, "          <httpd:loadfactor>%.2f</httpd:loadfactor>\n", lf)
			fmt.Fprintf(&b, "          <httpd:port>%d</httpd:port>\n", m.Port)
			b.WriteString("          <httpd:min>0</httpd:min>\n")
			fmt.Fprintf(&b, "          <httpd:smax>%d</httpd:smax>\n", threadsPerChild)
			fmt.Fprintf(&b, "          <httpd:max>%d</httpd:max>\n", threadsPerChild)
			b.WriteString("          <httpd:ttl>0</httpd:ttl>\n")
			if m.TimeoutSet {
				fmt.Fprintf(&b, "          <httpd:timeout>%d</httpd:timeout>\n", int64(m.Timeout/time.Second))
			}
			b.WriteString("          <httpd:status>" + m.Status.String() + "</httpd:status>\n")
			if !m.ErrorTime.IsZero() {
				b.WriteString("          <httpd:error_time>" + m.ErrorTime.UTC().Format(http.TimeFormat) + "</httpd:error_time>\n")
			}
			fmt.Fprintf(&b, "          <httpd:retries>%d</httpd:retries>\n", m.Retries)
			fmt.Fprintf(&b, "          <httpd:lbstatus>%d</httpd:lbstatus>\n", m.LBStatus)
			fmt.Fprintf(&b, "          <httpd:loadfactor>%.2f</httpd:loadfactor>\n", lf)
			fmt.Fprintf(&b, "          <httpd:transferred>%d</httpd:transferred>\n", m.Transfer)
			fmt.Fprintf(&b, "          <httpd:read>%d</httpd:read>\n", m.Read)
			fmt.Fprintf(&b, "          <httpd:elected>%d</httpd:elected>\n", m.Elected)
			b.WriteString("          <httpd:route>" + esc(m.Route) + "</httpd:route>\n")
			b.WriteString("          <httpd:redirect>" + esc(m.Redirect) + "</httpd:redirect>\n")
			fmt.Fprintf(&b, "          <httpd:busy>%d</httpd:busy>\n", m.Busy)
			fmt.Fprintf(&b, "          <httpd:lbset>%d</httpd:lbset>\n", m.LBSet)
			if m.RetrySet {
				fmt.Fprintf(&b, "          <httpd:retry>%d</httpd:retry>\n", int64(m.Retry/time.Second))
			}
			b.WriteString("        </httpd:worker>\n")
		}
		b.WriteString("      </httpd:workers>\n")
		b.WriteString("    </httpd:balancer>\n")
	}
	b.WriteString("  </httpd:balancers>\n")
	b.WriteString("</httpd:manager>")
	return b.String()
}
