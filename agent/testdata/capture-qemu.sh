#!/bin/bash
# Boots a QEMU q35 guest (TCG) with a distinctive hardware shape and captures
# it into a discovery fixture (default: agent/testdata/qemu-q35).
#
# Dev tooling only; see agent/testdata/README.md. Run from anywhere as root on
# Debian 12 with:
#   apt-get install --no-install-recommends qemu-system-x86 busybox-static kmod fdisk cpio iproute2
#
# The guest runs a busybox initramfs that loads the drivers, configures the
# network, runs the `capture` example of keel-agent and sends the fixture as a
# base64 tar.gz over its second serial port (ttyS1), which QEMU writes to a
# file; nothing in the guest sees an extra disk or NIC for it.
#
# Environment: WORK (scratch dir, default /tmp/keel-qemu-capture),
# KPKG (kernel package, default what linux-image-amd64 depends on),
# PROFILE (cargo profile of the capture binary: dev or release, default dev).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
DEST=${1:-$REPO/agent/testdata/qemu-q35}
WORK=${WORK:-/tmp/keel-qemu-capture}
PROFILE=${PROFILE:-dev}
KPKG=${KPKG:-$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: \(linux-image-[0-9].*\)/\1/p' | head -n1)}
mkdir -p "$WORK"
cd "$WORK"

# 1. The capture binary.
cargo build --manifest-path "$REPO/Cargo.toml" --profile "$PROFILE" -p keel-agent --example capture
dir=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
CAPTURE="$REPO/target/$dir/examples/capture"

# 2. The kernel and the module closure of the drivers the guest needs.
if [ ! -d "kernel-$KPKG" ]; then
    rm -f ./*.deb
    apt-get download "$KPKG"
    dpkg-deb -x ./"$KPKG"_*.deb "kernel-$KPKG"
fi
KROOT=$WORK/kernel-$KPKG
KVER=$(ls "$KROOT/lib/modules")
depmod -b "$KROOT" "$KVER"
MODULES="virtio_pci virtio_blk virtio_net virtio_scsi sd_mod sr_mod nvme e1000 \
    xhci_pci usb_storage bochs bridge veth"

IR=$WORK/initramfs
rm -rf "$IR"
mkdir -p "$IR"/{bin,sbin,usr/sbin,etc/udhcpc,proc,sys,dev,tmp,lib/modules/"$KVER"}
cp /bin/busybox "$IR/bin/busybox"
ln -s busybox "$IR/bin/sh"
for m in $MODULES; do
    modprobe -d "$KROOT" -S "$KVER" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | sort -u | while read -r ko; do
    rel=${ko#"$KROOT"/}
    mkdir -p "$IR/$(dirname "$rel")"
    cp "$ko" "$IR/$rel"
done
cp "$KROOT/lib/modules/$KVER"/modules.{order,builtin,builtin.modinfo} "$IR/lib/modules/$KVER/"
depmod -b "$IR" "$KVER"

# glibc programs and their libraries (busybox's own `ip` cannot make veths).
for bin in "$CAPTURE" /usr/sbin/ip; do
    case $bin in */ip) cp "$bin" "$IR/usr/sbin/ip" ;; *) cp "$bin" "$IR/bin/capture" ;; esac
    ldd "$bin" | grep -o '/[^ ]*' | while read -r lib; do
        mkdir -p "$IR$(dirname "$lib")"
        cp -L "$lib" "$IR$lib"
    done
done

cat > "$IR/etc/udhcpc/default.script" <<'EOF'
#!/bin/sh
[ "$1" = bound ] && /usr/sbin/ip addr add "$ip/${mask:-24}" dev "$interface"
exit 0
EOF
chmod +x "$IR/etc/udhcpc/default.script"

cat > "$IR/init" <<'EOF'
#!/bin/sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
ip() { /usr/sbin/ip "$@"; }
for m in virtio_pci virtio_blk virtio_net virtio_scsi sd_mod sr_mod nvme e1000 \
         xhci_pci usb_storage bochs bridge veth; do
    modprobe "$m" || echo "modprobe $m failed"
