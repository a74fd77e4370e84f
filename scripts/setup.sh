#!/usr/bin/env bash
# Installs what Vigil needs on a fresh Debian 12 machine; quick and silent when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(prometheus prometheus-node-exporter prometheus-alertmanager mtail victoria-metrics
              stress-ng iproute2 iptables e2fsprogs util-linux procps)
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    # The Debian packages ship systemd units that would bind the standard ports; the stack runs its own copies.
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    for svc in prometheus prometheus-node-exporter prometheus-alertmanager mtail victoria-metrics; do
        $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
    done
fi

stamp="$VENV/.vigil-installed"
if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
fi
if [ ! -f "$stamp" ] || [ requirements.lock -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: installing pinned Python dependencies (requirements.lock)"
    "$VENV/bin/pip" install -q -r requirements.lock
    "$VENV/bin/pip" install -q --no-deps -e .
    touch "$stamp"
fi
