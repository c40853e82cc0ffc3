#!/usr/bin/env bash
# make-secrets.sh - create the passwords the deployment files need and the repository does not
# hold: k8s/base/secrets/* (read by kustomize's secretGenerator) and .env (read by
# docker-compose for REDIS_PASSWORD). Random, URL-safe, 32 characters, mode 0600. A password
# that already exists is kept, so running it again changes nothing.
# usage: scripts/make-secrets.sh [ROOT]   (ROOT: the repository, default this script's)
set -euo pipefail
here="${BASH_SOURCE[0]%/*}"
[ "$here" = "${BASH_SOURCE[0]}" ] && here=.
root="${1:-$here/..}"
[ -d "$root/k8s/base" ] || { echo "make-secrets.sh: $root/k8s/base not found" >&2; exit 1; }
umask 077

# random_password: 32 characters of [A-Za-z0-9] from the kernel's random source
random_password() {
    local pw=""
    while [ "${#pw}" -lt 32 ]; do
        pw="$pw$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
    done
    printf '%s' "${pw:0:32}"
}

dir="$root/k8s/base/secrets"
mkdir -p "$dir"
for name in redis-password kafka-services-password kafka-inference-password \
    kafka-client-password kafka-cli-password kafka-keda-password; do
    if [ -s "$dir/$name" ]; then
        echo "kept    k8s/base/secrets/$name"
    else
        random_password >"$dir/$name"
        echo "created k8s/base/secrets/$name"
    fi
done

# docker-compose reads .env next to docker-compose.yml; the same Redis password serves both.
if [ -f "$root/.env" ] && grep -q '^REDIS_PASSWORD=' "$root/.env"; then
    echo "kept    .env REDIS_PASSWORD"
else
    printf 'REDIS_PASSWORD=%s\n' "$(cat "$dir/redis-password")" >>"$root/.env"
    chmod 600 "$root/.env"
    echo "created .env REDIS_PASSWORD"
fi
