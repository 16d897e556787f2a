#!/bin/bash
# A small real guest for the e2e tests, the benchmarks and scripts/demo: a Debian kernel
# with a busybox initramfs that onlines hot-plugged CPUs and memory and reports them on its
# serial console, booted through libvirt. Every wait here is a poll with a deadline.
#
# Usage: guest.sh <command> [options]
#   ensure-daemons [--timeout S]       start virtlogd/libvirtd (as root) unless running, then
#                                      wait until `virsh version` answers
#   initramfs                          build (or reuse) the kernel + initramfs; prints both paths
#   xml NAME [domain options]          print the domain XML
#   define NAME [domain options]       define NAME persistently without starting it
#   boot NAME [domain options]         define (or create) and start NAME, wait for the guest's
#                                      first report line; prints the serial log path
#   wait-log FILE REGEX [--timeout S]  wait until a line of FILE matches REGEX; prints it
#   destroy NAME                       stop NAME and remove its definition (ok when absent)
#   log-path NAME                      print where NAME's serial log is written
#   control-path NAME                  print NAME's control socket (--control)
#   control NAME COMMAND...            send one command line to NAME's control socket
#
# Domain options (defaults in brackets):
#   --vcpus N [1]  --max-vcpus N [4]  --memory-mib N [512, boot memory in NUMA cell 0]
#   --max-memory-mib N [4096]  --slots N [8]  --virtio-mem-mib N [1024, 0 = no device]
#   --online-mode movable|online [movable]: how the guest onlines new memory blocks
#     (`online` puts them in ZONE_NORMAL, so the guest refuses to give a DIMM back)
#   --type qemu|kvm|auto [qemu = TCG; auto = kvm when /dev/kvm exists. Measured on the
#     development machine: /dev/kvm exists but a nested KVM guest never boots, hence qemu]
#   --persistent: define + start (default: transient, `virsh create`)
#   --control: a second serial port (ttyS1) on a unix socket (control-path NAME) that the
#     guest reads commands from: "burn N" keeps N CPUs busy, "stop" ends that
#   --boot-timeout S [240]
#   --machine pc|q35 [pc]
#   --cpu-model NAME: a named QEMU CPU model instead of libvirt's default (qemu64, which
#     reports an AMD CPU whose Linux sees no SMT threads; Nehalem shows threads as threads)
#   --topology SxCxT: <cpu><topology sockets cores threads> (dies 1); S*C*T must be --max-vcpus
#   --numa CPUS:MIB[,CPUS:MIB...]: one NUMA cell per item (e.g. 0-3:384,4-7:256), in cell id
#     order; boot memory is their sum [one cell: 0-(max-1):--memory-mib]
#   --vcpupin ID:CPUSET[,ID:CPUSET...]: <cputune><vcpupin> for these vCPUs (e.g. 0:0)
#   --os-id URL: libosinfo metadata naming the guest OS, as virt-install writes it
#     (e.g. http://microsoft.com/win/10; the guest is still this Linux)
#
# Environment: HOTPLUG_GUEST_DIR [/var/tmp/hotplug-guest] holds the kernel, initramfs,
# domain XML and serial logs; LIBVIRT_URI [qemu:///system].
#
# The guest prints, whenever its online CPUs, MemTotal, NUMA nodes or CPU topology change:
#   HOTPLUG-GUEST cpus=0-2 memtotal_kb=493808 nodes=0:0-1:262144;1:2:231664 topo=0:0.0;1:0.0;2:1.0 uptime=12.34
# nodes: per guest NUMA node, NODE:ONLINE-CPUS:MEMTOTAL-KB; topo: per online CPU,
# CPU:PACKAGE.CORE (two CPUs with the same PACKAGE.CORE are threads of one core).
# and, for each control command (--control): HOTPLUG-GUEST burn n=4 (or n=0 after "stop")
set -euo pipefail

