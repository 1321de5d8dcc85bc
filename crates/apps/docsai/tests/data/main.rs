//! docsai's data layers, tested without a server: the Postman model (import, export,
//! credentials, hostile files) and the SQLite migration reader (on a database made by
//! real Django).

mod engine;
mod migrate;
mod postman;
