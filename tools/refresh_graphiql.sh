#!/usr/bin/env bash
# Refreshes gql_api/web/graphiql_assets/ from npm: the browser builds (UMD, production) of React,
# ReactDOM, GraphiQL and its explorer plugin, plus VERSIONS and LICENSES. Run it at development
# time and commit the result; the service never fetches anything at run time.
#
# GraphiQL stays on 3.x: it is the last major that ships a UMD build (graphiql.min.js, which
# exposes window.GraphiQL and GraphiQL.React for plugins) usable with plain <script> tags.
# GraphiQL 4 and 5 are ES modules only (5 also needs Monaco's web workers), i.e. a bundler or an
# import map over many files. React stays on 18: React 19 no longer ships UMD builds.
# @graphiql/plugin-explorer 3.2.5 is the last release whose peer is @graphiql/react 0.28, the
# version graphiql 3.8.3 bundles.
set -euo pipefail

GRAPHIQL=3.8.3
EXPLORER=3.2.5
REACT=18.3.1

dest="$(cd "$(dirname "$0")/.." && pwd)/gql_api/web/graphiql_assets"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

packages=("react@$REACT" "react-dom@$REACT" "graphiql@$GRAPHIQL" "@graphiql/plugin-explorer@$EXPLORER")
npm pack --silent --json "${packages[@]}" >packed.json
for tarball in *.tgz; do
  mkdir "${tarball%.tgz}"
  tar xzf "$tarball" -C "${tarball%.tgz}"
done

# source (inside the npm tarball) -> name served by gql_api
copy() { cp "$1" "$dest/$2"; }
copy "react-$REACT/package/umd/react.production.min.js" react.production.min.js
copy "react-dom-$REACT/package/umd/react-dom.production.min.js" react-dom.production.min.js
copy "graphiql-$GRAPHIQL/package/graphiql.min.js" graphiql.min.js
copy "graphiql-$GRAPHIQL/package/graphiql.min.css" graphiql.min.css
copy "graphiql-plugin-explorer-$EXPLORER/package/dist/index.umd.js" plugin-explorer.umd.js
copy "graphiql-plugin-explorer-$EXPLORER/package/dist/style.css" plugin-explorer.css

{
  echo "# Written by tools/refresh_graphiql.sh; do not edit by hand."
  echo "# npm package, version, licence, npm tarball integrity; then each file's sha384."
  node -e '
    for (const p of require("./packed.json")) {
      const meta = require(`./${p.filename.replace(/\.tgz$/, "")}/package/package.json`);
      console.log([p.name, p.version, meta.license, p.integrity].join("\t"));
    }'
  echo
  for file in react.production.min.js react-dom.production.min.js graphiql.min.js \
    graphiql.min.css plugin-explorer.umd.js plugin-explorer.css; do
    printf '%s\tsha384-%s\n' "$file" "$(openssl dgst -sha384 -binary "$dest/$file" | base64 -w0)"
  done
} >"$dest/VERSIONS"

{
  echo "Third-party code in this directory (every file but page.js and page.css), all MIT."
  for pkg in "react-$REACT" "react-dom-$REACT" "graphiql-$GRAPHIQL"; do
    echo
    echo "==== ${pkg%-*} ${pkg##*-} ===="
    cat "$pkg/package/LICENSE"
  done
  echo
  echo "==== @graphiql/plugin-explorer $EXPLORER ===="
  echo "(MIT per its package.json; its tarball has no LICENSE file. It comes from the graphql/graphiql"
  echo "repository, under the same licence as graphiql above.)"
} >"$dest/LICENSES"

echo "refreshed $dest:"
du -ch "$dest"/*.js "$dest"/*.css | tail -1
