#!/usr/bin/env bash
# down.sh - stop the redis-server and ensflow-broker that up.sh started in DIR (idempotent).
set -u
dir=${1:?usage: down.sh DIR}
[ -d "$dir" ] || exit 0

# alive PID NAME: the pid runs and its command name starts with NAME (pids get reused)
alive() {
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
    local comm
    comm=$(cat "/proc/$1/comm" 2>/dev/null) || return 0
    case "$comm" in "$2"*) return 0 ;; *) return 1 ;; esac
}

# stop PID NAME: TERM, wait up to 5 s, then KILL
stop() {
    local pid=$1 name=$2 _
    alive "$pid" "$name" || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do
        alive "$pid" "$name" || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
}

if [ -f "$dir/broker.pid" ]; then
    stop "$(cat "$dir/broker.pid" 2>/dev/null)" ensflow-broker
    rm -f "$dir/broker.pid"
fi
rm -f "$dir/bootstrap"

if [ -f "$dir/redis.pid" ]; then
    pid=$(cat "$dir/redis.pid" 2>/dev/null)
    if alive "$pid" redis-server; then
        port=$(sed -n 's|^redis://[^:]*:\([0-9]*\).*|\1|p' "$dir/redis.url" 2>/dev/null)
        if [ -n "$port" ]; then
            timeout 5 redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1
        fi
        for _ in $(seq 50); do
            alive "$pid" redis-server || break
            sleep 0.1
        done
        stop "$pid" redis-server
    fi
    rm -f "$dir/redis.pid"
fi
rm -f "$dir/redis.url"
exit 0
