# packaging/install.cmake: run by `cmake --install` (and so by CPack) after
# the plain files are in place. It renders what holds installed paths for
# the prefix being installed to, which is only known now (`--prefix`
# overrides CMAKE_INSTALL_PREFIX at install time):
#
#   <sysconfdir>/feedpush/bridge.conf, gateway.conf   from conf/
#   <sysconfdir>/feedpush/mosquitto/feedpush.conf     mosquitto.conf's feedpush part
#   <unitdir>/feed-bridge.service, feed-gateway.service   from packaging/systemd/
#
# <sysconfdir> is /etc for the prefixes /usr and /, else <prefix>/etc;
# <unitdir> is /lib/systemd/system for /usr (Debian 12), else
# <prefix>/lib/systemd/system. Files land under $DESTDIR. Each config is
# also kept as installed in <prefix>/share/feedpush/conf/ (its pristine
# copy): a config that exists with other contents is replaced when it is
# still its pristine copy (nobody edited it since the last install), and
# kept otherwise (an operator's edits): the new one is then written beside
# it as <name>.dist, and a line says so.
#
# Expects FP_SOURCE_DIR (the source tree) to be set by the caller.

set(fp_prefix "${CMAKE_INSTALL_PREFIX}")
string(REGEX REPLACE "/+$" "" fp_prefix "${fp_prefix}")
if(fp_prefix STREQUAL "/usr" OR fp_prefix STREQUAL "")
    set(fp_etc "/etc")
else()
    set(fp_etc "${fp_prefix}/etc")
endif()
if(fp_prefix STREQUAL "/usr")
    set(fp_unitdir "/lib/systemd/system")
else()
    set(fp_unitdir "${fp_prefix}/lib/systemd/system")
endif()
set(fp_bindir "${fp_prefix}/bin")
set(fp_plugindir "${fp_prefix}/lib/feedpush")
set(fp_wwwdir "${fp_prefix}/share/feedpush/www")

if(NOT EXISTS "$ENV{DESTDIR}${fp_wwwdir}/vendor/mqtt.min.js")
    message(FATAL_ERROR "feedpush: the browser client's MQTT.js (node_modules/mqtt/dist/mqtt.min.js) "
                        "was not in the build: run `npm ci` in the source tree (tools/deps does), "
                        "then configure and build again before installing")
endif()

# fp_write(<path> <content> <pristine>): writes $DESTDIR<path> and records
# it in the install manifest. With pristine (a config's path under
# share/feedpush/conf/, "" for none), an existing file with other contents
# is kept unless it is the pristine copy of the last install, and the
# pristine copy is written with content.
function(fp_write path content pristine)
    set(dst "$ENV{DESTDIR}${path}")
    if(NOT pristine STREQUAL "" AND EXISTS "${dst}")
        file(READ "${dst}" old)
        set(was "")
        if(EXISTS "$ENV{DESTDIR}${pristine}")
            file(READ "$ENV{DESTDIR}${pristine}" was)
        endif()
        if(old STREQUAL content)
            # the same: written again below
        elseif(EXISTS "$ENV{DESTDIR}${pristine}" AND old STREQUAL was)
            message(STATUS "Updating: ${dst} (not edited since installed)")
        else()
            message(STATUS "Keeping: ${dst} (changed since installed; the new one is ${dst}.dist)")
            set(dst "${dst}.dist")
        endif()
    endif()
    message(STATUS "Installing: ${dst}")
    file(WRITE "${dst}" "${content}")
    set(fp_files "${dst}")
    if(NOT pristine STREQUAL "")
        file(WRITE "$ENV{DESTDIR}${pristine}" "${content}")
        list(APPEND fp_files "$ENV{DESTDIR}${pristine}")
    endif()
    set(CMAKE_INSTALL_MANIFEST_FILES ${CMAKE_INSTALL_MANIFEST_FILES} ${fp_files} PARENT_SCOPE)
endfunction()
set(fp_pristine "${fp_prefix}/share/feedpush/conf")

# The daemons' configs: the shipped examples with the installed paths.
file(READ "${FP_SOURCE_DIR}/conf/bridge.conf" fp_bridge)
string(REPLACE "/etc/feedpush/" "${fp_etc}/feedpush/" fp_bridge "${fp_bridge}")
fp_write("${fp_etc}/feedpush/bridge.conf" "${fp_bridge}" "${fp_pristine}/bridge.conf")

file(READ "${FP_SOURCE_DIR}/conf/gateway.conf" fp_gateway)
string(REPLACE "/etc/feedpush/" "${fp_etc}/feedpush/" fp_gateway "${fp_gateway}")
string(REPLACE "/usr/share/feedpush/" "${fp_prefix}/share/feedpush/" fp_gateway "${fp_gateway}")
fp_write("${fp_etc}/feedpush/gateway.conf" "${fp_gateway}" "${fp_pristine}/gateway.conf")

# The broker's part: mosquitto.conf from its marker line on.
file(READ "${FP_SOURCE_DIR}/mosquitto.conf" fp_mosq)
string(FIND "${fp_mosq}" "# ---- feedpush:" fp_at)
if(fp_at LESS 0)
    message(FATAL_ERROR "feedpush: mosquitto.conf has no \"# ---- feedpush:\" marker line")
endif()
string(SUBSTRING "${fp_mosq}" ${fp_at} -1 fp_mosq)
string(REPLACE "/usr/local/lib/feedpush/" "${fp_plugindir}/" fp_mosq "${fp_mosq}")
string(REPLACE "/etc/feedpush/" "${fp_etc}/feedpush/" fp_mosq "${fp_mosq}")
fp_write("${fp_etc}/feedpush/mosquitto/feedpush.conf"
         "# feedpush's part of a mosquitto 2.0 config: include it from the broker's\n# (on Debian: ln -s ${fp_etc}/feedpush/mosquitto/feedpush.conf /etc/mosquitto/conf.d/).\n${fp_mosq}"
         "${fp_pristine}/mosquitto/feedpush.conf")

# systemd units (not enabled: see docs/deploy.md).
foreach(fp_unit feed-bridge feed-gateway)
    file(READ "${FP_SOURCE_DIR}/packaging/systemd/${fp_unit}.service.in" fp_text)
    string(REPLACE "@BINDIR@" "${fp_bindir}" fp_text "${fp_text}")
    string(REPLACE "@SYSCONFDIR@" "${fp_etc}" fp_text "${fp_text}")
    string(REPLACE "@DOCDIR@" "${fp_prefix}/share/doc/feedpush" fp_text "${fp_text}")
    fp_write("${fp_unitdir}/${fp_unit}.service" "${fp_text}" "")
endforeach()