GUEST_DIR=${HOTPLUG_GUEST_DIR:-/var/tmp/hotplug-guest}
URI=${LIBVIRT_URI:-qemu:///system}
GUEST_MODULES=(virtio_pci virtio_mem virtio_balloon)

die() { echo "guest.sh: $*" >&2; exit 1; }
log() { echo "guest.sh: $*" >&2; }
now_s() { date +%s.%N; }
# True while the time in $1 (seconds since epoch, fractional) is in the future.
before() { awk -v d="$1" -v n="$(now_s)" 'BEGIN { exit !(n < d) }'; }
deadline_in() { awk -v n="$(now_s)" -v t="$1" 'BEGIN { printf "%.3f", n + t }'; }

# The one option of the commands that wait: `--timeout SECONDS` (60 when not given). Sets the
# caller's local `timeout`; $1 names the command in the error about anything else.
timeout_option() {
  local command=$1; shift
  timeout=60
  while (($#)); do
    case $1 in
      --timeout) timeout=${2:?--timeout needs a number of seconds}; shift 2 ;;
      *) die "$command: unknown option $1" ;;
    esac
  done
}

# True when the pid in file $1 is a live process (a killed daemon can linger as a zombie).
pid_alive() {
  local pid state
  [[ -s $1 ]] || return 1
  pid=$(cat "$1")
  kill -0 "$pid" 2>/dev/null || return 1
  state=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]]
}

# Runs "$@" with only stdin, stdout and stderr open. A daemon started from a caller's
# `flock LOCK command` would otherwise keep the lock's descriptor, and so the lock, for as long
# as it runs (seen: libvirtd held /tmp/hotplug-e2e.lock after the test that started it ended).
without_inherited_fds() {
  local fd
  for fd in /proc/self/fd/*; do
    fd=${fd##*/}
    if ((fd > 2)); then { exec {fd}>&-; } 2>/dev/null || true; fi
  done
  exec "$@"
}

cmd_ensure_daemons() {
  local timeout
  timeout_option ensure-daemons "$@"
  if [[ $URI == qemu:///system ]]; then
    [[ $(id -u) == 0 ]] || die "starting the system libvirtd needs root"
    if ! pid_alive /run/virtlogd.pid; then
      log "starting virtlogd"
      (without_inherited_fds virtlogd -d) || die "virtlogd -d failed"
    fi
    if ! pid_alive /run/libvirtd.pid; then
      log "starting libvirtd"
      (without_inherited_fds libvirtd -d) || die "libvirtd -d failed"
    fi
  fi
  local deadline
  deadline=$(deadline_in "$timeout")
  while before "$deadline"; do
    if virsh -q -c "$URI" version >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  die "libvirt at $URI did not answer within ${timeout}s"
}

kernel_version() {
  local k
  k=$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n1)
  [[ -n $k ]] || die "no /boot/vmlinuz-*: install linux-image-amd64"
  basename "$k" | sed 's/^vmlinuz-//'
}

write_init() {
  cat >"$1" <<'INIT'
#!/bin/sh
# PID 1 of the hotplug test guest: online each new CPU and memory block the first time it
# appears, and report the online CPUs and MemTotal on the console when they change.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
while read -r module; do
  insmod "/lib/modules/$module.ko" || echo "HOTPLUG-GUEST insmod $module failed"
done </etc/modules.order
# Commands from the test on ttyS1, one a line: "burn N" keeps N CPUs busy, "stop" ends it.
control_loop() {
  stty raw -echo 2>/dev/null
  burners=""
  while read -r command count; do
    command=${command%$(printf '\r')}
    case $command in
      burn | stop)
        [ -n "$burners" ] && kill $burners 2>/dev/null
        burners=""
        n=0
        if [ "$command" = burn ]; then
          while [ "$n" -lt "${count%$(printf '\r')}" ]; do
            sh -c 'while :; do :; done' &
            burners="$burners $!"
            n=$((n + 1))
          done
        fi
        echo "HOTPLUG-GUEST burn n=$n" >/dev/console
        ;;
    esac
  done
}
mem_state=online_movable
for arg in $(cat /proc/cmdline); do
  case $arg in
    hotplug_online=online) mem_state=online ;;
    hotplug_online=movable) mem_state=online_movable ;;
  esac
done
echo "HOTPLUG-GUEST ready memory_online=$mem_state"
case " $(cat /proc/cmdline) " in
  *" hotplug_control=ttyS1 "*) control_loop </dev/ttyS1 & ;;
