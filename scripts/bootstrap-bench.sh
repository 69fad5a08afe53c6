#!/usr/bin/env bash
# Installs the extra tool `npm run bench` needs: the AWS CLI (v1, from PyPI), which the
# "seed-style" shell procedure uses to upload to and download from the local S3 server.
#
# Pinned and idempotent like scripts/bootstrap.sh: the package goes into the git-ignored
# .tools/python folder with a stamp file holding the pin, and .tools/bin/aws is a small wrapper
# that runs exactly that copy. The warm path is one string comparison.
#
# Usage: bash scripts/bootstrap-bench.sh
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
BIN="$TOOLS/bin"
STAMPS="$TOOLS/stamps"
PYDIR="$TOOLS/python"
AWSCLI_PIN="awscli==1.45.11"

say() { printf 'bootstrap-bench: %s\n' "$*"; }
die() {
  printf 'bootstrap-bench: ERROR: %s\n' "$*" >&2
  exit 1
}
trap 'die "unexpected failure (exit $?) at scripts/bootstrap-bench.sh line $LINENO"' ERR

stamp="$STAMPS/bench-awscli"
if [[ -x "$BIN/aws" && -f "$stamp" && "$(<"$stamp")" == "$AWSCLI_PIN" ]]; then
  exit 0
fi

mkdir -p "$BIN" "$STAMPS"
exec 9>"$TOOLS/.bench-lock"
flock 9 || die "could not lock $TOOLS/.bench-lock"
# Another run may have finished the install while we waited for the lock.
if [[ -x "$BIN/aws" && -f "$stamp" && "$(<"$stamp")" == "$AWSCLI_PIN" ]]; then
  exit 0
fi

python="$(command -v python3 || true)"
[[ -n "$python" ]] || die "python3 is needed to install the AWS CLI ($AWSCLI_PIN); apt-get install python3 python3-pip"
# Resolve shims (pyenv) to the real interpreter so the wrapper does not depend on the shell's setup.
python="$("$python" -c 'import sys; print(sys.executable)')"

say "installing $AWSCLI_PIN into $PYDIR"
log="$TOOLS/bench-awscli.log"
rm -rf "$PYDIR.new"
if ! "$python" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
  --no-input --target "$PYDIR.new" "$AWSCLI_PIN" >"$log" 2>&1; then
  tail -n 30 "$log" | sed 's/^/  | /' >&2
  die "pip install $AWSCLI_PIN failed (log: $log)"
fi
rm -rf "$PYDIR"
mv "$PYDIR.new" "$PYDIR"

cat >"$BIN/aws" <<EOF
#!/bin/sh
# Written by scripts/bootstrap-bench.sh: the pinned $AWSCLI_PIN in $PYDIR.
PYTHONPATH="$PYDIR" PYTHONNOUSERSITE=1 exec "$python" -m awscli "\$@"
EOF
chmod 755 "$BIN/aws"
"$BIN/aws" --version >/dev/null 2>&1 || die "the installed AWS CLI does not run; see $log"
printf '%s' "$AWSCLI_PIN" >"$stamp"
say "aws: $("$BIN/aws" --version 2>&1)"
