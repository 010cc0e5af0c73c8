// PostGraphile v5, amber preset, as a peer in gql_api's benchmark (bench/postgraphile_app.py
// installs and starts it; see bench/README.md). It serves the benchmark's database as it is:
// no auth, no custom plugins, so it answers anyone with everything in the `public` schema.
//
//   BENCH_DATABASE_URL=postgresql://... BENCH_PORT=5678 node server.mjs
//
// POST /graphql is grafserv's; GET /readyz answers 200 once the schema is built, so the
// benchmark starts and waits for it exactly as for the other apps.
import { createServer } from "node:http";
import { postgraphile } from "postgraphile";
import { makePgService } from "postgraphile/adaptors/pg";
import { grafserv } from "postgraphile/grafserv/node";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";

const connectionString = process.env.BENCH_DATABASE_URL;
const port = Number(process.env.BENCH_PORT);
const host = process.env.BENCH_HOST ?? "127.0.0.1";
if (!connectionString || !port) {
  console.error("BENCH_DATABASE_URL and BENCH_PORT are required");
  process.exit(2);
}

const preset = {
  extends: [PostGraphileAmberPreset],
  pgServices: [
    makePgService({
      connectionString,
      schemas: ["public"],
      // As many connections as the other apps keep (asyncpg max_size=25, the server's 25).
      poolConfig: { max: 25 },
    }),
  ],
  grafserv: { graphqlPath: "/graphql", graphiql: false, watch: false },
  grafast: { explain: false },
};

const pgl = postgraphile(preset);
const serv = pgl.createServ(grafserv);
const handler = serv.createHandler();
let ready = false;

const server = createServer((req, res) => {
  if (req.url === "/readyz") {
    res.writeHead(ready ? 200 : 503, { "content-type": "text/plain" });
    res.end(ready ? "ok" : "starting");
    return;
  }
  handler(req, res);
});

async function stop() {
  server.close();
  await pgl.release();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

server.listen(port, host, async () => {
  await pgl.getSchema(); // introspects the database: the first request would otherwise wait
  ready = true;
  console.log(`postgraphile ready on http://${host}:${port}/graphql (node ${process.version})`);
});
