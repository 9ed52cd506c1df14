#!/usr/bin/env bash
# Installs the Debian 12 packages listed in .ci/packages.txt (needs root or sudo).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
pkgs=$(grep -v '^\s*#' "$here/.ci/packages.txt" | sed '/^\s*$/d' | tr '\n' ' ')
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
  echo "install-deps: all packages present"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing$missing"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
