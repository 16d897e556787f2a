# shellcheck shell=bash disable=SC2034  # its arrays are read by the scripts that source it
# Shared by the tests in tests/docker: what a Dockerfile stage installs, and Debian package
# dependency closures from this machine's dpkg database. Source it; needs bash 4.

# stage_packages DOCKERFILE STAGE -> the packages the stage's `apt-get install` lines name,
# one a line. STAGE is the name after `FROM ... AS`; a missing name means the last stage.
# RUN lines are joined across backslash continuations (comment lines inside are dropped,
# as Docker does); after `apt-get [options] install`, each word that is not an option is a
# package, up to the next && ; | or ). Version pins (=1.2) and :arch are dropped.
stage_packages() {
  local dockerfile=$1 stage=$2
  awk '
    function flush() { if (line != "") { print line; line = "" } }
    /^[[:space:]]*#/ { next }
    { sub(/\r$/, ""); cont = sub(/\\[[:space:]]*$/, ""); line = line " " $0; if (!cont) flush() }
    END { flush() }
  ' "$dockerfile" | awk -v want="$stage" '
    toupper($1) == "FROM" {
      stage++
      for (i = 2; i < NF; i++) if (tolower($i) == "as" && tolower($(i + 1)) == tolower(want)) named = stage
    }
    { lines[stage] = lines[stage] "\n" $0; last = stage }
    END { s = named ? named : last; print lines[s] }
  ' | awk '
    {
      installing = 0
      for (i = 1; i <= NF; i++) {
        if ($i == "apt-get") {
          for (j = i + 1; j <= NF && $j ~ /^-/; j++) {}
          if ($j == "install") { installing = 1; i = j }
          continue
        }
        if ($i ~ /^(&&|;|\||\|\||\))$/ || $i ~ /;$/) { installing = 0; continue }
        if (installing && $i !~ /^-/) print $i
      }
    }
  ' | sed 's/[=:].*//' | sort -u
}

# load_dpkg_database: fills depends_of, installed and base_seeds (Essential or Priority
# required: what debootstrap's minbase, and so debian:*-slim, starts from).
declare -A depends_of=() installed=() base_seeds=()
load_dpkg_database() {
  local package status essential priority depends predepends
  while IFS=$'\t' read -r package status essential priority depends predepends; do
    [[ $status == "install ok installed" ]] || continue
    installed[$package]=1
    depends_of[$package]="$depends, $predepends"
    if [[ $essential == yes || $priority == required ]]; then base_seeds[$package]=1; fi
  done < <(dpkg-query -W \
             -f='${Package}\t${Status}\t${Essential}\t${Priority}\t${Depends}\t${Pre-Depends}\n')
}

# closure PACKAGE... -> the packages and everything they depend on (Depends, Pre-Depends),
# as far as this machine has them installed; of alternatives "a | b", the installed ones.
closure() {
  local -A seen=()
  local -a queue=("$@") dependencies alternatives
  local package dependency alternative
  while [[ ${#queue[@]} -gt 0 ]]; do
    package=${queue[0]}
    queue=("${queue[@]:1}")
    [[ -n ${seen[$package]:-} ]] && continue
    seen[$package]=1
    IFS=',' read -ra dependencies <<<"${depends_of[$package]:-}"
    for dependency in "${dependencies[@]}"; do
      IFS='|' read -ra alternatives <<<"$dependency"
      for alternative in "${alternatives[@]}"; do
        alternative=${alternative%%(*}        # version constraint
        alternative=${alternative//[[:space:]]/}
        alternative=${alternative%%:*}        # :any, :amd64
        [[ -n $alternative && -n ${installed[$alternative]:-} ]] && queue+=("$alternative")
      done
    done
  done
  printf '%s\n' "${!seen[@]}"
}

# smallest_to_add PACKAGE... -> those of the packages that none of the others pulls in:
# installing these is enough to get all of them.
smallest_to_add() {
  local -A pulled_in=()
  local package dependency
  local -a to_add=()
  for package in "$@"; do
    while read -r dependency; do
      [[ $dependency != "$package" ]] && pulled_in[$dependency]=1
    done < <(closure "$package")
  done
  for package in "$@"; do
    [[ -z ${pulled_in[$package]:-} ]] && to_add+=("$package")
  done
  [[ ${#to_add[@]} -gt 0 ]] || to_add=("$@")  # a dependency cycle: name them all
  printf '%s\n' "${to_add[@]}"
}
