#!/usr/bin/env bash
# The release steps of cloudbuild.yaml, behind Make targets (make tf-plan,
# tf-apply, deploy, smoke, promote, rollback, function-upload,
# function-deploy). Configuration comes from the environment Make passes on;
# see docs/deployment.md ("The pipeline") and docs/adr/0012. Every command is
# a no-op unless DEPLOY=true, so a pull-request build runs the same file and
# deploys nothing.
#
# Release state shared by the build's steps lives in RELEASE_STATE (default
# bin/release, in /workspace):
#   previous-S-R   the traffic split S served in region R before deploy, as
#                  --to-revisions takes it (REV=PCT,...): what rollback restores
#   bootstrap-S-R  present when that split ran no image of this pipeline
#                  (the placeholder Terraform created the service with)
#
# It needs bash, coreutils, curl and gcloud; no jq: gcloud's --flatten and
# csv/value formats give one line per traffic target or container.
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
state=${RELEASE_STATE:-bin/release}
mkdir -p "$state"
tfdir="terraform/environments/$ENV"

die() { echo "$*" >&2; exit 1; }

services_in() { # region -> services deployed there
  local svcs=(ingest dispatcher)
  if [[ "${TARGETMOCK:-false}" == "true" && "$1" == "$REGION" ]]; then svcs+=(targetmock); fi
  echo "${svcs[@]}"
}

deployed_in() { [[ " $(services_in "$2") " == *" $1 "* ]]; } # service region

tf() { terraform -chdir="$tfdir" "$@"; }

# traffic S R: one line per traffic target of S in R, "percent,revision,tag,url"
# (empty fields stay empty: percent of a tag-only target, tag of an untagged one).
traffic() {
  gcloud run services describe "$1" --region "$2" --project "$PROJECT" --flatten=status.traffic \
    --format='csv[no-heading](status.traffic.percent,status.traffic.revisionName,status.traffic.tag,status.traffic.url)'
}

# serving S R: the revisions serving S in R now, "REV=PCT,..." (--to-revisions' syntax).
serving() {
  local lines pct rev _ split=""
  lines=$(traffic "$1" "$2") || return 1
  while IFS=, read -r pct rev _; do
    if [[ -n "$rev" && -n "$pct" && "$pct" != 0 ]]; then split+="${split:+,}$rev=$pct"; fi
  done <<< "$lines"
  echo "$split"
}

# tagged S R: "revision,url" of the revision tagged with this release's tag.
tagged() {
  local lines pct rev tag url
  lines=$(traffic "$1" "$2") || return 1
  while IFS=, read -r pct rev tag url; do
    if [[ "$tag" == "$revtag" ]]; then echo "$rev,$url"; return 0; fi
  done <<< "$lines"
  return 1
}

