#!/usr/bin/env bash
# Builds the `picluster` Debian package with cargo-deb, for each architecture named:
#
#   deploy/package.sh                      # this machine's architecture
#   deploy/package.sh amd64 arm64 armhf    # a PC, for itself and both kinds of Pi
#
# The packages land in target/debian/picluster_<version>-1_<arch>.deb. Needs
# cargo-deb (`cargo install cargo-deb --locked`) and, for another architecture, its
# Rust target and cross gcc, as for any cross-build (see .cargo/config.toml):
#   apt-get install gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf
#   rustup target add aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf
#
# What goes in is listed under [package.metadata.deb] in picluster-client/Cargo.toml.
# Man pages and shell completions are generated from the programs' own command
# definitions by a build for this machine (they are the same for every architecture).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-deb >/dev/null 2>&1; then
    echo "package.sh: cargo-deb is missing: cargo install cargo-deb --locked" >&2
    exit 1
fi

native=$(dpkg --print-architecture 2>/dev/null || echo unknown)
archs=("$@")
if [ ${#archs[@]} -eq 0 ]; then
    archs=("$native")
fi

triple_of() {
    case "$1" in
        amd64) echo x86_64-unknown-linux-gnu ;;
        arm64) echo aarch64-unknown-linux-gnu ;;
        armhf) echo armv7-unknown-linux-gnueabihf ;;
        *)
            echo "package.sh: no package for architecture '$1': give amd64, arm64 or armhf" >&2
            return 1
            ;;
    esac
}
for arch in "${archs[@]}"; do
    triple_of "$arch" >/dev/null
done

build() { cargo build --locked --release -p picluster-client --features picluster-client/cli -p picluster-worker "$@"; }

# This machine's build: it writes the man pages and completions.
echo "== build for $native (man pages and completions come from it)"
build
# Under target/release/ because cargo-deb reads that prefix as "the build of the
# architecture being packaged"; the other architectures get a copy below.
assets=target/release/package
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/completions"
target/release/picluster manpages "$assets/man" >/dev/null
target/release/picluster-worker manpages "$assets/man" >/dev/null
gzip -9n "$assets"/man/*.1
for program in picluster picluster-worker; do
    "target/release/$program" completions bash >"$assets/completions/$program.bash"
    "target/release/$program" completions zsh >"$assets/completions/_$program"
    "target/release/$program" completions fish >"$assets/completions/$program.fish"
done

mkdir -p target/debian
for arch in "${archs[@]}"; do
    if [ "$arch" = "$native" ]; then
        cross=()
        bin_dir=target/release
    else
        triple=$(triple_of "$arch")
        echo "== build for $arch ($triple)"
        build --target "$triple"
        rm -rf "target/$triple/release/package"
        cp -r "$assets" "target/$triple/release/package"
        cross=(--target "$triple")
        bin_dir=target/$triple/release
    fi
    # The package declares libc6 (>= 2.34) (Cargo.toml); a binary that needs a newer
    # glibc would install where it cannot run.
    newest=$(objdump -T "$bin_dir/picluster" "$bin_dir/picluster-worker" \
        | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
    if [ "$(printf '%s\nGLIBC_2.34\n' "$newest" | sort -V | tail -1)" != GLIBC_2.34 ]; then
        echo "package.sh: the $arch binaries need $newest, newer than the libc6 (>= 2.34) the package declares" >&2
        exit 1
    fi
    echo "== package for $arch (newest glibc symbol: $newest)"
    # The release profile already strips the binaries (Cargo.toml), so cargo-deb
    # needs no strip tool for the other architectures.
    cargo deb --locked -p picluster-client --no-build --no-strip "${cross[@]}" \
        --output target/debian/
done
ls -l target/debian/*.deb
