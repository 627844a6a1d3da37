"""Check deploy/k8s/ (run by tests/deploy_k8s.rs): python3 deploy_k8s.py K8S_DIR OUT_DIR.

1. Every document passes kubernetes-validate's strict schema check (unknown fields are errors)
   against the newest Kubernetes version the package ships; a copy of the StatefulSet with a
   misspelt field must fail it (so the check is known to bite).
2. The names agree: the StatefulSet's serviceName is a headless Service; its selector matches its
   pod labels, as do the PodDisruptionBudget's and every Service's; every Secret, ConfigMap,
   volume and named port referred to exists; replicas = CONCORD_NODES = the per-pod Services
   concord-0 … concord-(N-1), each selecting its pod by name; the probes are HTTP GETs of /healthz.
3. The init script of the ConfigMap, run by busybox sh as pod concord-2 with the Service
   environment Kubernetes gives, writes a node.toml with id 3 and the five peers at their Services'
   ClusterIPs (left in OUT_DIR/node.toml for the Rust test to load with the node's own parser), and
   refuses the Secret's placeholder.
"""

import copy
import os
import subprocess
import sys
import tomllib

import kubernetes_validate
import yaml

k8s_dir, out_dir = sys.argv[1], sys.argv[2]
docs = []
for name in sorted(os.listdir(k8s_dir)):
    if name.endswith(".yaml"):
        with open(os.path.join(k8s_dir, name)) as f:
            docs += [(name, d) for d in yaml.safe_load_all(f) if d is not None]
assert docs, f"no manifests in {k8s_dir}"

versions = [v for v in kubernetes_validate.utils.all_versions() if v[0].isdigit()]
version = max(versions, key=lambda v: tuple(int(x) for x in v.split(".")))
for name, doc in docs:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        raise SystemExit(f"{name}: {doc['kind']}/{doc['metadata']['name']} fails the schema of {version}: {e}")

by_kind = {}
for _, doc in docs:
    by_kind.setdefault(doc["kind"], []).append(doc)
expected = {"Secret", "ConfigMap", "Service", "StatefulSet", "PodDisruptionBudget"}
assert expected <= set(by_kind), f"kinds: {sorted(by_kind)}; expected at least {sorted(expected)}"
assert by_kind["StatefulSet"][0]["apiVersion"] == "apps/v1"
assert by_kind["PodDisruptionBudget"][0]["apiVersion"] == "policy/v1"

(sts,) = by_kind["StatefulSet"]
broken = copy.deepcopy(sts)
broken["spec"]["replicass"] = 5
try:
    kubernetes_validate.validate(broken, version, strict=True)
    raise SystemExit("a StatefulSet with a misspelt field passed the schema check: it checks nothing")
except kubernetes_validate.ValidationError:
    pass

services = {s["metadata"]["name"]: s for s in by_kind["Service"]}
secrets = {s["metadata"]["name"]: s for s in by_kind["Secret"]}
configmaps = {c["metadata"]["name"]: c for c in by_kind["ConfigMap"]}
spec = sts["spec"]
pod = spec["template"]
labels = pod["metadata"]["labels"]


def selects(selector, what):
    assert selector and all(labels.get(k) == v for k, v in selector.items()), (
        f"{what}'s selector {selector} does not match the pod labels {labels}"
    )


selects(spec["selector"]["matchLabels"], "the StatefulSet")
for pdb in by_kind["PodDisruptionBudget"]:
    selects(pdb["spec"]["selector"]["matchLabels"], f"PodDisruptionBudget {pdb['metadata']['name']}")
    assert "maxUnavailable" in pdb["spec"] or "minAvailable" in pdb["spec"]

governing = services.get(spec["serviceName"])
assert governing, f"serviceName {spec['serviceName']} is no Service here"
assert governing["spec"].get("clusterIP") == "None", f"{spec['serviceName']} is not headless"

containers = pod["spec"].get("initContainers", []) + pod["spec"]["containers"]
port_names = {p["name"] for c in containers for p in c.get("ports", [])}
volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
claims = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
for c in containers:
    assert c["image"].startswith("concord:"), c["image"]
    for m in c.get("volumeMounts", []):
        assert m["name"] in volumes or m["name"] in claims, f"{c['name']} mounts unknown volume {m['name']}"
for name, v in volumes.items():
    if "secret" in v:
        assert v["secret"]["secretName"] in secrets, f"volume {name}: no Secret {v['secret']['secretName']}"
    if "configMap" in v:
        assert v["configMap"]["name"] in configmaps, f"volume {name}: no ConfigMap {v['configMap']['name']}"

