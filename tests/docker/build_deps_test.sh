#!/usr/bin/env bash
# Checks that the Dockerfile's build stage installs what the project's CMake files look
# for, so that adding a find_package() or pkg_check_modules() without adding its -dev
# package to the image fails here rather than in someone's `docker build`:
#
#   - each pkg_check_modules() module maps to the package owning its .pc file;
#   - each find_package(Name) maps to the package owning NameConfig.cmake /
#     name-config.cmake, or, for CMake's own Find modules, to the package in the table
#     below;
#   - each system header the sources include (#include <...> found under /usr/include)
#     maps to the package that ships it, which catches header-only libraries that no
#     find_package() names;
#   - each must be in the build stage's apt-get install, a dependency of one, or in
#     debian:bookworm (which the build stage starts from).
#
# Test-only packages (GTest, Python3, ...) are skipped: the image builds with tests off.
# Usage: build_deps_test.sh [REPO_ROOT]
set -euo pipefail

root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
dockerfile=$root/Dockerfile
# shellcheck source=dockerfile_lib.sh
source "$(dirname "$0")/dockerfile_lib.sh"

# find_package() names served by CMake's own Find modules (no config file to look up).
declare -A module_package=(
  [PkgConfig]=pkg-config [LibXml2]=libxml2-dev [OpenSSL]=libssl-dev [Threads]=libc6-dev
  [ZLIB]=zlib1g-dev [CURL]=libcurl4-openssl-dev [Boost]=libboost-dev
)
declare -A test_only=([GTest]=1 [GMock]=1 [Python3]=1 [benchmark]=1)

# The CMake files an image build reads: all but tests/.
mapfile -t cmake_files < <(cd "$root" && find . \( -path ./tests -o -path ./.git -o -path './build*' \) \
                             -prune -o \( -name CMakeLists.txt -o -name '*.cmake' \) -print | sort)

# The calls, each on one line even when wrapped: "find_package(...)" / "pkg_check_modules(...)".
calls=$(cd "$root" && cat "${cmake_files[@]}" | sed 's/#.*//' | tr '\n' ' ' |
        { grep -oE '(find_package|pkg_check_modules)\([^)]*\)' || true; })

