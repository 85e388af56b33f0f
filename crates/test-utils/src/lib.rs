//! Test support shared by several crates' suites.
//!
//! - [`s3::S3sFs`]: a real S3 server (s3s-fs, shared/README.md) on a free
//!   loopback port and a data directory; stopping and starting it is a
//!   faithful S3 outage, since the data stays in the directory.
//! - [`dns::serve`]: a fake DNS server answering from a zone the test edits.

pub mod dns;
pub mod s3;
