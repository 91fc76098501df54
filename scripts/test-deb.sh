#!/usr/bin/env bash
# Installs the edgefn .deb into a throwaway root as a new user would, then
# upgrades, removes and purges it, checking files, user, unit and config at
# each step; then the same with the tarball's install.sh.
#
#   scripts/test-deb.sh DEB [TARBALL]
#
# dpkg runs with --root and --force-script-chrootless: the maintainer
# scripts run on this host with DPKG_ROOT set and edit only that root.
# The installed binary is started on the installed config (paths moved
# under the root, loopback ports) until it prints "ready". Needs root.
set -uo pipefail
deb=${1:?usage: scripts/test-deb.sh DEB [TARBALL]}
tarball=${2:-}
pass=0
fail=0
ok() { echo "ok   $*"; pass=$((pass + 1)); }
bad() { echo "FAIL $*"; fail=$((fail + 1)); }
check() { # check DESCRIPTION COMMAND...
	local d=$1
	shift
	if "$@" >/dev/null 2>&1; then ok "$d"; else bad "$d"; fi
}

work=$(mktemp -d /tmp/edgefn-test-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT

# A root with the few files useradd and dpkg need, and a gpio group as on
# Raspberry Pi OS.
newroot() {
	local r=$1
	mkdir -p "$r/etc" "$r/var/lib/dpkg/info" "$r/var/lib/dpkg/updates" "$r/usr/bin"
	printf 'root:x:0:0:root:/root:/bin/bash\n' > "$r/etc/passwd"
	printf 'root:x:0:\ngpio:x:997:\n' > "$r/etc/group"
	printf 'root:*:19000:0:99999:7:::\n' > "$r/etc/shadow"
	printf 'root:*::\ngpio:!::\n' > "$r/etc/gshadow"
	chmod 0640 "$r/etc/shadow" "$r/etc/gshadow"
	: > "$r/var/lib/dpkg/status"
	: > "$r/var/lib/dpkg/available"
}

# Checks shared by the .deb and the tarball. $1 root, $2 binary path in it.
installed() {
	local r=$1 bin=$2 what=$3
	check "$what: binary $bin runs" "$r$bin" version
	check "$what: config /etc/edgefn/edgefn.yaml" test -f "$r/etc/edgefn/edgefn.yaml"
	check "$what: config mode 0640 root:edgefn" test "$(stat -c '%a %u' "$r/etc/edgefn/edgefn.yaml")" = "640 0"
	check "$what: functions dir" test -d "$r/etc/edgefn/functions"
	local pw
	pw=$(grep '^edgefn:' "$r/etc/passwd")
	check "$what: system user edgefn ($pw)" test -n "$pw"
	local uid=${pw#edgefn:x:}
	uid=${uid%%:*}
	check "$what: edgefn is a system user (uid $uid < 1000)" test "$uid" -lt 1000
	check "$what: home /var/lib/edgefn, shell nologin" grep -q '^edgefn:x:[0-9]*:[0-9]*:[^:]*:/var/lib/edgefn:/usr/sbin/nologin$' "$r/etc/passwd"
	check "$what: edgefn in group gpio" grep -q '^gpio:x:997:.*edgefn' "$r/etc/group"
	check "$what: /var/lib/edgefn owned by edgefn, 0750" test "$(stat -c '%a %u' "$r/var/lib/edgefn")" = "750 $uid"
	check "$what: config group edgefn" test "$(stat -c '%g' "$r/etc/edgefn/edgefn.yaml")" = "$(awk -F: '$1=="edgefn"{print $3}' "$r/etc/group")"
}

# Runs the installed agent on the installed config until it says ready.
runs() {
	local r=$1 bin=$2 what=$3
	local cfg="$work/run.yaml" out="$work/run.out"
	sed -e "s#/var/lib/edgefn#$r/var/lib/edgefn#; s#/etc/edgefn/functions#$r/etc/edgefn/functions#" \
		-e 's#listen: ":1883"#listen: "127.0.0.1:0"#; s#listen: 127.0.0.1:8787#listen: 127.0.0.1:0#' \
		"$r/etc/edgefn/edgefn.yaml" > "$cfg"
	"$r$bin" agent --config "$cfg" > "$out" 2>&1 &
	local pid=$! i
	for i in $(seq 1 300); do
		grep -q ready "$out" && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.1
	done
	if grep -q ready "$out"; then ok "$what: agent starts on the packaged config"; else bad "$what: agent starts on the packaged config: $(tail -3 "$out")"; fi
	kill -TERM $pid 2>/dev/null
	wait $pid 2>/dev/null
	check "$what: outbox created in the data dir" test -f "$r/var/lib/edgefn/outbox.db"
}

unit_checks() {
	local r=$1 unit=$2 bin=$3 what=$4
	check "$what: unit $unit" test -f "$r$unit"
	if command -v systemd-analyze >/dev/null; then
		mkdir -p "$work/unit"
		sed "s#^ExecStart=$bin #ExecStart=$r$bin #" "$r$unit" > "$work/unit/edgefn.service"
		if systemd-analyze verify "$work/unit/edgefn.service" > "$work/verify.out" 2>&1; then
			ok "$what: systemd-analyze verify"
		else
			bad "$what: systemd-analyze verify: $(cat "$work/verify.out")"
		fi
		local score
		score=$(systemd-analyze security --offline=yes "$work/unit/edgefn.service" 2>/dev/null | grep -o 'Overall exposure level for edgefn.service: [0-9.]* [A-Z]*' | awk '{print $6, $7}')
		echo "     systemd-analyze security: $score"
		check "$what: systemd-analyze security exposure <= 2.0 ($score)" awk -v s="${score%% *}" 'BEGIN { exit !(s != "" && s <= 2.0) }'
	fi
}

# ---- .deb
r="$work/root"
newroot "$r"
dp=(dpkg --root="$r" --force-not-root --force-script-chrootless --force-depends --log=/dev/null)
echo "== dpkg -i $deb"
dpkg-deb --info "$deb" | sed -n '/Package:/,/Description:/p'
dpkg-deb --contents "$deb"
check "deb: dpkg -i" "${dp[@]}" -i "$deb"
check "deb: status installed" grep -q '^Status: install ok installed' "$r/var/lib/dpkg/status"
check "deb: /etc/edgefn/edgefn.yaml is a conffile" grep -q '^ /etc/edgefn/edgefn.yaml ' "$r/var/lib/dpkg/status"
installed "$r" /usr/bin/edgefn deb
check "deb: unit enables into multi-user.target" grep -q '^WantedBy=multi-user.target' "$r/lib/systemd/system/edgefn.service"
unit_checks "$r" /lib/systemd/system/edgefn.service /usr/bin/edgefn deb
runs "$r" /usr/bin/edgefn deb

echo "== upgrade (same package again) keeps an edited config and the data"
echo "# edited by the admin" >> "$r/etc/edgefn/edgefn.yaml"
touch "$r/var/lib/edgefn/keep-me"
check "deb: upgrade" "${dp[@]}" --force-confold -i "$deb"
check "deb: upgrade kept the edited config" grep -q '^# edited by the admin' "$r/etc/edgefn/edgefn.yaml"
check "deb: upgrade kept the data" test -f "$r/var/lib/edgefn/keep-me"
installed "$r" /usr/bin/edgefn deb-upgraded

echo "== remove keeps config, data and user"
check "deb: dpkg -r" "${dp[@]}" -r edgefn
check "deb: binary gone" test ! -e "$r/usr/bin/edgefn"
check "deb: unit gone" test ! -e "$r/lib/systemd/system/edgefn.service"
check "deb: config kept" test -f "$r/etc/edgefn/edgefn.yaml"
check "deb: data kept" test -f "$r/var/lib/edgefn/keep-me"
check "deb: user kept" grep -q '^edgefn:' "$r/etc/passwd"

echo "== purge removes config, data and user"
check "deb: dpkg -P" "${dp[@]}" -P edgefn
check "deb: data dir gone" test ! -e "$r/var/lib/edgefn"
check "deb: /etc/edgefn gone" test ! -e "$r/etc/edgefn"
check "deb: user gone" bash -c "! grep -q '^edgefn:' '$r/etc/passwd'"
check "deb: group gone" bash -c "! grep -q '^edgefn:' '$r/etc/group'"
check "deb: gpio group kept" grep -q '^gpio:x:997:' "$r/etc/group"

# ---- tarball
if [ -n "$tarball" ]; then
	r="$work/root2"
	newroot "$r"
	echo "== install.sh from $tarball"
	tar -C "$work" -xzf "$tarball"
	dir=$(find "$work" -maxdepth 1 -type d -name 'edgefn_*' | head -1)
	check "tarball: install.sh --root" "$dir/install.sh" --root "$r"
	installed "$r" /usr/local/bin/edgefn tarball
	unit_checks "$r" /etc/systemd/system/edgefn.service /usr/local/bin/edgefn tarball
	echo "# edited" >> "$r/etc/edgefn/edgefn.yaml"
	check "tarball: install.sh again (upgrade)" "$dir/install.sh" --root "$r"
	check "tarball: upgrade kept the edited config" grep -q '^# edited' "$r/etc/edgefn/edgefn.yaml"
	check "tarball: install.sh --purge" "$dir/install.sh" --root "$r" --purge
	check "tarball: binary gone" test ! -e "$r/usr/local/bin/edgefn"
	check "tarball: data dir gone" test ! -e "$r/var/lib/edgefn"
	check "tarball: user gone" bash -c "! grep -q '^edgefn:' '$r/etc/passwd'"
fi

echo "test-deb: $pass passed, $fail failed"
[ "$fail" = 0 ]
