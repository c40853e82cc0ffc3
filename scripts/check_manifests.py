#!/usr/bin/python3
"""check_manifests.py - safety rules over rendered Kubernetes manifests (kubectl kustomize output).

usage: check_manifests.py FILE...   (each a multi-document YAML stream; "-" reads stdin)
Prints one line per violation and exits 1 if there is any, 0 otherwise.

Rules (issue 16):
  - every pod (Deployment, StatefulSet, Job, MPIJob replica, ...) runs as non-root, with the
    RuntimeDefault (or a Localhost) seccomp profile, no privilege escalation and ALL
    capabilities dropped, in every container
  - no password on a command line: no $(VAR) of a Secret-fed variable and no Secret value in
    any command or args, no --requirepass
  - each KafkaUser's ACLs name only the topics and groups of its role (ROLES below), literally
  - every Kafka listener has networkPolicyPeers, none of them empty (an empty peer admits all)
  - the MPIJob: workers run sshd from /etc/ensflow/sshd_config on port 2222 (unprivileged),
    launcher and workers mount the Kafka CA where ENSFLOW_RDKAFKA_SSL_CA_LOCATION points, the
    launcher passes every variable the ranks need with -x, a NetworkPolicy joins its pods
"""
import base64
import os
import re
import sys

import yaml

PREFIX = "ensflow."
RW = {"Describe", "Read", "Write"}
# principal -> {topic: allowed operations}, {group: (patternType, operations)}
ROLES = {
    "ensflow": {
        "topics": {t: RW for t in ("study.commands", "trial.jobs", "trial.results",
                                   "model.evaluated", "ensemble.fronts", "deploy.commands")}
        | {"placement.plans": {"Describe", "Write"}, "dlq": {"Describe", "Write"}},
        "groups": {g: ("literal", {"Describe", "Read"}) for g in (
            "ensflow-proposer", "ensflow-trainer", "ensflow-evaluator", "ensflow-selector",
            "ensflow-placer")},
    },
    "ensflow-inference": {
        "topics": {"placement.plans": {"Describe", "Read"},
                   "inference.requests": {"Describe", "Read"},
                   "inference.responses": {"Describe", "Write"},
                   "dlq": {"Describe", "Write"}},
        "groups": {"ensflow-inference": ("prefix", {"Describe", "Read"})},
    },
    "ensflow-client": {
        "topics": {"inference.requests": {"Describe", "Write"},
                   "inference.responses": {"Describe", "Read"}},
        "groups": {"ensflow-cli-": ("prefix", {"Describe", "Read"})},
    },
    "ensflow-cli": {
        "topics": {"study.commands": {"Describe", "Write"},
                   "deploy.commands": {"Describe", "Write"},
                   "inference.requests": {"Describe", "Write"},
                   "inference.responses": {"Describe", "Read"}},
        "groups": {"ensflow-cli-": ("prefix", {"Describe", "Read"})},
    },
    "ensflow-keda": {
        "topics": {"trial.jobs": {"Describe"}, "inference.requests": {"Describe"}},
        "groups": {"ensflow-trainer": ("literal", {"Describe"}),
                   "ensflow-inference": ("literal", {"Describe"})},
    },
}
MPI_SSHD_CONFIG = "/etc/ensflow/sshd_config"
MPI_SSH_PORT = 2222
# what every rank of an inference group needs besides the ConfigMap's ENSFLOW_* settings
MPI_RANK_VARS = {"ENSFLOW_REDIS_URL", "ENSFLOW_INSTANCE", "ENSFLOW_BACKEND",
                 "ENSFLOW_RDKAFKA_SASL_USERNAME", "ENSFLOW_RDKAFKA_SASL_PASSWORD"}

errors = []


def err(doc, msg):
    errors.append("%s/%s: %s" % (doc.get("kind"), doc.get("metadata", {}).get("name"), msg))


def pod_specs(doc):
    """(label, pod spec) of every pod template a workload carries."""
    kind, spec = doc.get("kind"), doc.get("spec") or {}
    if kind == "Pod":
        yield "pod", spec
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        yield "pod", (spec.get("template") or {}).get("spec") or {}
    elif kind == "CronJob":
        yield "pod", ((spec.get("jobTemplate") or {}).get("spec") or {}).get(
            "template", {}).get("spec") or {}
    elif kind == "MPIJob":
        for role, rs in (spec.get("mpiReplicaSpecs") or {}).items():
            yield role, ((rs or {}).get("template") or {}).get("spec") or {}


