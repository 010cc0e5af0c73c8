-- Runs once, when the data volume is created (docker-entrypoint-initdb.d).
-- slowQueries reads pg_stat_statements (preloaded by the server's command line in compose.yaml).
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
-- Behind PgBouncer (transaction mode) the app cannot send these as startup parameters.
ALTER DATABASE api_server SET statement_timeout = '30s';
ALTER DATABASE api_server SET idle_in_transaction_session_timeout = '60s';
