#!/usr/bin/env bash
# Builds the kubeconfig a fedns replica uses to read one member cluster, from the
# `fedns-reader` token that deploy/member-rbac created there.
#
#   deploy/member-rbac/make-kubeconfig.sh KUBECTL_CONTEXT NAME [OUT] [SERVER]
#
#   KUBECTL_CONTEXT  your own kubectl context for the member cluster (admin access)
#   NAME             the cluster's `name` in fedns.yaml; also the kubeconfig's context name,
#                    which must equal `context:` there
#   OUT              output file (default: NAME.kubeconfig); holds a credential, never commit it
#   SERVER           API server URL the fedns replicas can reach (default: the one of
#                    KUBECTL_CONTEXT, which may be a private endpoint only you can reach)
#
# The result needs no exec plugin (aws/gcloud/kubelogin), which the distroless fedns image
# does not have: a bearer token and the cluster CA, nothing else.
set -euo pipefail

if [ $# -lt 2 ] || [ $# -gt 4 ]; then
  sed -n '5,12p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 64
fi
ctx=$1
name=$2
out=${3:-$name.kubeconfig}
server=${4:-$(kubectl config view --raw --minify --context "$ctx" -o jsonpath='{.clusters[0].cluster.server}')}
[ -n "$server" ] || { echo "no API server URL for context $ctx" >&2; exit 1; }

# The token controller fills the Secret asynchronously after `kubectl apply`.
token=
for _ in $(seq 30); do
  token=$(kubectl --context "$ctx" -n fedns get secret fedns-reader-token -o jsonpath='{.data.token}')
  [ -n "$token" ] && break
  sleep 1
done
[ -n "$token" ] || { echo "secret fedns/fedns-reader-token has no token yet; was deploy/member-rbac applied?" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
kubectl --context "$ctx" -n fedns get secret fedns-reader-token -o jsonpath='{.data.ca\.crt}' | base64 -d >"$tmp/ca.crt"

umask 077
rm -f "$out"
kubectl config --kubeconfig "$out" set-cluster "$name" --server "$server" \
  --certificate-authority "$tmp/ca.crt" --embed-certs=true >/dev/null
kubectl config --kubeconfig "$out" set-credentials "fedns-reader@$name" \
  --token "$(printf %s "$token" | base64 -d)" >/dev/null
kubectl config --kubeconfig "$out" set-context "$name" --cluster "$name" \
  --user "fedns-reader@$name" >/dev/null
kubectl config --kubeconfig "$out" use-context "$name" >/dev/null

# Prove the credential works and is as narrow as intended.
kubectl --kubeconfig "$out" auth can-i list endpointslices.discovery.k8s.io --all-namespaces >/dev/null \
  || echo "warning: $out cannot list endpointslices cluster-wide: fine for the namespaced variant, else check the RBAC (or the server is unreachable from here)" >&2
if kubectl --kubeconfig "$out" auth can-i list secrets --all-namespaces >/dev/null 2>&1; then
  echo "warning: $out can list secrets: fedns-reader has more rights than deploy/member-rbac grants" >&2
fi
echo "wrote $out (context $name, server $server)"
