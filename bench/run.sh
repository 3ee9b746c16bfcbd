#!/usr/bin/env bash
# The load rig of caddy-balancer (docs/performance.md): the same loopback nginx
# backends behind four proxies, one after the other,
#
#   reverse_proxy  Caddy's reverse_proxy, lb_policy round_robin
#   balancer       Caddy with this plugin's balancer handler (same binary)
#   httpd          Apache httpd 2.4 mod_proxy_balancer, mpm_event
#   haproxy        HAProxy, balance roundrobin
#
# each driven by wrk (keep-alive, GET /). Every round runs every proxy once, in
# a rotated order; the summary gives the median over the rounds of req/s, p50
# and p99 latency, the proxy's own CPU time per request (from /proc: all its
# threads and processes; the steadiest figure on a shared machine) and its
# kernel part, read(2)+write(2) calls and context switches per request, and
# the median of each round's ratio to reverse_proxy measured in that round.
#
# It installs nothing: it checks for nginx, haproxy, wrk, apache2, go and
# taskset (and curl, ps) and says what to apt-get install. Everything listens on 127.0.0.1
# and every process it starts is stopped on exit (by its PID).
#
# Usage: bench/run.sh            (from the repository root or anywhere)
# Settings (environment):
#   CONNS=32 THREADS=2 DURATION=10s WARMUP=2s ROUNDS=5 BACKENDS=4
#   PIN=1        pin the proxy under test to CPU 0, nginx and wrk to the other
#                CPUs (needs ≥ 2 CPUs); PIN=0 lets them share all CPUs
#   TARGETS="reverse_proxy balancer httpd haproxy"
#   BASEPORT=19100  backends on BASEPORT+1…, proxies on BASEPORT-20…
#   OUT=/tmp/caddy-balancer-bench-results  where the raw wrk outputs,
#                summary.tsv, summary.txt (and the profiles) go
#   KEEP=1       keep the work directory (configs, logs)
#   PROFILE=1    also take a CPU profile of both Caddy targets (Caddy's admin
#                /debug/pprof, on 127.0.0.1) during their run of the last
#                round: OUT/<target>.cpu.prof, summarized by bench/pprof-split.sh
set -euo pipefail

CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
ROUNDS=${ROUNDS:-5}
BACKENDS=${BACKENDS:-4}
PIN=${PIN:-1}
TARGETS=${TARGETS:-"reverse_proxy balancer httpd haproxy"}
BASEPORT=${BASEPORT:-19100}

repo=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-${TMPDIR:-/tmp}/caddy-balancer-bench-results}

