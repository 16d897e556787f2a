#!/usr/bin/env bash
# Checks that the Dockerfile's runtime stage installs every shared library the operator
# binary loads. Docker can not run here, so this reads what the image would get instead:
#
#   1. ldd BINARY lists the shared libraries (a "not found" fails at once);
#   2. dpkg -S maps each library to the Debian package that ships it;
#   3. the runtime stage's `apt-get install` line, plus everything those packages depend on
#      (recursively, from the dpkg database) and what debian:bookworm-slim already holds
#      (Essential and Priority: required packages, apt, and their dependencies), is what
#      the image has;
#   4. any package from step 2 missing from step 3 is reported, and the test fails.
#
# Usage: runtime_libs_test.sh [--ignore-sanitizers] BINARY [DOCKERFILE]
#   --ignore-sanitizers: the binary is a sanitizer build; its libasan/libubsan (which no
#   release image carries) are left out, everything else is checked as usual.
set -euo pipefail

ignore_sanitizers=false
if [[ ${1:-} == --ignore-sanitizers ]]; then
  ignore_sanitizers=true
  shift
fi
binary=${1:?usage: runtime_libs_test.sh [--ignore-sanitizers] BINARY [DOCKERFILE]}
dockerfile=${2:-$(cd "$(dirname "$0")/../.." && pwd)/Dockerfile}

[[ -x $binary ]] || { echo "FAIL: $binary is not an executable file"; exit 1; }
[[ -r $dockerfile ]] || { echo "FAIL: cannot read $dockerfile"; exit 1; }
if ! command -v ldd >/dev/null || ! command -v dpkg-query >/dev/null; then
  echo "FAIL: needs ldd and dpkg (a Debian machine)"
  exit 1
fi

# ---- 1. libraries the binary loads
ldd_output=$(ldd "$binary" 2>&1) || { echo "FAIL: ldd $binary: $ldd_output"; exit 1; }
if grep -q 'not found' <<<"$ldd_output"; then
  echo "FAIL: unresolved libraries on this machine:"
  grep 'not found' <<<"$ldd_output"
  exit 1
fi
# "libx.so.1 => /path (0x...)" and the loader "/lib64/ld-linux-x86-64.so.2 (0x...)";
# linux-vdso has no file.
mapfile -t libraries < <(awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' \
                         <<<"$ldd_output" | sort -u)
[[ ${#libraries[@]} -gt 0 ]] || { echo "FAIL: ldd listed no libraries (static binary?)"; exit 1; }
if $ignore_sanitizers; then
  mapfile -t libraries < <(printf '%s\n' "${libraries[@]}" | grep -vE '/lib(a|ub|l|t|hwa)san\.so')
fi

# ---- 2. the package of each library
# With merged /usr, ldd may print /lib/... where dpkg recorded /usr/lib/... (or the
# reverse), and a symlink where dpkg recorded its target: ask dpkg about every spelling,
# in one call, and take the first that it knows.
candidates_of() {
  local path=$1 real
  real=$(readlink -f "$path")
  printf '%s\n' "$path" "/usr$path" "${path#/usr}" "$real" "/usr$real" "${real#/usr}"
}
declare -A owner_of_path=()
while IFS= read -r line; do
  [[ $line == diversion* || $line != *': '* ]] && continue
  owners=${line%%: *}
  owner_of_path[${line#*: }]=${owners%%[:,]*}
done < <(for library in "${libraries[@]}"; do candidates_of "$library"; done |
         sort -u | xargs dpkg-query -S 2>/dev/null || true)

declare -A package_for_library=()
unowned=()
for library in "${libraries[@]}"; do
  package=""
  while IFS= read -r candidate; do
    if [[ -n ${owner_of_path[$candidate]:-} ]]; then package=${owner_of_path[$candidate]}; break; fi
  done < <(candidates_of "$library")
  if [[ -n $package ]]; then
    package_for_library[$library]=$package
  else
    unowned+=("$library")
  fi
done
if [[ ${#unowned[@]} -gt 0 ]]; then
  echo "FAIL: libraries no Debian package owns (built by hand? they can not be apt-installed):"
  printf '  %s\n' "${unowned[@]}"
  exit 1
fi

# ---- 3. what the runtime stage installs
# shellcheck source=dockerfile_lib.sh
source "$(dirname "$0")/dockerfile_lib.sh"
mapfile -t runtime_packages < <(stage_packages "$dockerfile" runtime)
if [[ ${#runtime_packages[@]} -eq 0 ]]; then
  echo "FAIL: found no apt-get install in the runtime stage of $dockerfile"
  exit 1
fi
load_dpkg_database

declare -A in_image=() reason=()
while read -r package; do
  in_image[$package]=1
  reason[$package]="base image"
done < <(closure apt "${!base_seeds[@]}")
declare -A listed=()
for package in "${runtime_packages[@]}"; do listed[$package]=1; done
while read -r package; do
  in_image[$package]=1
  if [[ -n ${listed[$package]:-} ]]; then
    reason[$package]="listed in the Dockerfile"
  elif [[ ${reason[$package]:-} != "base image" ]]; then
    reason[$package]="dependency of a listed package"
  fi
done < <(closure "${runtime_packages[@]}")

# ---- 4. report
missing=()
echo "binary:     $binary"
echo "dockerfile: $dockerfile"
echo "runtime stage installs: ${runtime_packages[*]}"
for library in "${libraries[@]}"; do
  package=${package_for_library[$library]}
  if [[ -n ${in_image[$package]:-} ]]; then
    printf '  ok       %-55s %-28s (%s)\n' "$library" "$package" "${reason[$package]}"
  else
    printf '  MISSING  %-55s %s\n' "$library" "$package"
    missing+=("$package")
  fi
done
if [[ ${#missing[@]} -gt 0 ]]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  mapfile -t to_add < <(smallest_to_add "${missing[@]}")
  echo "FAIL: add to the runtime stage's apt-get install in $dockerfile:"
  printf '  %s\n' "${to_add[@]}"
  echo "0 passed, 1 failed"
  exit 1
fi
echo "all ${#libraries[@]} libraries come from packages the runtime image installs"
echo "1 passed, 0 failed"
