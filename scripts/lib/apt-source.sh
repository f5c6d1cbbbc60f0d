# Sourced by build scripts: download a Debian source package that the
# package registry really serves.
#
#   apt_source_download PKG DIR LOG
#
# `apt-get source PKG` picks the newest version apt knows of, and the registry
# this project runs against lists bookworm-security source packages whose
# files answer 404. So try every version `apt-cache showsrc PKG` lists,
# newest first, and keep the first that downloads. Prints the version used on
# stdout; logs each attempt to stderr; on failure prints each attempt's last
# output and returns 1. Needs a deb-src entry (apt_source_ensure_deb_src).
apt_source_download() {
  local pkg=$1 dir=$2 log=$3 v versions=() tried=()
  mapfile -t versions < <(apt-cache showsrc "$pkg" 2>/dev/null |
    sed -n "/^Package: $pkg\$/,/^\$/s/^Version: //p" | sort -uVr)
  if ((${#versions[@]} == 0)); then
    printf 'apt-source: apt-cache showsrc %s lists no version (deb-src entry? apt-get update?)\n' "$pkg" >&2
    return 1
  fi
  # As root, apt hands downloads to user _apt, who may not enter $dir.
  local sandbox=()
  [ "$(id -u)" -eq 0 ] && sandbox=(-o APT::Sandbox::User=root)
  : >"$log"
  for v in "${versions[@]}"; do
    printf 'apt-source: trying %s=%s\n' "$pkg" "$v" >&2
    printf '$ apt-get source --download-only %s=%s\n' "$pkg" "$v" >>"$log"
    if (cd "$dir" && apt-get source --download-only -q "${sandbox[@]}" "$pkg=$v") >>"$log" 2>&1; then
      printf 'apt-source: using %s=%s\n' "$pkg" "$v" >&2
      printf '%s\n' "$v"
      return 0
    fi
    tried+=("$v")
    # A failed attempt may leave partial files of that version behind.
    rm -f "$dir/${pkg}_${v#*:}".* 2>/dev/null || true
  done
  printf 'apt-source: no version of %s downloads (tried %s); output:\n' "$pkg" "${tried[*]}" >&2
  tail -n 30 "$log" >&2
  return 1
}

# Adds a deb-src twin of /etc/apt/sources.list.d/debian.sources if no
# deb-src entry exists, then refreshes the lists.
apt_source_ensure_deb_src() {
  if grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    return 0
  fi
  local main=/etc/apt/sources.list.d/debian.sources sudo=""
  if [ ! -f "$main" ]; then
    printf 'apt-source: no deb-src entry and no %s to derive one from\n' "$main" >&2
    return 1
  fi
  printf 'apt-source: adding a deb-src entry (same URIs/Suites/Components/Signed-By as %s)\n' "$main" >&2
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  sed 's/^Types:.*/Types: deb-src/' "$main" | $sudo tee /etc/apt/sources.list.d/dsvmi-deb-src.sources >/dev/null
  $sudo apt-get update -qq || { printf 'apt-source: apt-get update failed\n' >&2; return 1; }
}
