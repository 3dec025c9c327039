#!/usr/bin/env bash
# authgate's performance measurements (issue 4). Results and how to read them: BENCHMARKS.md.
#
#   scripts/bench.sh [peer]          release build, then ../shared/bench/run.sh with authgate
#                                    (authgate-hs256, authgate-rs256 next to haproxy, nginx, ...)
#   scripts/bench.sh micro [ARGS]    micro-benchmarks (Benchmarks/ package, ordo-one/benchmark);
#                                    ARGS go to `swift package benchmark`, e.g.
#                                      micro --filter 'Verify.*'
#                                      micro baseline update main      (writes Benchmarks/.benchmarkBaselines/)
#                                      micro baseline compare main     (this tree vs the stored baseline)
#   scripts/bench.sh profile         perf profile of authgate under the peer benchmark's wrk load
#   scripts/bench.sh memory          authgate's RSS with 1,000 keep-alive connections and while
#                                    streaming 1 GiB down and 1 GiB up through it
#   scripts/bench.sh instructions    user-space instructions per request under callgrind (repeatable
#                                    on a busy host; COMPARE_BIN adds a second build for an A/B)
#   scripts/bench.sh ratios [DIR]    authgate vs haproxy-proxy / haproxy-jwt for one peer run
#                                    (default: the latest under BENCH_OUT); peer prints it too
#
# Environment:
#   peer:     everything ../shared/bench/run.sh reads passes through (ONLY, DURATION, ROUNDS,
#             WARMUP, CONNS, EXTRA_VARIANTS, EXTRA_CONTENDERS, WAIT_QUIET, NOISE_PCT, ...).
#             BENCH_OUT (default .build-bench-out/peer) receives .run/ and results/<stamp>/ (the
#             peer folder is read-only). PEER_BENCH overrides where run.sh is (../shared/bench).
#             COMPARE_BIN=/other/authgate [COMPARE_LABEL=b] [COMPARE_ARGS='--threads 1'] adds a
#             second authgate (another build, or the same one with other serve flags) to the same
#             run as authgate-b-hs256/-rs256. AUTHGATE_ARGS: extra `serve` flags for authgate-*.
#             BENCH_ACCESS_LOG=PATH turns authgate's access log on (to PATH; off by default, as
#             the peers run without one); COMPARE_ACCESS_LOG=PATH (or empty: off) gives the
#             compared contenders their own setting, for an A/B of the log's cost in one run.
#             AUTHGATE_WIRING=shared uses run.sh's own authgate wiring instead of one config
#             per algorithm (see peer_config below).
#   profile:  PROFILE_ALGS="hs256 rs256" PROFILE_SECONDS=12 PROFILE_FREQ=999 CONNS=32
#             PROFILE_HAPROXY=1 (default) also profiles haproxy-proxy under the same load
#   memory:   MEM_CONNS=1000 MEM_SECONDS=8 STREAM_BYTES=1073741824
#   instructions: INSTR_REQUESTS=4000 INSTR_WARMUP=500 INSTR_CONNS=8 INSTR_ALGS="hs256 rs256"
#             INSTR_HAPROXY=1 also counts haproxy-proxy's instructions under the same load
#             COMPARE_BIN=/other/authgate [COMPARE_LABEL=b]
#   all:      RELEASE_SCRATCH (default .build-release2), MICRO_SCRATCH (default .build-bench),
#             RELEASE_FLAGS (default: the image's, `docker/build-binaries.sh --print-flags`),
#             AUTHGATE_THREADS (profile/memory only; default: authgate's own, one per core)
#
# Load stays on 127.0.0.1; every wait and loop is bounded; only processes this script started
# are stopped, by PID.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEER_BENCH=${PEER_BENCH:-$ROOT/../shared/bench}
RELEASE_SCRATCH=${RELEASE_SCRATCH:-$ROOT/.build-release2}
MICRO_SCRATCH=${MICRO_SCRATCH:-$ROOT/.build-bench}
OUT_ROOT=$ROOT/.build-bench-out
LOADGEN_CPU=${LOADGEN_CPU:-0}
UPSTREAM_CPU=${UPSTREAM_CPU:-0}
CONTENDER_CPU=${CONTENDER_CPU:-1}

say() { printf '%s\n' "$*"; }
die() { printf 'bench.sh: %s\n' "$*" >&2; exit 2; }

# The binaries measured are built as the image's are (docker/build-binaries.sh: release, Swift
# runtime linked statically), but keep their symbols for perf.
# RELEASE_FLAGS overrides them (e.g. RELEASE_FLAGS="-c release" for a plain release build).
RELEASE_FLAGS=${RELEASE_FLAGS:-$(sh "$ROOT/docker/build-binaries.sh" --print-flags)}
build_release() {  # products...
  local product
  for product in "$@"; do
    say "== swift build $RELEASE_FLAGS --scratch-path ${RELEASE_SCRATCH#"$ROOT"/} --product $product"
    # shellcheck disable=SC2086 # a list of options
    (cd "$ROOT" && swift build $RELEASE_FLAGS --scratch-path "$RELEASE_SCRATCH" --product "$product")
  done
  # shellcheck disable=SC2086
  BIN=$(cd "$ROOT" && swift build $RELEASE_FLAGS --scratch-path "$RELEASE_SCRATCH" --show-bin-path)
}

