#!/usr/bin/env bash
# The release steps of cloudbuild.yaml, behind Make targets (make tf-plan,
# tf-apply, deploy, smoke, promote, function-upload, function-deploy).
# Configuration comes from the environment Make passes on; see
# docs/deployment.md. Every command is a no-op unless DEPLOY=true, so a
# pull-request build runs the same file and deploys nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

cmd=${1:?usage: $0 tf-plan|tf-apply|deploy|smoke|promote|rollback|function-upload|function-deploy [service...]}
shift

if [[ "${DEPLOY:-false}" != "true" ]]; then
  echo "release $cmd: skipped (DEPLOY=${DEPLOY:-false}: not a deploying build)"
  exit 0
fi

: "${PROJECT:?PROJECT is required}" "${ENV:?ENV is required}" "${REGION:?REGION is required}"
: "${TAG:?TAG (the commit SHA) is required}"
REGIONS=${REGIONS:-$REGION}
IFS=, read -r -a regions <<< "$REGIONS"
revtag="c-${TAG:0:12}"           # Cloud Run traffic tag of this release's revisions
state="bin/release"              # shared by the build's steps (/workspace)
mkdir -p "$state"
tfdir="terraform/environments/$ENV"

services_in() { # region -> services deployed there
  local svcs=(ingest dispatcher)
  if [[ "${TARGETMOCK:-false}" == "true" && "$1" == "$REGION" ]]; then svcs+=(targetmock); fi
  echo "${svcs[@]}"
}

tf() { terraform -chdir="$tfdir" "$@"; }

case "$cmd" in
tf-plan)
  : "${TF_STATE_BUCKET:?}" "${TF_SA:?}"
  export GOOGLE_IMPERSONATE_SERVICE_ACCOUNT="$TF_SA" TF_IN_AUTOMATION=1
  # The environment's variable values live beside its state (docs/deployment.md).
  gcloud storage cp --impersonate-service-account="$TF_SA" \
    "gs://$TF_STATE_BUCKET/eventrelay/$ENV/terraform.tfvars" "$tfdir/terraform.tfvars"
  tf init -input=false -backend-config="bucket=$TF_STATE_BUCKET" \
    -backend-config="impersonate_service_account=$TF_SA"
  tf validate
  tf plan -input=false -lock-timeout=5m -out=release.tfplan
  ;;

tf-apply)
  : "${TF_SA:?}"
  export GOOGLE_IMPERSONATE_SERVICE_ACCOUNT="$TF_SA" TF_IN_AUTOMATION=1
  tf apply -input=false -lock-timeout=5m release.tfplan
  ;;

deploy)
  : "${REPOSITORY:?}"
  for r in "${regions[@]}"; do
    for s in $(services_in "$r"); do
      # Remember what serves now, for rollback.
      gcloud run services describe "$s" --region "$r" --project "$PROJECT" \
        --format='value(status.traffic[0].revisionName)' > "$state/previous-$s-$r" || true
      # Each service runs two containers (the app, named after the service,
      # and the collector sidecar Terraform owns): --container scopes the
      # new image to the app, so the sidecar keeps its pinned image.
      gcloud run deploy "$s" --project "$PROJECT" --region "$r" \
        --no-traffic --tag "$revtag" --quiet \
        --container "$s" --image "$REPOSITORY/$s:$TAG"
    done
  done
  ;;

