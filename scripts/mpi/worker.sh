#!/bin/sh
# worker.sh - an MPI worker's entry command: make this pod's own sshd host key (in the run
# directory the config names, an emptyDir in Kubernetes), then become sshd in the foreground.
# usage: worker.sh [SSHD_CONFIG]   (default /etc/ensflow/sshd_config)
set -eu
conf=${1:-/etc/ensflow/sshd_config}
key=$(awk '$1 == "HostKey" {print $2; exit}' "$conf")
[ -n "$key" ] || { echo "worker.sh: no HostKey in $conf" >&2; exit 1; }
umask 077
mkdir -p "$(dirname "$key")"
[ -s "$key" ] || ssh-keygen -q -t ed25519 -N '' -f "$key"
exec /usr/sbin/sshd -D -e -f "$conf"
