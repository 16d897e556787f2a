#!/usr/bin/env bash
# Builds the Dockerfile for real and runs the image it makes. The other tests in this folder
# read the Dockerfile; this one proves it: the build stage compiles, the runtime stage loads
# the binary, runs it as its non-root user and carries no compiler.
#
#   1. mmdebstrap makes a Debian bookworm minbase (what debian:bookworm and -slim are made
#      from) from Debian's own packages: no registry is reachable here;
#   2. buildah imports it and tags it as every `FROM` image the Dockerfile names;
#   3. `buildah bud --pull-never` builds the Dockerfile from the repository;
#   4. the image's binary answers --version (the project's version) and --help (its flags)
#      as uid 65532, its config says USER 65532:65532 and ENTRYPOINT the binary, and the
#      runtime image holds no compiler, no -dev package and no build tree.
#
# Needs root (CI runs as root): buildah runs with --storage-driver vfs --isolation chroot
# and keeps all its state in one temporary folder, removed at the end. The test runs in its
# own mount namespace with /var/lib behind an overlay on a tmpfs, because buildah as root
# writes /var/lib/containers/cache whatever its --root: the machine's container storage is
# never touched, and no mount outlives the test, even when it is killed.
#
# Usage: image_build_test.sh [--expect-version V] REPO_ROOT [CACHE_DIR]
#   --expect-version V  the version --version must print (default: project(... VERSION)
#                       in REPO_ROOT/CMakeLists.txt)
#   CACHE_DIR           keeps the mmdebstrap tarball between runs (a week at most)
# Exit: 0 passed, 1 failed, 77 skipped (not root, or buildah/mmdebstrap missing outside CI).
set -euo pipefail

expected_version=""
if [[ ${1:-} == --expect-version ]]; then
  expected_version=${2:?--expect-version needs a value}
  shift 2
fi
root=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
cache_dir=${2:-}
dockerfile=$root/Dockerfile
readonly image=localhost/hotplug-operator:image-test
readonly binary=/usr/local/bin/hotplug-operator
readonly runtime_user=65532:65532

skip() {
  echo "SKIPPED: $*"
  echo "  (image_build_test builds the Dockerfile with buildah; it needs root and Debian's"
  echo "   buildah and mmdebstrap, which scripts/setup installs)"
  exit 77
}
if [[ $(id -u) -ne 0 ]]; then
  skip "not root: buildah's chroot isolation with the vfs driver needs root"
fi
for tool in buildah mmdebstrap tar readelf dpkg-query python3 unshare; do
  if ! command -v "$tool" >/dev/null; then
    [[ ${CI:-} == true ]] && { echo "FAIL: $tool is not installed (CI must have it; run scripts/setup)"; exit 1; }
    skip "$tool is not installed"
  fi
done
[[ -r $dockerfile ]] || { echo "FAIL: cannot read $dockerfile"; exit 1; }
# Everything below runs in a mount namespace of its own (same PID: unshare execs).
if [[ ${HOTPLUG_IMAGE_TEST_IN_NAMESPACE:-} != "$$" ]]; then
  export HOTPLUG_IMAGE_TEST_IN_NAMESPACE=$$
  exec unshare --mount --propagation private -- bash "$0" \
    ${expected_version:+--expect-version "$expected_version"} "$root" ${cache_dir:+"$cache_dir"}
fi
if [[ -z $expected_version ]]; then
  expected_version=$(sed -nE 's/^[[:space:]]*project\([^)]*VERSION[[:space:]]+([0-9][0-9.]*).*/\1/p' \
                     "$root/CMakeLists.txt" | head -n1)
  [[ -n $expected_version ]] || { echo "FAIL: no project(... VERSION x.y.z) in $root/CMakeLists.txt"; exit 1; }
fi

# ---- state: one folder for buildah's store, run root, temp files and configuration
state_parent=${TMPDIR:-/tmp}
# A run killed by ctest's timeout (SIGKILL) can not clean up: remove what such runs left.
remove_state() {  # remove_state DIR: unmount what is still mounted below DIR, then delete it
  local dir=$1 mount_point
  # Deepest first; chroot isolation bind-mounts /dev, /proc and /sys into a rootfs.
  while read -r mount_point; do
    umount -l "$mount_point" 2>/dev/null || true
  done < <(awk -v dir="$dir/" 'index($5, dir) == 1 {print $5}' /proc/self/mountinfo | sort -r)
  # --one-file-system: should a bind mount of the host survive, never descend into it.
  rm -rf --one-file-system "$dir"
}
for stale in "$state_parent"/hotplug-image-test.*; do
  [[ -d $stale && -r $stale/pid ]] || continue
  kill -0 "$(cat "$stale/pid")" 2>/dev/null && continue
  echo "removing $stale (left by a run that was killed)"
  remove_state "$stale"
