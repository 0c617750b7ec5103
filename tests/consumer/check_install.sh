#!/usr/bin/env bash
# check_install.sh — the install_consumer test (registered by tests/consumer/CMakeLists.txt).
#
# Installs a configured and built xcat tree into a scratch prefix, then builds consumer.c
# against that installed copy, and runs it, in every way a user would:
#   1. find_package(xcat) + xcat::xcat         (CMake package; shared library when built)
#   2. find_package(xcat) + xcat::xcat_static  (CMake package; static library, when built)
#   3. cc $(pkg-config --cflags --libs xcat)   (shared library, when built)
#   4. cc $(pkg-config --static --cflags --libs xcat) against libxcat.a (when built)
# Each must print "xcat consumer OK"; the static ones must not depend on libxcat.so.
#
# Usage: check_install.sh --build-dir DIR --work-dir DIR [--libdir lib] [--cmake cmake]
#        [--generator G] [--cc cc] [--shared ON|OFF] [--static ON|OFF] [--sanitize LIST]
set -euo pipefail

build_dir=""
work_dir=""
libdir="lib"
cmake_bin="cmake"
generator=""
cc_bin="${CC:-cc}"
want_shared="ON"
want_static="ON"
sanitize=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --build-dir) build_dir="$2"; shift 2 ;;
        --work-dir) work_dir="$2"; shift 2 ;;
        --libdir) libdir="$2"; shift 2 ;;
        --cmake) cmake_bin="$2"; shift 2 ;;
        --generator) generator="$2"; shift 2 ;;
        --cc) cc_bin="$2"; shift 2 ;;
        --shared) want_shared="$2"; shift 2 ;;
        --static) want_static="$2"; shift 2 ;;
        --sanitize) sanitize="$2"; shift 2 ;;
        *) echo "check_install.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
if [[ -z "$build_dir" || -z "$work_dir" ]]; then
    echo "check_install.sh: --build-dir and --work-dir are required" >&2
    exit 2
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
consumer_c="$here/consumer.c"
is_on() { [[ "${1^^}" =~ ^(ON|1|TRUE|YES|Y)$ ]]; }

