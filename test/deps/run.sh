#!/usr/bin/env bash
# pyport in a user's project: a throwaway rebar3 project and a throwaway mix
# project, each depending on this checkout's HEAD by a file:// git URL,
# compiled (the C++ executable built by the dependency's hook, and the
# Python environment its config declares, installed from a wheelhouse made
# here), the rebar3 one released, the release moved elsewhere, started,
# asked py:eval (the declared package imported from the shipped
# environment), and stopped leaving no pyport process. Also: the hook's
# message when the toolchain is missing. Prints ok/FAIL lines, then "N passed, N failed".
#
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/test/deps"
work=$(mktemp -d)
passed=0
failed=0
rel=""
# The release's node starts epmd when none runs; stop it again then (epmd
# refuses while another node is registered with it).
epmd_was_up=no
epmd -names >/dev/null 2>&1 && epmd_was_up=yes
cleanup() {
  [ -n "$rel" ] && [ -x "$rel/bin/demo" ] && "$rel/bin/demo" stop >/dev/null 2>&1
  [ "$epmd_was_up" = yes ] || epmd -kill >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

ok() { echo "ok $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; [ $# -gt 1 ] && printf '%s\n' "$2" | tail -n 20 | sed 's/^/    /'; failed=$((failed + 1)); }
# check NAME ACTUAL EXPECTED-REGEX
check() { if grep -Eq -- "$3" <<<"$2"; then ok "$1"; else fail "$1" "$2"; fi; }

sha=$(git -C "$root" rev-parse HEAD)
url="file://$root"
echo "deps: pyport at $sha"

# ---- the hook without a toolchain: the message names the packages ----
mkdir -p "$work/notools/bin" "$work/notools/app/scripts"
for tool in bash env cat printf mkdir cmp cp mv dirname tail; do
  ln -s "$(command -v "$tool")" "$work/notools/bin/$tool"
done
cp "$root/scripts/build-priv" "$work/notools/app/scripts/"
out=$(PATH="$work/notools/bin" "$work/notools/app/scripts/build-priv" 2>&1)
status=$?
check "build-priv without a toolchain fails" "$status" '^1$'
check "build-priv names the missing Debian packages" "$(tr '\n' ' ' <<<"$out")" \
  'missing meson ninja-build g\+\+ pkg-config.*apt-get install g\+\+ pkg-config meson ninja-build python3-dev libmsgpack-cxx-dev libcli11-dev'

# ---- a wheelhouse of one tiny package, for the declared environments ----
mkdir -p "$work/pkg/depdemo" "$work/wheels"
cat >"$work/pkg/pyproject.toml" <<'TOML'
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"
[project]
name = "depdemo"
version = "1.0"
TOML
echo "VERSION = '1.0'" >"$work/pkg/depdemo/__init__.py"
out=$(/usr/bin/python3 -m pip wheel --no-deps --no-build-isolation -q -w "$work/wheels" "$work/pkg" 2>&1)
check "a wheel of a tiny package built with pip wheel" "$(ls "$work/wheels")" '^depdemo-1\.0-py3-none-any\.whl$'

# ---- a rebar3 project ----
proj="$work/demo"
mkdir -p "$proj/src" "$proj/config"
cp -r "$work/wheels" "$proj/wheels"
cat >"$proj/rebar.config" <<CONF
{erl_opts, [debug_info]}.
{deps, [{pyport, {git, "$url", {ref, "$sha"}}}]}.
%% rebar3 runs a dependency's hooks only when it compiles it: this runs
%% pyport's after every compile of the project (docs/deployment.md).
{post_hooks, [{compile, "\$REBAR_DEPS_DIR/pyport/scripts/build-env"}]}.
{relx, [{release, {demo, "0.1.0"}, [demo]},
        {mode, prod},
        {sys_config, "config/sys.config"}]}.
CONF
cat >"$proj/src/demo.app.src" <<'APP'
{application, demo, [{vsn, "0.1.0"}, {applications, [kernel, stdlib, pyport]}, {env, []}]}.
APP
cat >"$proj/config/sys.config" <<'CFG'
[{pyport, [{pools, [{default, [{size, 2}]},
                    {withdeps, [{size, 1}, {requirements, [<<"depdemo==1.0">>]},
                                {no_index, true}, {find_links, ["wheels"]}]}]}]}].
CFG
start=$(date +%s)
out=$(cd "$proj" && rebar3 compile 2>&1)
status=$?
exe="$proj/_build/default/lib/pyport/priv/pyport"
check "rebar3 compile of a project depending on pyport (git, $(( $(date +%s) - start )) s)" "$status" '^0$'
if [ -x "$exe" ]; then ok "the dependency's priv/pyport is built"; else fail "the dependency's priv/pyport is built" "$out"; fi
envs="$proj/_build/default/lib/pyport/priv/python_envs"
marker=$(ls "$envs"/env-*/pyport-env 2>/dev/null)
check "rebar3 compile builds the declared Python environment into priv/python_envs" \
  "$(ls "$envs" 2>/dev/null | grep -v '\.log$' | wc -l) $(cat "$envs"/env-*/pyport-env 2>/dev/null | tail -n 1)" '^1 depdemo==1\.0$'
before=$(stat -c %Y.%i "$exe" "$marker" 2>/dev/null)
start=$(date +%s)
out=$(cd "$proj" && rebar3 compile 2>&1)
status=$?
check "a second rebar3 compile succeeds ($(( $(date +%s) - start )) s)" "$status" '^0$'
check "a second rebar3 compile leaves priv/pyport and the environment alone" "$(stat -c %Y.%i "$exe" "$marker" 2>/dev/null)" "^${before}\$"
# A changed declaration: built at the next compile, the old one removed
# (a release ships only what a pool declares).
sed -i 's/{requirements, \[<<"depdemo==1.0">>\]}/{requirements, [<<"DepDemo == 1.0">>, <<"depdemo">>]}/' "$proj/config/sys.config"
out=$(cd "$proj" && rebar3 compile 2>&1)
check "a changed declaration is built at the next rebar3 compile, the old environment removed" \
  "$(ls -d "$envs"/env-*/ 2>/dev/null | wc -l) $(test -e "$marker" && echo old-kept) $(tr '\n' ' ' <"$(ls "$envs"/env-*/pyport-env | head -n 1)")" \
  '^1  key [0-9a-f]+ depdemo==1\.0 depdemo $'

out=$(cd "$proj" && rebar3 release 2>&1)
check "rebar3 release" "$?" '^0$'
built="$proj/_build/default/rel/demo"
if [ -x "$built/lib/pyport-0.1.0/priv/pyport" ]; then ok "the release ships priv/pyport"; else fail "the release ships priv/pyport" "$out"; fi
check "the release ships the Python environment" "$(ls "$built"/lib/pyport-0.1.0/priv/python_envs/env-*/pyport-env 2>/dev/null | wc -l)" '^1$'
check "no path of the build machine's in the shipped pyvenv.cfg and .pth files" \
  "$(grep -rls "$proj" "$built"/lib/pyport-0.1.0/priv/python_envs/env-*/pyvenv.cfg \
       "$built"/lib/pyport-0.1.0/priv/python_envs/env-*/lib/python3.11/site-packages/*.pth 2>/dev/null | wc -l)" '^0$'

# Moved elsewhere, the project itself gone: the release stands alone.
mkdir -p "$work/elsewhere"
rel="$work/elsewhere/demo"
cp -r "$built" "$rel"
rm -rf "$proj"
# Another python3 first on PATH (a whole fake installation, with a
# standard library): the workers must still run pyport's own Python.
fake="$work/otherpython"
mkdir -p "$fake/bin" "$fake/lib"
printf '#!/bin/sh\nexit 1\n' >"$fake/bin/python3"
chmod +x "$fake/bin/python3"
ln -s /usr/lib/python3.11 "$fake/lib/python3.11"
# HOME elsewhere: a pool that built its environment at run time would
# leave it in $HOME/.cache/pyport.
mkdir -p "$work/home"
HOME="$work/home" PATH="$fake/bin:$PATH" "$rel/bin/demo" daemon
up=""
for _ in $(seq 1 60); do
  "$rel/bin/demo" ping >/dev/null 2>&1 && { up=yes; break; }
  sleep 0.5
done
check "the moved release starts" "$up" '^yes$'
check "the release answers py:eval" "$("$rel/bin/demo" eval 'py:eval(<<"6 * 7">>).' 2>&1)" '^\{ok, ?42\}$'
want=$(/usr/bin/python3 -c 'import sys; print(sys.prefix)')
check "with another python3 first on PATH, sys.prefix is pyport's own" \
  "$("$rel/bin/demo" eval '{ok, P} = py:eval(<<"__import__(\"sys\").prefix">>), binary_to_list(P).' 2>&1)" "^\"${want}\"\$"
check "the moved release imports the declared package from its shipped environment" \
  "$("$rel/bin/demo" eval '{ok, V} = py:eval(<<"__import__(\"depdemo\").VERSION">>, #{}, #{pool => withdeps}), binary_to_list(V).' 2>&1)" '^"1\.0"$'
check "the environment's pool runs in the moved release's priv/python_envs" \
  "$("$rel/bin/demo" eval '{ok, P} = py:eval(<<"__import__(\"sys\").prefix">>, #{}, #{pool => withdeps}), binary_to_list(P).' 2>&1)" \
  "^\"$rel/lib/pyport-0.1.0/priv/python_envs/env-[0-9a-f]+\"\$"
check "nothing was built at run time" "$(ls -A "$work/home/.cache/pyport" 2>/dev/null | wc -l)" '^0$'
# Ports only: each forks a janitor (pyport-janitor, the same command line)
# that removes its shared-memory directory when it ends.
workers=$(pgrep -f "^$rel/lib/pyport-0.1.0/priv/pyport" | xargs -r ps -o comm= -p | grep -cx pyport)
check "the release runs its pools' 3 workers from its own priv" "$workers" '^3$'
"$rel/bin/demo" stop >/dev/null 2>&1
left=1
for _ in $(seq 1 40); do
  left=$(pgrep -f "^$rel/lib/pyport-0.1.0/priv/pyport" | wc -l)
  [ "$left" -eq 0 ] && ! "$rel/bin/demo" ping >/dev/null 2>&1 && break
  sleep 0.25
done
check "stopped, the release leaves no pyport process" "$left" '^0$'
rel=""

# ---- a mix project (Debian's elixir; rebar3 from Debian, no network) ----
app="$work/myapp"
(cd "$work" && mix new myapp >/dev/null 2>&1)
sed -i "s|# {:dep_from_hexpm, \"~> 0.3.0\"}|{:pyport, git: \"$url\", ref: \"$sha\"}|" "$app/mix.exs"
mkdir -p "$app/config"
cp -r "$work/wheels" "$app/wheels"
cat >"$app/config/config.exs" <<'EXS'
import Config
config :pyport, pools: [default: [size: 2],
                        withdeps: [size: 1, requirements: ["depdemo==1.0"], no_index: true, find_links: ["wheels"]]]
EXS
export MIX_REBAR3
MIX_REBAR3=$(command -v rebar3)
start=$(date +%s)
out=$(cd "$app" && mix deps.get 2>&1 && mix compile 2>&1)
status=$?
check "mix compile of a project depending on pyport (git, $(( $(date +%s) - start )) s)" "$status" '^0$'
[ $status -eq 0 ] || printf '%s\n' "$out" | tail -n 20
if [ -x "$app/deps/pyport/priv/pyport" ]; then ok "mix built the dependency's priv/pyport"; else fail "mix built the dependency's priv/pyport"; fi
check "mix compile builds the declared Python environment" "$(cat "$app"/deps/pyport/priv/python_envs/env-*/pyport-env 2>/dev/null | tail -n 1)" '^depdemo==1\.0$'
out=$(cd "$app" && mix run -e 'IO.inspect(:py.eval("__import__(\"depdemo\").VERSION", %{}, %{pool: :withdeps}))' 2>&1)
check "mix run imports the declared package" "$out" '^\{:ok, "1\.0"\}$'
# A changed declaration: mix does not compile a dependency again when the
# project's config changes; `mix deps.compile pyport` does.
before_env=$(ls -d "$app"/deps/pyport/priv/python_envs/env-*/)
sed -i 's/requirements: \["depdemo==1.0"\]/requirements: ["depdemo==1.0", "DepDemo"]/' "$app/config/config.exs"
out=$(cd "$app" && mix deps.compile pyport 2>&1)
check "mix deps.compile pyport builds a changed declaration, the old environment removed" \
  "$(ls -d "$app"/deps/pyport/priv/python_envs/env-*/ | wc -l) $(test -d "$before_env" && echo old-kept) $(tr '\n' ' ' <"$(ls "$app"/deps/pyport/priv/python_envs/env-*/pyport-env | head -n 1)")" \
  '^1  key [0-9a-f]+ depdemo==1\.0 depdemo $'
out=$(cd "$app" && mix run "$here/elixir_examples.exs" 2>&1)
check "docs/elixir.md's examples run in the mix project" "$out" '^examples: [0-9]+ ok$'
check "no pyport process left by mix run" "$(pgrep -f "^$app/.*priv/pyport" | wc -l)" '^0$'

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