# --- tools ------------------------------------------------------------------
APACHE2=${APACHE2:-/usr/sbin/apache2}
APACHE_MODS=${APACHE_MODS:-/usr/lib/apache2/modules}
missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v wrk >/dev/null || missing+=(wrk)
[ -x "$APACHE2" ] || missing+=(apache2)
command -v taskset >/dev/null || missing+=(util-linux)
command -v curl >/dev/null || missing+=(curl)
command -v ps >/dev/null || missing+=(procps)
if [ ${#missing[@]} -gt 0 ]; then
	echo "bench/run.sh: missing: ${missing[*]}" >&2
	echo "install them with: apt-get install -y ${missing[*]}" >&2
	exit 2
fi
command -v go >/dev/null || { echo "bench/run.sh: go (≥ 1.26) is needed to build Caddy" >&2; exit 2; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

ncpu=$(nproc)
if [ "$PIN" = 1 ] && [ "$ncpu" -lt 2 ]; then
	echo "bench/run.sh: one CPU: not pinning" >&2
	PIN=0
fi
PROXY_CPUS=all
LOAD_CPUS=all
if [ "$PIN" = 1 ]; then
	PROXY_CPUS=0
	LOAD_CPUS=1-$((ncpu - 1))
fi
# cpus_for proxy|load: the taskset prefix (taskset execs the command, so the
# PID of a background job is the program's own)
cpus_for() {
	local c=$PROXY_CPUS
	[ "$1" = load ] && c=$LOAD_CPUS
	[ "$c" = all ] || echo "taskset -c $c"
}

work=$(mktemp -d /tmp/caddy-balancer-bench.XXXXXX)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	if [ "${KEEP:-0}" = 1 ]; then
		echo "work directory kept: $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # port name
	local i
	for i in $(seq 100); do
		if ! port_free "$1"; then return 0; fi
		sleep 0.1
	done
	echo "bench/run.sh: $2 did not start listening on 127.0.0.1:$1; see $work/$2.log" >&2
	KEEP=1
	exit 1
}

declare -A PORT=([reverse_proxy]=$((BASEPORT - 20)) [balancer]=$((BASEPORT - 19)) [httpd]=$((BASEPORT - 18)) [haproxy]=$((BASEPORT - 17)))
backend_ports=()
for i in $(seq "$BACKENDS"); do backend_ports+=($((BASEPORT + i))); done
for p in "${backend_ports[@]}" "${PORT[@]}"; do
	port_free "$p" || { echo "bench/run.sh: port $p is in use (set BASEPORT)" >&2; exit 1; }
done

# --- build ------------------------------------------------------------------
echo "building Caddy with the plugin (go build ./cmd/caddy) ..."
(cd "$repo" && go build -o "$work/caddy" ./cmd/caddy)

# --- backends: one nginx, a server per backend port, a tiny static answer ----
mkdir -p "$work/nginx" "$work/www"
printf 'hello from the backend\n' >"$work/www/index.html"
{
	echo "worker_processes 1; pid $work/nginx/nginx.pid; error_log $work/nginx/error.log warn;"
	echo "events { worker_connections 4096; }"
	echo "http {"
	echo "  access_log off; keepalive_requests 1000000; keepalive_timeout 120s;"
	echo "  client_body_temp_path $work/nginx; proxy_temp_path $work/nginx; fastcgi_temp_path $work/nginx;"
	echo "  uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;"
	for p in "${backend_ports[@]}"; do
		echo "  server { listen 127.0.0.1:$p; root $work/www; location / { default_type text/plain; try_files /index.html =404; } }"
	done
	echo "}"
} >"$work/nginx.conf"
$(cpus_for load) "$NGINX" -c "$work/nginx.conf" -g 'daemon off;' >"$work/nginx.log" 2>&1 &
pids+=($!)
for p in "${backend_ports[@]}"; do wait_port "$p" nginx; done

# --- proxies ----------------------------------------------------------------
upstreams=""
members=""
httpd_members=""
haproxy_servers=""
for i in "${!backend_ports[@]}"; do
	p=${backend_ports[$i]}
	upstreams+=" 127.0.0.1:$p"
	members+="		balancer_member http://127.0.0.1:$p"$'\n'
	httpd_members+="  BalancerMember http://127.0.0.1:$p"$'\n'
	haproxy_servers+="  server s$i 127.0.0.1:$p"$'\n'
done

caddy_admin() { # target: admin off, or on loopback for PROFILE=1
	if [ "${PROFILE:-0}" = 1 ]; then echo "admin 127.0.0.1:${ADMIN[$1]}"; else echo "admin off"; fi
}
declare -A ADMIN=([reverse_proxy]=$((BASEPORT - 10)) [balancer]=$((BASEPORT - 9)))
caddy_globals() { # target
	printf '{\n\t%s\n\tpersist_config off\n\tauto_https off\n\tlog {\n\t\tlevel ERROR\n\t}\n}\n' "$(caddy_admin "$1")"
}
cat >"$work/reverse_proxy.caddyfile" <<EOF
$(caddy_globals reverse_proxy)
http://127.0.0.1:${PORT[reverse_proxy]} {
	reverse_proxy$upstreams {
		lb_policy round_robin
	}
}
EOF
cat >"$work/balancer.caddyfile" <<EOF
$(caddy_globals balancer)
http://127.0.0.1:${PORT[balancer]} {
	balancer bench {
$members	}
}
EOF

