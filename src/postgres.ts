/**
 * `blockid-otp/postgres`: the PostgreSQL store, in its own entry so that the main entry never
 * loads `pg` (an optional peer dependency; the caller passes the Pool, and the types name only the part of it the store uses).
 */
export {
  postgresStore,
  postgresSchemaSql,
  type PostgresStore,
  type PostgresStoreOptions,
  type PostgresPoolLike,
  type PostgresClientLike,
} from './stores/postgres.js';
