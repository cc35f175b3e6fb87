#!/usr/bin/env bash
# The Debian package: CPack builds it from this build tree; `dpkg-deb -c`
# must list the installed layout, its control data must name the runtime
# dependencies, the conffiles and the maintainer scripts (postinst run
# against stand-ins for the account tools); lintian must
# report no error and `systemd-analyze verify` must accept both units
# without a word. lintian and systemd-analyze are used where they exist
# (tools/deps installs lintian; systemd-analyze comes with systemd): a
# missing one is said, not hidden.
#
# Run by ctest with FP_BUILD_DIR and FP_TEST_TMP.
set -euo pipefail

# shellcheck source=ft_check.sh
. "$(dirname "$0")/ft_check.sh"

t=$(ft_tmp package)
if ! cpack --config "$FP_BUILD_DIR/CPackConfig.cmake" -B "$t" >"$t/cpack.log" 2>&1; then
    sed 's/^/    /' "$t/cpack.log"
    echo "FAIL cpack could not build the package"
    exit 1
fi
deb=$(ls "$t"/feedpush_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || { echo "FAIL cpack made no feedpush_*.deb (see $t/cpack.log)"; exit 1; }
ok "built ${deb##*/}"

# The layout (docs/deploy.md).
dpkg-deb -c "$deb" | awk '{print $NF}' | sed 's|^\./|/|' >"$t/contents"
for f in /usr/bin/feed-bridge /usr/bin/feed-gateway /usr/bin/feedctl /usr/lib/feedpush/feed_auth.so \
    /usr/share/feedpush/www/index.html /usr/share/feedpush/www/app.js \
    /usr/share/feedpush/www/style.css /usr/share/feedpush/www/vendor/mqtt.min.js \
    /etc/feedpush/bridge.conf /etc/feedpush/gateway.conf /etc/feedpush/mosquitto/feedpush.conf \
    /lib/systemd/system/feed-bridge.service /lib/systemd/system/feed-gateway.service \
    /usr/share/doc/feedpush/copyright /usr/share/doc/feedpush/changelog.gz \
    /usr/share/doc/feedpush/deploy.md /usr/share/man/man8/feed-bridge.8.gz \
    /usr/share/man/man8/feed-gateway.8.gz /usr/share/man/man1/feedctl.1.gz; do
    if grep -qxF "$f" "$t/contents"; then ok "dpkg-deb -c lists $f"; else fail "the package lacks $f"; fi
done

# Control data.
depends=$(dpkg-deb -f "$deb" Depends)
for dep in mosquitto libmosquitto1 librabbitmq4 libhiredis0.14 libwebsockets17 libcjson1 libssl3 adduser; do
    case ", $depends" in *", $dep "* | *", $dep,"* | *", $dep") ok "Depends: $dep" ;;
    *) fail "Depends lacks $dep: $depends" ;; esac
done
mkdir "$t/control"
dpkg-deb -e "$deb" "$t/control"
for f in /etc/feedpush/bridge.conf /etc/feedpush/gateway.conf /etc/feedpush/mosquitto/feedpush.conf; do
    if grep -qxF "$f" "$t/control/conffiles"; then ok "conffile $f"; else fail "$f is not a conffile"; fi
done
for s in postinst prerm postrm; do
    if [ -x "$t/control/$s" ] && sh -n "$t/control/$s"; then ok "$s is an executable sh script"; else fail "$s"; fi
done
# A removal stops the daemons before their binaries go.
if grep -Eq '(deb-systemd-invoke|systemctl) .*stop.* feed-bridge.service feed-gateway.service' "$t/control/prerm"; then
    ok "prerm stops both daemons on removal"
else
    fail "prerm does not stop the daemons on removal"
fi
# Nothing is started before the operator configured it.
if grep -Eq 'systemctl[^|]*(start|enable|restart)|invoke-rc.d|deb-systemd-invoke' "$t/control/postinst"; then
    fail "postinst starts or enables a service"
else
    ok "postinst neither enables nor starts a service"
fi

# What postinst does to users and groups, run against stand-ins for the
# account tools (installing for real would change this machine's users):
# each records its call, getent answers from the stand-ins' own lists. The
# broker's user joins feedpush-broker, never feedpush (whose files hold
# the AMQP password and the bridge's signing key).
stub="$t/stub"
mkdir "$stub"
for cmd in addgroup adduser chgrp chmod systemctl dpkg-statoverride; do
    cat >"$stub/$cmd" <<EOF
