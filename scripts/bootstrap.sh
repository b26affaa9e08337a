#!/usr/bin/env bash
# From an empty project to the first apply: the scripted steps of
# docs/deployment.md, "From an empty project". The manual steps (create the
# project and link billing, connect the GitHub repository to Cloud Build,
# write the environment's terraform.tfvars) come first; see the doc.
#
#   PROJECT=eventrelay-dev-123456 ENV=dev scripts/bootstrap.sh [--dry-run]
#
# Inputs (environment):
#   PROJECT          required: the project ID (the project exists already)
#   ENV              required: dev or prod (terraform/environments/ENV)
#   REGION           the state bucket's location (default europe-west1:
#                    keep it the environment's primary_region)
#   BILLING_ACCOUNT  optional: link the project to this billing account;
#                    unset, the project must have billing enabled already
#   TFVARS           the environment's variable values (default
#                    terraform/environments/ENV/terraform.tfvars); its
#                    project_id must be PROJECT
#   SOURCEMOCK       upload the sourcemock function's first source (default
#                    true for dev, false for prod: the environments' setting)
#   AUTO_APPROVE     true: apply without asking (default: Terraform shows
#                    each plan and asks)
#   RUN_PIPELINE     true: start the deploy trigger at the end (default: print
#                    the command)
#
# Every step can run again: the state bucket is created only when missing,
# everything else is an update (versioning, the tfvars copy, the function
# source) or Terraform converging. --dry-run prints the commands and runs
# none of them, not even the read-only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

dry=false
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry=true ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "bootstrap: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done

die() { echo "bootstrap: $*" >&2; exit 1; }

[[ -n "${PROJECT:-}" ]] || die "PROJECT is required (the project ID; creating the project is a manual step: docs/deployment.md)"
[[ "${ENV:-}" == dev || "${ENV:-}" == prod ]] || die "ENV must be dev or prod, not '${ENV:-}'"
REGION=${REGION:-europe-west1}
BILLING_ACCOUNT=${BILLING_ACCOUNT:-}
TFVARS=${TFVARS:-terraform/environments/$ENV/terraform.tfvars}
if [[ "$ENV" == dev ]]; then SOURCEMOCK=${SOURCEMOCK:-true}; else SOURCEMOCK=${SOURCEMOCK:-false}; fi
AUTO_APPROVE=${AUTO_APPROVE:-false}
RUN_PIPELINE=${RUN_PIPELINE:-false}

# The triggers hand the pipeline this bucket name (_TF_STATE_BUCKET in
# modules/eventrelay), and Terraform names the sources bucket the same way.
state_bucket="$PROJECT-tfstate"
sources_bucket="$PROJECT-eventrelay-sources"
tfdir="terraform/environments/$ENV"

