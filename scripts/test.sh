#!/usr/bin/env bash
# The project's test command: installs the third-party Kafka clients the interop tests
# drive (idempotent, quiet), then runs `cargo test --workspace "$@"`.
#
#   kcat                         Debian apt package (librdkafka 2.0.2 on Debian 12)
#   systemd-analyze              Debian apt package systemd (verifies systemd/*.service)
#   chromium                     Debian apt package (renders the status page headless)
#   confluent-kafka, kafka-python  pinned, from PyPI, into .venv/ in the repo
#
# The tests find the Python through KMIRROR_PYTHON, exported here.
# Examples:  scripts/test.sh
#            scripts/test.sh -p kmirror-broker --test interop -- --nocapture
set -euo pipefail

CONFLUENT_KAFKA_VERSION=2.16.1
KAFKA_PYTHON_VERSION=3.0.12
# OpenTelemetry's protobuf definitions: tests/otlp.rs decodes the daemon's OTLP pushes.
OTEL_PROTO_VERSION=1.45.2

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD

say() { printf 'test.sh: %s\n' "$*" >&2; }
die() {
    say "ERROR: $*"
    exit 1
}

# --- kcat -------------------------------------------------------------------------------
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 && SUDO=(sudo)
fi
APT_UPDATED=0
# apt-get install "$@", quietly; returns non-zero (with a message) when it cannot.
apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        say "apt-get not found: cannot install $*"
        return 1
    fi
    if [ "$(id -u)" -ne 0 ] && [ ${#SUDO[@]} -eq 0 ]; then
        say "not root and no sudo: cannot install $*"
        return 1
    fi
    if [ "$APT_UPDATED" -eq 0 ]; then
        say "apt-get update"
        "${SUDO[@]}" apt-get update -qq >/dev/null || {
            say "apt-get update failed"
            return 1
        }
        APT_UPDATED=1
    fi
    say "apt-get install $*"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || {
        say "apt-get install $* failed"
        return 1
    }
}

if ! command -v kcat >/dev/null 2>&1; then
    apt_install kcat || die "kcat is missing and could not be installed (the interop tests need it)"
    command -v kcat >/dev/null 2>&1 || die "kcat still not on PATH after installing it"
fi

# --- chromium (tests/status_page.rs renders the status page headless) --------------------
if ! command -v chromium >/dev/null 2>&1; then
    apt_install chromium || die "chromium is missing and could not be installed (tests/status_page.rs needs it)"
fi

# --- systemd-analyze (tests/systemd_units.rs verifies the unit files) ------------------
if ! command -v systemd-analyze >/dev/null 2>&1; then
    apt_install systemd || die "systemd-analyze is missing and could not be installed (tests/systemd_units.rs needs it)"
fi

# --- openssl (tests/tls.rs makes throw-away certificates with scripts/gen-certs.sh) ------
if ! command -v openssl >/dev/null 2>&1; then
    apt_install openssl || die "openssl is missing and could not be installed (scripts/gen-certs.sh needs it)"
fi

# --- Python clients ---------------------------------------------------------------------
command -v python3 >/dev/null 2>&1 || die "python3 not found"
PIP_PKGS=("confluent-kafka==$CONFLUENT_KAFKA_VERSION" "kafka-python==$KAFKA_PYTHON_VERSION"
    "opentelemetry-proto==$OTEL_PROTO_VERSION")
PIP_FLAGS=(-q --disable-pip-version-check --no-input)
# Prints nothing and succeeds when $1 already has exactly the pinned versions.
have_clients() {
    "$1" - "$CONFLUENT_KAFKA_VERSION" "$KAFKA_PYTHON_VERSION" "$OTEL_PROTO_VERSION" <<'EOF' >/dev/null 2>&1
import sys
from importlib.metadata import version
want = {"confluent-kafka": sys.argv[1], "kafka-python": sys.argv[2],
        "opentelemetry-proto": sys.argv[3]}
sys.exit(0 if all(version(p) == v for p, v in want.items()) else 1)
EOF
}

VENV=$REPO/.venv
make_venv() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -m pip --version >/dev/null 2>&1 && return 0
    rm -rf "$VENV"
    python3 -m venv "$VENV" >/dev/null 2>&1 && return 0
    rm -rf "$VENV"
    return 1
}

if make_venv; then
    PY=$VENV/bin/python
else
    # Debian splits ensurepip out of python3 into python3-venv / python3.X-venv.
    PYVER=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    say "python3 -m venv is unavailable; installing python$PYVER-venv"
    apt_install "python$PYVER-venv" || true
    if make_venv; then PY=$VENV/bin/python; else PY=; fi
fi

if [ -n "$PY" ]; then
    if ! have_clients "$PY"; then
        say "pip install ${PIP_PKGS[*]} into .venv/"
        "$PY" -m pip install "${PIP_FLAGS[@]}" "${PIP_PKGS[@]}" || die "pip install into .venv/ failed"
    fi
else
    say "no venv available; falling back to pip install --user"
    PY=$(command -v python3)
    if ! have_clients "$PY"; then
        # Debian's system Python refuses user installs without --break-system-packages
        # (PEP 668); only retry with it when that is the reason.
        if ! out=$("$PY" -m pip install "${PIP_FLAGS[@]}" --user "${PIP_PKGS[@]}" 2>&1); then
            if grep -q externally-managed <<<"$out"; then
                "$PY" -m pip install "${PIP_FLAGS[@]}" --user --break-system-packages "${PIP_PKGS[@]}" ||
                    die "pip install --user failed"
            else
                printf '%s\n' "$out" >&2
                die "pip install --user failed"
            fi
        fi
    fi
    PY=python3
fi
have_clients "$PY" || die "$PY still lacks confluent-kafka $CONFLUENT_KAFKA_VERSION / kafka-python $KAFKA_PYTHON_VERSION / opentelemetry-proto $OTEL_PROTO_VERSION"
export KMIRROR_PYTHON=$PY

say "clients: $(kcat -V 2>/dev/null | sed -n 's/^Version \([^ ]*\).*librdkafka \([^ ]*\).*/kcat \1 (librdkafka \2)/p'), confluent-kafka $CONFLUENT_KAFKA_VERSION, kafka-python $KAFKA_PYTHON_VERSION; KMIRROR_PYTHON=$KMIRROR_PYTHON"

# --- Tests ------------------------------------------------------------------------------
exec cargo test --workspace "$@"
