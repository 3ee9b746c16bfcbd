#!/usr/bin/env bash
# Splits a Go CPU profile (bench/run.sh PROFILE=1 writes OUT/<target>.cpu.prof)
# by where the time is spent: each function's own ("flat") time goes to the
# category of its package. Then it lists the cumulative time of this plugin's
# entry points and of Caddy's dynamic-upstream step, which the balancer adds.
#
# Usage: bench/pprof-split.sh bench/results/reverse_proxy.cpu.prof bench/results/balancer.cpu.prof
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 profile..." >&2; exit 2; }
command -v go >/dev/null || { echo "$0: needs go (go tool pprof)" >&2; exit 2; }

for prof in "$@"; do
	echo "== $prof"
	go tool pprof -top -nodecount=1000000 "$prof" 2>/dev/null | awk '
		function sec(v) {
			if (v ~ /ms$/) return v / 1000
			if (v ~ /us$/) return v / 1000000
			if (v ~ /s$/) return v + 0
			return v + 0
		}
		/^ *flat/ { body = 1; next }
		!body { next }
		{
			f = sec($1); name = $6
			for (i = 7; i <= NF; i++) name = name " " $i
			total += f
			if (name ~ /^(syscall\.|internal\/runtime\/syscall|runtime\.(futex|epollwait|usleep|write1|read|madvise|nanotime1|walltime|osyield))/) c = "kernel (syscalls: socket I/O, epoll, futex)"
			else if (name ~ /^runtime\.(mallocgc|newobject|makeslice|growslice|gc|scanobject|greyobject|markBits|heapBits|sweep|mspan|mcache|mcentral|mheap|bulkBarrier|wbBuf|gcWriteBarrier|typePointers|findObject|memclr|nextFreeFast|spanOf|heapSet|deductAssist|tryDeferToSpanScan|scanObject|scanblock|markroot|pageIndexOf|heapArenaOf)|^gcWriteBarrier/) c = "Go runtime: allocation and GC"
			else if (name ~ /^runtime\./) c = "Go runtime: scheduler, netpoll, other"
			else if (name ~ /^(net\/http|net\/textproto|bufio|net\.|net\/url|mime)/) c = "net/http, net, bufio, textproto"
			else if (name ~ /^go\.uber\.org\/zap/) c = "zap (logging)"
			else if (name ~ /^github\.com\/caddyserver\//) c = "Caddy"
			else if (name ~ /^github\.com\/lbset\//) c = "caddy-balancer (this plugin)"
			else c = "Go std (maps, strings, sync, context, ...)"
			cat[c] += f
		}
		END {
			for (c in cat) printf "  %6.1f%%  %s\n", 100 * cat[c] / total, c | "sort -rn"
			close("sort -rn")
			printf "  %6.2fs  total CPU samples\n", total
		}'
	echo "  cumulative:"
	go tool pprof -top -cum -nodecount=1000000 "$prof" 2>/dev/null | awk '
		/^ *flat/ { body = 1; next }
		!body { next }
		{
			name = $6
			if (name ~ /^github\.com\/lbset\// || name ~ /reverseproxy\.\(\*Upstream\)\.fillDynamicHost$|reverseproxy\.Handler\.provisionUpstream$|reverseproxy\.\(\*Handler\)\.ServeHTTP$/)
				printf "    %6s  %s\n", $5, name
		}' | head -20
done
