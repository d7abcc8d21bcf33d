#!/usr/bin/env bash
# The Dockerfile (no Docker engine runs here, so it is checked piece by
# piece): its build stage installs only packages scripts/setup installs
# (which CI builds with); `cmake --install` puts the three programs the chart
# runs in bin/; every library they link (DT_NEEDED) comes from a package its
# runtime stage installs; the installed programs start; its user is numeric
# and not root, as the chart's runAsNonRoot requires.
source "$(dirname "$0")/../lib.sh"

DF=$E2E_SRC/Dockerfile
# packages MARKER: the apt-get install list under "# llmgw:MARKER" in the Dockerfile.
packages() {
    awk -v m="# llmgw:$1" '$0 == m {on = 1; next} on && /apt-get install/ {grab = 1}
        grab {for (i = 1; i <= NF; i++) if ($i ~ /^[a-z0-9][a-z0-9.+-]*$/ && $i != "apt-get" && $i != "install") print $i}
        grab && !/\\$/ {exit}' "$DF" | grep -vx -e '&&' -e rm | sort -u
}
build_pkgs=$(packages build-packages)
runtime_pkgs=$(packages runtime-packages)
expect_true "the build stage names packages ($(wc -w <<<"$build_pkgs"))" test "$(wc -w <<<"$build_pkgs")" -ge 5
expect_true "the runtime stage names packages ($(wc -w <<<"$runtime_pkgs"))" test "$(wc -w <<<"$runtime_pkgs")" -ge 5
setup_pkgs=$(sed -n '/^PKGS=(/,/^)/p' "$E2E_SRC/scripts/setup" | tr ' ' '\n' | grep -E '^[a-z0-9][a-z0-9.+-]*$' | sort -u)
expect_eq "the build stage installs only what scripts/setup installs (and CI builds with)" \
    "$(comm -23 <(grep -vx ca-certificates <<<"$build_pkgs") <(echo "$setup_pkgs") | tr '\n' ' ')" ""

DEST=$E2E_DIR/image
DESTDIR=$DEST cmake --install "$E2E_BUILD" --prefix /usr/local >"$E2E_DIR/install.log" 2>&1
expect_eq "cmake --install puts the programs in bin/" "$(ls "$DEST/usr/local/bin" | tr '\n' ' ')" \
    "llmgw-controller llmgw-register llmgw-worker "
commands=$(grep -ho 'command: \[[a-z-]*\]' "$E2E_SRC"/charts/llmgw/templates/*.yaml | sort -u | sed 's/command: \[\(.*\)\]/\1/')
for c in $commands; do
    expect_true "the chart's command $c is installed" test -x "$DEST/usr/local/bin/$c"
done

# Each DT_NEEDED library, resolved as the loader does, to its Debian package.
# A sanitizer build also links its runtime, which the image's build lacks.
needed_pkgs=$(for b in "$DEST"/usr/local/bin/*; do
    ldd "$b" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' |
        while read -r soname path; do
            objdump -p "$b" | awk '$1 == "NEEDED" {print $2}' | grep -qx "$soname" || continue
            real=$(realpath "$path")
            # Debian 12 merges /lib into /usr/lib; dpkg knows the path it shipped.
            { dpkg -S "$real" || dpkg -S "${real#/usr}"; } 2>/dev/null | cut -d: -f1 | grep . ||
                echo "unpackaged:$soname"
        done
done | grep -vE '^(libasan|libubsan|libclang-rt)' | sort -u)
expect_true "the libraries resolve to packages ($(wc -w <<<"$needed_pkgs"))" test "$(wc -w <<<"$needed_pkgs")" -ge 5
expect_eq "every linked library comes from a runtime-stage package (or libc6, libgcc-s1: in every Debian image)" \
    "$(comm -23 <(echo "$needed_pkgs") <(printf '%s\nlibc6\nlibgcc-s1\n' "$runtime_pkgs" | sort -u) | tr '\n' ' ')" ""
expect_eq "and the runtime stage installs nothing they do not link" \
    "$(comm -13 <(echo "$needed_pkgs") <(grep -vx ca-certificates <<<"$runtime_pkgs") | tr '\n' ' ')" ""
for b in llmgw-controller llmgw-worker llmgw-register; do
    expect_match "installed $b starts (--version)" "$("$DEST/usr/local/bin/$b" --version 2>&1)" '0\.[0-9]+\.[0-9]+'
done
expect_match "the image runs as a numeric non-root user" "$(grep '^USER ' "$DF")" '^USER [1-9][0-9]*:[1-9][0-9]*$'
done_case