rm -rf "$work_dir"
mkdir -p "$work_dir"
prefix="$work_dir/prefix"
if [[ "$libdir" = /* ]]; then
    echo "check_install.sh: absolute CMAKE_INSTALL_LIBDIR ($libdir) cannot be relocated" >&2
    exit 1
fi
lib_path="$prefix/$libdir"

extra_cflags=()
if [[ -n "$sanitize" ]]; then
    extra_cflags=("-fsanitize=$sanitize" "-fno-omit-frame-pointer")
fi

fail() {
    echo "install_consumer: FAILED: $*" >&2
    exit 1
}

# Run a consumer binary; it must exit 0 and print the OK line.
run_consumer() {
    local label="$1"
    shift
    local out
    echo "--- run ($label): $*"
    if ! out="$("$@" 2>&1)"; then
        printf '%s\n' "$out"
        fail "$label: consumer exited with an error"
    fi
    printf '%s\n' "$out"
    grep -q '^xcat consumer OK' <<<"$out" || fail "$label: no 'xcat consumer OK' line"
}

# A static consumer must not need libxcat.so at run time.
check_not_needed_shared() {
    local label="$1" exe="$2"
    if command -v readelf >/dev/null 2>&1; then
        if readelf -d "$exe" | grep -q 'NEEDED.*libxcat\.so'; then
            fail "$label: $exe depends on libxcat.so, expected libxcat.a linked in"
        fi
    fi
}

echo "=== install $build_dir -> $prefix"
"$cmake_bin" --install "$build_dir" --prefix "$prefix"

for f in "$prefix/include/xcat.h" "$lib_path/cmake/xcat/xcatConfig.cmake" \
    "$lib_path/cmake/xcat/xcatConfigVersion.cmake" "$lib_path/cmake/xcat/xcatTargets.cmake" \
    "$lib_path/pkgconfig/xcat.pc"; do
    [[ -f "$f" ]] || fail "not installed: $f"
done
if is_on "$want_shared"; then
    compgen -G "$lib_path/libxcat.so*" >/dev/null || fail "not installed: $lib_path/libxcat.so"
fi
if is_on "$want_static"; then
    [[ -f "$lib_path/libxcat.a" ]] || fail "not installed: $lib_path/libxcat.a"
fi

passed=0

# The installed tools (XCAT_BUILD_TOOLS=ON) must find the installed library on their own.
if [[ -x "$prefix/bin/xcat-info" ]]; then
    echo "=== installed $prefix/bin/xcat-info (CPU backend, no LD_LIBRARY_PATH)"
    if ! env -u LD_LIBRARY_PATH XCAT_BACKEND=cpu "$prefix/bin/xcat-info"; then
        fail "installed xcat-info failed"
    fi
fi

# ---- CMake package ------------------------------------------------------------------------
cmake_consumer() {
    local label="$1" target="$2" dir="$work_dir/$1"
    echo "=== $label: find_package(xcat) + $target"
    local args=(-S "$here/project" -B "$dir"
        "-DCMAKE_PREFIX_PATH=$prefix"
        "-DCMAKE_C_COMPILER=$cc_bin"
        "-DCMAKE_BUILD_TYPE=Release"
        "-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF"
        "-DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF"
        "-DXCAT_CONSUMER_TARGET=$target")
    if [[ -n "$generator" ]]; then
        args+=(-G "$generator")
    fi
    if [[ ${#extra_cflags[@]} -gt 0 ]]; then
        args+=("-DCMAKE_C_FLAGS=${extra_cflags[*]}" "-DCMAKE_EXE_LINKER_FLAGS=${extra_cflags[*]}")
    fi
    "$cmake_bin" "${args[@]}"
    # It must have used the package just installed, not some other copy.
    local found
    found="$(sed -n 's/^xcat_DIR:PATH=//p' "$dir/CMakeCache.txt")"
    [[ "$found" -ef "$lib_path/cmake/xcat" ]] ||
        fail "$label: find_package(xcat) found '$found', expected '$lib_path/cmake/xcat'"
    "$cmake_bin" --build "$dir"
    local exe="$dir/xcat_consumer"
    [[ -x "$exe" ]] || fail "$label: $exe not built"
    if [[ "$target" = "xcat::xcat_static" ]]; then
        check_not_needed_shared "$label" "$exe"
    fi
    run_consumer "$label" "$exe"
    passed=$((passed + 1))
}

if is_on "$want_shared" || is_on "$want_static"; then
    cmake_consumer cmake-xcat xcat::xcat
fi
if is_on "$want_static"; then
    cmake_consumer cmake-xcat-static xcat::xcat_static
fi

# ---- pkg-config ---------------------------------------------------------------------------
command -v pkg-config >/dev/null 2>&1 || fail "pkg-config not found (run tools/install-deps.sh)"
export PKG_CONFIG_PATH="$lib_path/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
pc_version="$(pkg-config --modversion xcat)"
echo "=== pkg-config: xcat $pc_version from $(pkg-config --variable=pcfiledir xcat)"
[[ "$(pkg-config --variable=pcfiledir xcat)" -ef "$lib_path/pkgconfig" ]] ||
    fail "pkg-config found another xcat.pc"
[[ "$(pkg-config --variable=libdir xcat)" -ef "$lib_path" ]] ||
    fail "xcat.pc libdir is $(pkg-config --variable=libdir xcat), expected $lib_path"

warn_flags=(-std=c11 -Wall -Wextra -Werror)

if is_on "$want_shared"; then
    label="pkg-config-shared"
    echo "=== $label"
    read -r -a pc_flags <<<"$(pkg-config --cflags --libs xcat)"
    exe="$work_dir/consumer_pc_shared"
    (set -x; "$cc_bin" "${warn_flags[@]}" "${extra_cflags[@]}" "$consumer_c" -o "$exe" \
        "${pc_flags[@]}" -lm)
    LD_LIBRARY_PATH="$lib_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" run_consumer "$label" "$exe"
    passed=$((passed + 1))
fi

if is_on "$want_static"; then
    label="pkg-config-static"
    echo "=== $label"
    # `-lxcat` prefers libxcat.so when both are installed: point libdir at a directory that
    # holds only libxcat.a, as a static-only installation would.
    static_dir="$work_dir/static-libdir"
    mkdir -p "$static_dir"
    ln -sf "$lib_path/libxcat.a" "$static_dir/libxcat.a"
    read -r -a pc_flags <<<"$(pkg-config --static --define-variable=libdir="$static_dir" \
        --cflags --libs xcat)"
    exe="$work_dir/consumer_pc_static"
    (set -x; "$cc_bin" "${warn_flags[@]}" "${extra_cflags[@]}" "$consumer_c" -o "$exe" \
        "${pc_flags[@]}" -lm)
    check_not_needed_shared "$label" "$exe"
    run_consumer "$label" "$exe"
    passed=$((passed + 1))
fi

[[ $passed -gt 0 ]] || fail "no library was built (XCAT_BUILD_SHARED and XCAT_BUILD_STATIC off)"
echo "install_consumer: all $passed consumers OK"