done

state=$(mktemp -d "$state_parent/hotplug-image-test.XXXXXX")
echo $$ >"$state/pid"
# /var/lib as the machine has it, with every write kept in this namespace's tmpfs.
mkdir "$state/var-lib"
if ! mount -t tmpfs -o size=64m,mode=0700 hotplug-image-test "$state/var-lib" ||
   ! mkdir "$state/var-lib/upper" "$state/var-lib/work" ||
   ! mount -t overlay hotplug-image-test \
       -o "lowerdir=/var/lib,upperdir=$state/var-lib/upper,workdir=$state/var-lib/work" /var/lib; then
  umount "$state/var-lib" 2>/dev/null || true
  rm -rf --one-file-system "$state"
  echo "FAIL: cannot put an overlay over /var/lib in a private mount namespace (overlayfs"
  echo "      and tmpfs needed), so buildah would write the machine's /var/lib/containers"
  exit 1
fi
bud_log=${cache_dir:-$state}/image_build_test.bud.log
partial_dir=""
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  [[ -n $partial_dir ]] && rm -rf "$partial_dir"
  buildah_cmd umount --all >/dev/null 2>&1 || true
  umount -l /var/lib 2>/dev/null || true
  remove_state "$state"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$state/root" "$state/runroot" "$state/tmp"
cat >"$state/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$state/root"
runroot = "$state/runroot"
EOF
# Only local images are used (--pull-never): a short name resolves to docker.io, as Docker's.
cat >"$state/registries.conf" <<'EOF'
unqualified-search-registries = ["docker.io"]
short-name-mode = "permissive"
EOF
cat >"$state/policy.json" <<'EOF'
{"default": [{"type": "reject"}], "transports": {"containers-storage": {"": [{"type": "insecureAcceptAnything"}]}}}
EOF
export CONTAINERS_STORAGE_CONF=$state/storage.conf
export CONTAINERS_REGISTRIES_CONF=$state/registries.conf
export BUILDAH_ISOLATION=chroot
export TMPDIR=$state/tmp
buildah_cmd() {
  buildah --root "$state/root" --runroot "$state/runroot" --storage-driver vfs "$@"
}

failures=0
passes=0
check() {  # check DESCRIPTION COMMAND...: run COMMAND, count and print the outcome
  local description=$1
  shift
  if "$@"; then
    echo "  ok    $description"
    passes=$((passes + 1))
  else
    echo "  FAIL  $description"
    failures=$((failures + 1))
  fi
}
now_ms() { date +%s%3N; }
declare -a timings=()
phase_start=0
begin_phase() { phase_start=$(now_ms); echo "---- $1"; }
end_phase() {  # end_phase NAME
  local seconds
  seconds=$(awk -v ms=$(($(now_ms) - phase_start)) 'BEGIN {printf "%.1f", ms / 1000}')
  timings+=("$(printf '%-10s %6s s' "$1" "$seconds")")
  echo "     $1: $seconds s"
}

# ---- 1. a Debian bookworm minbase from Debian's mirror
# The machine's apt mirror; these lines become the base's /etc/apt/sources.list, which the
# Dockerfile's `apt-get update` reads.
mirrors=(
  "deb http://deb.debian.org/debian bookworm main"
  "deb http://deb.debian.org/debian bookworm-updates main"
  "deb http://deb.debian.org/debian-security bookworm-security main"
)
mmdebstrap_args=(--variant=minbase --aptopt='Acquire::Retries "3"' bookworm)
cache_key=$(printf '%s\n' "${mmdebstrap_args[@]}" "${mirrors[@]}" | sha256sum | cut -c1-12)
begin_phase mmdebstrap
base_tar=""
if [[ -n $cache_dir ]]; then
  mkdir -p "$cache_dir"
  base_tar=$cache_dir/debian-bookworm-minbase-$cache_key.tar
  # Older than a week: made again, so security updates reach the base.
  if [[ -f $base_tar ]] && [[ -n $(find "$base_tar" -mmin -10080) ]] &&
     tar -tf "$base_tar" ./etc/os-release >/dev/null 2>&1; then
    echo "     using the cached $base_tar"
  else
    rm -f "$base_tar"
  fi
else
  base_tar=$state/debian-bookworm-minbase.tar
