#!/usr/bin/env bash
# check-manifests.sh - validate the deployment files with the tools that run without a Docker
# engine or a cluster: docker-compose config, kubectl kustomize (both overlays), yamllint.
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

check "docker-compose config -q" docker-compose docker-compose -f docker-compose.yml config -q
check "kubectl kustomize k8s/overlays/cpu" kubectl \
    sh -c 'kubectl kustomize k8s/overlays/cpu >/dev/null'
check "kubectl kustomize k8s/overlays/gpu" kubectl \
    sh -c 'kubectl kustomize k8s/overlays/gpu >/dev/null'
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
