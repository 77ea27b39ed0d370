#!/usr/bin/env bash
# Installs mlstage into a temp prefix, builds the README's out-of-tree example
# plugin against it with pkg-config, and runs it with the installed binary.
set -euo pipefail
: "${MLSTAGE_BUILD_DIR:?}" "${MLSTAGE_SOURCE_DIR:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$MLSTAGE_BUILD_DIR" --prefix "$tmp/prefix" >/dev/null
pc=$(dirname "$(find "$tmp/prefix" -name mlstage.pc | head -n1)")
test -n "$pc" || { echo "mlstage.pc was not installed" >&2; exit 1; }
for h in mlstage.h plugin.h context.h http.h proc.h fs.h registry.h version.h error.h export.h; do
  test -f "$tmp/prefix/include/mlstage/$h" || { echo "header $h not installed" >&2; exit 1; }
done
test -x "$tmp/prefix/bin/mlstage"
cp -r "$MLSTAGE_SOURCE_DIR/examples/plugin-hello" "$tmp/hello"
PKG_CONFIG_PATH="$pc" make -s -C "$tmp/hello"
# The installed binary finds its own plugins beside itself (relocated prefix)...
"$tmp/prefix/bin/mlstage" plugins --output json > "$tmp/plugins.json"
grep -q "\"$tmp/prefix/lib[^\"]*/mlstage/plugins\"" "$tmp/plugins.json" ||
  { echo "the installed plugin folder is not searched:" >&2; cat "$tmp/plugins.json" >&2; exit 1; }
# ...and the example plugin through --plugin-path.
cd "$tmp"
out=$("$tmp/prefix/bin/mlstage" run hello/hello.yml --plugin-path "$tmp/hello" \
      --workspace "$tmp/ws" --set name=tester 2>"$tmp/err")
echo "$out" | grep -qx 'greeted=tester' || { echo "unexpected output: $out" >&2; cat "$tmp/err" >&2; exit 1; }
grep -q 'hello, tester' "$tmp/err"
statement=$(find "$tmp/ws/.mlstage/runs" -name 'greeting.txt.intoto.json')
test -n "$statement"
"$tmp/prefix/bin/mlstage" provenance verify "${statement%.intoto.json}" >/dev/null
echo "installed, built out of tree, ran and verified"
