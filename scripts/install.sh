#!/bin/sh
# Installs edgefn from a release tarball on a system without dpkg, doing
# what the .deb does: binary, config (kept if present), systemd unit, user
# edgefn (in group gpio when present), /var/lib/edgefn, service enabled and
# started (restarted on an upgrade). Run it from the unpacked tarball:
#
#   sudo ./install.sh              install or upgrade
#   sudo ./install.sh --uninstall  stop, remove binary and unit; keep data
#   sudo ./install.sh --purge      uninstall, then delete data, config, user
#
# --root DIR installs into another root (for tests and image builds): no
# service is touched. The binary goes to /usr/local/bin/edgefn (PREFIX=/usr
# to change), the unit to /etc/systemd/system/edgefn.service.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
PREFIX=${PREFIX:-/usr/local}
root=""
action=install
while [ $# -gt 0 ]; do
	case "$1" in
	--root) root=$2; shift 2 ;;
	--root=*) root=${1#--root=}; shift ;;
	--uninstall) action=uninstall; shift ;;
	--purge) action=purge; shift ;;
	-h | --help) sed -n '2,15p' "$0"; exit 0 ;;
	*) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done
if [ -z "$root" ] && [ "$(id -u)" != 0 ]; then
	echo "install.sh: run as root (sudo ./install.sh)" >&2
	exit 1
fi
export DPKG_ROOT="$root"
bin="$root$PREFIX/bin/edgefn"
unit="$root/etc/systemd/system/edgefn.service"

case "$action" in
install)
	for f in edgefn edgefn.yaml edgefn.service maint/postinst; do
		[ -f "$here/$f" ] || { echo "install.sh: $here/$f missing: run me from the unpacked release tarball" >&2; exit 1; }
	done
	# Works on this machine? (wrong architecture or too old a libc shows here)
	if [ -z "$root" ] && ! "$here/edgefn" version >/dev/null 2>&1; then
		echo "install.sh: $here/edgefn does not run here:" >&2
		"$here/edgefn" version >&2 || true
		echo "  pick the tarball for $(uname -m) (armv6 for a Pi Zero/1 or an older libc)" >&2
		exit 1
	fi
	upgrade=""
	[ -f "$bin" ] && upgrade=$("$bin" version 2>/dev/null | awk '{print $2}' || echo old)
	[ -f "$bin" ] && [ -z "$upgrade" ] && upgrade=old
	mkdir -p "$(dirname "$bin")" "$root/etc/edgefn/functions" "$(dirname "$unit")"
	install -m 0755 "$here/edgefn" "$bin.new" && mv -f "$bin.new" "$bin"
	if [ -f "$root/etc/edgefn/edgefn.yaml" ]; then
		# Like a dpkg conffile: keep the admin's edits, leave the new one beside.
		cmp -s "$here/edgefn.yaml" "$root/etc/edgefn/edgefn.yaml" ||
			install -m 0640 "$here/edgefn.yaml" "$root/etc/edgefn/edgefn.yaml.dist"
	else
		install -m 0640 "$here/edgefn.yaml" "$root/etc/edgefn/edgefn.yaml"
	fi
	sed "s#^ExecStart=/usr/bin/edgefn #ExecStart=$PREFIX/bin/edgefn #" "$here/edgefn.service" > "$unit.new"
	chmod 0644 "$unit.new" && mv -f "$unit.new" "$unit"
	mkdir -p "$root/usr/local/lib/edgefn"
	cp "$here/maint/prerm" "$here/maint/postrm" "$root/usr/local/lib/edgefn/"
	sh "$here/maint/postinst" configure $upgrade
	echo "edgefn installed: $bin, /etc/edgefn/edgefn.yaml, $unit${upgrade:+ (upgraded from $upgrade)}"
	;;
uninstall | purge)
	lib="$root/usr/local/lib/edgefn"
	[ -f "$lib/prerm" ] || lib="$here/maint"
	sh "$lib/prerm" remove
	rm -f "$bin" "$unit"
	sh "$lib/postrm" remove
	if [ "$action" = purge ]; then
		sh "$lib/postrm" purge
		rm -rf "$root/usr/local/lib/edgefn"
	fi
	echo "edgefn ${action}d${root:+ in $root}"
	;;
esac
