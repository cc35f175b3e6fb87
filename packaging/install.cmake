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
# <prefix>/lib/systemd/system. Files land under $DESTDIR. A config that
# exists there with other contents (an operator's edits) is kept: the new
# one is written beside it as <name>.dist, and a line says so.
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

# fp_write(<path> <content> <keep-edits>): writes $DESTDIR<path> and records
# it in the install manifest.
function(fp_write path content keep)
    set(dst "$ENV{DESTDIR}${path}")
    if(keep AND EXISTS "${dst}")
        file(READ "${dst}" old)
        if(NOT old STREQUAL content)
            message(STATUS "Keeping: ${dst} (changed since installed; the new one is ${dst}.dist)")
            set(dst "${dst}.dist")
        endif()
    endif()
    message(STATUS "Installing: ${dst}")
    file(WRITE "${dst}" "${content}")
    set(CMAKE_INSTALL_MANIFEST_FILES ${CMAKE_INSTALL_MANIFEST_FILES} "${dst}" PARENT_SCOPE)
endfunction()

# The daemons' configs: the shipped examples with the installed paths.
file(READ "${FP_SOURCE_DIR}/conf/bridge.conf" fp_bridge)
string(REPLACE "/etc/feedpush/" "${fp_etc}/feedpush/" fp_bridge "${fp_bridge}")
fp_write("${fp_etc}/feedpush/bridge.conf" "${fp_bridge}" TRUE)

file(READ "${FP_SOURCE_DIR}/conf/gateway.conf" fp_gateway)
string(REPLACE "/etc/feedpush/" "${fp_etc}/feedpush/" fp_gateway "${fp_gateway}")
string(REPLACE "/usr/share/feedpush/" "${fp_prefix}/share/feedpush/" fp_gateway "${fp_gateway}")
fp_write("${fp_etc}/feedpush/gateway.conf" "${fp_gateway}" TRUE)

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
         TRUE)

# systemd units (not enabled: see docs/deploy.md).
foreach(fp_unit feed-bridge feed-gateway)
    file(READ "${FP_SOURCE_DIR}/packaging/systemd/${fp_unit}.service.in" fp_text)
    string(REPLACE "@BINDIR@" "${fp_bindir}" fp_text "${fp_text}")
    string(REPLACE "@SYSCONFDIR@" "${fp_etc}" fp_text "${fp_text}")
    string(REPLACE "@DOCDIR@" "${fp_prefix}/share/doc/feedpush" fp_text "${fp_text}")
    fp_write("${fp_unitdir}/${fp_unit}.service" "${fp_text}" FALSE)
endforeach()
