#!/usr/bin/env bash
# scripts/install-deps.sh — install what kappa needs to build, test and demo
# on Debian 12.  Idempotent: installs only the packages that are missing.
# Needs root (or sudo) only when something is actually missing.
set -euo pipefail

PACKAGES=(
	build-essential pkg-config
	postgresql-15 postgresql-server-dev-15 postgresql-contrib
	librdkafka-dev libavro-dev kcat
	postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl
	libipc-run-perl
	postgresql-15-hll postgresql-15-tdigest
	clang-14 libclang-rt-14-dev
	python3-avro
)

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

echo "kappa: installing missing packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	else
		echo "kappa: need root to install ${missing[*]}" >&2
		exit 1
	fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# The Debian postgresql package would start a system cluster; kappa never
# uses it, so keep it from being created at all.
if [ ! -e /etc/postgresql-common/createcluster.d/kappa-no-main.conf ]; then
	$SUDO mkdir -p /etc/postgresql-common/createcluster.d
	echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.d/kappa-no-main.conf >/dev/null
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
