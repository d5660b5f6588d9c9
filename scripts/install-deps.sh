#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks for building and testing Kaipiao.
# Idempotent: installs only what is missing.
set -euo pipefail

missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo-nextest >/dev/null 2>&1 && ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

# The real-window tests drive the app through tauri-driver (it finds /usr/bin/WebKitWebDriver).
if ! command -v tauri-driver >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/tauri-driver" ]; then
  echo "installing tauri-driver"
  cargo install tauri-driver --locked
fi

# The front end's packages, exactly as locked.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -f "$ROOT/ui/package-lock.json" ] && [ ! -d "$ROOT/ui/node_modules" ]; then
  echo "installing the front end's npm packages"
  (cd "$ROOT/ui" && npm ci --no-audit --no-fund)
fi

# The independent export verifier (shared/tools/verify_export.py) needs these.
PY=${PYTHON:-python3}
# The mail tests' real SMTP server (tests/smtp_server.py) is aiosmtpd; the workbook tests'
# second XLSX reader (and writer of the official-layout fixtures) is openpyxl.
if ! "$PY" -c 'import rfc8785, cryptography, aiosmtpd, openpyxl' 2>/dev/null; then
  echo "installing Python packages: rfc8785 cryptography aiosmtpd openpyxl"
  "$PY" -m pip install --quiet --disable-pip-version-check rfc8785 cryptography aiosmtpd openpyxl
fi
