#!/bin/sh
# Runs privsep-httpd from the source tree: builds the helper against clients/c, writes a
# config from httpd.json with this tree's paths, and runs the broker in the foreground.
#
#   sh examples/httpd/run.sh [PORT [DOCROOT [ADDRESS]]]
#
# PORT defaults to 80 (the broker binds it; the helper never has root), 8080 is the usual
# choice when 80 is taken; DOCROOT defaults to examples/httpd/www; ADDRESS to 0.0.0.0.
# The broker must run as root (it sets uids and namespaces). Stop it with Ctrl-C.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
port=${1:-80}
docroot=$(cd "${2:-$here/www}" && pwd)
address=${3:-0.0.0.0}
bin=${PRIVSEP_BIN:-$repo/.build/debug}
[ "$(id -u)" = 0 ] || { echo "httpd: the broker sets uids and namespaces: run as root" >&2; exit 1; }
[ -x "$bin/privsep" ] || (cd "$repo" && swift build)

work=${HTTPD_WORK:-$(mktemp -d /tmp/privsep-httpd.XXXXXX)}
chmod 755 "$work"
make -s -C "$repo/clients/c" >/dev/null
cc -O2 -Wall -Wextra -Werror -I"$repo/clients/c/include" -o "$work/privsep-httpd" "$here/httpd.c" \
    "$repo/clients/c/build/libprivsep.a" -ljansson
sed -e "s|/usr/local/libexec/privsep-httpd|$work/privsep-httpd|g" -e "s|/var/www/html|$docroot|g" \
    -e "s|\"0.0.0.0\"|\"$address\"|g" -e "s|\"80\"|\"$port\"|" -e "s|\"port\": 80|\"port\": $port|" \
    "$here/httpd.json" >"$work/httpd.json"
echo "httpd: http://$address:$port/ serving $docroot (config $work/httpd.json)" >&2
# shellcheck disable=SC2086 # HTTPD_BROKER_ARGS is a list of options
exec "$bin/privsep" run "$work/httpd.json" ${HTTPD_BROKER_ARGS:-}
