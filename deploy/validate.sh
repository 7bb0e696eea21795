#!/usr/bin/env bash
# Validates deploy/ without a cluster (CI runs it; so can you, from the repository root):
#
#   deploy/validate.sh [FEDNS_BINARY]        # default: target/debug/fedns
#
#  1. renders every kustomization under deploy/ with `kubectl kustomize` and validates the
#     output against the Kubernetes OpenAPI schemas in strict mode (unknown fields fail)
#     with `kubernetes-validate` (pip; installed if missing), for $KUBERNETES_VERSION;
#     the plain manifests in deploy/coredns too;
#  2. checks the member RBAC grants exactly get/list/watch on services, ingresses,
#     endpointslices, the Gateway API's gateways and routes, dnsendpoints and Istio's
#     gateways and virtualservices, and that the base grants nothing;
#  3. checks each overlay's wiring: every ConfigMap/Secret a volume names is generated,
#     every kubeconfig path in fedns.yaml is a projected item of the Secret, ports match;
#  4. runs `fedns check` on deploy/base/config (demo GeoIP database, throwaway kubeconfigs
#     with the right contexts) and on each overlay's rendered ConfigMap and Secret;
#  5. checks the parent-zone example delegates to the NS and glue of the zone file, the
#     Grafana dashboard parses and uses only metrics that fedns defines, scripts parse.
#
# Prints one line per check and `deploy: N passed, M failed`; exits 1 if any check failed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ $# -ge 1 ]; then
  case $1 in /*) fedns=$1 ;; *) fedns=$PWD/$1 ;; esac
else
  fedns=$root/target/debug/fedns
fi
# A version kubernetes-validate ships schemas for; matches the kubectl 1.32 client.
k8s_version=${KUBERNETES_VERSION:-1.32.0}
cd "$root"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- tools ------------------------------------------------------------------------------
command -v kubectl >/dev/null || { echo "deploy: kubectl is required (kubectl kustomize)" >&2; exit 1; }
if command -v kubernetes-validate >/dev/null; then
  kv=(kubernetes-validate)
else
  echo "installing kubernetes-validate (pip)"
  python3 -m pip install --quiet kubernetes-validate
  if command -v kubernetes-validate >/dev/null; then kv=(kubernetes-validate); else kv=(python3 -m kubernetes_validate); fi
fi
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install --quiet pyyaml

# --- harness ----------------------------------------------------------------------------
passed=0
failed=0
# check NAME COMMAND...: runs COMMAND with errexit in a subshell; its last output line is
# shown on success, all of its output on failure.
check() {
  local name=$1 out rc
  shift
  set +e
  out=$( set -e; "$@" 2>&1 )
  rc=$?
  set -e
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1))
    printf 'ok    %s%s\n' "$name" "${out:+: ${out##*$'\n'}}"
  else
    failed=$((failed + 1))
    printf 'FAIL  %s\n' "$name"
    printf '%s\n' "$out" | sed 's/^/      /'
  fi
}

# Renders a kustomization into $work/render/<dir with / as _>.yaml.
rendered() { printf '%s/render/%s.yaml' "$work" "${1//\//_}"; }

render_and_validate() {
  local dir=$1 out
  out=$(rendered "$dir")
  mkdir -p "$(dirname "$out")"
  kubectl kustomize "$dir" >"$out"
  "${kv[@]}" --strict --quiet -k "$k8s_version" "$out"
  echo "$(grep -c '^kind:' "$out") objects, schema ok (Kubernetes $k8s_version, strict)"
}

validate_plain() {
  "${kv[@]}" --strict --quiet -k "$k8s_version" "$@"
  echo "$# files, schema ok (Kubernetes $k8s_version, strict)"
}

# Exactly get/list/watch on exactly services, ingresses, endpointslices, the Gateway API's
# gateways and routes, dnsendpoints, and Istio's gateways and virtualservices.
rbac_least_privilege() {
  python3 - "$@" <<'PY'
import sys, yaml
READ = ["get", "list", "watch"]
# Each role name and exactly what it may grant, and where.
want = {
    "fedns-reader": ({("", "services"): READ, ("", "namespaces"): READ, ("networking.k8s.io", "ingresses"): READ, ("discovery.k8s.io", "endpointslices"): READ,
                      **{("gateway.networking.k8s.io", r): READ for r in ("gateways", "httproutes", "grpcroutes", "tlsroutes", "listenersets")},
                      ("gateway.networking.x-k8s.io", "xlistenersets"): READ,
                      ("externaldns.k8s.io", "dnsendpoints"): READ,
                      ("networking.istio.io", "gateways"): READ, ("networking.istio.io", "virtualservices"): READ}, None),
    "fedns-fleet": ({("coordination.k8s.io", "leases"): READ + ["create", "update", "patch", "delete"], ("", "configmaps"): READ}, "fedns"),
    "fedns-drain": ({("", "configmaps"): ["get", "create", "update"]}, "fedns"),
}
roles = 0
seen = set()
for path, kinds in ((sys.argv[1], {"ClusterRole", "Role"}), (sys.argv[2], {"Role"})):
    for doc in yaml.safe_load_all(open(path)):
        if not doc or doc["kind"] not in {"Role", "ClusterRole"}:
            continue
        meta = doc["metadata"]
        name = f'{path.rsplit("/", 1)[-1]}: {doc["kind"]} {meta.get("namespace", "")}/{meta["name"]}'
        if doc["kind"] not in kinds:
            sys.exit(f"{name}: unexpected kind here")
        if meta["name"] not in want:
            sys.exit(f"{name}: an unexpected role (known: {sorted(want)})")
        resources, namespace = want[meta["name"]]
        if namespace and (doc["kind"] != "Role" or meta.get("namespace") != namespace):
            sys.exit(f"{name}: must be a Role in namespace {namespace}")
        granted = {}
        for rule in doc.get("rules", []):
            if rule.get("resourceNames") or rule.get("nonResourceURLs"):
                sys.exit(f"{name}: unexpected resourceNames/nonResourceURLs")
            for g in rule.get("apiGroups", []):
                for r in rule.get("resources", []):
                    granted.setdefault((g, r), set()).update(rule.get("verbs", []))
        expected = {k: set(v) for k, v in resources.items()}
        if doc["kind"] == "Role":
            # Namespaces are cluster-scoped: a Role cannot grant listing them.
            expected.pop(("", "namespaces"), None)
        if granted != expected:
            sys.exit(f"{name}: grants {sorted((k, sorted(v)) for k, v in granted.items())}, want exactly {sorted((k, sorted(v)) for k, v in expected.items())}")
        seen.add(meta["name"])
        roles += 1
if seen != set(want):
    sys.exit(f"roles {sorted(set(want) - seen)} are missing")
for doc in yaml.safe_load_all(open(sys.argv[3])):
    if doc and doc["kind"] in {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}:
        sys.exit(f"base: {doc['kind']} {doc['metadata']['name']}: the base must grant nothing")
print(f"{roles} roles: readers get/list/watch services, ingresses, endpointslices, Gateway API gateways and routes, dnsendpoints, Istio gateways and virtualservices; fedns-fleet its leases and reads overrides, fedns-drain writes them, both in fedns only; base grants nothing")
PY
}

# Deployment volumes -> generated ConfigMap/Secret -> fedns.yaml paths and ports.
overlay_wiring() {
  python3 - "$1" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
dep = next(d for d in docs if d["kind"] == "Deployment")
pod = dep["spec"]["template"]["spec"]
mounts = {m["name"]: m["mountPath"] for c in pod["containers"] for m in c.get("volumeMounts", [])}
files = {}  # path inside the container -> (kind, name, key)
for v in pod["volumes"]:
    srcs = v.get("projected", {}).get("sources", [])
    for kind, key in (("ConfigMap", "configMap"), ("Secret", "secret")):
        if key in v:
            srcs = srcs + [{key: {"name": v[key].get("name") or v[key].get("secretName"), **v[key]}}]
    for s in srcs:
        for kind, key in (("ConfigMap", "configMap"), ("Secret", "secret")):
            if key not in s:
                continue
            name = s[key]["name"]
            obj = by.get((kind, name))
            if obj is None:
                sys.exit(f"volume {v['name']}: {kind} {name} is not in the rendered output")
            data = dict(obj.get("data", {}))
            items = s[key].get("items") or [{"key": k, "path": k} for k in data]
            for it in items:
                if it["key"] not in data:
                    sys.exit(f"volume {v['name']}: {kind} {name} has no key {it['key']}")
                files[f"{mounts[v['name']]}/{it['path']}"] = (kind, name, it["key"])
cfg_file = next((p for p in files if p.endswith("/fedns.yaml")), None)
if cfg_file is None:
    sys.exit("no fedns.yaml mounted")
kind, name, key = files[cfg_file]
cfg = yaml.safe_load(by[(kind, name)]["data"][key])
for c in cfg["clusters"]:
    kc = c.get("kubeconfig")
    if kc and kc not in files:
        sys.exit(f"cluster {c['name']}: kubeconfig {kc} is not mounted (add an item to the projected Secret)")
for k in (cfg.get("dnssec") or {}).get("keys", []):
    private = k if isinstance(k, str) else k["file"]
    for f in (private, private.removesuffix(".private") + ".key"):
        if f not in files:
            sys.exit(f"dnssec key {f} is not mounted (add an item to the projected Secret)")
zf = cfg.get("zone_file")
if zf and f"{cfg_file.rsplit('/', 1)[0]}/{zf}" not in files and zf not in files:
    sys.exit(f"zone_file {zf} is not mounted")
geo = cfg.get("geoip", {}).get("database", "")
if geo and not any(geo.startswith(m + "/") for m in mounts.values()):
    sys.exit(f"geoip.database {geo} is on no volume")
ports = {(p["containerPort"], p.get("protocol", "TCP")): p["name"] for c in pod["containers"] for p in c.get("ports", [])}
for addr in cfg["listen"]["dns"]:
    port = int(addr.rsplit(":", 1)[1])
    for proto in ("UDP", "TCP"):
        if (port, proto) not in ports:
            sys.exit(f"listen.dns {addr}: no containerPort {port}/{proto}")
admin = int(cfg["listen"]["admin"].rsplit(":", 1)[1])
if ports.get((admin, "TCP")) != "admin":
    sys.exit(f"listen.admin port {admin} is not the container port named admin")
names = set(ports.values())
for c in pod["containers"]:
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        port = c.get(probe, {}).get("httpGet", {}).get("port")
        if port is not None and port not in names | {admin}:
            sys.exit(f"{c['name']}.{probe}: port {port} is no container port")
for svc in (d for d in docs if d["kind"] == "Service"):
    for p in svc["spec"]["ports"]:
        if p["targetPort"] not in names:
            sys.exit(f"Service {svc['metadata']['name']}: targetPort {p['targetPort']} is no container port")
print(f"{len(cfg['clusters'])} kubeconfigs mounted; listen ports, probes and Services agree")
PY
}

# Writes a throwaway kubeconfig with context CONTEXT to FILE.
fake_kubeconfig() {
  cat >"$2" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: $1, cluster: {server: "https://$1.k8s.example.invalid"}}]
users: [{name: fedns-reader@$1, user: {token: throwaway}}]
contexts: [{name: $1, context: {cluster: $1, user: fedns-reader@$1}}]
current-context: $1
EOF
}

# Rewrites the absolute in-pod paths of DIR/fedns.yaml into DIR, puts the demo GeoIP
# database where it points, and runs `fedns check`.
run_fedns_check() {
  local dir=$1
  [ -x "$fedns" ] || { echo "no fedns binary at $fedns (run cargo build, or pass its path)"; return 1; }
  sed -i -e "s#/etc/fedns/#$dir/#g" -e "s#/var/lib/fedns/geoip/#$dir/geoip/#g" "$dir/fedns.yaml"
  local db
  db=$(python3 -c 'import sys, yaml; print((yaml.safe_load(open(sys.argv[1])).get("geoip") or {}).get("database", ""))' "$dir/fedns.yaml")
  if [ -n "$db" ]; then
    mkdir -p "$(dirname "$db")"
    cp geoip/demo.mmdb "$db"
  fi
  # Throwaway DNSSEC keys (the committed ones are placeholders) where the config names
  # them: a KSK for the first, ZSKs after it.
  local key n=0 zone made
  zone=$(python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["zone"])' "$dir/fedns.yaml")
  while read -r key; do
    [ -n "$key" ] || continue
    mkdir -p "$dir/keygen"
    made=$("$fedns" dnssec keygen --zone "$zone" --dir "$dir/keygen" $([ $n -gt 0 ] && echo --zsk))
    mkdir -p "$(dirname "$key")"
    cp "$made" "${key%.private}.key"
    cp "${made%.key}.private" "$key"
    n=$((n + 1))
  done < <(python3 -c '
import sys, yaml
for k in (yaml.safe_load(open(sys.argv[1])).get("dnssec") or {}).get("keys", []):
    print(k if isinstance(k, str) else k["file"])' "$dir/fedns.yaml")
  # Pipe: strip the temp dir from the output; pipefail keeps fedns's exit status.
  "$fedns" check --config "$dir/fedns.yaml" 2>&1 | sed "s#$dir/##g"
}

fedns_check_base() {
  local dir=$work/check-base
  mkdir -p "$dir"
  cp -R deploy/base/config/. "$dir/"
  local name kubeconfig context
  # One throwaway kubeconfig per cluster, at the path and with the context the config names.
  while read -r name kubeconfig context; do
    case $kubeconfig in
      /etc/fedns/*) kubeconfig=$dir/${kubeconfig#/etc/fedns/} ;;
      /*) echo "kubeconfig $kubeconfig: not under /etc/fedns, which this check rewrites"; return 1 ;;
      *) kubeconfig=$dir/$kubeconfig ;;
    esac
    mkdir -p "$(dirname "$kubeconfig")"
    fake_kubeconfig "$context" "$kubeconfig"
  done < <(python3 -c '
import sys, yaml
for c in yaml.safe_load(open(sys.argv[1]))["clusters"]:
    if c.get("kubeconfig"):
        print(c["name"], c["kubeconfig"], c.get("context") or c["name"])' "$dir/fedns.yaml")
  run_fedns_check "$dir"
}

# Materializes the overlay's mounted files exactly as the pod sees them under /etc/fedns
# (ConfigMap keys and the Secret's projected items), then `fedns check`s them: proves the
# overlay's kubeconfigs carry the contexts fedns.yaml names.
fedns_check_overlay() {
  local dir=$work/check-${1//\//_}
  mkdir -p "$dir"
  python3 - "$(rendered "$1")" "$dir" <<'PY'
import base64, os, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
out = sys.argv[2]
by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
mounts = {m["name"]: m["mountPath"] for c in pod["containers"] for m in c.get("volumeMounts", [])}
for v in pod["volumes"]:
    if mounts.get(v["name"]) != "/etc/fedns":
        continue
    for s in v["projected"]["sources"]:
        for kind, key, decode in (("ConfigMap", "configMap", False), ("Secret", "secret", True)):
            if key not in s:
                continue
            obj = by[(kind, s[key]["name"])]
            data = obj.get("data", {})
            for it in s[key].get("items") or [{"key": k, "path": k} for k in data]:
                path = os.path.join(out, it["path"])
                os.makedirs(os.path.dirname(path), exist_ok=True)
                value = data[it["key"]]
                with open(path, "wb") as f:
                    f.write(base64.b64decode(value) if decode else value.encode())
PY
  run_fedns_check "$dir"
}

# The parent's NS and glue for the zone equal the zone file's NS and addresses.
parent_delegation() {
  python3 - deploy/parent-zone/example.com.zone-fragment deploy/base/config/fed.example.com.zone <<'PY'
import re, sys
def records(path, origin):
    # Enough of RFC 1035 for these files: a blank owner repeats the previous one, @ is the
    # origin, relative names are completed with it.
    fq = lambda n: origin if n == "@" else n if n.endswith(".") else f"{n}.{origin}"
    out, owner = set(), origin
    for line in open(path):
        line = line.split(";", 1)[0].rstrip()
        m = re.match(r"^(\S*)\s+(?:\d+\s+)?IN\s+(NS|A|AAAA)\s+(\S+)$", line)
        if line and not line[0].isspace() and not line.startswith("$"):
            owner = fq(line.split()[0])
        if m:
            rtype, data = m.group(2), m.group(3)
            out.add((owner.lower(), rtype, fq(data).lower() if rtype == "NS" else data))
    return out
parent = records(sys.argv[1], "example.com.")
child = records(sys.argv[2], "fed.example.com.")
if not parent:
    sys.exit("no NS/glue records found in the parent fragment")
if parent != child:
    sys.exit(f"parent and child disagree:\n  only in parent: {sorted(parent - child)}\n  only in zone file: {sorted(child - parent)}")
ns = sum(1 for r in parent if r[1] == "NS")
print(f"{ns} NS and {len(parent) - ns} glue records match the zone file")
PY
}

dashboard() {
  # The metric names are string literals in the files of src/metrics/ that register them.
  python3 - deploy/grafana/fedns-dashboard.json src/metrics/*.rs <<'PY'
import json, os, re, sys
d = json.load(open(sys.argv[1]))
exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
panels = [p for p in d["panels"] if p.get("type") != "row"]
if not all(p.get("targets") for p in panels):
    sys.exit("a panel has no query")
used = {re.sub(r"_(bucket|sum|count)$", "", m) for e in exprs for m in re.findall(r"\bfedns_[a-z0-9_]+", e)}
sources = [f for f in sys.argv[2:] if os.path.exists(f)]
if not sources:
    sys.exit(f"no metric sources found among {sys.argv[2:]}: where are the metrics registered now?")
defined = {m for f in sources for m in re.findall(r'"(fedns_[a-z0-9_]+)"', open(f).read())}
unknown = used - defined
where = ", ".join(sources)
if unknown:
    sys.exit(f"metrics not defined in {where}: {sorted(unknown)}")
print(f"{len(panels)} panels, {len(used)} metrics, all defined in {where}")
PY
}

scripts_parse() {
  for f in deploy/validate.sh deploy/member-rbac/make-kubeconfig.sh; do bash -n "$f"; done
  echo "bash -n ok"
}

# --- checks ------------------------------------------------------------------------------
mapfile -t kustomizations < <(find deploy -name kustomization.yaml -printf '%h\n' | sort)
for dir in "${kustomizations[@]}"; do
  check "kustomize $dir" render_and_validate "$dir"
done
check "manifests deploy/coredns" validate_plain deploy/coredns/*.yaml
check "member RBAC least privilege" rbac_least_privilege \
  "$(rendered deploy/member-rbac)" "$(rendered deploy/member-rbac/namespaced)" "$(rendered deploy/base)"
overlays=()
for dir in "${kustomizations[@]}"; do
  case $dir in deploy/overlays/*) overlays+=("$dir") ;; esac
done
for dir in "${overlays[@]}"; do
  check "wiring $dir" overlay_wiring "$(rendered "$dir")"
done
check "fedns check deploy/base/config" fedns_check_base
for dir in "${overlays[@]}"; do
  check "fedns check $dir (rendered)" fedns_check_overlay "$dir"
done
check "parent-zone delegation matches zone file" parent_delegation
check "grafana dashboard" dashboard
check "scripts parse" scripts_parse

echo "deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