# ------------------------------------------------------------------ processes we start
STARTED=()
forget() { local keep=() p; for p in "${STARTED[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done; STARTED=("${keep[@]}"); }
stop_started() {
  local pid i deadline
  for (( i=${#STARTED[@]}-1; i>=0; i-- )); do kill -TERM "${STARTED[i]}" 2>/dev/null || true; done
  deadline=$((SECONDS + 10))
  for pid in "${STARTED[@]}"; do
    while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  done
  STARTED=()
}
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {  # port pid name: bounded wait (15 s) for an HTTP answer
  local deadline=$((SECONDS + 15))
  while (( SECONDS < deadline )); do
    kill -0 "$2" 2>/dev/null || die "$3 (pid $2) exited during start-up"
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" && return 0
    sleep 0.1
  done
  die "$3 did not answer on :$1 within 15 s"
}
ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }  # utime+stime, all threads
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }   # VmRSS / VmHWM in kB
mib() { awk -v kb="$1" 'BEGIN { printf "%.1f MiB", kb / 1024 }'; }

# Operations settings for benchmark configs. The peers run without access logs (nginx
# `access_log off`, haproxy logging warnings only), so authgate does too unless
# BENCH_ACCESS_LOG=PATH (e.g. /dev/null) asks to measure the log's cost. No admin listener: two
# authgate processes run side by side.
ops_config() {
  if [[ -n ${BENCH_ACCESS_LOG:-} ]]; then
    printf '"admin_listen": null, "access_log": {"path": "%s"},' "$BENCH_ACCESS_LOG"
  else
    printf '"admin_listen": null, "access_log": {"enabled": false},'
  fi
}

# The peer benchmark's authgate configuration (conf/authgate.gateway.json.in), with its keys.
write_gateway_config() {  # file port upstream_port [max_body_bytes]
  local limits=""
  [[ -n ${4:-} ]] && limits="\"limits\": {\"max_body_bytes\": $4},"
  cat >"$1" <<EOF
{
  "listen": "127.0.0.1:$2",
  "providers": [
    {
      "name": "bench",
      "clock_skew_seconds": 30,
      "keys": [
        {"kid": "hs-1", "alg": "HS256", "secret_env": "AUTHGATE_HS256_SECRET"},
        {"kid": "rs-1", "alg": "RS256", "public_key_file": "$PEER_BENCH/keys/rs256.pub.pem"}
      ]
    }
  ],
  "token": {"header": "Authorization", "scheme": "Bearer"},
  "identity_headers": {"sub": "X-Auth-Subject"},
  "forward_token": true,
  $(ops_config)
  $limits
  "routes": [
    {"path_prefix": "/", "upstream": "http://127.0.0.1:$3"}
  ]
}
EOF
}

start_authgate() {  # config port -> AG_PID
  local threads=()
  [[ -n ${AUTHGATE_THREADS:-} ]] && threads=(--threads "$AUTHGATE_THREADS")
  AUTHGATE_HS256_SECRET=$(cat "$PEER_BENCH/keys/hs256.secret") \
    taskset -c "$CONTENDER_CPU" "$BIN/authgate" serve --config "$1" "${threads[@]}" \
    >"$DIR/authgate.log" 2>&1 </dev/null &
  AG_PID=$!; STARTED+=("$AG_PID")
  wait_port "$2" "$AG_PID" authgate
}

mint() {  # config kid -> token on stdout (sub bench-user-42, 2 h)
  local extra=()
  [[ $2 == rs-1 ]] && extra=(--private-key "$PEER_BENCH/keys/rs256.key.pem")
  AUTHGATE_HS256_SECRET=$(cat "$PEER_BENCH/keys/hs256.secret") \
    "$BIN/authgate" token --config "$1" --key "$2" --sub bench-user-42 --ttl 2h "${extra[@]}"
}

# ------------------------------------------------------------------ peer
# run.sh's own authgate wiring (AUTHGATE_BIN) gives both contenders one config holding the HS256
# *and* the RS256 key, while its checks require authgate-hs256 to refuse a good RS256 token (and
# the reverse), as the alg-pinned haproxy/njs contenders do. authgate rightly accepts a token
# signed by any configured key, so those checks fail and run.sh skips authgate. So, by default,
# authgate is passed as EXTRA_CONTENDERS with one config per algorithm (only that key): same
# binary, flags, route and identity header. AUTHGATE_WIRING=shared uses run.sh's wiring.
# COMPARE_BIN=/path/to/other/authgate (label COMPARE_LABEL, default "b"; extra serve flags
# COMPARE_ARGS) adds authgate-LABEL-hs256/-rs256 on ports 9213/9214 to the same run, for A/B
# comparisons; COMPARE_BIN=same lets COMPARE_ARGS alone make the difference.
peer_config() {  # file alg
  local key
  if [[ $2 == hs256 ]]; then
    key='{"kid": "hs-1", "alg": "HS256", "secret_env": "AUTHGATE_HS256_SECRET"}'
  else
    key="{\"kid\": \"rs-1\", \"alg\": \"RS256\", \"public_key_file\": \"$PEER_BENCH/keys/rs256.pub.pem\"}"
  fi
  cat >"$1" <<EOF
{
  "providers": [{"name": "bench", "clock_skew_seconds": 30, "keys": [$key]}],
  "token": {"header": "Authorization", "scheme": "Bearer"},
  "identity_headers": {"sub": "X-Auth-Subject"},
  "forward_token": true,
  $(ops_config)
  "routes": [{"path_prefix": "/", "upstream": "http://127.0.0.1:${UPSTREAM_PORT:-9101}"}]
}
EOF
}

cmd_peer() {
  [[ -x $PEER_BENCH/run.sh ]] || die "no peer benchmark at $PEER_BENCH (set PEER_BENCH)"
  build_release authgate
  export BENCH_OUT=${BENCH_OUT:-$OUT_ROOT/peer}
  mkdir -p "$BENCH_OUT"
  local bin=$BIN/authgate
  if [[ ${AUTHGATE_WIRING:-split} == shared ]]; then
    export AUTHGATE_BIN=$bin
  else
    unset AUTHGATE_BIN
    local conf=$BENCH_OUT/authgate-conf alg extra=""
    mkdir -p "$conf"
    for alg in hs256 rs256; do peer_config "$conf/authgate-$alg.json" "$alg"; done
    local args=${AUTHGATE_ARGS:-}
    extra+="authgate-hs256 | 9211 | hs256 | $bin serve --config $conf/authgate-hs256.json --listen 127.0.0.1:\$PORT $args"$'\n'
    extra+="authgate-rs256 | 9212 | rs256 | $bin serve --config $conf/authgate-rs256.json --listen 127.0.0.1:\$PORT $args"$'\n'
    if [[ -n ${COMPARE_BIN:-} ]]; then
      [[ $COMPARE_BIN == same ]] && COMPARE_BIN=$bin
      [[ -x $COMPARE_BIN ]] || die "COMPARE_BIN=$COMPARE_BIN is not executable"
      local label=${COMPARE_LABEL:-b} cargs=${COMPARE_ARGS:-} cconf=authgate
      if [[ -n ${COMPARE_ACCESS_LOG+set} ]]; then
        # The compared contenders get their own configs, differing only in the access log.
        cconf=compare
        for alg in hs256 rs256; do BENCH_ACCESS_LOG=$COMPARE_ACCESS_LOG peer_config "$conf/compare-$alg.json" "$alg"; done
      fi
      extra+="authgate-$label-hs256 | 9213 | hs256 | $COMPARE_BIN serve --config $conf/$cconf-hs256.json --listen 127.0.0.1:\$PORT $cargs"$'\n'
      extra+="authgate-$label-rs256 | 9214 | rs256 | $COMPARE_BIN serve --config $conf/$cconf-rs256.json --listen 127.0.0.1:\$PORT $cargs"$'\n'
    fi
    export EXTRA_CONTENDERS="$extra${EXTRA_CONTENDERS:-}"
    say "== authgate: $bin${COMPARE_BIN:+ (and $COMPARE_BIN as authgate-${COMPARE_LABEL:-b}-*)}; configs in $conf"
  fi
  say "== BENCH_OUT=$BENCH_OUT bash $PEER_BENCH/run.sh"
  local rc=0
  bash "$PEER_BENCH/run.sh" || rc=$?
  local last; last=$(ls -1d "$BENCH_OUT"/results/*/ 2>/dev/null | tail -n 1 || true)
  if [[ -n $last ]]; then
    say "== results: ${last%/} (table.md, results.jsonl, machine.txt, checks.txt)"
    say "== authgate against issue 4's target"
    cmd_ratios "$last" | tee "${last%/}/authgate-ratios.md" || true
  fi
  return "$rc"
}

# ------------------------------------------------------------------ ratios (issue 4's target)
# For each authgate-* contender of one run: medians over rounds of the per-round ratios to
# haproxy-proxy (req/s, CPU µs/req) and to haproxy-jwt of the same algorithm (req/s, CPU, p99),
# and whether the target holds: req/s >= haproxy-proxy, CPU/req <= haproxy-proxy, p99 <= haproxy-jwt.
cmd_ratios() {
  local dir=${1:-}
  if [[ -z $dir ]]; then
    dir=$(ls -1d "${BENCH_OUT:-$OUT_ROOT/peer}"/results/*/ 2>/dev/null | tail -n 1 || true)
  fi
  [[ -n $dir && -f ${dir%/}/results.jsonl ]] || die "no results.jsonl (give a results/<stamp> folder)"
  python3 - "${dir%/}/results.jsonl" <<'PY'
import json, statistics, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
noise = lambda r: r.get("other_used_cores_pct", r.get("other_cpu_pct", 0.0))
by = {}
for r in recs:  # least disturbed attempt of each (contender, round), as summarize.py does
    d = by.setdefault(r["name"], {})
    if r["round"] not in d or noise(r) < noise(d[r["round"]]):
        d[r["round"]] = r
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
def ratio(a, b, field):
    return med([by[a][k][field] / by[b][k][field] for k in by.get(a, {}) if k in by.get(b, {}) and by[b][k][field]])
def f(x, spec=".2f"):
    return "—" if x is None else format(x, spec)
rows = []
for name in by:
    if not name.startswith("authgate"):
        continue
    alg = "rs256" if name.endswith("rs256") else "hs256"
    jwt = "haproxy-jwt-" + alg
    rps_p = ratio(name, "haproxy-proxy", "rps"); cpu_p = ratio(name, "haproxy-proxy", "contender_us_per_req")
    rps_j = ratio(name, jwt, "rps"); cpu_j = ratio(name, jwt, "contender_us_per_req"); p99_j = ratio(name, jwt, "lat_p99_us")
    ok = [rps_p is not None and rps_p >= 1, cpu_p is not None and cpu_p <= 1, p99_j is not None and p99_j <= 1]
    rows.append(f"| {name} | {f(rps_p)} | {f(cpu_p)} | {f(rps_j)} | {f(cpu_j)} | {f(p99_j)} | "
                + " / ".join("yes" if o else "no" for o in ok) + " |")
print("| contender | req/s ×haproxy-proxy | CPU/req ×haproxy-proxy | req/s ×haproxy-jwt | CPU/req ×haproxy-jwt | p99 ×haproxy-jwt | target met? (req/s ≥ proxy / CPU ≤ proxy / p99 ≤ jwt) |")
print("|---|---:|---:|---:|---:|---:|---|")
print("\n".join(rows) if rows else "| (no authgate contender in this run) |")
print("\n(medians over rounds of per-round ratios; haproxy-jwt = haproxy-jwt-<same alg>)")
PY
}

# ------------------------------------------------------------------ micro
cmd_micro() {
  say "== swift package --package-path Benchmarks benchmark $*"
  cd "$ROOT"
  swift package --package-path "$ROOT/Benchmarks" --scratch-path "$MICRO_SCRATCH" \
    --allow-writing-to-package-directory benchmark "$@"
}

# ------------------------------------------------------------------ shared set-up for profile/memory
UP_PORT=9181 AG_PORT=9182
setup_dir() {  # name
  DIR=$OUT_ROOT/$1/$(date -u +%Y%m%dT%H%M%SZ); mkdir -p "$DIR"
  trap stop_started EXIT
  trap 'exit 130' INT TERM
  for p in $UP_PORT $AG_PORT; do port_in_use "$p" && die "port $p on 127.0.0.1 is in use (not ours)"; done
  say "== output: $DIR"
}

start_nginx_upstream() {  # the peer benchmark's upstream: nginx, 1 worker, {"ok":true}, keep-alive
  mkdir -p "$DIR/nginx/logs" "$DIR/nginx/tmp"
  cat >"$DIR/nginx/nginx.conf" <<EOF
worker_processes 1;
pid nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    error_log logs/error.log warn;
    client_body_temp_path tmp/client_body;
    proxy_temp_path tmp/proxy; fastcgi_temp_path tmp/fastcgi; uwsgi_temp_path tmp/uwsgi; scgi_temp_path tmp/scgi;
    tcp_nodelay on;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    default_type application/json;
    server {
        listen 127.0.0.1:$UP_PORT backlog=4096;
        location / { return 200 '{"ok":true}'; }
    }
}
EOF
  taskset -c "$UPSTREAM_CPU" nginx -p "$DIR/nginx/" -e stderr -c "$DIR/nginx/nginx.conf" -g 'daemon off;' \
    >"$DIR/nginx.log" 2>&1 </dev/null &
  STARTED+=("$!")
  wait_port "$UP_PORT" "$!" "upstream nginx"
}

# What profile and instructions share: the build, an output folder, the peer benchmark's nginx
# upstream and a gateway configuration in front of it ($DIR/gateway.json).
prepare_nginx_run() {  # name
  build_release authgate
  setup_dir "$1"
  start_nginx_upstream
  write_gateway_config "$DIR/gateway.json" "$AG_PORT" "$UP_PORT"
}

# ------------------------------------------------------------------ profile
ticks_us() { awk '{ sub(/.*\) /, ""); print $12, $13 }' "/proc/$1/stat"; }  # utime stime (ticks)

# Splits one perf recording into areas of the request path (first match wins, checked in the
# order below against every user-space frame of a sample; kernel samples by syscall).
classify_perf() {  # perf.data
  perf script -i "$1" -F ip,sym,dso 2>/dev/null | python3 -c '
import collections, sys
markers = [
    ("authgate: TokenCache.lookup", "TokenCacheC6lookup"),
    ("authgate: TokenExtractor", "TokenExtractor"),
    ("authgate: HeaderRewriter", "HeaderRewriter"),
    ("authgate: rest of RequestPlanner.plan (route, policy)", "RequestPlannerV4plan"),
    ("authgate: token verification (cache misses)", "TokenVerifier"),
    ("NIO: HTTP encoders (request + response heads)", "Encoder"),
    ("NIO: outbound header validation", "HeadersValidator"),
    ("NIO/authgate: timers (scheduleTask, cancel)", "scheduleTask"),
    ("NIO/authgate: timers (scheduleTask, cancel)", "Scheduled"),
    ("NIO: epoll re-registration (read interest toggling)", "eregister"),
    ("authgate: upstream pool lease/release", "UpstreamConnectionPool"),
    ("authgate: handler glue (Downstream/UpstreamHandler and the NIO calls they make)", "Gateway"),
    ("NIO: HTTP parsing (llhttp, HTTPDecoder)", "llhttp"),
    ("NIO: HTTP parsing (llhttp, HTTPDecoder)", "HTTPDecoder"),
    ("NIO: HTTP parsing (llhttp, HTTPDecoder)", "BetterHTTPParser"),
]
cats = collections.Counter(); total = 0
for block in sys.stdin.read().split("\n\n"):
    frames = [l.strip() for l in block.strip().split("\n") if l.strip()]
    if not frames:
        continue
    total += 1
    if "kernel.kallsyms" in frames[0]:
        text = " ".join(frames)
        if "epoll_ctl" in text: label = "kernel: epoll_ctl"
        elif "epoll_wait" in text: label = "kernel: epoll_wait"
        elif any(s in text for s in ("sendmsg", "sock_write_iter", "writev", "ksys_write")):
            label = "kernel: TCP send (incl. loopback delivery and waking the peer)"
        elif any(s in text for s in ("recvmsg", "sock_read_iter", "ksys_read")): label = "kernel: TCP receive"
        else: label = "kernel: other"
    else:
        user = [f for f in frames if "kernel.kallsyms" not in f]
        label = next((c for c, m in markers if any(m in f for f in user)), None)
        if label is None:
            leaf = frames[0]
            if any(s in leaf for s in ("swift_retain", "swift_release", "RefCounts", "isUniquely")): label = "ARC elsewhere"
            elif any(s in leaf for s in ("malloc", "free", "_int_", "swift_allocObject", "swift_dealloc", "slowAlloc")): label = "malloc/free elsewhere"
            else: label = "other user space (event loop, channel pipeline)"
    cats[label] += 1
for label, n in cats.most_common():
    print(f"     {100 * n / total:5.1f}%  {label}")
print(f"     ({total} samples)")
'
}

# One profiled wrk run against PORT with TOKEN: perf record on PID, then CPU (user/sys) per
# request, read+write syscalls per request and perf reports, all named after LABEL.
profile_one() {  # label pid port token
  local label=$1 pid=$2 port=$3 token=$4
  local secs=${PROFILE_SECONDS:-12} freq=${PROFILE_FREQ:-999} conns=${CONNS:-32}
  say "== $label: warm-up 2 s, then wrk -t1 -c$conns -d${secs}s with perf record -F $freq -g on pid $pid"
  BENCH_TOKEN=$token taskset -c "$LOADGEN_CPU" wrk -t1 -c"$conns" -d2s -s "$DIR/auth.lua" "http://127.0.0.1:$port/" >/dev/null
  local u0 s0 u1 s1 io0 io1
  read -r u0 s0 < <(ticks_us "$pid")
  io0=$(awk '/^sysc[rw]:/ { n += $2 } END { print n }' "/proc/$pid/io")
  BENCH_TOKEN=$token taskset -c "$LOADGEN_CPU" wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$DIR/auth.lua" \
    "http://127.0.0.1:$port/" >"$DIR/wrk-$label.txt" &
  local wrk_pid=$!; STARTED+=("$wrk_pid")
  sleep 1
  perf record -F "$freq" -g -p "$pid" -o "$DIR/perf-$label.data" -- sleep $((secs - 2)) >"$DIR/perf-record-$label.log" 2>&1 || true
  wait "$wrk_pid" || true; forget "$wrk_pid"
  read -r u1 s1 < <(ticks_us "$pid")
  io1=$(awk '/^sysc[rw]:/ { n += $2 } END { print n }' "/proc/$pid/io")
  local upconns; upconns=$(ss -Htn state established "( dport = :$UP_PORT )" 2>/dev/null | wc -l)
  local reqs rps p99
  reqs=$(awk '/requests in/ { print $1 }' "$DIR/wrk-$label.txt")
  rps=$(awk '/Requests\/sec/ { print $2 }' "$DIR/wrk-$label.txt")
  p99=$(awk '$1 == "99%" { print $2 }' "$DIR/wrk-$label.txt")
  awk -v u="$((u1 - u0))" -v s="$((s1 - s0))" -v r="$reqs" -v hz="$(getconf CLK_TCK)" -v io="$((io1 - io0))" \
      -v rps="$rps" -v p99="$p99" -v up="$upconns" -v l="$label" 'BEGIN {
    printf "   %s: %s req/s, p99 %s; CPU %.1f us/req = user %.1f + sys %.1f (perf running); %.2f read/write-family syscalls/req (recv/send not counted); %d upstream conns\n",
      l, rps, p99, (u + s) * 1e6 / hz / r, u * 1e6 / hz / r, s * 1e6 / hz / r, io / r, up
  }' | tee -a "$DIR/summary.txt"
  perf report -i "$DIR/perf-$label.data" --stdio --no-children --sort dso --percent-limit 0.5 -g none 2>/dev/null \
    | grep -v '^$' >"$DIR/report-$label-dso.txt" || true
  perf report -i "$DIR/perf-$label.data" --stdio --no-children --sort dso,symbol --percent-limit 0.3 -g none 2>/dev/null \
    | grep -v '^$' >"$DIR/report-$label-symbols.txt" || true
  perf report -i "$DIR/perf-$label.data" --stdio --children --sort symbol --percent-limit 1 -g none 2>/dev/null \
    | grep -v '^$' >"$DIR/report-$label-children.txt" || true
  say "   by binary: $(grep -E '^ +[0-9]' "$DIR/report-$label-dso.txt" | awk '{ printf "%s %s  ", $2, $1 }')"
  if command -v strace >/dev/null; then
    # Syscalls per request, counted by strace over a separate 3 s run (strace slows the process,
    # not what it does per request).
    strace -c -f -p "$pid" -o "$DIR/strace-$label.txt" 2>/dev/null & local st=$!
    sleep 0.5
    BENCH_TOKEN=$token taskset -c "$LOADGEN_CPU" wrk -t1 -c"$conns" -d3s -s "$DIR/auth.lua" "http://127.0.0.1:$port/" \
      >"$DIR/wrk-strace-$label.txt" 2>&1 || true
    kill -INT "$st" 2>/dev/null || true; wait "$st" 2>/dev/null || true
    local sreqs; sreqs=$(awk '/requests in/ { print $1 }' "$DIR/wrk-strace-$label.txt")
    say "   syscalls per request (strace -c, $sreqs requests): $(awk -v r="${sreqs:-0}" '
      $NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && r > 0 && $NF != "total" { printf "%s %.2f  ", $NF, $4 / r }' "$DIR/strace-$label.txt")"
  fi
  say "   where the time goes (share of this process's samples):"
  classify_perf "$DIR/perf-$label.data" | tee "$DIR/areas-$label.txt"
  say "   top self time:"
  grep -E '^ +[0-9]' "$DIR/report-$label-symbols.txt" | head -n 15 | awk '{ printf "     %7s  %-22s %s\n", $1, $2, substr($4, 1, 110) }' || true
}

