#!/usr/bin/env bash
# Builds the hearth image from scratch: nothing is pulled.
#
#   deploy/build-image.sh                  # static release binary -> hearth:latest
#   deploy/build-image.sh --s3s            # also hearth-s3s:latest (s3s-fs, for
#                                          # deploy/compose/docker-compose.s3s.yml)
#   deploy/build-image.sh --binary PATH    # an already built binary instead
#
# The default build links glibc statically (-C target-feature=+crt-static),
# so the image is one file on an empty base. A --binary that is dynamically
# linked (the tests' target/debug/hearth, which CI reuses for the chaos run)
# gets the shared libraries `ldd` names copied beside it instead.
set -euo pipefail
cd "$(dirname "$0")/.."

binary="" s3s=0 tag="hearth:latest" s3s_tag="hearth-s3s:latest"
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --s3s) s3s=1; shift ;;
    --tag) tag="$2"; shift 2 ;;
    --s3s-tag) s3s_tag="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "build-image.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

if [ -z "$binary" ]; then
  target=$(rustc -vV | sed -n 's/^host: //p')
  RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --release --locked --target "$target" -p hearth
  binary="target/$target/release/hearth"
fi
[ -x "$binary" ] || { echo "build-image.sh: no executable at $binary" >&2; exit 1; }

# Copies an executable into a root file system, with its shared libraries
# when it has any.
install_into() {
  local exe="$1" root="$2"
  mkdir -p "$root/usr/bin"
  # Debug info stays in target/; the image gets the stripped executable.
  strip -o "$root/usr/bin/$(basename "$exe")" "$exe" 2>/dev/null || cp -L "$exe" "$root/usr/bin/"
  if ldd "$exe" >/dev/null 2>&1; then
    ldd "$exe" | awk '/=> \// {print $3} /^[[:space:]]*\// {print $1}' | while read -r lib; do
      cp -L --parents "$lib" "$root/"
    done
  fi
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/hearth/rootfs/tmp" "$work/hearth/rootfs/data"
chmod 1777 "$work/hearth/rootfs/tmp"
chmod 0777 "$work/hearth/rootfs/data"
install_into "$binary" "$work/hearth/rootfs"
cp deploy/Dockerfile "$work/hearth/"
build() { # TAG DIR: docker build, its output shown only when it fails
  docker build -q -t "$1" "$2" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
  echo "built $1 ($(docker image inspect -f '{{.Size}}' "$1" | numfmt --to=iec))"
}
build "$tag" "$work/hearth"

if [ "$s3s" -eq 1 ]; then
  if ! command -v s3s-fs >/dev/null 2>&1; then
    echo "build-image.sh: installing s3s-fs 0.14.1 (crates.io, about 3 minutes)" >&2
    cargo install s3s-fs --version 0.14.1 --features binary --locked
  fi
  mkdir -p "$work/s3s/rootfs/data/hearth" "$work/s3s/rootfs/tmp"
  chmod 1777 "$work/s3s/rootfs/tmp"
  install_into "$(command -v s3s-fs)" "$work/s3s/rootfs"
  install_into "$binary" "$work/s3s/rootfs"
  cp deploy/s3s.Dockerfile "$work/s3s/Dockerfile"
  build "$s3s_tag" "$work/s3s"
fi
