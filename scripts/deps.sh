#!/usr/bin/env bash
# Installs what mlstage needs on Debian (build, run, tests), skipping what is there.
#   scripts/deps.sh           build and run dependencies (the demo)
#   scripts/deps.sh --tests   also what the test suite needs (node tools, clang-format, python3-yaml
#                             for the pipeline replay)
set -euo pipefail

packages=(build-essential cmake pkg-config git ca-certificates curl
          libyaml-dev libjson-c-dev libcurl4-openssl-dev libgit2-dev libssl-dev libcunit1-dev
          python3 python3-sklearn python3-numpy)
if [[ "${1:-}" == "--tests" ]]; then
  packages+=(nodejs npm clang-format python3-yaml)
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 &&
    packages=("${packages[@]/nodejs}") && packages=("${packages[@]/npm}")
fi

missing=()
for p in "${packages[@]}"; do
  [[ -z "$p" ]] && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "==> installing Debian packages: ${missing[*]}" >&2
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
