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
crd=("$src"/crd/quantity.cc "$src"/crd/codec.cc "$src"/crd/elasticvm.cc "$src"/crd/autoscale.cc
     -lyaml-cpp)
read -r -a libxml <<<"$(pkg-config --cflags --libs libxml-2.0 libvirt)"
total=0
standalone=("$src"/controller/standalone/input_file.cc "$src"/controller/standalone/status_dir.cc
            "$src"/controller/standalone/safe_files.cc "$src"/controller/log.cc "${crd[@]}"
            -lcrypto)
for target in quantity elasticvm_json elasticvm_yaml domain_xml watch_stream input_file \
              status_file; do
  case $target in
    input_file | status_file)
      corpus_name=$target
      sources=("${standalone[@]}") ;;
    domain_xml)
      corpus_name=domain_xml
      sources=("$src"/backends/libvirt/domain_xml.cc "$src"/backends/libvirt/qemu_cpus.cc
               "$src"/backends/libvirt/xml_util.cc "$src"/backends/hypervisor.cc
               "$src"/backends/range_list.cc "${libxml[@]}") ;;
    watch_stream)
      corpus_name=watch
      sources=("$src"/controller/kube/watch_event.cc "${crd[@]}") ;;
    *)
      corpus_name=${target#elasticvm_}
      sources=("${crd[@]}") ;;
  esac
  bin="$out/$target"
  # Rebuilt whenever any source is newer than the binary (cheap next to the fuzzing).
  if [[ ! -x $bin ]] || [[ -n $(find "$src/tests/fuzz" "$src/crd" "$src/backends/libvirt" \
        "$src/controller/kube" "$src/controller/standalone" -newer "$bin" -name '*.[ch]*' -print -quit) ]]; then
    clang++ "${flags[@]}" "$src/tests/fuzz/${target}_fuzz.cc" "${sources[@]}" -o "$bin"
  fi
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
