#!/usr/bin/env bash
# Assemble the deployable source of the sourcemock Cloud Function.
#
#   scripts/function-source.sh DIR        writes the source tree into DIR
#   scripts/function-source.sh FILE.zip   writes it as a zip
#
# Cloud Functions' Go build wants the function's package at the root of a
# module whose path has a dot. The function (sourcemock/function) lives in
# the `eventrelay` module, so the source is a two-file wrapper module,
# eventrelay.dev/sourcemockfn, whose root package imports it, with the
# eventrelay module beside it (replace eventrelay => ./eventrelay) and the
# same requirements and checksums. See ADR 0007 and docs/deployment.md.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:?usage: $0 DIR|FILE.zip}
case "$out" in
  *.zip) dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT ;;
  *) dir=$out; rm -rf "$dir"; mkdir -p "$dir" ;;
esac

mkdir -p "$dir/eventrelay"
# Tracked sources only, without tests and test data.
# (A build source without .git, as some Cloud Build sources are: find.)
if git rev-parse --git-dir >/dev/null 2>&1; then
  git ls-files -z go.mod go.sum internal sourcemock/function
else
  find go.mod go.sum internal sourcemock/function -type f -print0
fi | grep -zv -e '_test\.go$' -e '/testdata/' \
  | tar --null -T - -cf - | tar -C "$dir/eventrelay" -xf -

goversion=$(awk '$1 == "go" { print $2; exit }' go.mod)
{
  echo "module eventrelay.dev/sourcemockfn"
  echo
  echo "go $goversion"
  echo
  echo "require eventrelay v0.0.0-00010101000000-000000000000"
  echo
  echo "replace eventrelay => ./eventrelay"
  echo
  # Every requirement of eventrelay, so the build list and go.sum match it.
  awk '/^require \($/ { inblock = 1; print; next }
       inblock && /^\)$/ { inblock = 0; print; print ""; next }
       inblock { print; next }
       /^require [^(]/ { print }' go.mod
} > "$dir/go.mod"
cp go.sum "$dir/go.sum"

cat > "$dir/function.go" <<'GO'
// Package sourcemockfn is the root package of the sourcemock Cloud
// Function's source: importing eventrelay/sourcemock/function registers
// SendEvents with the Functions Framework.
package sourcemockfn

import _ "eventrelay/sourcemock/function"
GO

if [[ "$out" == *.zip ]]; then
  mkdir -p "$(dirname "$out")"
  rm -f "$out"
  abs=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
  (cd "$dir" && zip -qrX "$abs" .)
fi
echo "$out"