def containers(pod):
    return (pod.get("initContainers") or []) + (pod.get("containers") or [])


def check_pod_security(doc, label, pod):
    psc = pod.get("securityContext") or {}
    for c in containers(pod):
        csc = c.get("securityContext") or {}
        where = "%s container %s" % (label, c.get("name"))
        non_root = csc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        uid = csc.get("runAsUser", psc.get("runAsUser"))
        if non_root is not True or uid == 0:
            err(doc, where + ": not runAsNonRoot (or runs as uid 0)")
        seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            err(doc, where + ": no seccompProfile RuntimeDefault/Localhost")
        if csc.get("allowPrivilegeEscalation") is not False:
            err(doc, where + ": allowPrivilegeEscalation is not false")
        if csc.get("privileged"):
            err(doc, where + ": privileged")
        if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
            err(doc, where + ": capabilities do not drop ALL")


def check_command_lines(doc, label, pod, secret_values):
    for c in containers(pod):
        where = "%s container %s" % (label, c.get("name"))
        secret_vars = {e["name"] for e in c.get("env") or []
                       if ((e.get("valueFrom") or {}).get("secretKeyRef"))}
        # a variable composed from a Secret-fed one ($(REDIS_PASSWORD) in a URL) is one too
        for e in c.get("env") or []:
            if any("$(%s)" % v in str(e.get("value", "")) for v in secret_vars):
                secret_vars.add(e["name"])
        for arg in (c.get("command") or []) + (c.get("args") or []):
            arg = str(arg)
            for v in secret_vars:
                if "$(%s)" % v in arg:
                    err(doc, where + ": Secret-fed $(%s) on the command line" % v)
            if "--requirepass" in arg:
                err(doc, where + ": --requirepass on the command line")
            for value in secret_values:
                if value in arg:
                    err(doc, where + ": a Secret's value on the command line")


def check_kafka_user(doc):
    name = doc["metadata"]["name"]
    role = ROLES.get(name)
    if role is None:
        err(doc, "KafkaUser of no known role (known: %s)" % ", ".join(sorted(ROLES)))
        return
    acls = ((doc.get("spec") or {}).get("authorization") or {}).get("acls") or []
    for acl in acls:
        res, ops = acl.get("resource") or {}, set(acl.get("operations") or [])
        rtype, rname = res.get("type"), res.get("name", "")
        pattern = res.get("patternType", "literal")
        if rtype == "topic":
            short = rname[len(PREFIX):] if rname.startswith(PREFIX) else None
            if pattern != "literal":
                err(doc, "topic ACL %s is a %s pattern, not one topic" % (rname, pattern))
            elif short not in role["topics"]:
                err(doc, "topic %s is not one of role %s's" % (rname, name))
            elif not ops <= role["topics"][short]:
                err(doc, "topic %s: operations %s beyond %s" % (
                    rname, sorted(ops - role["topics"][short]), sorted(role["topics"][short])))
        elif rtype == "group":
            want = role["groups"].get(rname)
            if want is None or want[0] != pattern:
                err(doc, "group %s (%s) is not one of role %s's" % (rname, pattern, name))
            elif not ops <= want[1]:
                err(doc, "group %s: operations %s beyond %s" % (rname, sorted(ops - want[1]),
                                                                 sorted(want[1])))
        elif rtype == "cluster":
            if not ops <= {"IdempotentWrite"}:
                err(doc, "cluster operations %s beyond IdempotentWrite" % sorted(ops))
        else:
            err(doc, "ACL on resource type %s" % rtype)


def check_kafka(doc):
    listeners = ((doc.get("spec") or {}).get("kafka") or {}).get("listeners") or []
    for lst in listeners:
        peers = lst.get("networkPolicyPeers")
        if not peers:
            err(doc, "listener %s has no networkPolicyPeers" % lst.get("name"))
        elif any(not p for p in peers):
            err(doc, "listener %s has an empty peer (admits everyone)" % lst.get("name"))


