#!/usr/bin/env bash
# check-manifests.sh - validate the deployment files with the tools that run without a Docker
# engine or a cluster: docker-compose config, kubectl kustomize (both overlays, cpu with the
# opt-in plaintext listener, cpu with the CLI Job), yamllint, and scripts/check_manifests.py's
# safety rules over the rendered manifests (non-root pods, no password on a command line,
# per-role Kafka ACLs, listener peers, the MPIJob's sshd/CA/-x), which must also reject a bad
# fixture.
# Prints one line per check; exits 1 if any check fails, 77 (skip) if no tool is installed.
set -uo pipefail

here="${BASH_SOURCE[0]%/*}"
[ "$here" = "${BASH_SOURCE[0]}" ] && here=.
cd "$here/.." || exit 1

failed=0 ran=0 skipped=0

# check NAME TOOL COMMAND... : run COMMAND, print PASS/FAIL (with its output on failure).
check() {
    local name="$1" tool="$2"
    shift 2
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP $tool not installed ($name)"
        skipped=$((skipped + 1))
        return
    fi
    ran=$((ran + 1))
    local out
    if out="$("$@" 2>&1)"; then
        echo "PASS $name"
    else
        echo "FAIL $name"
        printf '%s\n' "$out" | sed 's/^/    /'
        failed=$((failed + 1))
    fi
}

# No password is in the repository: rendering must fail until the user supplies them, and
# pass once scripts/make-secrets.sh (run in a scratch copy, never here) has made them.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp -r k8s docker-compose.yml "$scratch"/ && rm -rf "$scratch/k8s/base/secrets"/*-password
check "docker-compose config fails without REDIS_PASSWORD" docker-compose \
    sh -c '! env -u REDIS_PASSWORD docker-compose -f docker-compose.yml --env-file /dev/null config -q'
check "kubectl kustomize k8s/overlays/cpu fails without the secrets" kubectl \
    sh -c "! kubectl kustomize '$scratch/k8s/overlays/cpu' >/dev/null 2>&1"
bash scripts/make-secrets.sh "$scratch" >/dev/null || { echo "FAIL make-secrets.sh"; exit 1; }
check "docker-compose config -q (with REDIS_PASSWORD)" docker-compose \
    docker-compose -f "$scratch/docker-compose.yml" --env-file "$scratch/.env" config -q
# an overlay with the opt-in plaintext listener, to check that one too
mkdir -p "$scratch/k8s/overlays/plain"
printf 'resources:\n  - ../cpu\ncomponents:\n  - ../../components/kafka-plain-listener\n' \
    >"$scratch/k8s/overlays/plain/kustomization.yaml"
# ...and one with the CLI Job (k8s/components/cli-job), run as the README says
mkdir -p "$scratch/k8s/overlays/cli"
printf 'resources:\n  - ../cpu\ncomponents:\n  - ../../components/cli-job\n' \
    >"$scratch/k8s/overlays/cli/kustomization.yaml"
for overlay in cpu gpu plain cli; do
    check "kubectl kustomize k8s/overlays/$overlay" kubectl \
        sh -c "kubectl kustomize '$scratch/k8s/overlays/$overlay' >'$scratch/$overlay.yaml'"
    [ -s "$scratch/$overlay.yaml" ] &&
        check "check_manifests.py (rules of issue 16) on $overlay" /usr/bin/python3 \
            /usr/bin/python3 scripts/check_manifests.py "$scratch/$overlay.yaml"
done
# ...and the rules do catch what they are about: every one fires on the bad fixture.
if command -v /usr/bin/python3 >/dev/null && /usr/bin/python3 -c 'import yaml' 2>/dev/null; then
    bad_out=$(/usr/bin/python3 scripts/check_manifests.py tests/fixtures/bad-manifests.yaml)
    bad_rc=$?
    missing=""
    for rule in "not runAsNonRoot" "no seccompProfile" "capabilities do not drop ALL" \
        "allowPrivilegeEscalation" "--requirepass on the command line" "Secret-fed" \
        "a Secret's value" "prefix pattern" "is not one of role" "operations \[" \
        "no networkPolicyPeers" "empty peer" "does not start sshd" "ssh port 2222" \
        "does not pass ENSFLOW_RDKAFKA_SASL_PASSWORD" "does not mount the Kafka CA" \
        "no NetworkPolicy admits"; do
        grep -q -- "$rule" <<<"$bad_out" || missing="$missing [$rule]"
    done
    ran=$((ran + 1))
    if [ "$bad_rc" -eq 1 ] && [ -z "$missing" ]; then
        echo "PASS check_manifests.py rejects tests/fixtures/bad-manifests.yaml on every rule"
    else
        echo "FAIL check_manifests.py on the bad fixture: rc=$bad_rc, rules not reported:$missing"
        failed=$((failed + 1))
    fi
fi
# Errors fail the check; warnings (relaxed: mostly lines over 80 columns) are only counted.
check "yamllint -d relaxed k8s/ docker-compose.yml" yamllint \
    yamllint -d relaxed --no-warnings k8s/ docker-compose.yml
if command -v yamllint >/dev/null 2>&1; then
    warnings="$(yamllint -d relaxed -f parsable k8s/ docker-compose.yml |
        sed -n 's/.*\[warning\].*(\([a-z-]*\))$/\1/p' | sort | uniq -c | xargs)"
    echo "     yamllint warnings (not failures): ${warnings:-none}"
fi

if [ "$ran" -eq 0 ]; then
    echo "SKIP all checks: none of docker-compose, kubectl, yamllint is installed"
    exit 77
fi
if [ "$failed" -ne 0 ]; then
    echo "check-manifests: $failed check(s) FAILED ($ran run, $skipped skipped)"
    exit 1
fi
echo "check-manifests: all $ran check(s) passed ($skipped skipped)"
exit 0