# released S R SPLIT: true when a revision of SPLIT runs an image of this
# pipeline ($REPOSITORY/S:tag or @digest) in any of its containers.
released() {
  local rev images
  for rev in ${3//,/ }; do
    images=$(gcloud run revisions describe "${rev%=*}" --region "$2" --project "$PROJECT" \
      --format='value(spec.containers.image)') || return 2
    if [[ ";$images;" == *";$REPOSITORY/$1:"* || ";$images;" == *";$REPOSITORY/$1@"* ]]; then
      return 0
    fi
  done
  return 1
}

bootstrap() { [[ -f "$state/bootstrap-$1-$2" ]]; } # service region

promote_one() { # service region
  gcloud run services update-traffic "$1" --region "$2" --project "$PROJECT" --to-latest --quiet
}

rollback_one() { # service region
  local prev
  prev=$(cat "$state/previous-$1-$2" 2>/dev/null || true)
  if [[ -z "$prev" ]]; then
    echo "rollback: nothing recorded for $1 in $2 (deploy records $state/previous-$1-$2); roll back by hand (docs/deployment.md, Rollback)" >&2
    return 1
  fi
  gcloud run services update-traffic "$1" --region "$2" --project "$PROJECT" --to-revisions "$prev" --quiet
  if bootstrap "$1" "$2"; then
    echo "rollback: $1 in $2 back on $prev, the placeholder it served before its first release"
  else
    echo "rollback: $1 in $2 back on $prev"
  fi
}

# expect_serving S R: this release's revision serves all of S's traffic in R and is Ready.
expect_serving() {
  local t rev now conditions
  t=$(tagged "$1" "$2") || die "smoke: no revision of $1 in $2 is tagged $revtag"
  rev=${t%%,*}
  now=$(serving "$1" "$2")
  [[ "$now" == "$rev=100" ]] || die "smoke: $1 in $2 serves $now, not this release's $rev"
  conditions=$(gcloud run revisions describe "$rev" --region "$2" --project "$PROJECT" \
    --flatten=status.conditions --format='csv[no-heading](status.conditions.type,status.conditions.status)')
  grep -qx 'Ready,True' <<< "$conditions" || die "smoke: $1's revision $rev in $2 is not Ready"
  echo "smoke: $1 in $2 serves $rev, Ready"
}

# probe_ingest URL TOKEN: what the tagged ingest revision must answer without
# queueing anything, so without reaching any target (ingest checks the token,
# then the event, and enqueues only a valid one: docs/lld/ingest.md).
probe_ingest() {
  local url=$1 token=$2 out="$state/smoke-answer" answer code ctype
  code=$(curl -sS -o "$out" -w '%{http_code}' -X POST "$url/events" \
    -H 'Content-Type: application/json' -d '{}')
  [[ "$code" == 401 || "$code" == 403 ]] ||
    die "smoke: POST $url/events without a token answered $code, not 401/403: $(cat "$out")"
  code=$(curl -sS -o "$out" -w '%{http_code}' "$url/health" -H "Authorization: Bearer $token")
  [[ "$code" == 200 ]] || die "smoke: GET $url/health answered $code: $(cat "$out")"
  # No body and no timestamp: a 400 invalid-event, never a task.
  answer=$(curl -sS -o "$out" -w '%{http_code} %{content_type}' -X POST "$url/events" \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d "{\"id\":\"smoke-$revtag-invalid\",\"name\":\"release smoke test\"}")
  code=${answer%% *} ctype=${answer#* }
  if [[ "$code" != 400 || "$ctype" != application/problem+json* ]] || ! grep -q 'problems/invalid-event"' "$out"; then
    die "smoke: POST $url/events with an invalid event answered $answer, not 400 invalid-event problem+json: $(cat "$out")"
  fi
  echo "smoke: $url refuses no token, is healthy, refuses an invalid event"
}

# deliver TOKEN URL...: send events through each tagged ingest and wait until
# the status store says each was delivered.
deliver() {
  local token=$1 url id code status access body
  shift
  local count=${SMOKE_COUNT:-3} deadline=$(( $(date +%s) + ${SMOKE_TIMEOUT:-300} ))
  local database=${FIRESTORE_DATABASE:-(default)} out="$state/smoke-answer" ids=()
  for url in "$@"; do
    for i in $(seq 1 "$count"); do
      id="smoke-$revtag-$i-$(date +%s%N)"
      body="{\"id\":\"$id\",\"name\":\"smoke test\",\"body\":\"release smoke test\",\"timestamp\":\"$(date -u +%Y-%m-%dT%H:%M:%S.000Z)\"}"
      code=$(curl -sS -o "$out" -w '%{http_code}' -X POST "$url/events" \
        -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d "$body")
      [[ "$code" == 202 ]] || die "smoke: POST $url/events answered $code: $(cat "$out")"
      ids+=("$id")
    done
  done
  echo "smoke: ${#ids[@]} events accepted; waiting for delivery"
  access=$(gcloud auth print-access-token)
  for id in "${ids[@]}"; do
    while :; do
      # Only the status field comes back (select), so its stringValue is the only one.
      status=$(curl -sS -X POST \
        "https://firestore.googleapis.com/v1/projects/$PROJECT/databases/$database/documents:runQuery" \
        -H "Authorization: Bearer $access" -H 'Content-Type: application/json' \
        -d "{\"structuredQuery\":{\"select\":{\"fields\":[{\"fieldPath\":\"status\"}]},\"from\":[{\"collectionId\":\"events\"}],\"where\":{\"fieldFilter\":{\"field\":{\"fieldPath\":\"event_id\"},\"op\":\"EQUAL\",\"value\":{\"stringValue\":\"$id\"}}},\"limit\":1}}" |
        sed -n 's/.*"stringValue": *"\([a-z_]*\)".*/\1/p') || status="" # a failed read is retried
      case "${status:-missing}" in
        delivered) echo "smoke: $id delivered"; break ;;
        failed|dead_lettered) die "smoke: $id ended $status" ;;
      esac
      (( $(date +%s) <= deadline )) || die "smoke: $id still ${status:-missing} at the deadline"
      sleep "${SMOKE_POLL:-5}"
    done
  done
}

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
      # Record what serves now, for rollback; no deploy without it.
      split=$(serving "$s" "$r") || die "deploy: cannot read $s's traffic in $r"
      [[ -n "$split" ]] || die "deploy: $s in $r serves no revision: nothing to roll back to"
      echo "$split" > "$state/previous-$s-$r"
      rc=0
      released "$s" "$r" "$split" || rc=$?
      case "$rc" in
        0) rm -f "$state/bootstrap-$s-$r" ;;
        1) echo "$split" > "$state/bootstrap-$s-$r"
           echo "deploy: $s in $r serves $split, no image of $REPOSITORY/$s: first release (bootstrap)" ;;
        *) die "deploy: cannot read the images of $s's serving revisions in $r" ;;
      esac
      # Each service runs two containers (the app, named after the service,
      # and the collector sidecar Terraform owns): --container scopes the
      # new image to the app, so the sidecar keeps its pinned image. Flags
      # that are not the container's must come before --container.
      gcloud run deploy "$s" --project "$PROJECT" --region "$r" \
        --no-traffic --tag "$revtag" --quiet \
        --container "$s" --image "$REPOSITORY/$s:$TAG"
    done
  done
  ;;

