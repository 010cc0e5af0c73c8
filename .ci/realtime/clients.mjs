// Two real clients against one gql_api server: the npm graphql-ws client and Apollo Client's
// GraphQLWsLink, each subscribed to viewerEvents with its own bearer token. Prints one JSON line
// per event, error or close, for tests/test_realtime.py to read; exits once both
// clients are done (closed by the server) or after a minute at most.
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';
import { ApolloClient, InMemoryCache, gql } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';

const [url, wsToken, apolloToken] = process.argv.slice(2);
const query = 'subscription { viewerEvents { kind sessionId ownSession reason fields } }';
const say = (line) => console.log(JSON.stringify(line));
let open = 2;
const done = () => { if (--open === 0) process.exit(0); };
setTimeout(() => { say({ timeout: true }); process.exit(2); }, 60_000);

function wsClient(name, token) {
  return createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${token}` },
    retryAttempts: 0,
    on: {
      connected: () => say({ client: name, connected: true }),
      closed: (event) => say({ client: name, closed: event.code }),
    },
  });
}

const plain = wsClient('graphql-ws', wsToken);
plain.subscribe({ query }, {
  next: (result) => say({ client: 'graphql-ws', result }),
  error: (error) => { say({ client: 'graphql-ws', error: error.code ?? String(error) }); done(); },
  complete: () => { say({ client: 'graphql-ws', complete: true }); done(); },
});

const apollo = new ApolloClient({
  link: new GraphQLWsLink(wsClient('apollo', apolloToken)),
  cache: new InMemoryCache(),
});
apollo.subscribe({ query: gql(query) }).subscribe({
  next: (result) => say({ client: 'apollo', result }),
  error: (error) => { say({ client: 'apollo', error: error.code ?? String(error) }); done(); },
  complete: () => { say({ client: 'apollo', complete: true }); done(); },
});
