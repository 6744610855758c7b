#!/usr/bin/env bash
# scripts/run-main.sh BUILD: the main job (`make run`).
set -eu
build=${1:-build}
"$build/remat" info