def check_mpijob(doc, configmaps, policies):
    specs = (doc.get("spec") or {}).get("mpiReplicaSpecs") or {}
    launcher = ((specs.get("Launcher") or {}).get("template") or {})
    worker = ((specs.get("Worker") or {}).get("template") or {})
    lc = ((launcher.get("spec") or {}).get("containers") or [{}])[0]
    wc = ((worker.get("spec") or {}).get("containers") or [{}])[0]
    # workers: sshd from the generated config on the unprivileged port
    wcmd = [str(a) for a in (wc.get("command") or []) + (wc.get("args") or [])]
    if MPI_SSHD_CONFIG not in wcmd:
        err(doc, "worker does not start sshd with %s" % MPI_SSHD_CONFIG)
    if MPI_SSH_PORT not in [p.get("containerPort") for p in wc.get("ports") or []]:
        err(doc, "worker does not expose the ssh port %d" % MPI_SSH_PORT)
    # every rank needs: the launcher's ENSFLOW_* settings and secrets, passed with -x
    largs = [str(a) for a in (lc.get("command") or []) + (lc.get("args") or [])]
    passed = {largs[i + 1] for i, a in enumerate(largs[:-1]) if a == "-x"}
    needed = set(MPI_RANK_VARS)
    for ref in lc.get("envFrom") or []:
        cm = configmaps.get((ref.get("configMapRef") or {}).get("name"), {})
        needed |= {k for k in cm if k.startswith("ENSFLOW_") or k == "OPENBLAS_NUM_THREADS"}
    needed |= {e["name"] for e in lc.get("env") or [] if e["name"].startswith("ENSFLOW_")}
    for v in sorted(needed - passed):
        err(doc, "launcher does not pass %s to the ranks (mpirun -x)" % v)
    # the Kafka CA where the configuration says, in launcher and workers
    ca = None
    for ref in lc.get("envFrom") or []:
        cm = configmaps.get((ref.get("configMapRef") or {}).get("name"), {})
        ca = cm.get("ENSFLOW_RDKAFKA_SSL_CA_LOCATION", ca)
    if ca:
        for role, tpl, c in (("launcher", launcher, lc), ("worker", worker, wc)):
            vols = {v["name"]: v for v in (tpl.get("spec") or {}).get("volumes") or []}
            ok = any(os.path.dirname(ca) == m.get("mountPath") and
                     "secret" in vols.get(m.get("name"), {})
                     for m in c.get("volumeMounts") or [])
            if not ok:
                err(doc, "%s does not mount the Kafka CA at %s" % (role, os.path.dirname(ca)))
    # a NetworkPolicy admitting launcher <-> workers
    labels = (worker.get("metadata") or {}).get("labels") or {}
    joined = False
    for pol in policies:
        sel = ((pol.get("spec") or {}).get("podSelector") or {}).get("matchLabels") or {}
        if not sel or not all(labels.get(k) == v for k, v in sel.items()):
            continue
        for rule in (pol.get("spec") or {}).get("ingress") or []:
            for peer in rule.get("from") or []:
                psel = (peer.get("podSelector") or {}).get("matchLabels") or {}
                if psel and all(labels.get(k) == v for k, v in psel.items()) and \
                        not rule.get("ports"):
                    joined = True
    if not joined:
        err(doc, "no NetworkPolicy admits all traffic between the MPI group's pods")


def main(paths):
    docs = []
    for path in paths:
        text = sys.stdin.read() if path == "-" else open(path).read()
        docs += [d for d in yaml.safe_load_all(text) if d]
    secret_values = set()
    configmaps, policies = {}, []
    for d in docs:
        if d.get("kind") == "Secret":
            # the secret keys' values (passwords, tokens), not usernames or flags
            for k, v in (d.get("data") or {}).items():
                if re.search(r"pass|token|secret|key", k, re.I):
                    secret_values.add(base64.b64decode(v).decode("utf-8", "replace"))
            for k, v in (d.get("stringData") or {}).items():
                if re.search(r"pass|token|secret|key", k, re.I):
                    secret_values.add(str(v))
        elif d.get("kind") == "ConfigMap":
            name = d["metadata"]["name"]
            configmaps[name] = d.get("data") or {}
            configmaps[re.sub(r"-[a-z0-9]{10}$", "", name)] = configmaps[name]
        elif d.get("kind") == "NetworkPolicy":
            policies.append(d)
    secret_values.discard("")
    workloads = 0
    for d in docs:
        for label, pod in pod_specs(d):
            workloads += 1
            check_pod_security(d, label, pod)
            check_command_lines(d, label, pod, secret_values)
        if d.get("kind") == "KafkaUser":
            check_kafka_user(d)
        elif d.get("kind") == "Kafka":
            check_kafka(d)
        elif d.get("kind") == "MPIJob":
            check_mpijob(d, configmaps, policies)
    for e in errors:
        print("VIOLATION " + e)
    print("check_manifests: %d documents, %d pod templates, %d violation(s)" % (
        len(docs), workloads, len(errors)))
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1:]))