smoke)
  # Send a few events through each region's new ingest revision (its tagged
  # URL) with a real Google ID token, then wait until the status store says
  # each was delivered. Delivery goes through whichever dispatcher serves.
  # SMOKE_ROLLBACK names services to put back on their previous revision
  # if the smoke test fails (the ones promoted just before it).
  : "${SMOKE_SA:?}" "${INGEST_AUDIENCE:?}"
  if [[ -n "${SMOKE_ROLLBACK:-}" ]]; then
    # shellcheck disable=SC2086 # a list of service names
    trap 'rc=$?; if (( rc != 0 )); then echo "smoke failed: rolling back $SMOKE_ROLLBACK" >&2; "$0" rollback $SMOKE_ROLLBACK; fi' EXIT
  fi
  count=${SMOKE_COUNT:-3}
  deadline=$(( $(date +%s) + ${SMOKE_TIMEOUT:-300} ))
  database=${FIRESTORE_DATABASE:-(default)}
  token=$(gcloud auth print-identity-token --impersonate-service-account="$SMOKE_SA" \
    --audiences="$INGEST_AUDIENCE" --include-email)
  ids=()
  for r in "${regions[@]}"; do
    url=$(gcloud run services describe ingest --region "$r" --project "$PROJECT" --format=json \
      | jq -r --arg t "$revtag" '.status.traffic[] | select(.tag == $t) | .url')
    [[ -n "$url" ]] || { echo "smoke: no revision tagged $revtag on ingest in $r" >&2; exit 1; }
    for i in $(seq 1 "$count"); do
      id="smoke-$revtag-$r-$i-$(date +%s%N)"
      body=$(jq -cn --arg id "$id" --arg ts "$(date -u +%Y-%m-%dT%H:%M:%S.000Z)" \
        '{id: $id, name: "smoke test", body: "release smoke test", timestamp: $ts}')
      code=$(curl -sS -o "$state/smoke-answer" -w '%{http_code}' -X POST "$url/events" \
        -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d "$body")
      if [[ "$code" != 202 ]]; then
        echo "smoke: $r: POST /events answered $code: $(cat "$state/smoke-answer")" >&2
        exit 1
      fi
      ids+=("$id")
    done
  done
  echo "smoke: ${#ids[@]} events accepted; waiting for delivery"
  access=$(gcloud auth print-access-token)
  for id in "${ids[@]}"; do
    while :; do
      status=$(curl -sS -X POST \
        "https://firestore.googleapis.com/v1/projects/$PROJECT/databases/$database/documents:runQuery" \
        -H "Authorization: Bearer $access" -H 'Content-Type: application/json' \
        -d "$(jq -cn --arg id "$id" '{structuredQuery: {from: [{collectionId: "events"}],
              where: {fieldFilter: {field: {fieldPath: "event_id"}, op: "EQUAL", value: {stringValue: $id}}},
              limit: 1}}')" \
        | jq -r '.[0].document.fields.status.stringValue // "missing"')
      case "$status" in
        delivered) echo "smoke: $id delivered"; break ;;
        failed|dead_lettered) echo "smoke: $id ended $status" >&2; exit 1 ;;
      esac
      if (( $(date +%s) > deadline )); then
        echo "smoke: $id still $status at the deadline" >&2
        exit 1
      fi
      sleep 5
    done
  done
  ;;

promote)
  # Shift all traffic to the latest revision (the one deploy just made).
  (( $# > 0 )) || set -- ingest dispatcher targetmock
  for r in "${regions[@]}"; do
    for s in "$@"; do
      [[ " $(services_in "$r") " == *" $s "* ]] || continue
      gcloud run services update-traffic "$s" --region "$r" --project "$PROJECT" --to-latest --quiet
    done
  done
  ;;

rollback)
  (( $# > 0 )) || set -- ingest dispatcher targetmock
  for r in "${regions[@]}"; do
    for s in "$@"; do
      prev=$(cat "$state/previous-$s-$r" 2>/dev/null || true)
      [[ -n "$prev" ]] || continue
      gcloud run services update-traffic "$s" --region "$r" --project "$PROJECT" \
        --to-revisions "$prev=100" --quiet
      echo "rollback: $s in $r back on $prev"
    done
  done
  ;;

function-upload)
  [[ "${SOURCEMOCK:-false}" == "true" ]] || { echo "function-upload: sourcemock disabled"; exit 0; }
  : "${SOURCES_BUCKET:?}"
  scripts/function-source.sh "bin/sourcemock-function.zip"
  gcloud storage cp "bin/sourcemock-function.zip" "gs://$SOURCES_BUCKET/sourcemock/$TAG.zip"
  ;;

function-deploy)
  [[ "${SOURCEMOCK:-false}" == "true" ]] || { echo "function-deploy: sourcemock disabled"; exit 0; }
  : "${SOURCES_BUCKET:?}" "${SOURCEMOCK_RUNTIME:?}"
  gcloud functions deploy sourcemock --gen2 --project "$PROJECT" --region "$REGION" \
    --runtime "$SOURCEMOCK_RUNTIME" --entry-point SendEvents --trigger-http --no-allow-unauthenticated \
    --source "gs://$SOURCES_BUCKET/sourcemock/$TAG.zip" --quiet
  ;;

*)
  echo "unknown command $cmd" >&2
  exit 2
  ;;
esac
