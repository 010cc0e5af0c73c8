// Starts gql_api's GraphiQL from the UMD globals loaded before it (React, ReactDOM, GraphiQL,
// GraphiQLPluginExplorer). A file rather than an inline script, so the page's CSP is just
// script-src 'self'.
(function () {
  "use strict";

  // The header editor starts with this example. Left unchanged it is a hint, not a credential,
  // and is not sent: the server would refuse it as a malformed token.
  const TOKEN_PLACEHOLDER = "Bearer <accessToken from the login mutation>";
  const DEFAULT_HEADERS = JSON.stringify({ Authorization: TOKEN_PLACEHOLDER }, null, 2);

  const DEFAULT_QUERY = `# Run a query: Ctrl-Enter or the play button.
#
# To call as a user:
# 1. log in:
#    mutation {
#      login(input: {email: "...", password: "..."}) {
#        accessToken
#      }
#    }
# 2. put its accessToken in the Headers tab:
#    {"Authorization": "Bearer <accessToken>"}
# 3. re-fetch the schema (Shift-Ctrl-R): in production
#    only admins may read it (docs, explorer).

{
  health {
    status
  }
}
`;

  function withoutPlaceholder(headers) {
    const kept = {};
    for (const [name, value] of Object.entries(headers || {})) {
      if (!(name.toLowerCase() === "authorization" && value === TOKEN_PLACEHOLDER)) {
        kept[name] = value;
      }
    }
    return kept;
  }

  // The page's own address without query or fragment; no subscriptions (the service has none).
  const send = GraphiQL.createFetcher({ url: window.location.origin + window.location.pathname });

  // Every request (the schema's introspection included) carries the header editor's headers.
  function fetcher(params, options) {
    return send(params, { ...options, headers: withoutPlaceholder(options && options.headers) });
  }

  const explorer = GraphiQLPluginExplorer.explorerPlugin();

  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, {
      fetcher,
      plugins: [explorer],
      defaultQuery: DEFAULT_QUERY,
      defaultHeaders: DEFAULT_HEADERS,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
      defaultEditorToolsVisibility: "headers",
      inputValueDeprecation: true,
    }),
  );
})();
