#!/usr/bin/env bash
# Fetch the real datasets from Debian packages (`make data`): Fashion-MNIST's four IDX files
# (dataset-fashion-mnist) and the Python docs as text (python3.11-doc).
#   as root:      apt-get install -y PACKAGE        (files land in /usr/share/...)
#   otherwise:    apt-get download PACKAGE; dpkg-deb -x into ${XDG_CACHE_HOME:-~/.cache}/backupsgd/data/<dataset>
# Idempotent: a dataset whose files are already in either place is skipped. Exit status 1, with one message
# naming the missing files and where to put them, when neither way works.
set -u

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/backupsgd/data"
# dataset | package | directory the package installs into | files (space-separated)
DATASETS=(
  "fashion-mnist|dataset-fashion-mnist|/usr/share/datasets/fashion-mnist|train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"
  "pydocs|python3.11-doc|/usr/share/info|python3.11.info.gz"
)

have_all() {  # have_all DIR FILE...: every file is in DIR
  local dir=$1; shift
  for f in "$@"; do [ -f "$dir/$f" ] || return 1; done
}

apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1" >/dev/null 2>&1
}

install_as_root() {  # install_as_root PACKAGE: apt-get install; on failure (unknown package, stale lists) update once
  local pkg=$1
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
  echo "[data] apt-get install -y $pkg"
  apt_install "$pkg" && return 0
  echo "[data] apt-get update, then apt-get install -y $pkg again"
  apt-get update -qq >/dev/null 2>&1 && apt_install "$pkg"
}

unpack_into_cache() {  # unpack_into_cache NAME PACKAGE SYSDIR FILE...: the files into $CACHE/NAME, no root
  local name=$1 pkg=$2 sysdir=$3; shift 3
  command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || return 1
  local tmp
  tmp=$(mktemp -d) || return 1
  echo "[data] apt-get download $pkg; dpkg-deb -x into $CACHE/$name"
  if (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null 2>&1) && dpkg-deb -x "$tmp"/*.deb "$tmp/root"; then
    mkdir -p "$CACHE/$name"
    for f in "$@"; do cp "$tmp/root$sysdir/$f" "$CACHE/$name/" || { rm -rf "$tmp"; return 1; }; done
    rm -rf "$tmp"
    return 0
  fi
  rm -rf "$tmp"
  return 1
}

failed=0
for entry in "${DATASETS[@]}"; do
  IFS='|' read -r name pkg sysdir files <<<"$entry"
  read -r -a list <<<"$files"
  if have_all "$sysdir" "${list[@]}" || have_all "$CACHE/$name" "${list[@]}"; then
    continue
  fi
  if install_as_root "$pkg" && have_all "$sysdir" "${list[@]}"; then
    continue
  fi
  if unpack_into_cache "$name" "$pkg" "$sysdir" "${list[@]}" && have_all "$CACHE/$name" "${list[@]}"; then
    continue
  fi
  echo "[data] could not fetch $name (Debian package $pkg): put ${list[*]} in $sysdir or $CACHE/$name," \
       "or pass --data-dir DIR holding them" >&2
  failed=1
done
exit $failed