cmd_profile() {
  command -v perf >/dev/null || die "perf is missing: apt-get install -y linux-perf"
  command -v wrk >/dev/null || die "wrk is missing: apt-get install -y wrk"
  prepare_nginx_run profile
  start_authgate "$DIR/gateway.json" "$AG_PORT"
  printf 'wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")\n' >"$DIR/auth.lua"
  local alg hs_token
  for alg in ${PROFILE_ALGS:-hs256 rs256}; do
    local kid=hs-1; [[ $alg == rs256 ]] && kid=rs-1
    local token; token=$(mint "$DIR/gateway.json" "$kid")
    [[ $alg == hs256 ]] && hs_token=$token
    local code; code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $token" "http://127.0.0.1:$AG_PORT/")
    [[ $code == 200 ]] || die "$alg token answered $code, not 200"
    profile_one "authgate-$alg" "$AG_PID" "$AG_PORT" "$token"
  done
  if [[ ${PROFILE_HAPROXY:-1} == 1 ]] && command -v haproxy >/dev/null; then
    # The peer benchmark's haproxy-proxy (conf/haproxy-proxy.cfg.in), same upstream, same load.
    local hp_port=9183
    port_in_use "$hp_port" && die "port $hp_port on 127.0.0.1 is in use (not ours)"
    sed -e "s|@PORT@|$hp_port|g" -e "s|@UPSTREAM_PORT@|$UP_PORT|g" "$PEER_BENCH/conf/haproxy-proxy.cfg.in" >"$DIR/haproxy.cfg"
    taskset -c "$CONTENDER_CPU" haproxy -db -f "$DIR/haproxy.cfg" >"$DIR/haproxy.log" 2>&1 </dev/null &
    local hp_pid=$!; STARTED+=("$hp_pid")
    wait_port "$hp_port" "$hp_pid" haproxy
    [[ -n ${hs_token:-} ]] || hs_token=$(mint "$DIR/gateway.json" hs-1)
    profile_one haproxy-proxy "$hp_pid" "$hp_port" "$hs_token"
  fi
  say "== reports in $DIR (summary.txt, report-LABEL-dso/-symbols/-children.txt; perf-LABEL.data for perf report)"
}