fi
if [[ ! -f $base_tar ]]; then
  # Written beside, then renamed: a run killed half-way never leaves a truncated cache.
  # (mmdebstrap tells the format from the name's .tar, and wants no file there yet.)
  partial_dir=$(mktemp -d "$(dirname "$base_tar")/.minbase-partial.XXXXXX")
  if ! mmdebstrap --quiet "${mmdebstrap_args[@]}" "$partial_dir/base.tar" "${mirrors[@]}"; then
    rm -rf "$partial_dir"
    echo "FAIL: mmdebstrap could not make a bookworm base from deb.debian.org"
    exit 1
  fi
  mv -f "$partial_dir/base.tar" "$base_tar"
  rmdir "$partial_dir"
  partial_dir=""
fi
end_phase mmdebstrap

# ---- 2. import it as every FROM image
begin_phase import
# FROM NAME [AS STAGE]; a NAME that is an earlier stage is not an image.
mapfile -t from_images < <(awk '
  toupper($1) == "FROM" {
    name = $2
    for (i = 2; i <= NF; i++) if ($i ~ /^--/) { name = $(i + 1) } else { name = $i; break }
    if (!(tolower(name) in stages) && name != "scratch") print name
    for (i = 2; i < NF; i++) if (tolower($i) == "as") stages[tolower($(i + 1))] = 1
  }' "$dockerfile" | sort -u)
[[ ${#from_images[@]} -gt 0 ]] || { echo "FAIL: no FROM image in $dockerfile"; exit 1; }
for name in "${from_images[@]}"; do
  if [[ ! $name =~ ^(docker\.io/)?(library/)?debian:bookworm(-slim)?$ ]]; then
    echo "FAIL: FROM $name: this test can only provide debian:bookworm and debian:bookworm-slim"
    echo "      (from mmdebstrap); teach it the new base, or keep the Dockerfile on bookworm"
    exit 1
  fi
done
container=$(buildah_cmd from --signature-policy "$state/policy.json" scratch)
mount_point=$(buildah_cmd mount "$container")
tar -C "$mount_point" --numeric-owner --xattrs --xattrs-include='*' -xpf "$base_tar"
buildah_cmd umount "$container" >/dev/null
buildah_cmd config --cmd '["bash"]' "$container"
base_image=docker.io/library/debian:bookworm-minbase-image-test
buildah_cmd commit --quiet --rm --signature-policy "$state/policy.json" "$container" "$base_image" >/dev/null
for name in "${from_images[@]}"; do
  tag=${name#docker.io/}
  tag=docker.io/library/${tag#library/}
  buildah_cmd tag "$base_image" "$tag"
  echo "     $name -> $tag (mmdebstrap bookworm minbase)"
done
end_phase import

# ---- 3. the real build
begin_phase bud
echo "     buildah bud $dockerfile (log: $bud_log)"
if ! buildah_cmd bud --pull-never --isolation chroot --layers=false \
       --signature-policy "$state/policy.json" \
       -f "$dockerfile" -t "$image" "$root" >"$bud_log" 2>&1; then
  echo "FAIL: buildah bud failed; the end of its log:"
  tail -n 60 "$bud_log" | sed 's/^/  | /'
  exit 1
fi
end_phase bud

# ---- 4. the image
begin_phase run
# The OCI config, read as JSON: ENTRYPOINT's exec form, USER and EXPOSE, one a line.
{
  read -r entrypoint
  read -r user
  read -r ports
} < <(buildah_cmd inspect --type image "$image" | python3 -c '
import json, sys
config = json.load(sys.stdin)["OCIv1"]["config"]
print(json.dumps(config.get("Entrypoint")))
print(config.get("User", ""))
print(" ".join(sorted(config.get("ExposedPorts", {}))))')
echo "     image config: User=$user Entrypoint=$entrypoint ExposedPorts=$ports"
check "ENTRYPOINT is [\"$binary\"] (is $entrypoint)" test "$entrypoint" = "[\"$binary\"]"
check "USER is $runtime_user (is $user)" test "$user" = "$runtime_user"
check "EXPOSE 8080 8081 (is $ports)" test "$ports" = "8080/tcp 8081/tcp"

container=$(buildah_cmd from --pull-never --signature-policy "$state/policy.json" "$image")
run_output=""
run_status=0
run_in_image() {  # run_in_image [buildah run options] -- COMMAND...: sets run_output, run_status
  run_status=0
  run_output=$(buildah_cmd run "$@" 2>"$state/run.stderr") || run_status=$?
  if [[ $run_status -ne 0 ]]; then
    echo "     buildah run ${*: -2}: exit $run_status, stderr:"
    sed 's/^/  | /' "$state/run.stderr"
  fi
}
# No --user: what the image's USER gives every process, the binary included (sh execs it).
run_in_image "$container" -- sh -c "id -u; id -g; exec $binary --version"
echo "     as the image's user: $(tr '\n' ' ' <<<"$run_output")"
mapfile -t lines <<<"$run_output"
check "the image's processes run as uid 65532 (id -u: ${lines[0]:-})" test "${lines[0]:-}" = 65532
check "... and gid 65532 (id -g: ${lines[1]:-})" test "${lines[1]:-}" = 65532
check "--version as the image's user exits 0 (exit $run_status)" test "$run_status" -eq 0
check "--version prints \"hotplug-operator $expected_version\" (printed \"${lines[2]:-}\")" \
  test "${lines[2]:-}" = "hotplug-operator $expected_version"

run_in_image --user "$runtime_user" "$container" -- "$binary" --version
check "--version with --user $runtime_user exits 0 and prints the version" \
  test "$run_status" -eq 0 -a "$run_output" = "hotplug-operator $expected_version"

run_in_image --user "$runtime_user" "$container" -- "$binary" --help
help_status=$run_status
help_text=$run_output
check "--help exits 0 (exit $help_status)" test "$help_status" -eq 0
for flag in --kubeconfig --standalone --metrics-bind-address --health-probe-bind-address \
            --libvirt-uri --version; do
  check "--help lists $flag" grep -qe "^ *$flag\b" <<<"$help_text"
done
# The image ships the real binary only: no fake hypervisor, no --fake-* flags.
check "--help names no fake (hotplug-operator-testing is never shipped)" \
  bash -c '! grep -qi fake' <<<"$help_text"
if [[ $help_status -ne 0 || $failures -gt 0 ]]; then
  echo "     --help printed:"
  sed 's/^/  | /' <<<"$help_text" | head -n 40
fi

# A bad flag exits 2 (the documented contract), so the exit codes above mean something.
run_in_image --user "$runtime_user" "$container" -- "$binary" --no-such-flag
check "an unknown flag exits 2 (exit $run_status)" test "$run_status" -eq 2

# The runtime stage, read from the host: no toolchain, no -dev package, no build tree.
mount_point=$(buildah_cmd mount "$container")
mapfile -t installed < <(dpkg-query --admindir="$mount_point/var/lib/dpkg" -W \
                           -f='${db:Status-Status} ${Package}\n' | awk '$1 == "installed" {print $2}')
check "the runtime image has a dpkg database (${#installed[@]} packages)" test "${#installed[@]}" -gt 50
build_packages=$(printf '%s\n' "${installed[@]}" |
                 grep -E '^(gcc|g\+\+|cpp|clang|binutils|cmake|ninja-build|make|pkgconf|pkg-config)(-[0-9]+)?$|^(binutils|cmake|clang|llvm)-|-dev$' |
                 tr '\n' ' ' || true)
check "no compiler, build tool or -dev package installed (found: ${build_packages:-none})" \
  test -z "$build_packages"
toolchain_files=""
for path in usr/bin/gcc usr/bin/g++ usr/bin/cc usr/bin/c++ usr/bin/cpp usr/bin/cmake \
            usr/bin/ninja usr/bin/ld usr/bin/as usr/bin/make usr/lib/gcc usr/include/c++; do
  [[ -e $mount_point/$path || -L $mount_point/$path ]] && toolchain_files+="/$path "
done
check "no compiler files (found: ${toolchain_files:-none})" test -z "$toolchain_files"
check "no build tree (/src, /build, /out) in the runtime image" \
  test ! -e "$mount_point/src" -a ! -e "$mount_point/build" -a ! -e "$mount_point/out"
local_bin=$(cd "$mount_point/usr/local/bin" && ls -A | tr '\n' ' ')
check "/usr/local/bin holds only hotplug-operator (holds: $local_bin)" test "$local_bin" = "hotplug-operator "
check "the binary is stripped (no .debug_info section)" \
  bash -c "! readelf -S '$mount_point$binary' | grep -q '\.debug_info'"
check "the binary is owned by root, not writable by uid 65532" \
  test "$(stat -c '%u %a' "$mount_point$binary")" = "0 755"
buildah_cmd umount "$container" >/dev/null
end_phase run

buildah_cmd images "$image" | sed 's/^/     /'
echo "timings:"
printf '  %s\n' "${timings[@]}"
echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]]
