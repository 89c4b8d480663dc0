# The integration suite's tasks as a justfile, for comparing start-up times (`just --list`).
default: thread http init
setup:
    integration/setup
thread: setup
    .venv/bin/python integration/thread
http-daemon: setup
    .venv/bin/python integration/http
http-client: setup
    .venv/bin/python integration/client 8001
http: http-daemon http-client
typestubs: setup
    .venv/bin/python integration/typestubs
init: setup
    .venv/bin/python integration/init