smoke)
  # SMOKE_MODE (docs/adr/0012):
  #   no-target  (the default, prod) only what cannot reach the target: each
  #              region's tagged ingest refuses a request without a token,
  #              answers /health, refuses an invalid event; and the services
  #              promoted just before serve this release, Ready.
  #   delivery   (dev, the target is targetmock) the same, then events sent
  #              through each tagged ingest must end delivered.
  # SMOKE_ROLLBACK names the services promoted just before this smoke: they
  # go back to their previous revisions if it fails.
  mode=${SMOKE_MODE:-no-target}
  case "$mode" in
    no-target) ;;
    delivery)
      [[ "${TARGETMOCK:-false}" == "true" ]] ||
        die "smoke: SMOKE_MODE=delivery sends events through the dispatcher to its target; only where that is targetmock (TARGETMOCK=true)" ;;
    *) die "smoke: SMOKE_MODE must be delivery or no-target, not $mode" ;;
  esac
  : "${SMOKE_SA:?}" "${INGEST_AUDIENCE:?}"
  promoted=()
  for s in ${SMOKE_ROLLBACK:-}; do
    for r in "${regions[@]}"; do
      if deployed_in "$s" "$r"; then promoted+=("$s $r"); fi
    done
  done
  on_exit() {
    local rc=$? failed=0 p
    if (( rc != 0 && ${#promoted[@]} > 0 )); then
      echo "smoke failed: rolling back ${promoted[*]}" >&2
      for p in "${promoted[@]}"; do
        # shellcheck disable=SC2086 # "service region"
        rollback_one $p || failed=1
      done
      (( failed == 0 )) || echo "smoke: a rollback failed; see above" >&2
    fi
  }
  trap on_exit EXIT

  # Bootstrap: on a first release the serving dispatcher (and targetmock)
  # is the placeholder, which delivers nothing. There is no release to
  # protect, so this release's take all traffic before the delivery smoke,
  # and a failure puts the placeholder back.
  if [[ "$mode" == delivery ]]; then
    for r in "${regions[@]}"; do
      for s in dispatcher targetmock; do
        if deployed_in "$s" "$r" && bootstrap "$s" "$r" && [[ " ${promoted[*]} " != *" $s $r "* ]]; then
          echo "smoke: bootstrap: promoting $s in $r before the delivery smoke"
          promoted+=("$s $r")
          promote_one "$s" "$r"
        fi
      done
    done
  fi
  for p in "${promoted[@]}"; do
    # shellcheck disable=SC2086 # "service region"
    expect_serving $p
  done

  token=$(gcloud auth print-identity-token --impersonate-service-account="$SMOKE_SA" \
    --audiences="$INGEST_AUDIENCE" --include-email)
  urls=()
  for r in "${regions[@]}"; do
    t=$(tagged ingest "$r") || die "smoke: no revision tagged $revtag on ingest in $r"
    url=${t#*,}
    [[ -n "$url" ]] || die "smoke: ingest's revision tagged $revtag in $r has no URL"
    probe_ingest "$url" "$token"
    urls+=("$url")
  done
  if [[ "$mode" == delivery ]]; then
    deliver "$token" "${urls[@]}"
  fi
  echo "smoke ($mode): passed"
  ;;

promote)
  # Shift all traffic to the latest revision (the one deploy just made).
  (( $# > 0 )) || set -- ingest dispatcher targetmock
  for r in "${regions[@]}"; do
    for s in "$@"; do
      if deployed_in "$s" "$r"; then promote_one "$s" "$r"; fi
    done
  done
  ;;

rollback)
  (( $# > 0 )) || set -- ingest dispatcher targetmock
  failed=0
  for r in "${regions[@]}"; do
    for s in "$@"; do
      if deployed_in "$s" "$r"; then rollback_one "$s" "$r" || failed=1; fi
    done
  done
  exit "$failed"
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
