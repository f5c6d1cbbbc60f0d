#!/usr/bin/env bash
# Runs clang-tidy (the checks in .clang-tidy) over the project's C++ sources
# with the build's compile_commands.json; exits 1 on any finding.
#   scripts/clang_tidy.sh [BUILD_DIR] [FILE...]   (default: build, every .cc)
cd "$(dirname "$0")/.."
. scripts/lib/errexit.sh
BUILD=${1:-build}
shift || true
[ -f "$BUILD/compile_commands.json" ] || { echo "clang_tidy.sh: no $BUILD/compile_commands.json (configure with cmake first)" >&2; exit 2; }
TIDY=$(command -v clang-tidy-14 || command -v clang-tidy) || { echo "clang_tidy.sh: clang-tidy is not installed (apt-get install clang-tidy)" >&2; exit 2; }
if [ $# -eq 0 ]; then
  mapfile -t files < <(git ls-files 'engine/*.cc' 'ringbuf/*.cc' 'bitmap/*.cc')
else
  files=("$@")
fi
# One process per file, two at a time: the findings are printed per file.
printf '%s\n' "${files[@]}" | xargs -P 2 -n 1 "$TIDY" -p "$BUILD" --quiet