# The values must exist and name this project: the pipeline applies the copy
# uploaded below, so a wrong project_id would follow every later build.
[[ -f "$TFVARS" ]] || die "$TFVARS not found: copy $tfdir/terraform.tfvars.example and fill it in (a manual step)"
tfvars_project=$(sed -n 's/^[[:space:]]*project_id[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$TFVARS")
[[ "$tfvars_project" == "$PROJECT" ]] ||
  die "$TFVARS sets project_id = \"$tfvars_project\", not PROJECT=$PROJECT"
tfvars_abs="$(cd "$(dirname "$TFVARS")" && pwd)/$(basename "$TFVARS")"

# show CMD...: print a command as it could be pasted into a shell.
show() {
  local out="+" w
  for w in "$@"; do
    if [[ "$w" =~ ^[A-Za-z0-9_./:=@,+%-]+$ ]]; then out+=" $w"; else out+=" '$w'"; fi
  done
  echo "$out"
}

# run CMD...: print it, then run it unless this is a dry run.
run() {
  show "$@"
  if ! $dry; then "$@"; fi
}

# succeeds CMD...: print it and report whether it succeeded (a dry run
# assumes it failed, as on an empty project). Its output is discarded.
succeeds() {
  show "$@"
  if $dry; then return 1; fi
  "$@" >/dev/null 2>&1
}

# read_value VAR CMD...: print CMD and put its output in VAR ("" in a dry run).
read_value() {
  local var=$1 out=""
  shift
  show "$@"
  if ! $dry; then out=$("$@") || return; fi
  printf -v "$var" '%s' "$out"
}

steps=9
step=0
begin() { # title, rough duration
  step=$((step + 1))
  echo
  echo "== step $step/$steps: $1 (about $2)"
}

apply_flags=()
if [[ "$AUTO_APPROVE" == true ]]; then apply_flags=(-input=false -auto-approve); fi

$dry && echo "bootstrap: dry run: nothing below is run"
echo "bootstrap: project $PROJECT, environment $ENV, state gs://$state_bucket ($REGION), values $TFVARS"

begin "check the project and its billing (created by hand)" "a few seconds"
lifecycle="" billing=""
read_value lifecycle gcloud projects describe "$PROJECT" --format='value(lifecycleState)' ||
  die "project $PROJECT not found or not readable: create it first (manual step) and log in as its owner"
$dry || [[ "$lifecycle" == ACTIVE ]] || die "project $PROJECT is $lifecycle, not ACTIVE"
if [[ -n "$BILLING_ACCOUNT" ]]; then
  run gcloud billing projects link "$PROJECT" --billing-account="$BILLING_ACCOUNT"
else
  read_value billing gcloud billing projects describe "$PROJECT" --format='value(billingEnabled)'
  $dry || [[ "${billing,,}" == true ]] ||
    die "billing is not enabled on $PROJECT: link a billing account (manual step), or set BILLING_ACCOUNT"
fi

begin "enable the APIs Terraform needs to start" "1 minute"
# Terraform enables the rest itself (google_project_service.apis); these let
# it read the project, enable services and keep its state in a bucket.
run gcloud services enable cloudresourcemanager.googleapis.com serviceusage.googleapis.com \
  iam.googleapis.com storage.googleapis.com --project "$PROJECT"

begin "create the state bucket and turn on object versioning" "a few seconds"
if succeeds gcloud storage buckets describe "gs://$state_bucket" --format='value(name)'; then
  echo "gs://$state_bucket exists: not creating it"
else
  run gcloud storage buckets create "gs://$state_bucket" --project "$PROJECT" --location "$REGION" \
    --uniform-bucket-level-access --public-access-prevention
fi
# Every state write keeps the previous state as a noncurrent version.
run gcloud storage buckets update "gs://$state_bucket" --versioning

begin "upload the environment's values beside the state" "a few seconds"
# The pipeline's tf-plan reads them from here (scripts/release.sh).
run gcloud storage cp "$TFVARS" "gs://$state_bucket/eventrelay/$ENV/terraform.tfvars"

begin "terraform init against the state bucket" "1 minute"
run terraform -chdir="$tfdir" init -input=false -backend-config="bucket=$state_bucket"

begin "first apply, part one: APIs, registries, sources bucket, accounts, metric descriptors" "3 to 5 minutes"
# The alerts of the full apply read two application metrics; declaring their
# descriptors minutes earlier lets Cloud Monitoring know them (ADR 0011).
run terraform -chdir="$tfdir" apply "${apply_flags[@]}" -var-file="$tfvars_abs" \
  -target=module.eventrelay.google_project_service.apis \
  -target=module.eventrelay.google_artifact_registry_repository.images \
  -target=module.eventrelay.google_artifact_registry_repository.function_images \
  -target=module.eventrelay.google_storage_bucket.sources \
  -target=module.eventrelay.google_service_account.runtime \
  -target=module.eventrelay.google_service_account.tasks_invoker \
  -target=module.eventrelay.google_service_account.scheduler \
  -target=module.eventrelay.google_service_account.smoke \
  -target=module.eventrelay.google_service_account.build \
  -target=module.eventrelay.google_service_account.ci \
  -target=module.eventrelay.google_service_account.function_builder \
  -target=module.eventrelay.google_service_account.terraform \
  -target=module.eventrelay.module.monitoring.google_monitoring_metric_descriptor.dispatch_attempts \
  -target=module.eventrelay.module.monitoring.google_monitoring_metric_descriptor.queue_oldest_age

begin "the sourcemock function's first source (dev)" "a few seconds"
if [[ "$SOURCEMOCK" == true ]]; then
  # The function is created from this object (sourcemock_source_object);
  # the pipeline deploys later sources itself (ADR 0007).
  zipdir=/tmp/eventrelay-bootstrap
  $dry || zipdir=$(mktemp -d)
  $dry || trap 'rm -rf "$zipdir"' EXIT
  run scripts/function-source.sh "$zipdir/sourcemock-function.zip"
  run gcloud storage cp "$zipdir/sourcemock-function.zip" "gs://$sources_bucket/sourcemock/bootstrap.zip"
else
  echo "SOURCEMOCK=$SOURCEMOCK: no function in $ENV, nothing to upload"
fi

begin "first apply, the rest: Firestore, queues, services on the placeholder image, alerts, triggers" "15 to 20 minutes, 7 of them waiting for IAM"
echo "bootstrap: the triggers need the GitHub repository connected to Cloud Build first (manual step)"
run terraform -chdir="$tfdir" apply "${apply_flags[@]}" -var-file="$tfvars_abs"

begin "first pipeline run" "15 to 25 minutes, plus the approval in prod"
trigger=(gcloud builds triggers run "eventrelay-$ENV-deploy" --branch=main --project "$PROJECT")
if [[ "$RUN_PIPELINE" == true ]]; then
  run "${trigger[@]}"
else
  echo "RUN_PIPELINE=$RUN_PIPELINE: start it by pushing to main, or with:"
  show "${trigger[@]}"
fi

echo
if $dry; then
  echo "bootstrap: dry run done; nothing was run"
else
  echo "bootstrap: done. Commit $tfdir/.terraform.lock.hcl if it is new."
fi