# ------------------------------------------------------------------ instructions
# User-space instructions per request, counted by callgrind: the same binary under the same
# load gives nearly the same count on a quiet or a busy host, where CPU time per request moves
# by ±10% from one round to the next. So it settles A/Bs of user-space changes that the peer
# run cannot (a few per cent). It counts no kernel work and no waiting: a change to syscalls or
# wake-ups shows only in the peer run.
#
# For each binary (this build's, and COMPARE_BIN's if set) and algorithm: authgate under
# callgrind against the peer benchmark's nginx upstream, a warm-up of INSTR_WARMUP requests,
# counters zeroed, INSTR_REQUESTS requests from scripts/fixed-load.py over INSTR_CONNS
# keep-alive connections, counters dumped. Instructions per request = that dump's total /
# INSTR_REQUESTS. valgrind cannot read the DWARF 5 debug information of Swift 6.3 binaries, so
# it runs a copy without it (symbols kept: function names stay in the report).
# Runs the command after the first four arguments under callgrind, waits for it to answer on
# 127.0.0.1:PORT, sends it INSTR_WARMUP requests, zeroes the counters, sends INSTR_REQUESTS,
# dumps them and stops it. The dump's path is left in CALLGRIND_DUMP and its instructions per
# request in CALLGRIND_PER_REQUEST (not printed: the process is started here, in this shell, so
# that STARTED knows it).
callgrind_count() {  # name port token out-prefix command...
  local name=$1 port=$2 token=$3 out=$4; shift 4
  local warmup=${INSTR_WARMUP:-500} requests=${INSTR_REQUESTS:-4000} conns=${INSTR_CONNS:-8}
  valgrind --tool=callgrind --compress-strings=no --callgrind-out-file="$out.%p" "$@" >"$out.log" 2>&1 </dev/null &
  local vg=$!; STARTED+=("$vg")
  local deadline=$((SECONDS + 60))
  until curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/"; do
    kill -0 "$vg" 2>/dev/null || die "$name under valgrind exited during start-up ($out.log)"
    (( SECONDS < deadline )) || die "$name under valgrind did not answer within 60 s"
    sleep 0.5
  done
  python3 "$ROOT/scripts/fixed-load.py" "$port" "$warmup" "$conns" "$token" >/dev/null
  callgrind_control -z "$vg" >/dev/null 2>&1
  python3 "$ROOT/scripts/fixed-load.py" "$port" "$requests" "$conns" "$token" >/dev/null
  callgrind_control -d "$vg" >/dev/null 2>&1
  kill -TERM "$vg" 2>/dev/null || true; wait "$vg" 2>/dev/null || true; forget "$vg"
  CALLGRIND_DUMP=$(ls "$out".*.1 2>/dev/null | head -n 1)
  [[ -n $CALLGRIND_DUMP ]] || die "no callgrind dump for $name ($out.log)"
  CALLGRIND_PER_REQUEST=$(awk -v n="$requests" '/^summary:/ { printf "%.0f", $2 / n }' "$CALLGRIND_DUMP")
}

