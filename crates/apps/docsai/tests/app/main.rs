//! docsai served over HTTP: its access (SuperAdmin only, every record its owner's),
//! json_store by key, the Postman import and export, the SQLite migration through the
//! CLI's code path, and the concurrency the seed's services lost writes under.

mod support;

mod access;
mod concurrency;
mod json_store;
mod migrate;
mod postman;
mod records;
