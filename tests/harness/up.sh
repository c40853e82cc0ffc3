#!/usr/bin/env bash
# up.sh - start a private redis-server (and ensflow-broker when built) on free ports for tests.
# usage: up.sh DIR BINDIR. Writes DIR/redis.url and, with a broker, DIR/bootstrap (host:port).
set -u
dir=${1:?usage: up.sh DIR BINDIR}
bindir=${2:?usage: up.sh DIR BINDIR}
here=$(cd "$(dirname "$0")" && pwd)

mkdir -p "$dir" || exit 1
dir=$(cd "$dir" && pwd)
"$here/down.sh" "$dir"

for tool in redis-server redis-cli; do
    if ! command -v "$tool" >/dev/null; then
        echo "up.sh: $tool not found (Debian package redis-server)" >&2
        exit 1
    fi
done

# port_in_use P: something listens on 127.0.0.1:P (or any address)
port_in_use() {
    if command -v ss >/dev/null; then
        ss -Hltn "sport = :$1" 2>/dev/null | grep -q . && return 0
        return 1
    fi
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

started=0
base=$((20000 + (RANDOM * 32768 + RANDOM + $$) % 30000))
for try in $(seq 0 49); do
    port=$((base + try * 7))
    port_in_use "$port" && continue
    rm -f "$dir/redis.pid"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
        --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >/dev/null 2>&1 ||
        continue
    # wait up to 10 s for PONG; a port lost to a race shows as a server that exits
    for _ in $(seq 100); do
        if [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; then
            started=1
            break
        fi
        sleep 0.1
    done
    [ "$started" = 1 ] && break
    "$here/down.sh" "$dir" # kill a server that started but never answered
    echo "up.sh: redis-server on port $port did not answer; trying another port" >&2
done
if [ "$started" != 1 ]; then
    echo "up.sh: could not start redis-server; log tail:" >&2
    tail -n 20 "$dir/redis.log" >&2 2>/dev/null
    exit 1
fi
echo "redis://127.0.0.1:$port/0" >"$dir/redis.url"
echo "up.sh: redis-server on 127.0.0.1:$port (pid $(cat "$dir/redis.pid"))"

if [ ! -x "$bindir/ensflow-broker" ]; then
    echo "up.sh: note: $bindir/ensflow-broker not built; no broker started (Kafka tests skip)"
    exit 0
fi
rm -f "$dir/bootstrap"
"$bindir/ensflow-broker" --bootstrap-file "$dir/bootstrap" --partitions 2 \
    </dev/null >"$dir/broker.log" 2>&1 &
echo $! >"$dir/broker.pid"
for _ in $(seq 150); do
    if [ -s "$dir/bootstrap" ]; then
        echo "up.sh: ensflow-broker at $(head -n 1 "$dir/bootstrap") (pid $(cat "$dir/broker.pid"))"
        exit 0
    fi
    kill -0 "$(cat "$dir/broker.pid")" 2>/dev/null || break
    sleep 0.1
done
echo "up.sh: ensflow-broker did not write $dir/bootstrap within 15 s; log tail:" >&2
tail -n 20 "$dir/broker.log" >&2
"$here/down.sh" "$dir"
exit 1
