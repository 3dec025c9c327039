#!/bin/bash
# authgate-healthcheck [PORT [PATH]] — the image's HEALTHCHECK (installed in /usr/local/bin).
#
# Exits 0 when the HTTP server on 127.0.0.1:PORT answers `GET PATH` with an HTTP status line
# within AUTHGATE_HEALTH_TIMEOUT seconds (default 3), else 1. Any status counts: a 401 (the
# route needs a token), a 404 (no route) or a 502 (the upstream is down) all show that
# authgate itself is up; the health of an upstream is that upstream's own check.
# Defaults: PORT $AUTHGATE_HEALTH_PORT or 8080, PATH $AUTHGATE_HEALTH_PATH or /healthz.
#
# The runtime image has no curl or wget, so the request goes through bash's /dev/tcp.
set -u
port=${1:-${AUTHGATE_HEALTH_PORT:-8080}}
path=${2:-${AUTHGATE_HEALTH_PATH:-/healthz}}
timeout=${AUTHGATE_HEALTH_TIMEOUT:-3}

if ! { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then
    echo "unhealthy: nothing accepts connections on 127.0.0.1:$port"
    exit 1
fi
printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nUser-Agent: authgate-healthcheck\r\nConnection: close\r\n\r\n' \
    "$path" "$port" >&3
status=""
IFS= read -r -t "$timeout" status <&3 2>/dev/null
result=$?
if ((result > 128)); then
    echo "unhealthy: no answer from 127.0.0.1:$port within ${timeout}s"
    exit 1
elif ((result != 0)) && [[ -z $status ]]; then
    echo "unhealthy: 127.0.0.1:$port closed or reset the connection without answering"
    exit 1
fi
exec 3<&-
status=${status%$'\r'}
case $status in
    "HTTP/1."[01]" "[1-5][0-9][0-9]*)
        echo "healthy: GET $path -> $status"
        exit 0
        ;;
esac
echo "unhealthy: GET $path -> not an HTTP response"
exit 1
