#!/usr/bin/env bash
# The integration suite as the legacy bash script ran it: one step after another, a fixed 2 s sleep for the
# server. (It stopped the server with `pkill -f`; this uses the server's pid file, to harm nothing else.)
set -eu
cd "$(dirname "$0")/.."
export PYTHONMALLOC=debug
py=.venv/bin/python
$py integration/thread
$py integration/http --daemon --pidfile /tmp/irun-bench-legacy-http.pid
sleep 2
$py integration/client 8001 || { kill "$(cat /tmp/irun-bench-legacy-http.pid)"; exit 1; }
kill "$(cat /tmp/irun-bench-legacy-http.pid)"
while kill -0 "$(cat /tmp/irun-bench-legacy-http.pid)" 2>/dev/null; do sleep 0.05; done
$py integration/init