# mod_unixd is built in on Debian, a module elsewhere
unixd_line() {
	if ! "$APACHE2" -l 2>/dev/null | grep -q mod_unixd.c; then
		echo "LoadModule unixd_module $APACHE_MODS/mod_unixd.so"
	fi
}
httpd_user=$(id -un)
httpd_group=$(id -gn)
if [ "$(id -u)" = 0 ]; then httpd_user=www-data; httpd_group=www-data; fi
mkdir -p "$work/httpd"
chmod 755 "$work" "$work/httpd"
cat >"$work/httpd.conf" <<EOF
ServerRoot $work/httpd
DefaultRuntimeDir $work/httpd
PidFile $work/httpd/httpd.pid
Mutex file:$work/httpd default
ServerName 127.0.0.1
Listen 127.0.0.1:${PORT[httpd]}
LoadModule mpm_event_module $APACHE_MODS/mod_mpm_event.so
$(unixd_line)
LoadModule authz_core_module $APACHE_MODS/mod_authz_core.so
LoadModule slotmem_shm_module $APACHE_MODS/mod_slotmem_shm.so
LoadModule proxy_module $APACHE_MODS/mod_proxy.so
LoadModule proxy_http_module $APACHE_MODS/mod_proxy_http.so
LoadModule proxy_balancer_module $APACHE_MODS/mod_proxy_balancer.so
LoadModule lbmethod_byrequests_module $APACHE_MODS/mod_lbmethod_byrequests.so
User $httpd_user
Group $httpd_group
ErrorLog $work/httpd/error.log
LogLevel warn
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 120
StartServers 2
ServerLimit 4
ThreadsPerChild 64
MaxRequestWorkers 256
MinSpareThreads 64
MaxSpareThreads 256
<Proxy balancer://bench>
$httpd_members</Proxy>
ProxyPass / balancer://bench/
EOF

cat >"$work/haproxy.cfg" <<EOF
global
  log stderr format raw local0 err
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:${PORT[haproxy]}
  default_backend be
backend be
  balance roundrobin
  http-reuse always
$haproxy_servers
EOF

export XDG_CONFIG_HOME=$work/xdg-config XDG_DATA_HOME=$work/xdg-data
declare -A PID
for t in $TARGETS; do
	case $t in
	reverse_proxy | balancer)
		$(cpus_for proxy) "$work/caddy" run --config "$work/$t.caddyfile" --adapter caddyfile >"$work/$t.log" 2>&1 &
		;;
	httpd)
		$(cpus_for proxy) "$APACHE2" -f "$work/httpd.conf" -DFOREGROUND >"$work/httpd.log" 2>&1 &
		;;
	haproxy)
		$(cpus_for proxy) "$HAPROXY" -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
		;;
	*)
		echo "bench/run.sh: unknown target $t" >&2
		exit 2
		;;
	esac
	pids+=($!)
	PID[$t]=$!
	wait_port "${PORT[$t]}" "$t"
done

for t in $TARGETS; do
	body=$(curl -fsS --max-time 5 "http://127.0.0.1:${PORT[$t]}/") || { echo "bench/run.sh: $t does not answer" >&2; KEEP=1; exit 1; }
	[ "$body" = "hello from the backend" ] || { echo "bench/run.sh: $t answers $body" >&2; KEEP=1; exit 1; }
done

# --- measure ----------------------------------------------------------------
mkdir -p "$OUT"
raw="$OUT/raw"
rm -rf "$raw"
mkdir -p "$raw"
tsv="$OUT/summary.tsv"