#!/bin/sh
echo "$cmd \$*" >>"$stub/calls"
for last; do :; done
case "$cmd \$*" in
addgroup*) echo "\$last" >>"$stub/group" ;;
"adduser --quiet --system"*) echo "\$last" >>"$stub/passwd" ;;
"dpkg-statoverride --list"*)
    while read -r f; do [ "\$f" = "\$last" ] && exit 0; done <"$stub/overrides"
    exit 1 ;;
esac
exit 0
EOF
done
# stat -c %u|%g|%a FILE: the uid, gid or mode in $stub/stat.out.
cat >"$stub/stat" <<EOF
#!/bin/sh
read -r u g m <"$stub/stat.out"
case "\$2" in %u) echo "\$u" ;; %g) echo "\$g" ;; %a) echo "\$m" ;; *) exit 1 ;; esac
EOF
cat >"$stub/getent" <<EOF
#!/bin/sh
while read -r name; do [ "\$name" = "\$2" ] && exit 0; done <"$stub/\$1"
exit 2
EOF
chmod +x "$stub"/*

# run_postinst CASE USERS GROUPS ARGS...: postinst ARGS with those users
# and groups existing, the configs as $stat_now says (uid gid mode)
# and the stat overrides in $overrides; its calls land in $stub/calls.
stat_now="0 0 644"
overrides=""
run_postinst() {
    local case=$1
    printf '%s\n' $2 >"$stub/passwd"
    printf '%s\n' $3 >"$stub/group"
    printf '%s\n' "$stat_now" >"$stub/stat.out"
    printf '%s\n' $overrides >"$stub/overrides"
    : >"$stub/calls"
    shift 3
    if DPKG_ROOT="$t/etcroot" PATH="$stub" /bin/sh "$t/control/postinst" "$@" >"$t/postinst.log" 2>&1; then
        ok "postinst $* ($case) ran against the stand-ins"
    else
        sed 's/^/    /' "$t/postinst.log"
        fail "postinst $* ($case) failed"
    fi
    sed 's/^/    /' "$stub/calls"
}
called() { grep -qxF "$1" "$stub/calls"; }
expect_calls() {
    local case=$1 want
    shift
    for want; do
        if called "$want"; then ok "postinst ($case): $want"; else fail "postinst ($case) did not run: $want"; fi
    done
}
expect_no_calls() {
    local case=$1 pattern
    shift
    for pattern; do
        if grep -Eq "$pattern" "$stub/calls"; then
            fail "postinst ($case) ran what it must not: $(grep -E "$pattern" "$stub/calls" | head -n 1)"
        else
            ok "postinst ($case) ran nothing like /$pattern/"
        fi
    done
}

# prerm, with stand-ins for deb-systemd-helper and deb-systemd-invoke, in
# a DPKG_ROOT whose units the operator enabled with systemctl enable (the
# links deploy.md's step makes, of which deb-systemd-helper keeps no
# record): a removal takes both out of the boot targets and leaves other
# units' links; an upgrade touches nothing.
for cmd in deb-systemd-helper deb-systemd-invoke; do
    cp "$stub/systemctl" "$stub/$cmd"
    sed -i "s/^echo \"systemctl /echo \"$cmd /; s/^case \"systemctl /case \"$cmd /" "$stub/$cmd"
done
ln -s "$(command -v rm)" "$stub/rm" # the real one: prerm removes links
wants="$t/prermroot/etc/systemd/system/multi-user.target.wants"
enable_units() {
    mkdir -p "$wants"
    for u in feed-bridge feed-gateway other; do
        ln -sfn "/lib/systemd/system/$u.service" "$wants/$u.service"
    done
}
run_prerm() {
    : >"$stub/calls"
    if DPKG_ROOT="$t/prermroot" PATH="$stub" /bin/sh "$t/control/prerm" "$@" >"$t/prerm.log" 2>&1; then
        ok "prerm $* ran against the stand-ins"
    else
        sed 's/^/    /' "$t/prerm.log"
        fail "prerm $* failed"
    fi
}
enable_units
run_prerm remove
if [ ! -e "$wants/feed-bridge.service" ] && [ ! -L "$wants/feed-bridge.service" ] &&
    [ ! -L "$wants/feed-gateway.service" ] && [ -L "$wants/other.service" ]; then
    ok "prerm remove took both units, and only them, out of multi-user.target"
else
    ls -l "$wants" | sed 's/^/    /'
    fail "prerm remove left the units enabled (or took another's link)"
fi
enable_units
run_prerm upgrade 0.1.0
if [ -s "$stub/calls" ] || [ ! -L "$wants/feed-bridge.service" ]; then
    sed 's/^/    /' "$stub/calls"
    fail "prerm upgrade ran commands or disabled a unit"
else
    ok "prerm upgrade runs nothing"
fi

# The configs the postinst looks at (under DPKG_ROOT).
mkdir -p "$t/etcroot/etc/feedpush"
touch "$t/etcroot/etc/feedpush/bridge.conf" "$t/etcroot/etc/feedpush/gateway.conf"

run_postinst "fresh install" "mosquitto" "" configure ""
expect_calls "fresh install" "addgroup --quiet --system feedpush" \
    "addgroup --quiet --system feedpush-broker" "adduser --quiet feedpush feedpush-broker" \
    "adduser --quiet mosquitto feedpush-broker" \
    "dpkg-statoverride --update --add root feedpush 0640 /etc/feedpush/bridge.conf" \
    "dpkg-statoverride --update --add root feedpush 0640 /etc/feedpush/gateway.conf"
expect_no_calls "fresh install" '^adduser .*mosquitto feedpush$' '^chgrp ' '^chmod '

# An upgrade from a build that had no feedpush-broker: the group comes,
# both users join it; the configs' owner and mode, an operator's choice
# by now, are kept by a stat override, so that a new version of a config
# gets them too.
stat_now="0 5000 600" # a group with no name
run_postinst "upgrade" "feedpush mosquitto" "feedpush" configure 0.1.0
expect_calls "upgrade" "addgroup --quiet --system feedpush-broker" \
    "adduser --quiet feedpush feedpush-broker" "adduser --quiet mosquitto feedpush-broker" \
    "dpkg-statoverride --add #0 #5000 600 /etc/feedpush/bridge.conf"
expect_no_calls "upgrade" '^addgroup .*feedpush$' '^adduser --quiet --system' '^chgrp ' '^chmod ' \
    '^adduser .*mosquitto feedpush$' ' --update '

# An upgrade that finds a config at the package's own root:root 644 (dpkg
# gave a new version of it that mode before there was an override): it
# gets the configs' mode back.
stat_now="0 0 644"
run_postinst "upgrade, config at 644" "feedpush mosquitto" "feedpush feedpush-broker" configure 0.1.0
expect_calls "upgrade, config at 644" \
    "dpkg-statoverride --update --add root feedpush 0640 /etc/feedpush/gateway.conf"

# An upgrade with the overrides in place: nothing to record.
overrides="/etc/feedpush/bridge.conf /etc/feedpush/gateway.conf"
run_postinst "upgrade, overrides" "feedpush mosquitto" "feedpush feedpush-broker" configure 0.1.0
expect_no_calls "upgrade, overrides" ' --add '
overrides=""

# No broker on this host (its package removed): no mosquitto user to add.
run_postinst "no mosquitto user" "" "" configure ""
expect_no_calls "no mosquitto user" '^adduser .*mosquitto'

# postrm: on removal the broker's link to the snippet goes (mosquitto
# would not start with feed_auth.so gone); a copy of it is only named; a
# purge drops the stat overrides.
run_postrm() {
    : >"$stub/calls"
    printf '%s\n' $overrides >"$stub/overrides"
    if DPKG_ROOT="$t/etcroot" PATH="$stub:$PATH" /bin/sh "$t/control/postrm" "$@" >"$t/postrm.log" 2>&1; then
        ok "postrm $* ran"
    else
        sed 's/^/    /' "$t/postrm.log"
        fail "postrm $* failed"
    fi
}
confd=$t/etcroot/etc/mosquitto/conf.d
mkdir -p "$confd"
ln -s /etc/feedpush/mosquitto/feedpush.conf "$confd/feedpush.conf"
run_postrm remove
if [ ! -e "$confd/feedpush.conf" ] && [ ! -L "$confd/feedpush.conf" ] &&
    grep -q "removed the link" "$t/postrm.log"; then
    ok "postrm remove: the broker's link to the snippet is gone"
else
    fail "postrm remove left the broker's link to the snippet"
fi
echo "plugin /usr/lib/feedpush/feed_auth.so" >"$confd/feedpush.conf"
run_postrm remove
if [ -f "$confd/feedpush.conf" ] && grep -q "which is gone: remove it" "$t/postrm.log"; then
    ok "postrm remove: a copy of the snippet is kept and named"
else
    fail "postrm remove: a copy of the snippet was not kept and named"
fi
rm "$confd/feedpush.conf"
overrides="/etc/feedpush/bridge.conf /etc/feedpush/gateway.conf"
run_postrm purge
if called "dpkg-statoverride --remove /etc/feedpush/bridge.conf" &&
    called "dpkg-statoverride --remove /etc/feedpush/gateway.conf"; then
    ok "postrm purge drops the configs' stat overrides"
else
    fail "postrm purge did not drop the stat overrides: $(cat "$stub/calls")"
fi
overrides=""

if command -v lintian >/dev/null 2>&1; then
    rc=0
    lintian --fail-on error "$deb" >"$t/lintian.log" 2>&1 || rc=$?
    sed 's/^/    /' "$t/lintian.log"
    if [ $rc -eq 0 ] && ! grep -q '^E: ' "$t/lintian.log"; then
        ok "lintian: no errors ($(grep -c '^W: ' "$t/lintian.log" || true) warnings)"
    else
        fail "lintian reports errors (exit $rc)"
    fi
else
    echo "skip lintian: not installed (tools/deps installs it)"
fi

if command -v systemd-analyze >/dev/null 2>&1; then
    # The package's tree, plus the system's own units (the targets ours
    # refer to), as the root systemd resolves everything in.
    root=$t/root
    dpkg-deb -x "$deb" "$root"
    cp -rn /lib/systemd/system/. "$root/lib/systemd/system/"
    rc=0
    systemd-analyze verify --root="$root" /lib/systemd/system/feed-bridge.service \
        /lib/systemd/system/feed-gateway.service >"$t/verify.log" 2>&1 || rc=$?
    # verify exits 0 on unknown keys and bad values: any output is a finding.
    if [ $rc -eq 0 ] && [ ! -s "$t/verify.log" ]; then
        ok "systemd-analyze verify accepts both units"
    else
        sed 's/^/    /' "$t/verify.log"
        fail "systemd-analyze verify (exit $rc)"
    fi
else
    echo "skip systemd-analyze: not installed (Debian package systemd)"
fi

# What the package ships is hardened (FEEDPUSH_HARDEN, on by default
# outside the sanitizer build): full RELRO, the stack protector and, in an
# optimised build, glibc's checked calls (_FORTIFY_SOURCE).
cache=$FP_BUILD_DIR/CMakeCache.txt
harden=$(sed -n 's/^FEEDPUSH_HARDEN:BOOL=//p' "$cache")
sanitize=$(sed -n 's/^FEEDPUSH_SANITIZE:BOOL=//p' "$cache")
btype=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$cache")
if [ "$harden" = ON ] && [ "$sanitize" != ON ]; then
    x=$t/hardened
    dpkg-deb -x "$deb" "$x"
    for f in /usr/bin/feed-bridge /usr/bin/feed-gateway /usr/bin/feedctl /usr/lib/feedpush/feed_auth.so; do
        readelf -W -d --dyn-syms "$x$f" >"$t/readelf.txt" 2>&1 || true
        why=""
        grep -q 'BIND_NOW' "$t/readelf.txt" || why="$why no BIND_NOW;"
        grep -q ' __stack_chk_fail' "$t/readelf.txt" || why="$why no stack protector;"
        case $btype in Release | RelWithDebInfo | MinSizeRel)
            grep -q '_chk@' "$t/readelf.txt" || why="$why no fortified call;" ;;
        esac
        if [ -z "$why" ]; then ok "$f is hardened"; else fail "$f is not hardened:$why"; fi
    done
else
    echo "skip the hardening check: a sanitizer build, or FEEDPUSH_HARDEN is off"
fi

[ "$failures" -ne 0 ] || rm -rf "$t"
verdict
