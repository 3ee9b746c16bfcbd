#!/usr/bin/env bash
# The balancer-manager's real clients: installs them (Debian/Ubuntu apt) and
# runs the tests that drive them against an in-process Caddy:
#   - Ansible's community.general.apache2_mod_proxy (ansible, python3-bs4;
#     testdata/clients/BeautifulSoup.py is the shim for its old import),
#   - testdata/clients/proxy_balancer.sh (bash + curl, httpd-tests' flow),
#   - headless Chromium through chromedriver (chromium, chromium-driver).
# Each test skips when its client is missing; here they must all run.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
export GOFLAGS="${GOFLAGS:-} -mod=mod"

step() { printf '\n=== %s\n' "$*"; }

step "install: ansible python3-bs4 chromium chromium-driver curl"
need=()
command -v ansible >/dev/null || need+=(ansible)
/usr/bin/python3 -c 'import bs4' 2>/dev/null || need+=(python3-bs4)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
	apt-get -o DPkg::Lock::Timeout=600 update -qq
	apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${need[@]}" >/dev/null
fi

step "versions"
ansible --version | sed -n 1p
/usr/bin/python3 -c 'import bs4; print("bs4", bs4.__version__)'
dpkg-query -W -f='${Package} ${Version}\n' ansible 2>/dev/null || true
/usr/bin/chromium --version 2>/dev/null
chromedriver --version
curl --version | sed -n 1p
go version

step "client tests"
start=$(date +%s)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
rc=0
go test -count=1 -v -run 'Client|Ansible|Browser|Curl' . >"$log" 2>&1 || rc=$?
# Caddy's JSON log lines left out.
grep -v '^{"level"' "$log" || true
if [ "$rc" != 0 ]; then
	echo "client tests failed (exit $rc)"; exit 1
fi
if grep -q -- '--- SKIP' "$log"; then
	echo "a client test was skipped although its client was installed"; exit 1
fi
echo "client tests passed in $(( $(date +%s) - start ))s"