esac
seen_cpus=" "
seen_mem=" "
last=""
while :; do
  now_cpus=" "
  for dir in /sys/devices/system/cpu/cpu[0-9]*; do
    [ -d "$dir" ] || continue
    n=${dir##*/cpu}
    case $seen_cpus in *" $n "*) now_cpus="$now_cpus$n "; continue ;; esac
    # A new CPU is seen once it is online. Its directory can appear before its online file,
    # and the write can fail while the kernel brings it up: either way, try again next
    # round (once it was seen online, the guest leaves it as a test sets it). Only the boot
    # CPU has no online file at all.
    if [ -f "$dir/online" ]; then
      read -r state <"$dir/online"
      [ "$state" = 0 ] && echo 1 >"$dir/online" 2>/dev/null
      read -r state <"$dir/online"
      [ "$state" = 1 ] || continue
    elif [ "$n" != 0 ]; then
      continue
    fi
    now_cpus="$now_cpus$n "
  done
  seen_cpus=$now_cpus
  now_mem=" "
  for dir in /sys/devices/system/memory/memory[0-9]*; do
    [ -d "$dir" ] || continue
    n=${dir##*/memory}
    now_mem="$now_mem$n "
    case $seen_mem in *" $n "*) continue ;; esac
    read -r state <"$dir/state"
    [ "$state" = offline ] && echo "$mem_state" >"$dir/state" 2>/dev/null
  done
  seen_mem=$now_mem
  read -r cpus </sys/devices/system/cpu/online
  memtotal=0
  while read -r key value unit; do
    if [ "$key" = MemTotal: ]; then memtotal=$value; break; fi
  done </proc/meminfo
  nodes=""
  for dir in /sys/devices/system/node/node[0-9]*; do
    [ -d "$dir" ] || continue
    node_cpus=$(cat "$dir/cpulist")  # a bin attribute: a 1-byte read (ash's read) gets nothing
    node_kb=0
    while read -r _ _ key value unit; do
      if [ "$key" = MemTotal: ]; then node_kb=$value; break; fi
    done <"$dir/meminfo"
    nodes="$nodes${nodes:+;}${dir##*/node}:$node_cpus:$node_kb"
  done
  topo=""
  for dir in /sys/devices/system/cpu/cpu[0-9]*; do
    [ -r "$dir/topology/core_id" ] || continue
    read -r package <"$dir/topology/physical_package_id"
    read -r core <"$dir/topology/core_id"
    topo="$topo${topo:+;}${dir##*/cpu}:$package.$core"
  done
  line="cpus=$cpus memtotal_kb=$memtotal nodes=$nodes topo=$topo"
  if [ "$line" != "$last" ]; then
    read -r up idle </proc/uptime
    echo "HOTPLUG-GUEST $line uptime=$up"
    last=$line
  fi
  usleep 100000
done
INIT
  chmod 755 "$1"
}

# Builds $GUEST_DIR/initramfs-KVER-HASH.img and copies the kernel next to it (QEMU runs as
# libvirt-qemu and libvirt relabels what it boots: never hand it /boot itself).
cmd_initramfs() {
  local kver kernel initrd
  kver=$(kernel_version)
  kernel=$GUEST_DIR/vmlinuz-$kver
  # Named by this script's content: worktrees whose guest.sh differ (their init reports other
  # fields) each get their own initramfs instead of rebuilding one under the other's guests.
  initrd=$GUEST_DIR/initramfs-$kver-$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12).img
  mkdir -p "$GUEST_DIR"
  chmod 755 "$GUEST_DIR"
  (
    flock -w 120 9 || die "could not lock $GUEST_DIR/.build.lock"
    if [[ ! -s $kernel ]]; then
      cp "/boot/vmlinuz-$kver" "$kernel.tmp" && mv "$kernel.tmp" "$kernel"
    fi
    if [[ ! -s $initrd || ${BASH_SOURCE[0]} -nt $initrd ]]; then
      local stage
      stage=$(mktemp -d "$GUEST_DIR/stage.XXXXXX")
      mkdir -p "$stage"/{bin,dev,proc,sys,etc,lib/modules}
      cp /bin/busybox "$stage/bin/busybox"
      file -L "$stage/bin/busybox" | grep -q 'statically linked' ||
        die "/bin/busybox is not static: install busybox-static"
      ln -s busybox "$stage/bin/sh"
      write_init "$stage/init"
      : >"$stage/etc/modules.order"
      local path name
      while read -r _ path _; do
        name=$(basename "$path" .ko)
        grep -qx "$name" "$stage/etc/modules.order" && continue
        cp "$path" "$stage/lib/modules/$name.ko"
        echo "$name" >>"$stage/etc/modules.order"
      done < <(modprobe -S "$kver" --show-depends -a "${GUEST_MODULES[@]}" | grep '^insmod ')
      (cd "$stage" && find . | cpio -o -H newc --quiet | gzip -1) >"$initrd.tmp"
      mv "$initrd.tmp" "$initrd"
      rm -rf "$stage"
    fi
  ) 9>"$GUEST_DIR/.build.lock"
  chmod 644 "$kernel" "$initrd"
  echo "$kernel"
  echo "$initrd"
}