# proc_tree pid: the proxy's PID and those of its live children (httpd's).
proc_tree() {
	echo "$1"
	ps -o pid= --ppid "$1" 2>/dev/null || true
}
# cpu_ticks pid: CPU time (clock ticks) of a proxy: the process with all its
# threads, its reaped children and its live children.
cpu_ticks() {
	local p t=0 line rest f
	for p in $(proc_tree "$1"); do
		line=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		rest=${line##*) }  # after "pid (comm) ": state ppid ... utime(12) stime(13) cutime(14) cstime(15)
		read -r -a f <<<"$rest"
		t=$((t + f[11] + f[12]))
		[ "$p" = "$1" ] && t=$((t + f[13] + f[14]))
	done
	echo "$t"
}
# sys_ticks pid: the system (kernel) part of cpu_ticks.
sys_ticks() {
	local p t=0 line rest f
	for p in $(proc_tree "$1"); do
		line=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		rest=${line##*) }
		read -r -a f <<<"$rest"
		t=$((t + f[12]))
		[ "$p" = "$1" ] && t=$((t + f[14]))
	done
	echo "$t"
}
# ctx_switches pid: voluntary and involuntary context switches of every
# thread of the proxy and its live children.
ctx_switches() {
	local p n=0
	for p in $(proc_tree "$1"); do
		n=$((n + $(cat /proc/"$p"/task/*/status 2>/dev/null | awk '/^(non)?voluntary_ctxt_switches:/ { s += $2 } END { print s + 0 }')))
	done
	echo "$n"
}
HZ=$(getconf CLK_TCK)
# rw_calls pid: read and write system calls (syscr + syscw of /proc/PID/io,
# which counts every thread) of a proxy and its live children. HAProxy uses
# recv and send, which are not counted there.
rw_calls() {
	local p n=0
	for p in $(proc_tree "$1"); do
		n=$((n + $(awk '$1 == "syscr:" || $1 == "syscw:" { s += $2 } END { print s + 0 }' "/proc/$p/io" 2>/dev/null || echo 0)))
	done
	echo "$n"
}
secs() { # 10s, 2m → seconds
	case $1 in
	*m) echo $((${1%m} * 60)) ;;
	*s) echo "${1%s}" ;;
	*) echo "$1" ;;
	esac
}

# wrk_run target round: prints "target round req/s p50_us p99_us cpu_us/req errors"
wrk_run() {
	local t=$1 r=$2 url="http://127.0.0.1:${PORT[$1]}/" f="$raw/$1.round$2.txt" c0 c1 s0 s1 x0 x1 k0 k1
	$(cpus_for load) timeout 30 wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" "$url" >/dev/null
	local prof=""
	if [ "${PROFILE:-0}" = 1 ] && [ "$r" = "$ROUNDS" ] && [ -n "${ADMIN[$t]:-}" ]; then
		# the profile covers the run but its first and last second
		(sleep 1; curl -fsS --max-time 120 -o "$OUT/$t.cpu.prof" \
			"http://127.0.0.1:${ADMIN[$t]}/debug/pprof/profile?seconds=$(($(secs "$DURATION") - 2))") &
		prof=$!
	fi
	c0=$(cpu_ticks "${PID[$t]}")
	s0=$(rw_calls "${PID[$t]}")
	x0=$(ctx_switches "${PID[$t]}")
	k0=$(sys_ticks "${PID[$t]}")
	$(cpus_for load) timeout 300 wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$url" >"$f"
	c1=$(cpu_ticks "${PID[$t]}")
	s1=$(rw_calls "${PID[$t]}")
	x1=$(ctx_switches "${PID[$t]}")
	k1=$(sys_ticks "${PID[$t]}")
	[ -z "$prof" ] || wait "$prof" || echo "bench/run.sh: no profile of $t" >&2
	awk -v t="$t" -v r="$r" -v cpu="$(((c1 - c0) * 1000000 / HZ))" -v rw="$((s1 - s0))" -v cs="$((x1 - x0))" -v sys="$(((k1 - k0) * 1000000 / HZ))" '
		function us(v) {
			if (v ~ /us$/) return v + 0
			if (v ~ /ms$/) return v * 1000
			if (v ~ /s$/) return v * 1000000
			return v
		}
		$1 == "50%" { p50 = us($2) }
		$1 == "99%" { p99 = us($2) }
		$1 == "Requests/sec:" { rps = $2 }
		$2 == "requests" && $3 == "in" { n = $1 }
		/Non-2xx|Socket errors/ { gsub(/\t/, " "); err = err $0 ";" }
		END { printf "%s\t%s\t%.0f\t%.0f\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%s\n", t, r, rps, p50, p99, (n ? cpu / n : 0), (n ? rw / n : 0), (n ? cs / n : 0), (n ? sys / n : 0), (err == "" ? "-" : err) }' "$f"
}

echo "CONNS=$CONNS THREADS=$THREADS DURATION=$DURATION ROUNDS=$ROUNDS BACKENDS=$BACKENDS PIN=$PIN" \
	"(proxy CPUs: $PROXY_CPUS, nginx+wrk CPUs: $LOAD_CPUS)"
printf 'target\tround\treq_s\tp50_us\tp99_us\tcpu_us_per_req\trw_syscalls_per_req\tctx_switches_per_req\tsys_us_per_req\terrors\n' >"$tsv"
read -r -a targets <<<"$TARGETS"
n=${#targets[@]}
for r in $(seq "$ROUNDS"); do
	for k in $(seq 0 $((n - 1))); do
		t=${targets[$(((k + r - 1) % n))]}
		line=$(wrk_run "$t" "$r")
		echo "$line" | tee -a "$tsv"
	done
done

# --- summary: medians, and medians of the per-round ratios to reverse_proxy ---
# cpu µs is the proxy's own CPU time per request (all its processes and
# threads): unlike req/s it does not depend on how much CPU the proxy got.
# sys µs is the part of it spent in the kernel, r+w its read(2) and write(2)
# calls per request, cs its context switches per request (every thread).
echo
awk -F'\t' -v order="$TARGETS" '
	NR == 1 { next }
	{ for (q = 1; q <= 7; q++) v[q, $1, $2] = $(q + 2); rounds[$2] = 1; seen[$1] = 1 }
	function median(a, n,   i, j, t) {
		for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	END {
		nt = split(order, ts, " ")
		printf "%-14s %9s %8s %8s %8s %7s %6s %6s | %9s %8s %8s %8s\n", "proxy", "req/s", "p50 ms", "p99 ms", "cpu µs", "sys µs", "r+w", "cs", "req/s ×rp", "p50 ×rp", "p99 ×rp", "cpu ×rp"
		for (k = 1; k <= nt; k++) {
			t = ts[k]
			if (!(t in seen)) continue
			line = sprintf("%-14s", t)
			for (c = 1; c <= 7; c++) {
				q = c == 5 ? 7 : c == 7 ? 6 : c == 6 ? 5 : c   # print sys µs after cpu µs
				n = 0
				for (r in rounds) if ((q, t, r) in v) a[++n] = v[q, t, r]
				m = median(a, n)
				if (q == 5 && m == 0) line = line "      -"
				else line = line sprintf(q == 1 ? " %9.0f" : q == 4 ? " %8.1f" : q == 7 ? " %7.1f" : q >= 5 ? " %6.2f" : " %8.3f", q == 2 || q == 3 ? m / 1000 : m)
			}
			line = line " |"
			for (q = 1; q <= 4; q++) {
				n = 0
				for (r in rounds) if ((q, t, r) in v && (q, "reverse_proxy", r) in v && v[q, "reverse_proxy", r] > 0) a[++n] = v[q, t, r] / v[q, "reverse_proxy", r]
				line = line (n ? sprintf(q == 1 ? " %9.3f" : " %8.3f", median(a, n)) : "        -")
			}
			print line
		}
	}' "$tsv" | tee "$OUT/summary.txt"
echo
echo "raw wrk outputs: $raw; per-round figures: $tsv"
