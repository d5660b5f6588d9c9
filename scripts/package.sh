#!/usr/bin/env bash
# make package: the .deb a shop installs (issue 11, item 8), then a check of it.
#
# Builds the front end, the `kaipiao` CLI (release) and the app (release, front end
# embedded) through Tauri's bundler, which writes target/release/bundle/deb/*.deb with
# the app, the CLI (bundle.linux.deb.files), the icons, the desktop entry and the
# font's licence. Then unpacks the .deb into a temporary directory (nothing is
# installed) and checks what a shop would get: both binaries answer --version from the
# unpacked tree, the desktop entry starts the app, the icons and the licence are there.
# Prints the sizes (docs/BENCHMARKS.md, "Install size").
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

echo "== front end"
(cd ui && npm run build >/dev/null)

echo "== kaipiao CLI, release"
cargo build --release -p kaipiao-cli

echo "== the app, release, bundled as .deb (Tauri's bundler)"
(cd src-tauri && ../ui/node_modules/.bin/tauri build --bundles deb)

DEB=$(ls -t target/release/bundle/deb/*.deb | head -1)
echo "== checking $DEB"
# Unpacked beside it (replaced each time): `make bench-release-app` runs the app from here.
DIR="$ROOT/target/release/bundle/deb/unpacked"
rm -rf "$DIR"
mkdir -p "$DIR"
dpkg-deb -x "$DEB" "$DIR"
fail() { echo "package check FAILED: $*" >&2; exit 1; }

app_version=$("$DIR/usr/bin/kaipiao-app" --version) || fail "kaipiao-app --version"
cli_version=$("$DIR/usr/bin/kaipiao" --version) || fail "kaipiao --version"
want=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
[[ "$app_version" == "kaipiao-app $want" ]] || fail "kaipiao-app --version said '$app_version', want $want"
[[ "$cli_version" == "kaipiao $want" ]] || fail "kaipiao --version said '$cli_version', want $want"
echo "  $app_version; $cli_version (both run from the unpacked tree)"

desktop=$(ls "$DIR"/usr/share/applications/*.desktop 2>/dev/null | head -1)
[[ -n "$desktop" ]] || fail "no desktop entry under /usr/share/applications"
grep -q '^Exec=kaipiao-app' "$desktop" || fail "the desktop entry does not start kaipiao-app: $(grep ^Exec= "$desktop")"
grep -q '^Icon=' "$desktop" || fail "the desktop entry names no icon"
icons=$(find "$DIR/usr/share/icons" -name '*.png' | wc -l)
[[ "$icons" -ge 2 ]] || fail "icons: $icons PNG files under /usr/share/icons"
[[ -s "$DIR/usr/share/doc/kaipiao/fonts/OFL.txt" ]] || fail "the invoice font's licence is missing"
dpkg-deb -f "$DEB" Depends | grep -q libwebkit2gtk-4.1 || fail "Depends lacks libwebkit2gtk-4.1"
echo "  desktop entry $(basename "$desktop"), $icons icons, the font licence, Depends: $(dpkg-deb -f "$DEB" Depends)"

deb_bytes=$(stat -c %s "$DEB")
installed_kib=$(dpkg-deb -f "$DEB" Installed-Size)
app_bytes=$(stat -c %s "$DIR/usr/bin/kaipiao-app")
cli_bytes=$(stat -c %s "$DIR/usr/bin/kaipiao")
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "== sizes"
echo "  .deb: $(mib "$deb_bytes") ($deb_bytes bytes)"
echo "  installed: $(mib $((installed_kib * 1024))) (Installed-Size $installed_kib KiB)"
echo "  kaipiao-app: $(mib "$app_bytes"); kaipiao: $(mib "$cli_bytes")"
echo "package OK: $DEB"
