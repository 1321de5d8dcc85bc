//! aristay over real HTTP: a server on 127.0.0.1:0 with the aristay app on a local-disk
//! store (fsync on), the local identity provider and one user per role.

mod access;
mod admin;
mod automation;
mod bookings;
mod events;
mod import;
mod photos;
mod revert;
mod support {
    pub use bucketbase_testkit::aristay::*;
}
use bucketbase_testkit::workbook;
