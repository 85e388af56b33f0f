//! The store gateway (`hearth store`): serves every block of a bucket.