# dpkg -S is slow (it reads every package's file list), so it is asked once, about every
# file at once, in every spelling merged /usr or a symlink may give it.
spellings_of() {
  local file=$1 real
  real=$(readlink -f "$file")
  printf '%s\n' "$file" "$real" "/usr${file#/usr}" "${file#/usr}" "/usr${real#/usr}" "${real#/usr}"
}
declare -A owner_of_path=()
index_owners() {  # index_owners FILE... -> fills owner_of_path
  local line owners
  while IFS= read -r line; do
    [[ $line == diversion* || $line != *': '* ]] && continue
    owners=${line%%: *}
    owner_of_path[${line#*: }]=${owners%%[:,]*}
  done < <(for file in "$@"; do spellings_of "$file"; done | sort -u |
           xargs -r dpkg-query -S 2>/dev/null || true)
}
owner_of() {  # owner_of FILE -> the Debian package that ships it (after index_owners)
  local candidate
  while IFS= read -r candidate; do
    if [[ -n ${owner_of_path[$candidate]:-} ]]; then
      echo "${owner_of_path[$candidate]}"
      return 0
    fi
  done < <(spellings_of "$1")
  return 1
}

config_file_of() {  # config_file_of Name -> its CMake package configuration file
  local name=$1 lower=${1,,}
  find /usr/lib/x86_64-linux-gnu/cmake /usr/lib/cmake /usr/share/cmake /usr/share \
       -maxdepth 3 \( -name "${name}Config.cmake" -o -name "${lower}-config.cmake" \) \
       2>/dev/null | head -n1
}

declare -A needed=()  # package -> what needs it
unresolved=()
wanted=()  # "what<TAB>file": files whose owning package is needed, resolved below
while read -r call; do
  [[ -n $call ]] || continue
  arguments=${call#*(}
  arguments=${arguments%)}
  read -ra words <<<"$arguments"
  if [[ $call == pkg_check_modules* ]]; then
    # pkg_check_modules(PREFIX [REQUIRED] [QUIET] [IMPORTED_TARGET [GLOBAL]] module...)
    for module in "${words[@]:1}"; do
      [[ $module =~ ^(REQUIRED|QUIET|IMPORTED_TARGET|GLOBAL|NO_CMAKE_PATH|NO_CMAKE_ENVIRONMENT_PATH)$ ]] && continue
      module=${module%%[<>=]*}
      pc_dir=$(pkg-config --variable=pcfiledir "$module" 2>/dev/null) || pc_dir=""
      if [[ -n $pc_dir ]]; then
        wanted+=("pkg-config:$module"$'\t'"$pc_dir/$module.pc")
      else
        unresolved+=("pkg-config module $module (not installed here?)")
      fi
    done
  else
    name=${words[0]}
    [[ -n ${test_only[$name]:-} ]] && continue
    if [[ -n ${module_package[$name]:-} ]]; then
      needed[${module_package[$name]}]+=" find_package:$name"
    elif config=$(config_file_of "$name") && [[ -n $config ]]; then
      wanted+=("find_package:$name"$'\t'"$config")
    else
      unresolved+=("find_package($name): no config file here and not in this test's table")
    fi
  fi
done <<<"$calls"

# System headers of the sources an image build compiles (all but tests/).
mapfile -t headers < <(cd "$root" && find . \( -path ./tests -o -path ./.git -o -path './build*' \) \
                         -prune -o \( -name '*.cc' -o -name '*.h' -o -name '*.cpp' -o -name '*.hpp' \) \
                         -print0 | xargs -0 -r grep -hoE '^[[:space:]]*#[[:space:]]*include[[:space:]]*<[^>]+>' |
                       sed -E 's/.*<([^>]+)>.*/\1/' | sort -u)
for header in "${headers[@]}"; do
  for directory in /usr/include /usr/include/x86_64-linux-gnu; do
    if [[ -f $directory/$header ]]; then
      wanted+=("<$header>"$'\t'"$directory/$header")
      break
    fi
  done
done

index_owners "${wanted[@]#*$'\t'}"
for entry in "${wanted[@]}"; do
  what=${entry%%$'\t'*}
  file=${entry#*$'\t'}
  if package=$(owner_of "$file"); then
    needed[$package]+=" $what"
  else
    unresolved+=("$what: no Debian package owns $file")
  fi
done

if [[ ${#unresolved[@]} -gt 0 ]]; then
  echo "FAIL: cannot tell which Debian package provides:"
  printf '  %s\n' "${unresolved[@]}"
  echo "0 passed, 1 failed"
  exit 1
fi
[[ ${#needed[@]} -gt 0 ]] || { echo "FAIL: found no find_package/pkg_check_modules"; exit 1; }

mapfile -t build_packages < <(stage_packages "$dockerfile" build)
[[ ${#build_packages[@]} -gt 0 ]] || { echo "FAIL: no apt-get install in the build stage of $dockerfile"; exit 1; }
load_dpkg_database
declare -A in_stage=()
# debian:bookworm (not -slim) starts from minbase plus Priority important/standard, but
# minbase is enough for what a -dev package could be missing from.
while read -r package; do in_stage[$package]=1; done \
  < <(closure apt "${!base_seeds[@]}" "${build_packages[@]}")
# Transitional names: pkg-config is pkgconf in bookworm, and either satisfies the other.
for package in "${build_packages[@]}"; do
  [[ $package == pkg-config || $package == pkgconf ]] && in_stage[pkg-config]=1 && in_stage[pkgconf]=1
done

echo "dockerfile: $dockerfile"
echo "build stage installs: ${build_packages[*]}"
missing=()
for package in $(printf '%s\n' "${!needed[@]}" | sort); do
  if [[ -n ${in_stage[$package]:-} ]]; then
    printf '  ok       %-24s for%s\n' "$package" "${needed[$package]}"
  else
    printf '  MISSING  %-24s for%s\n' "$package" "${needed[$package]}"
    missing+=("$package")
  fi
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "FAIL: add to the build stage's apt-get install in $dockerfile:"
  printf '  %s\n' "${missing[@]}"
  echo "0 passed, 1 failed"
  exit 1
fi
echo "1 passed, 0 failed"
