# Sourced first by every build, install and test script: under `set -e` a
# failing command ends the script; the ERR trap says which command, on which
# line and with what status, so no step fails with a bare exit code. -E makes
# the trap fire inside functions and command substitutions too.
set -Eeuo pipefail
trap 'dsvmi_rc=$?; printf "%s: FAILED (exit %s) at line %s: %s\n" "${0##*/}" "$dsvmi_rc" "$LINENO" "$BASH_COMMAND" >&2' ERR
