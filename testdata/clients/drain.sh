#!/usr/bin/env bash
# Deploy one balancer member without losing a request: drain it, wait until
# its requests in flight are over, run the deploy command, take it back.
#
#   drain.sh <balancer> <member route> <wait> <deploy command...>
#   CADDY_ADMIN=localhost:2019 drain.sh app node1 60s systemctl restart app@node1
#
# Exit status: the deploy command's; 3 if the member did not empty within
# <wait> (it is left draining, the command is not run); 1 on any other error.
set -euo pipefail
admin=${CADDY_ADMIN:-localhost:2019}
balancer=$1 member=$2 wait=$3
shift 3
api="http://$admin/balancers/$balancer/members/$member"

answer=$(curl -sS -X POST -w '\n%{http_code}' "$api/drain?wait=$wait")
code=${answer##*$'\n'} body=${answer%$'\n'*}
case $code in
200) echo "drain: $member has no request in flight" ;;
409) echo "drain: $member is not empty after $wait: $body" >&2; exit 3 ;;
*)   echo "drain: HTTP $code: $body" >&2; exit 1 ;;
esac

"$@"

curl -sS --fail-with-body -o /dev/null -X PATCH -d '{"status":"-N"}' "$api"
echo "drain: $member takes requests again"
