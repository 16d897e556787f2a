#!/usr/bin/env bash
# Builds each fuzz target with clang, libFuzzer, ASan and UBSan, and fuzzes it for SECONDS
# seconds starting from the seed corpus. A crash, a leak or an input slower than 5 s fails
# the run and leaves the input in OUT/; copy it into tests/fuzz/corpus/<target>/ so it
# becomes a regression test.
#   run_fuzz.sh SOURCE_DIR OUT_DIR [SECONDS]
# With FUZZ_RUNS=N instead: N executions per target from a fixed seed, so the run is the same
# every time (what ctest and CI do: a red CI must mean a change broke something).
set -euo pipefail
src=$1
out=$2
seconds=${3:-10}
mkdir -p "$out"
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$src")
# Each source is compiled once into OUT/obj/ and linked into every target that needs it:
# the crd/ sources go into six of the seven targets, and compiling is most of a short run.
crd=(crd/quantity.cc crd/codec.cc crd/elasticvm.cc crd/autoscale.cc)
standalone=(controller/standalone/input_file.cc controller/standalone/status_dir.cc
            controller/standalone/safe_files.cc controller/log.cc "${crd[@]}")
libvirt_xml=(backends/libvirt/domain_xml.cc backends/libvirt/qemu_cpus.cc
             backends/libvirt/xml_util.cc backends/hypervisor.cc backends/range_list.cc)
read -r -a xml_cflags <<<"$(pkg-config --cflags libxml-2.0 libvirt)"
read -r -a xml_libs <<<"$(pkg-config --libs libxml-2.0 libvirt)"
mkdir -p "$out/obj"
# add_object SOURCE: appends the object of SOURCE (relative to $src) to `objects`, compiling
# it when it is missing or any source or header of the project is newer.
add_object() {
  local object="$out/obj/${1//\//_}.o"
  if [[ ! -f $object ]] || [[ -n $(find "$src/tests/fuzz" "$src/crd" "$src/backends" \
        "$src/controller" -newer "$object" -name '*.[ch]*' -print -quit) ]]; then
    clang++ "${flags[@]}" "${xml_cflags[@]}" -c "$src/$1" -o "$object"
  fi
  objects+=("$object")
}
total=0
for target in quantity elasticvm_json elasticvm_yaml domain_xml watch_stream input_file \
              status_file; do
  libs=(-lyaml-cpp)
  case $target in
    input_file | status_file)
      corpus_name=$target
      sources=("${standalone[@]}")
      libs+=(-lcrypto) ;;
    domain_xml)
      corpus_name=domain_xml
      sources=("${libvirt_xml[@]}")
      libs=("${xml_libs[@]}") ;;
    watch_stream)
      corpus_name=watch
      sources=(controller/kube/watch_event.cc "${crd[@]}") ;;
    *)
      corpus_name=${target#elasticvm_}
      sources=("${crd[@]}") ;;
  esac
  objects=()
  for source in "tests/fuzz/${target}_fuzz.cc" "${sources[@]}"; do
    add_object "$source"
  done
  bin="$out/$target"
  clang++ "${flags[@]}" "${objects[@]}" "${libs[@]}" -o "$bin"
  work="$out/corpus-$corpus_name"
  mkdir -p "$work"
  cp -n "$src/tests/fuzz/corpus/$corpus_name/"* "$work/" 2>/dev/null || true
  log="$out/$target.log"
  if [[ -n ${FUZZ_RUNS:-} ]]; then
    budget=(-runs="$FUZZ_RUNS" -seed=1)
    rm -rf "$work" && mkdir -p "$work" && cp "$src/tests/fuzz/corpus/$corpus_name/"* "$work/"
  else
    budget=(-max_total_time="$seconds")
  fi
  if ! (cd "$out" && "$bin" "${budget[@]}" -timeout=5 -max_len=4096 -rss_limit_mb=1024 \
          -artifact_prefix="$out/$target-" "$work" >"$log" 2>&1); then
    tail -40 "$log"
    echo "FAIL: $target crashed; the input is in $out/$target-*" >&2
    exit 1
  fi
  runs=$(grep -Eo 'Done [0-9]+ runs' "$log" | grep -Eo '[0-9]+' || echo 0)
  echo "$target: $runs executions, no crash"
  total=$((total + runs))
done
echo "fuzz: $total executions in all, no crash"