cmd_instructions() {
  command -v valgrind >/dev/null || die "valgrind is missing: apt-get install -y valgrind"
  command -v nginx >/dev/null || die "nginx is missing: apt-get install -y nginx"
  prepare_nginx_run instructions
  local requests=${INSTR_REQUESTS:-4000} conns=${INSTR_CONNS:-8}  # as callgrind_count reads them
  local bins=("this:$BIN/authgate")
  [[ -n ${COMPARE_BIN:-} ]] && bins+=("${COMPARE_LABEL:-b}:$COMPARE_BIN")
  local entry alg
  for entry in "${bins[@]}"; do
    local label=${entry%%:*} bin=${entry#*:}
    objcopy --strip-debug "$bin" "$DIR/authgate-$label"
    for alg in ${INSTR_ALGS:-hs256 rs256}; do
      local kid=hs-1; [[ $alg == rs256 ]] && kid=rs-1
      local token; token=$(mint "$DIR/gateway.json" "$kid")
      local out=$DIR/callgrind-$label-$alg
      AUTHGATE_HS256_SECRET=$(cat "$PEER_BENCH/keys/hs256.secret") callgrind_count "authgate" "$AG_PORT" "$token" "$out" \
        "$DIR/authgate-$label" serve --config "$DIR/gateway.json" --threads 1
      local dump=$CALLGRIND_DUMP
      python3 "$ROOT/scripts/callgrind-summary.py" "$dump" "$requests" >"$out.top.txt" || true
      say "   $label $alg: $CALLGRIND_PER_REQUEST instructions per request ($requests requests, $conns connections; $dump)"
    done
  done
  if [[ ${INSTR_HAPROXY:-0} == 1 ]]; then
    # The peer benchmark's haproxy-proxy (conf/haproxy-proxy.cfg.in, no auth) under the same load
    # (the HS256 request, token header and all): the user-space instructions of a C proxy per
    # request, for scale. Its binary has no symbols, so only the total means anything.
    command -v haproxy >/dev/null || die "haproxy is missing: apt-get install -y haproxy"
    local hp_port=9183
    port_in_use "$hp_port" && die "port $hp_port on 127.0.0.1 is in use (not ours)"
    sed -e "s|@PORT@|$hp_port|g" -e "s|@UPSTREAM_PORT@|$UP_PORT|g" "$PEER_BENCH/conf/haproxy-proxy.cfg.in" >"$DIR/haproxy.cfg"
    local token; token=$(mint "$DIR/gateway.json" hs-1)
    callgrind_count haproxy "$hp_port" "$token" "$DIR/callgrind-haproxy-proxy" haproxy -db -f "$DIR/haproxy.cfg"
    say "   haproxy-proxy: $CALLGRIND_PER_REQUEST instructions per request ($requests requests, $conns connections; $CALLGRIND_DUMP)"
  fi
  say "== reports in $DIR (callgrind-LABEL-ALG.*: dumps; .top.txt: instructions per request by function, self and inclusive)"
}

# ------------------------------------------------------------------ memory
rss_sampler() {  # pid file: VmRSS every 0.1 s until the pid is gone or the sampler is stopped
  while kill -0 "$1" 2>/dev/null; do status_kb "$1" VmRSS >>"$2" 2>/dev/null || break; sleep 0.1; done
}
max_of() { sort -n "$1" | tail -n 1; }

cmd_memory() {
  command -v wrk >/dev/null || die "wrk is missing: apt-get install -y wrk"
  build_release authgate upstream-echo
  setup_dir memory
  local conns=${MEM_CONNS:-1000} secs=${MEM_SECONDS:-8} bytes=${STREAM_BYTES:-1073741824}
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  taskset -c "$UPSTREAM_CPU" "$BIN/upstream-echo" --listen "127.0.0.1:$UP_PORT" >"$DIR/echo.log" 2>&1 </dev/null &
  local echo_pid=$!; STARTED+=("$echo_pid")
  wait_port "$UP_PORT" "$echo_pid" upstream-echo
  write_gateway_config "$DIR/gateway.json" "$AG_PORT" "$UP_PORT" $((2 * bytes))
  start_authgate "$DIR/gateway.json" "$AG_PORT"
  local token; token=$(mint "$DIR/gateway.json" hs-1)
  local url=http://127.0.0.1:$AG_PORT
  sleep 0.5
  say "authgate pid $AG_PID, $(ls "/proc/$AG_PID/task" | wc -l) threads"
  say "idle:                 VmRSS $(mib "$(status_kb "$AG_PID" VmRSS)")  VmHWM $(mib "$(status_kb "$AG_PID" VmHWM)")"

  # 1. 1 GiB response body (upstream-echo /__stream -> authgate -> curl)
  echo 5 >"/proc/$AG_PID/clear_refs" 2>/dev/null || true
  : >"$DIR/rss-down.txt"
  rss_sampler "$AG_PID" "$DIR/rss-down.txt" & local sampler=$!
  local res code size took; res=$(curl -s -o /dev/null --max-time 300 -w '%{http_code} %{size_download} %{time_total}' \
    -H "Authorization: Bearer $token" "$url/__stream?bytes=$bytes")
  kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
  read -r code size took <<<"$res"
  say "download $bytes B:    HTTP $code, $size B in ${took}s; VmRSS max sampled $(mib "$(max_of "$DIR/rss-down.txt")"), VmHWM $(mib "$(status_kb "$AG_PID" VmHWM)")"

  # 2. 1 GiB request body (curl, chunked from a pipe -> authgate -> upstream-echo /__sink)
  echo 5 >"/proc/$AG_PID/clear_refs" 2>/dev/null || true
  : >"$DIR/rss-up.txt"
  rss_sampler "$AG_PID" "$DIR/rss-up.txt" & sampler=$!
  res=$(head -c "$bytes" /dev/zero | curl -s -o "$DIR/sink.json" --max-time 300 -w '%{http_code} %{size_upload} %{time_total}' \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/octet-stream' -T - "$url/__sink")
  kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
  read -r code size took <<<"$res"
  local seen; seen=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("body_bytes"))' "$DIR/sink.json" 2>/dev/null || echo '?')
  say "upload $bytes B:      HTTP $code, $size B sent in ${took}s, upstream counted $seen B; VmRSS max sampled $(mib "$(max_of "$DIR/rss-up.txt")"), VmHWM $(mib "$(status_kb "$AG_PID" VmHWM)")"
  # 3. keep-alive connections (last: malloc keeps what it grew to, which would hide the streams)
  echo 5 >"/proc/$AG_PID/clear_refs" 2>/dev/null || true   # resets VmHWM to the current RSS
  : >"$DIR/rss-conns.txt"
  rss_sampler "$AG_PID" "$DIR/rss-conns.txt" & sampler=$!
  taskset -c "$LOADGEN_CPU" wrk -t1 -c"$conns" -d"${secs}s" --latency -H "Authorization: Bearer $token" "$url/" \
    >"$DIR/wrk-conns.txt" 2>&1 &
  local wrk_pid=$!; STARTED+=("$wrk_pid")
  sleep $((secs / 2))
  local fds; fds=$(ls "/proc/$AG_PID/fd" | wc -l)
  local mid; mid=$(status_kb "$AG_PID" VmRSS)
  wait "$wrk_pid" || true; forget "$wrk_pid"
  sleep 0.3; kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
  local rps; rps=$(awk '/Requests\/sec/ { print $2 }' "$DIR/wrk-conns.txt")
  say "$conns keep-alive conns (wrk -c$conns ${secs}s, $rps req/s, $fds fds open mid-run):"
  say "                      VmRSS mid-run $(mib "$mid"), max sampled $(mib "$(max_of "$DIR/rss-conns.txt")"), VmHWM $(mib "$(status_kb "$AG_PID" VmHWM)"); after: VmRSS $(mib "$(status_kb "$AG_PID" VmRSS)")"

  say "after:                VmRSS $(mib "$(status_kb "$AG_PID" VmRSS)")"
}

cmd=${1:-peer}
[[ $# -gt 0 ]] && shift
case $cmd in
  peer) cmd_peer "$@" ;;
  micro) cmd_micro "$@" ;;
  profile) cmd_profile "$@" ;;
  memory) cmd_memory "$@" ;;
  instructions) cmd_instructions "$@" ;;
  ratios) cmd_ratios "$@" ;;
  -h|--help|help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" ;;
  *) die "unknown command '$cmd' (peer, micro, profile, memory, instructions, ratios, help)" ;;
esac
