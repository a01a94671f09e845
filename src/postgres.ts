/**
 * `blockid-otp/postgres`: the PostgreSQL store, in its own entry so that the main entry never
 * loads `pg` (an optional peer dependency; this entry only uses its types, the caller passes the Pool).
 */
export { postgresStore, postgresSchemaSql, type PostgresStore, type PostgresStoreOptions } from './stores/postgres.js';
