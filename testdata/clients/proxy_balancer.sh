#!/usr/bin/env bash
# httpd-tests' t/modules/proxy_balancer.t balancer-manager flow (tests 12-16),
# in bash + curl, against a running httpd or caddy-balancer:
#
#   proxy_balancer.sh MANAGER_URL ROUTE_URL MEMBER_URL [BALANCER]
#
#   MANAGER_URL  the balancer-manager, e.g. http://127.0.0.1:8080/balancer-manager
#   ROUTE_URL    a URL proxied to the balancer, e.g. http://127.0.0.1:8080/dynproxy
#   MEMBER_URL   a live backend to add as a member, e.g. http://127.0.0.1:9001
#   BALANCER     the balancer's name (default dynproxy); it must have no
#                members and room to grow (growth=N)
#
# Steps: GET the manager and scrape the balancer's nonce from its link as
# proxy_balancer.t does; POST the add-member form without a Referer (httpd
# >= 2.4.41 drops the parameters: nothing is added) and with a foreign
# Referer (dropped as well); the route answers 503; POST the add-member form
# with a same-host Referer (the member is added, Disabled); the route still
# answers 503; POST w_status_D=0 (enabled); the route answers 200.
#
# REFERER_OPTIONAL=1 skips the "no Referer" step, for caddy-balancer's admin
# endpoint, which keeps the parameters of Referer-less requests (Caddy's admin
# Host/Origin checks do the CSRF defence there).
#
# Prints TAP; exits 1 on the first failure.
set -euo pipefail

if [ $# -lt 3 ]; then
	sed -n '2,13p' "$0" >&2
	exit 2
fi
manager=$1 route=$2 member=$3 name=${4:-dynproxy}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0

ok() { n=$((n + 1)); echo "ok $n - $*"; }
fail() {
	n=$((n + 1))
	echo "not ok $n - $*"
	if [ -s "$tmp/body" ]; then sed 's/^/# /' "$tmp/body" | head -40; fi
	exit 1
}

# req METHOD URL [curl args...]: the status code on stdout, the body in $tmp/body.
req() {
	local method=$1 url=$2
	shift 2
	curl -sS --noproxy '*' -o "$tmp/body" -w '%{http_code}' -X "$method" "$@" "$url"
}

# The add-member form as proxy_balancer.t posts it.
add_form() {
	printf 'b_lbm=byrequests&b_tmo=0&b_max=0&b_sforce=0&b_ss=&b_nwrkr=%s&b_wyes=1&b=%s&nonce=%s' "$1" "$name" "$nonce"
}

# urlencode: ':' and '/' as %3A and %2F (all a member URL needs).
urlencode() { printf '%s' "$1" | sed -e 's/%/%25/g' -e 's/:/%3A/g' -e 's,/,%2F,g'; }

# 12: the manager page.
code=$(req GET "$manager")
[ "$code" = 200 ] && ok "GET manager: 200" || fail "GET manager: $code"

# The nonce, as proxy_balancer.t scrapes it: split the page at '?b=', take the
# piece naming the balancer, split it at '&amp;', read nonce= up to '"'.
nonce=$(awk -v name="$name" 'BEGIN { RS = "[?]b=" }
	index($0, name) {
		n = split($0, parts, "&amp;")
		for (i = 1; i <= n; i++)
			if (substr(parts[i], 1, 6) == "nonce=") { v = substr(parts[i], 7); sub(/".*/, "", v); print v; exit }
	}' "$tmp/body")
if [[ "$nonce" =~ ^[0-9a-fA-F-]+$ ]]; then ok "nonce of $name: $nonce"; else fail "no nonce for $name"; fi

ajp=$(urlencode 'ajp://[0:0:0:0:0:0:0:1]:8080')
# 13-14: without a Referer the parameters are dropped: no member is added.
if [ "${REFERER_OPTIONAL:-0}" != 1 ]; then
	code=$(req POST "$manager" --data-binary "$(add_form "$ajp")")
	[ "$code" = 200 ] && ok "POST add without Referer: 200" || fail "POST add without Referer: $code"
	grep -q ajp "$tmp/body" && fail "POST without Referer added the member" || ok "no member added without Referer"
fi
# The same with a foreign Referer.
code=$(req POST "$manager" -H 'Referer: http://evil.example/balancer-manager' --data-binary "$(add_form "$(urlencode "$member")")")
[ "$code" = 200 ] && ok "POST add with a foreign Referer: 200" || fail "POST add with a foreign Referer: $code"
grep -qF "$member" "$tmp/body" && fail "a foreign Referer added the member" || ok "no member added with a foreign Referer"

# 15: the balancer has no members.
code=$(req GET "$route")
[ "$code" = 503 ] && ok "GET route before: 503" || fail "GET route before: $code, want 503"

# Add the member with a same-host Referer: added, Disabled.
code=$(req POST "$manager" -H "Referer: $manager" --data-binary "$(add_form "$(urlencode "$member")")")
[ "$code" = 200 ] && ok "POST add with Referer: 200" || fail "POST add with Referer: $code"
grep -qF "$member" "$tmp/body" && ok "member $member listed" || fail "member $member not listed"
code=$(req GET "$route")
[ "$code" = 503 ] && ok "GET route with the new member disabled: 503" || fail "GET route with the new member disabled: $code, want 503"

# Enable it.
code=$(req POST "$manager" -H "Referer: $manager" --data-binary "w=$(urlencode "$member")&b=$name&w_status_D=0&nonce=$nonce")
[ "$code" = 200 ] && ok "POST enable: 200" || fail "POST enable: $code"

# 16: the balancer answers.
code=$(req GET "$route")
[ "$code" = 200 ] && ok "GET route after: 200" || fail "GET route after: $code, want 200"
echo "1..$n"