for name, s in services.items():
    sel = dict(s["spec"]["selector"])
    pod_name = sel.pop("statefulset.kubernetes.io/pod-name", None)
    selects(sel, f"Service {name}")
    if pod_name is not None:
        assert pod_name == name, f"Service {name} selects pod {pod_name}"
    for p in s["spec"]["ports"]:
        target = p.get("targetPort", p["port"])
        assert not isinstance(target, str) or target in port_names, f"Service {name}: no port named {target}"

(main,) = pod["spec"]["containers"]
for probe in ("readinessProbe", "livenessProbe"):
    get = main[probe]["httpGet"]
    assert get["path"] == "/healthz" and get["port"] in port_names, f"{probe}: {get}"

replicas = spec["replicas"]
(init,) = pod["spec"]["initContainers"]
env = {e["name"]: e["value"] for e in init["env"]}
assert int(env["CONCORD_NODES"]) == replicas, f"CONCORD_NODES {env['CONCORD_NODES']} != replicas {replicas}"
per_pod = sorted(n for n, s in services.items() if "statefulset.kubernetes.io/pod-name" in s["spec"]["selector"])
assert per_pod == sorted(f"{sts['metadata']['name']}-{i}" for i in range(replicas)), per_pod
assert all(services[n]["spec"].get("publishNotReadyAddresses") for n in per_pod)

# The paths the pieces agree on: the ConfigMap's files where the init container reads them, the
# Secret's key where common.toml names it, the init script's output where the node reads it.
mounts = {m["name"]: m["mountPath"] for m in init["volumeMounts"]}
config_volume = next(n for n, v in volumes.items() if "configMap" in v)
secret_volume = next(n for n, v in volumes.items() if "secret" in v)
cm = configmaps[volumes[config_volume]["configMap"]["name"]]
assert init["command"] == ["/bin/sh", f"{mounts[config_volume]}/init.sh"], init["command"]
assert "init.sh" in cm["data"] and "common.toml" in cm["data"]
common = tomllib.loads(cm["data"]["common.toml"])
secret_doc = secrets[volumes[secret_volume]["secret"]["secretName"]]
secret_key = os.path.basename(common["cluster_secret_file"])
assert common["cluster_secret_file"] == f"{mounts[secret_volume]}/{secret_key}"
assert secret_key in secret_doc.get("stringData", {}) or secret_key in secret_doc.get("data", {})
main_mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
assert main_mounts[secret_volume] == mounts[secret_volume]
assert main["args"][-1] == f"{main_mounts['run']}/node.toml" and mounts["run"] == main_mounts["run"]
assert common["data"] == main_mounts["data"], "common.toml's data is not the volume's mount"

# The init script, as pod concord-2 would run it.
os.makedirs(out_dir, exist_ok=True)
for name, text in [("init.sh", cm["data"]["init.sh"]), ("common.toml", cm["data"]["common.toml"])]:
    with open(os.path.join(out_dir, name), "w") as f:
        f.write(text)
with open(os.path.join(out_dir, "secret"), "w") as f:
    f.write("0123456789abcdef0123456789abcdef\n")
with open(os.path.join(out_dir, "placeholder"), "w") as f:
    f.write(secret_doc["stringData"][secret_key] + "\n")
run_env = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "HOSTNAME": f"{sts['metadata']['name']}-2",
    "CONCORD_NODES": str(replicas),
    "CONCORD_CONFIG_OUT": os.path.join(out_dir, "node.toml"),
    "CONCORD_COMMON": os.path.join(out_dir, "common.toml"),
    "CONCORD_SECRET": os.path.join(out_dir, "secret"),
}
run_env.update({f"CONCORD_{i}_SERVICE_HOST": f"10.96.7.{10 + i}" for i in range(replicas)})
busybox = os.environ.get("BUSYBOX", "/bin/busybox")
sh = [busybox, "sh", os.path.join(out_dir, "init.sh")]
done = subprocess.run(sh, env=run_env, capture_output=True, text=True)
assert done.returncode == 0, f"init.sh failed: {done.stderr}"
node = tomllib.load(open(run_env["CONCORD_CONFIG_OUT"], "rb"))
assert node["id"] == 3, node["id"]
assert node["mode"] == common["mode"]
peers = [(p["id"], p["addr"], p["http_addr"], p["redis_addr"]) for p in node["peers"]]
assert peers == [
    (i + 1, f"10.96.7.{10 + i}:7379", f"10.96.7.{10 + i}:8080", f"10.96.7.{10 + i}:6379") for i in range(replicas)
], peers
refused = subprocess.run(
    sh, env={**run_env, "CONCORD_SECRET": os.path.join(out_dir, "placeholder")}, capture_output=True, text=True
)
assert refused.returncode != 0 and "holds no secret" in refused.stderr, (refused.returncode, refused.stderr)
print(f"deploy/k8s: {len(docs)} manifests pass the schema of Kubernetes {version} and agree; init.sh works")