declare -A OPT
parse_domain_options() {
  OPT=([vcpus]=1 [max_vcpus]=4 [memory_mib]=512 [max_memory_mib]=4096 [slots]=8
       [virtio_mem_mib]=1024 [online_mode]=movable [type]=qemu [persistent]=0
       [boot_timeout]=240 [machine]=pc [topology]= [numa]= [vcpupin]= [os_id]= [cpu_model]=
       [control]=0)
  while (($#)); do
    case $1 in
      --vcpus) OPT[vcpus]=$2; shift 2 ;;
      --max-vcpus) OPT[max_vcpus]=$2; shift 2 ;;
      --memory-mib) OPT[memory_mib]=$2; shift 2 ;;
      --max-memory-mib) OPT[max_memory_mib]=$2; shift 2 ;;
      --slots) OPT[slots]=$2; shift 2 ;;
      --virtio-mem-mib) OPT[virtio_mem_mib]=$2; shift 2 ;;
      --online-mode) OPT[online_mode]=$2; shift 2 ;;
      --type) OPT[type]=$2; shift 2 ;;
      --persistent) OPT[persistent]=1; shift ;;
      --control) OPT[control]=1; shift ;;
      --boot-timeout) OPT[boot_timeout]=$2; shift 2 ;;
      --machine) OPT[machine]=$2; shift 2 ;;
      --topology) OPT[topology]=$2; shift 2 ;;
      --numa) OPT[numa]=$2; shift 2 ;;
      --vcpupin) OPT[vcpupin]=$2; shift 2 ;;
      --os-id) OPT[os_id]=$2; shift 2 ;;
      --cpu-model) OPT[cpu_model]=$2; shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
  case ${OPT[online_mode]} in movable | online) ;; *) die "--online-mode movable|online" ;; esac
  if [[ ${OPT[type]} == auto ]]; then
    if [[ -c /dev/kvm ]]; then OPT[type]=kvm; else OPT[type]=qemu; fi
  fi
  case ${OPT[type]} in qemu | kvm) ;; *) die "--type auto|qemu|kvm" ;; esac
  case ${OPT[machine]} in pc | q35) ;; *) die "--machine pc|q35" ;; esac
  if [[ -n ${OPT[topology]} ]]; then
    [[ ${OPT[topology]} =~ ^([0-9]+)x([0-9]+)x([0-9]+)$ ]] || die "--topology SxCxT"
    ((BASH_REMATCH[1] * BASH_REMATCH[2] * BASH_REMATCH[3] == OPT[max_vcpus])) ||
      die "--topology ${OPT[topology]} does not make --max-vcpus ${OPT[max_vcpus]}"
  fi
  if [[ -z ${OPT[numa]} ]]; then
    OPT[numa]="0-$((OPT[max_vcpus] - 1)):${OPT[memory_mib]}"
  else
    local cell total=0
    for cell in ${OPT[numa]//,/ }; do
      [[ $cell =~ ^[0-9,-]+:([0-9]+)$ ]] || die "--numa CPUS:MIB[,CPUS:MIB...]"
      total=$((total + BASH_REMATCH[1]))
    done
    OPT[memory_mib]=$total
  fi
}