done
hostname keel-q35
# Links by MAC, since the probe order decides eth0/eth1.
for dev in /sys/class/net/*; do
    case $(cat "$dev/address") in
        52:54:00:4b:45:01) VIRTIO=${dev##*/} ;;
        52:54:00:4b:45:02) E1000=${dev##*/} ;;
    esac
done
ip link set lo up
ip link set "$VIRTIO" up
ip link set "$E1000" mtu 4000 up
ip addr add 192.168.77.2/24 dev "$E1000"
ip addr add fd00:77::2/64 dev "$E1000"
ip link add br0 address 52:54:00:4b:45:10 type bridge
ip link add veth0 address 52:54:00:4b:45:11 type veth peer name veth1 address 52:54:00:4b:45:12
ip link set veth0 master br0
ip link set br0 up
ip link set veth0 up
ip addr add 10.99.0.1/24 dev br0
udhcpc -i "$VIRTIO" -n -q -t 5 -T 2 || echo "dhcp failed"
sleep 5   # USB/SCSI scans, IPv6 duplicate address detection
ls /sys/block /sys/class/net
/bin/capture /fixture
stty -F /dev/ttyS1 raw -echo
echo "fixture-begin"
(cd /fixture && tar c . | gzip -9 | base64) > /dev/ttyS1
echo "fixture-end"
sync
sleep 2
poweroff -f
EOF
chmod +x "$IR/init"
(cd "$IR" && find . | cpio -o -H newc --quiet | gzip -1) > initramfs.cpio.gz

# 3. Disks: virtio-blk with a GPT, NVMe with an MBR, SCSI, USB, an empty CD.
rm -f vblk.raw nvme.raw scsi.raw usb.raw
truncate -s 64M vblk.raw
truncate -s 128M nvme.raw
truncate -s 96M scsi.raw
truncate -s 32M usb.raw
printf 'label: gpt\nstart=2048, size=32768, name=boot\nstart=34816, name=data\n' | sfdisk -q vblk.raw
printf 'label: dos\nstart=2048, size=131072, type=83\n' | sfdisk -q nvme.raw

# 4. Boot: 2 sockets x 2 cores, 2 NUMA nodes of 1 GiB, 16 huge pages.
rm -f ttyS1.b64
timeout 600 qemu-system-x86_64 -machine q35 -accel tcg -cpu max -m 2G \
    -smp 4,sockets=2,cores=2,threads=1 \
    -object memory-backend-ram,id=m0,size=1G -object memory-backend-ram,id=m1,size=1G \
    -numa node,nodeid=0,cpus=0-1,memdev=m0 -numa node,nodeid=1,cpus=2-3,memdev=m1 \
    -kernel "$KROOT/boot/vmlinuz-$KVER" -initrd initramfs.cpio.gz \
    -append "console=ttyS0 quiet panic=-1 hugepages=16" \
    -display none -monitor none -no-reboot -serial stdio -serial file:ttyS1.b64 \
    -vga std -device bochs-display \
    -drive file=vblk.raw,format=raw,if=none,id=d0 \
    -device virtio-blk-pci,drive=d0,serial=KEEL-VBLK-0001 \
    -drive file=nvme.raw,format=raw,if=none,id=d1 -device nvme,drive=d1,serial=KEELNVME0001 \
    -device virtio-scsi-pci,id=scsi0 \
    -drive file=scsi.raw,format=raw,if=none,id=d2 \
    -device scsi-hd,drive=d2,bus=scsi0.0,serial=KEELSCSI0001,wwn=0x5000c50015ea71ac,vendor=KEELLAB,product=KEEL-SCSI-DISK \
    -drive if=none,id=cd0,media=cdrom -device scsi-cd,drive=cd0,bus=scsi0.0 \
    -device qemu-xhci,id=xhci \
    -drive file=usb.raw,format=raw,if=none,id=d3 \
    -device usb-storage,bus=xhci.0,drive=d3,serial=KEELUSB0001,removable=on \
    -netdev user,id=n0 -device virtio-net-pci,netdev=n0,mac=52:54:00:4b:45:01,romfile= \
    -netdev user,id=n1 -device e1000,netdev=n1,mac=52:54:00:4b:45:02,romfile= \
    | tee console.log

# 5. Unpack the fixture.
rm -rf "$DEST"
mkdir -p "$DEST"
tr -d '\r' < ttyS1.b64 | base64 -d | tar xz -C "$DEST"
echo "captured $(find "$DEST" -type f | wc -l) files into $DEST"