# The <cpu> element: topology and NUMA cells.
cpu_xml() {
  local topology="" cells="" cell id=0
  if [[ -n ${OPT[topology]} ]]; then
    local parts=(${OPT[topology]//x/ })
    topology="    <topology sockets='${parts[0]}' dies='1' cores='${parts[1]}' threads='${parts[2]}'/>"
  fi
  for cell in ${OPT[numa]//,/ }; do
    cells+="      <cell id='$id' cpus='${cell%%:*}' memory='${cell##*:}' unit='MiB'/>"$'\n'
    id=$((id + 1))
  done
  local open="  <cpu>"
  if [[ -n ${OPT[cpu_model]} ]]; then
    open="  <cpu mode='custom' match='exact' check='none'>
    <model fallback='allow'>${OPT[cpu_model]}</model>"
  fi
  printf '%s\n%s%s    <numa>\n%s    </numa>\n  </cpu>\n' \
    "$open" "$topology" "${topology:+$'\n'}" "$cells"
}

# <cputune> with the --vcpupin pins, and the libosinfo <metadata>, when asked for.
tune_and_metadata_xml() {
  local pin
  if [[ -n ${OPT[vcpupin]} ]]; then
    echo "  <cputune>"
    for pin in ${OPT[vcpupin]//,/ }; do
      echo "    <vcpupin vcpu='${pin%%:*}' cpuset='${pin#*:}'/>"
    done
    echo "  </cputune>"
  fi
  if [[ -n ${OPT[os_id]} ]]; then
    echo "  <metadata>"
    echo "    <libosinfo:libosinfo xmlns:libosinfo='http://libosinfo.org/xmlns/libvirt/domain/1.0'>"
    echo "      <libosinfo:os id='${OPT[os_id]}'/>"
    echo "    </libosinfo:libosinfo>"
    echo "  </metadata>"
  fi
}

cmd_log_path() { echo "$GUEST_DIR/$1.serial.log"; }
# In a folder QEMU (user libvirt-qemu) may create the socket in.
cmd_control_path() { echo "$GUEST_DIR/control/$1.sock"; }

control_xml() {
  ((OPT[control])) || return 0
  mkdir -p "$GUEST_DIR/control"
  if id libvirt-qemu >/dev/null 2>&1; then
    chown libvirt-qemu: "$GUEST_DIR/control"
  else
    chmod 1777 "$GUEST_DIR/control"
  fi
  rm -f "$(cmd_control_path "$1")"
  echo "    <serial type='unix'>
      <source mode='bind' path='$(cmd_control_path "$1")'/>
      <target port='1'/>
    </serial>"
}

cmd_control() {
  local name=${1:?domain name}; shift
  local socket
  socket=$(cmd_control_path "$name")
  [[ -S $socket ]] || die "no control socket $socket (boot with --control)"
  python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])
s.sendall((" ".join(sys.argv[2:]) + "\n").encode()); s.close()' "$socket" "$@"
}

domain_xml() {
  local name=$1 kernel=$2 initrd=$3 serial_log=$4
  local virtio_mem=""
  if ((OPT[virtio_mem_mib] > 0)); then
    virtio_mem="    <memory model='virtio-mem'>
      <target>
        <size unit='MiB'>${OPT[virtio_mem_mib]}</size>
        <node>0</node>
        <block unit='MiB'>2</block>
        <requested unit='MiB'>0</requested>
      </target>
    </memory>"
  fi
  cat <<XML
<domain type='${OPT[type]}'>
  <name>$name</name>
  <maxMemory slots='${OPT[slots]}' unit='MiB'>${OPT[max_memory_mib]}</maxMemory>
  <memory unit='MiB'>${OPT[memory_mib]}</memory>
  <currentMemory unit='MiB'>${OPT[memory_mib]}</currentMemory>
$(tune_and_metadata_xml)
  <vcpu placement='static' current='${OPT[vcpus]}'>${OPT[max_vcpus]}</vcpu>
  <os>
    <type arch='x86_64' machine='${OPT[machine]}'>hvm</type>
    <kernel>$kernel</kernel>
    <initrd>$initrd</initrd>
    <cmdline>console=ttyS0 loglevel=1 panic=-1 hotplug_online=${OPT[online_mode]}$( ((OPT[control])) && echo " hotplug_control=ttyS1")</cmdline>
  </os>
  <features><acpi/><apic/></features>
$(cpu_xml)
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <serial type='file'>
      <source path='$serial_log'/>
      <target port='0'/>
    </serial>
$(control_xml "$name")
$virtio_mem
    <memballoon model='virtio'/>
  </devices>
</domain>
XML
}

cmd_xml() {
  local name=${1:?domain name}; shift
  parse_domain_options "$@"
  local files
  mapfile -t files < <(cmd_initramfs)
  domain_xml "$name" "${files[0]}" "${files[1]}" "$(cmd_log_path "$name")"
}

cmd_wait_log() {
  local file=${1:?log file} regex=${2:?regex}; shift 2
  local timeout
  timeout_option wait-log "$@"
  local deadline line
  deadline=$(deadline_in "$timeout")
  while before "$deadline"; do
    if [[ -r $file ]] && line=$(grep -E -- "$regex" "$file" | tail -n1) && [[ -n $line ]]; then
      echo "$line"
      return 0
    fi
    sleep 0.1
  done
  die "no line matching '$regex' in $file within ${timeout}s"
}

cmd_destroy() {
  local name=${1:?domain name}
  # "absent" must not be concluded from an unreachable daemon
  virsh -q -c "$URI" version >/dev/null 2>&1 || die "libvirt at $URI does not answer"
  if virsh -q -c "$URI" domstate "$name" >/dev/null 2>&1; then
    virsh -q -c "$URI" destroy "$name" >/dev/null 2>&1 || true
    virsh -q -c "$URI" undefine "$name" >/dev/null 2>&1 || true
  fi
  if virsh -q -c "$URI" domstate "$name" >/dev/null 2>&1; then
    die "domain $name still exists after destroy/undefine"
  fi
}

cmd_define() {
  local name=${1:?domain name}; shift
  parse_domain_options "$@"
  local files xml_file
  mapfile -t files < <(cmd_initramfs)
  xml_file=$GUEST_DIR/$name.xml
  cmd_destroy "$name"
  domain_xml "$name" "${files[0]}" "${files[1]}" "$(cmd_log_path "$name")" >"$xml_file"
  virsh -q -c "$URI" define "$xml_file" >/dev/null
}

cmd_boot() {
  local name=${1:?domain name}; shift
  parse_domain_options "$@"
  local files serial_log xml_file
  mapfile -t files < <(cmd_initramfs)
  serial_log=$(cmd_log_path "$name")
  xml_file=$GUEST_DIR/$name.xml
  cmd_destroy "$name"
  rm -f "$serial_log"
  domain_xml "$name" "${files[0]}" "${files[1]}" "$serial_log" >"$xml_file"
  if ((OPT[persistent])); then
    virsh -q -c "$URI" define "$xml_file" >/dev/null
    virsh -q -c "$URI" start "$name" >/dev/null
  else
    virsh -q -c "$URI" create "$xml_file" >/dev/null
  fi
  if ! cmd_wait_log "$serial_log" '^HOTPLUG-GUEST cpus=' --timeout "${OPT[boot_timeout]}" >/dev/null; then
    log "guest $name did not report; last lines of $serial_log:"
    tail -n 20 "$serial_log" >&2 || true
    exit 1
  fi
  echo "$serial_log"
}

main() {
  local command=${1:-}
  shift || true
  case $command in
    ensure-daemons) cmd_ensure_daemons "$@" ;;
    initramfs) cmd_initramfs "$@" ;;
    xml) cmd_xml "$@" ;;
    define) cmd_define "$@" ;;
    boot) cmd_boot "$@" ;;
    wait-log) cmd_wait_log "$@" ;;
    destroy) cmd_destroy "$@" ;;
    log-path) cmd_log_path "$@" ;;
    control-path) cmd_control_path "$@" ;;
    control) cmd_control "$@" ;;
    *) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}

# Sourcing this file gives the functions; running it runs a command.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
